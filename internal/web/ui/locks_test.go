package ui

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"padlock/internal/lock"
)

// noStore holds no other locks: whitelistOffer decides from the lock and
// the (empty) list of the product's other locks.
type noStore struct{}

func (noStore) Update(context.Context, func(lock.Tx) error) error    { return errors.New("no store") }
func (noStore) View(_ context.Context, fn func(lock.Tx) error) error { return fn(noLocks{}) }

// noLocks answers ListLocks with nothing; any other call panics (nil Tx).
type noLocks struct{ lock.Tx }

func (noLocks) ListLocks(context.Context, lock.LockFilter) ([]lock.Lock, error) { return nil, nil }

// TestWhitelistOfferAsksTheService: the pages offer a whitelist exactly
// where the service would accept one, including what the wiring says the
// enforcement methods can do (a webhook that whitelists for storage boxes;
// nftables, which cannot for a subnet).
func TestWhitelistOfferAsksTheService(t *testing.T) {
	pol := lock.DefaultReasonPolicies()
	abuse := pol[lock.ReasonAbuse]
	abuse.Method = "storage-hook"
	pol[lock.ReasonAbuse] = abuse
	svc, err := lock.New(lock.Configuration{Reasons: pol}, lock.Dependencies{Store: noStore{}, CanWhitelist: func(m string, k lock.TargetKind) bool {
		return m == "storage-hook" && k == lock.TargetStorageBox || lock.DefaultCanWhitelist(m, k)
	}})
	if err != nil {
		t.Fatal(err)
	}
	u := &UI{svc: svc}
	now := time.Now()
	box := lock.Lock{LockingID: "L00000001", Reason: lock.ReasonAbuse, State: lock.StateLocked, ScopeKind: lock.ScopeStorageBox, Scope: lock.Scope{StorageBoxID: 1}}
	if ok, why := u.whitelistOffer(box, now); !ok {
		t.Errorf("storage box behind a whitelisting webhook: not offered: %s", why)
	}
	sub := lock.Lock{LockingID: "L00000002", Reason: lock.ReasonSpam, State: lock.StateLocked, ScopeKind: lock.ScopeSubnet,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	if ok, why := u.whitelistOffer(sub, now); ok || !strings.Contains(why, "subnet") {
		t.Errorf("subnet through nftables: %v %q, want refused, naming the subnet", ok, why)
	}
	np := lock.Lock{LockingID: "L00000003", Reason: lock.ReasonNonPayment, State: lock.StateLocked, ScopeKind: lock.ScopeIP,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.7/32")}}
	if ok, why := u.whitelistOffer(np, now); ok || why != "Whitelisting is not available for a lock because of non-payment; the lock ends as soon as the payment is received." {
		t.Errorf("non-payment: %v %q", ok, why)
	}
}
