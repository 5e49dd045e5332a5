package lock

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// TargetKind is a kind of enforcement target, named as the enforcement
// drivers name their scopes (internal/enforce Scope): one address (/32,
// /128), a subnet, or a storage box (no address: enforced through its
// backend).
type TargetKind string

const (
	TargetAddress    TargetKind = "address"
	TargetSubnet     TargetKind = "subnet"
	TargetStorageBox TargetKind = "storage_box"
)

// Targets returns the kinds of target enforcement applies a lock to: one
// per prefix (address or subnet) and storage_box for a storage box.
func (l Lock) Targets() []TargetKind {
	var out []TargetKind
	add := func(k TargetKind) {
		for _, x := range out {
			if x == k {
				return
			}
		}
		out = append(out, k)
	}
	if l.ScopeKind == ScopeStorageBox || l.Scope.StorageBoxID != 0 {
		add(TargetStorageBox)
	}
	for _, p := range l.Prefixes {
		if p.IsSingleIP() {
			add(TargetAddress)
		} else {
			add(TargetSubnet)
		}
	}
	return out
}

// DefaultCanWhitelist is what the built-in drivers can do with their
// default configuration, used when Dependencies.CanWhitelist is nil:
// FlowSpec lets a whitelisted source through to an address or a subnet,
// nftables to an address, the BGP blackhole never (it drops everything at
// the routers), and a webhook never (a webhook can only when it is
// configured with whitelist: true, which only the wiring knows). Nothing
// can let a source through to a storage box by default.
func DefaultCanWhitelist(method string, target TargetKind) bool {
	switch NormalizeMethod(method) {
	case MethodFlowSpec:
		return target == TargetAddress || target == TargetSubnet
	case MethodNftables:
		return target == TargetAddress
	}
	return false
}

// refusal is why a lock cannot get a whitelist entry now: the error the
// API returns and the sentence the customer reads in the client area.
type refusal struct {
	err error
	why string
}

// whitelistRefusal decides whether lock l can get a whitelist entry at
// now. Order matters: the lock's state first, then the reason's policy,
// then what the enforcement method can do for the lock's targets.
func (s *Service) whitelistRefusal(l Lock, now time.Time) *refusal {
	pol := s.cfg.Reasons[l.Reason]
	switch {
	case l.State == StateUnlocked:
		return &refusal{&Error{Kind: ErrInvalidTransition, Message: fmt.Sprintf("lock %s is %s; whitelisting is only possible while the product is locked", l.LockingID, l.State)},
			"The product is unlocked; there is nothing to whitelist."}
	case !Active(l.State, l.WarnUntil, now):
		return &refusal{&Error{Kind: ErrInvalidTransition, Message: fmt.Sprintf("lock %s is %s; whitelisting is only possible while the product is locked", l.LockingID, l.State)},
			"The product is only warned, not locked yet: you can still reach it normally."}
	case !pol.Whitelist && l.Reason == ReasonNonPayment:
		return &refusal{forbidden("whitelisting is not available for locks because of %s", l.Reason),
			"Whitelisting is not available for a lock because of non-payment; the lock ends as soon as the payment is received."}
	case !pol.Whitelist:
		return &refusal{forbidden("whitelisting is not available for locks because of %s", l.Reason),
			"Whitelisting is not available for locks because of " + reasonPhrase(l.Reason) + "."}
	}
	method := NormalizeMethod(s.Method(l))
	targets := l.Targets()
	if len(targets) == 0 {
		return &refusal{forbidden("lock %s covers no address a source could be let through to", l.LockingID),
			"This lock covers no address we could let you through to."}
	}
	for _, k := range targets {
		if s.canWhitelist(method, k) {
			continue
		}
		switch {
		case k == TargetStorageBox:
			return &refusal{forbidden("whitelisting is not available for a storage box locked through %s: the method cannot let a single address through", method),
				"A storage box has no address we could let you through to."}
		case method == MethodBlackhole:
			return &refusal{forbidden("whitelisting is not available for locks enforced by %s: it drops all traffic to the address at the routers", method),
				"This lock drops all traffic to the address at our routers, so no single address can be let through."}
		case k == TargetSubnet:
			return &refusal{forbidden("whitelisting is not available for a subnet locked through %s: the method can let a source through only to single addresses", method),
				"This lock covers a whole subnet, and the way it is enforced cannot let a single address through to it."}
		default:
			return &refusal{forbidden("whitelisting is not available for locks enforced by %s: the method cannot let a single address through", method),
				"The way this lock is enforced cannot let a single address through."}
		}
	}
	return nil
}

// WhitelistOffered says whether the customer can whitelist an address for
// lock l now and, if not, why not in a sentence for the customer. It
// applies the same rules AddWhitelist enforces: the lock is active, the
// reason offers whitelisting, and the enforcement method can let a source
// through to every target of the lock (Dependencies.CanWhitelist).
func (s *Service) WhitelistOffered(l Lock) (bool, string) {
	return s.WhitelistOfferedAt(l, s.clock())
}

// WhitelistOfferedAt is WhitelistOffered at a given time (a page rendered
// with its own clock).
func (s *Service) WhitelistOfferedAt(l Lock, now time.Time) (bool, string) {
	ok, why := s.WhitelistOffersAt([]Lock{l}, now)
	return ok[0], why[0]
}

// WhitelistOffersAt is WhitelistOfferedAt for several locks (a page that
// lists them), reading each customer's other locks once.
func (s *Service) WhitelistOffersAt(ls []Lock, now time.Time) (ok []bool, why []string) {
	ok, why = make([]bool, len(ls)), make([]string, len(ls))
	pending := false
	for i, l := range ls {
		if r := s.whitelistRefusal(l, now); r != nil {
			why[i] = r.why
		} else {
			ok[i], pending = true, true
		}
	}
	if !pending {
		return ok, why
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	blocking := map[int64][]Lock{}
	err := s.store.View(ctx, func(tx Tx) error {
		for i, l := range ls {
			if !ok[i] {
				continue
			}
			b, seen := blocking[l.CustomerID]
			if !seen {
				var err error
				if b, err = s.blockingLocks(ctx, tx, l.CustomerID, now); err != nil {
					return err
				}
				blocking[l.CustomerID] = b
			}
			if r := stackedRefusal(l, b); r != nil {
				ok[i], why[i] = false, r.why
			}
		}
		return nil
	})
	if err != nil {
		for i := range ls {
			if ok[i] {
				ok[i], why[i] = false, "We cannot check the other locks of this product right now; please try again."
			}
		}
	}
	return ok, why
}

// blockingLocks are the customer's active locks that let nobody through
// (a non-payment lock, a blackhole).
func (s *Service) blockingLocks(ctx context.Context, tx Tx, customerID int64, now time.Time) ([]Lock, error) {
	all, err := tx.ListLocks(ctx, LockFilter{CustomerID: customerID, Limit: 1000})
	if err != nil {
		return nil, err
	}
	var out []Lock
	for _, o := range all {
		if Active(o.State, o.WarnUntil, now) && s.whitelistRefusal(o, now) != nil {
			out = append(out, o)
		}
	}
	return out, nil
}

// stackedRefusal refuses a whitelist entry on l when blocking locks of the
// product cover every address of l (or its storage box): the entry would
// be accepted and the customer would still reach nothing.
func stackedRefusal(l Lock, blocking []Lock) *refusal {
	var by *Lock
	covered := func(p netip.Prefix) bool {
		for i, o := range blocking {
			if o.ID == l.ID {
				continue
			}
			for _, q := range o.Prefixes {
				if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
					by = &blocking[i]
					return true
				}
			}
		}
		return false
	}
	if l.Scope.StorageBoxID != 0 {
		for i, o := range blocking {
			if o.ID != l.ID && o.Scope.StorageBoxID == l.Scope.StorageBoxID {
				by = &blocking[i]
			}
		}
		if by == nil {
			return nil
		}
	} else {
		if len(l.Prefixes) == 0 {
			return nil
		}
		for _, p := range l.Prefixes {
			if !covered(p) {
				return nil // at least this address can be reached
			}
		}
	}
	return &refusal{
		forbidden("lock %s (%s) on the same product blocks all traffic: a whitelist entry on %s would not give access", by.LockingID, by.Reason, l.LockingID),
		fmt.Sprintf("Another lock on this product (%s, because of %s) blocks all traffic, so a whitelist entry here would not let you in.",
			by.LockingID, reasonPhrase(by.Reason))}
}

// reasonPhrases name the reasons as the customer reads them after
// "because of".
var reasonPhrases = map[Reason]string{
	ReasonNonPayment:       "non-payment",
	ReasonAbuse:            "abuse",
	ReasonIllegalContent:   "phishing, malware or copyright-infringing material",
	ReasonSpam:             "sending spam",
	ReasonNetworkAttack:    "attacks from your server",
	ReasonNetscan:          "network scans from your server",
	ReasonPacketLimit:      "an exceeded packet limit",
	ReasonIncorrectNetwork: "an incorrect network configuration",
}

func reasonPhrase(r Reason) string {
	if p, ok := reasonPhrases[r]; ok {
		return p
	}
	return strings.ReplaceAll(string(r), "_", " ")
}
