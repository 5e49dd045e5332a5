package storetest

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"padlock/internal/lock"
)

// A whitelist entry is refused (and not offered) where another lock of the
// product that lets nobody through covers every address: the customer
// would still reach nothing. Where an address stays reachable it is
// offered.
func testWhitelistStacked(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	ip := e.LockIP(t, "203.0.113.20", lock.ReasonNetscan) // srv-b's only address, FlowSpec
	if ok, why := e.Svc.WhitelistOffered(ip); !ok {
		t.Fatalf("netscan lock alone: not offered: %s", why)
	}
	np, err := e.Svc.CreateLock(e.Ctx, e.Billing, lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvB.ID}, Reason: lock.ReasonNonPayment}, "")
	if err != nil {
		t.Fatal(err)
	}
	ok, why := e.Svc.WhitelistOffered(ip)
	if ok || !strings.Contains(why, np.LockingID) || !strings.Contains(why, "non-payment") {
		t.Errorf("netscan lock under a non-payment lock: offered=%v %q", ok, why)
	}
	if _, err := e.Svc.AddWhitelist(e.Ctx, e.CB, ip.ID, "9.9.9.9"); !isKind(err, lock.ErrForbidden) {
		t.Errorf("AddWhitelist under a non-payment lock: %v, want ErrForbidden", err)
	}
	// srv-a: a blackhole on one of its addresses leaves the others reachable
	e.LockIP(t, "198.51.100.11", lock.ReasonNonPayment)
	srv, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvA.ID}, Reason: lock.ReasonNetscan}, "")
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := e.Svc.WhitelistOffered(srv); !ok {
		t.Errorf("server lock with one address blackholed: not offered: %s", why)
	}
}

// testWhitelistEnforcement: the service refuses a whitelist the lock's
// enforcement method cannot let through (a blackhole; a storage box; a
// subnet on nftables), whatever front end asks, and allows it where the
// wiring says the method can (a webhook configured with whitelist: true).
func testWhitelistEnforcement(t *testing.T, open Opener) {
	cfg := lock.Configuration{Reasons: lock.DefaultReasonPolicies()}
	spam := cfg.Reasons[lock.ReasonSpam]
	spam.Method = "blackhole" // the alias, as old configurations say it
	cfg.Reasons[lock.ReasonSpam] = spam
	e := NewEnv(t, open, cfg)
	refused := func(l lock.Lock, why string) {
		t.Helper()
		if ok, _ := e.Svc.WhitelistOffered(l); ok {
			t.Errorf("%s: whitelist offered", why)
		}
		_, err := e.Svc.AddWhitelist(e.Ctx, e.CA, l.ID, "9.9.9.9")
		if !isKind(err, lock.ErrForbidden) {
			t.Errorf("%s: AddWhitelist = %v, want ErrForbidden", why, err)
		}
		_, err = e.Svc.AddWhitelist(e.Ctx, e.Staff, l.ID, "9.9.9.9")
		if !isKind(err, lock.ErrForbidden) {
			t.Errorf("%s: AddWhitelist by staff = %v, want ErrForbidden", why, err)
		}
	}
	box, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{StorageBoxID: e.BoxA.ID}, Reason: lock.ReasonAbuse}, "")
	if err != nil {
		t.Fatal(err)
	}
	refused(box, "storage box through nftables")
	refused(e.LockIP(t, "198.51.100.11", lock.ReasonSpam), "blackhole")
	sub, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{Subnet: pfx("2001:db8:a::/64")}, Reason: lock.ReasonIncorrectNetwork}, "")
	if err != nil {
		t.Fatal(err)
	}
	refused(sub, "subnet through nftables")
	if ds, _ := e.Svc.DesiredState(e.Ctx); len(ds.Whitelist) != 0 {
		t.Fatalf("refused whitelists reached the desired state: %+v", ds.Whitelist)
	}
	// FlowSpec lets a source through to the server's addresses and subnet.
	srv, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvA.ID}, Reason: lock.ReasonNetscan}, "")
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := e.Svc.WhitelistOffered(srv); !ok {
		t.Errorf("flowspec server lock: not offered: %s", why)
	}
	if _, err := e.Svc.AddWhitelist(e.Ctx, e.CA, srv.ID, "9.9.9.9"); err != nil {
		t.Errorf("flowspec server lock: %v", err)
	}

	// A storage box whose backend webhook can whitelist.
	cfg.Reasons = lock.DefaultReasonPolicies()
	abuse := cfg.Reasons[lock.ReasonAbuse]
	abuse.Method = "storage-hook"
	cfg.Reasons[lock.ReasonAbuse] = abuse
	e = NewEnv(t, open, cfg, func(d *lock.Dependencies) {
		d.CanWhitelist = func(method string, target lock.TargetKind) bool {
			return method == "storage-hook" && target == lock.TargetStorageBox || lock.DefaultCanWhitelist(method, target)
		}
	})
	box, err = e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{StorageBoxID: e.BoxA.ID}, Reason: lock.ReasonAbuse}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.AddWhitelist(e.Ctx, e.CA, box.ID, "9.9.9.9"); err != nil {
		t.Fatalf("storage box through a whitelisting webhook: %v", err)
	}
	ds, _ := e.Svc.DesiredState(e.Ctx)
	if len(ds.Whitelist) != 1 || ds.Whitelist[0].LockID != box.ID || len(ds.Locks) != 1 || ds.Locks[0].Method != "storage-hook" {
		t.Errorf("desired state %+v", ds)
	}
	// The same webhook cannot let anyone through to an address.
	refused(e.LockIP(t, "198.51.100.10", lock.ReasonAbuse), "address through a storage-box webhook")
}

// testLockExpiry: a lock with ExpiresAt is persisted with its flags, leaves
// the desired state at its expiry, and ExpireLocks unlocks it with an
// audit event and an unlock mail; an inbound-protection lock starts no
// probation.
func testLockExpiry(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	now := e.Clock.Now()
	exp := now.Add(30 * time.Minute)
	req := lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{addr("203.0.113.20")}}, Reason: lock.ReasonPacketLimit,
		Note: "victim of an attack", ExpiresAt: &exp, InboundProtection: true}
	l, err := e.Svc.CreateLock(e.Ctx, lock.System, req, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Svc.GetLock(e.Ctx, e.Staff, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || !got.InboundProtection || got.StaffUnlockOnly {
		t.Fatalf("stored lock: expires %v inbound %v staff-only %v", got.ExpiresAt, got.InboundProtection, got.StaffUnlockOnly)
	}
	b, _ := json.Marshal(got)
	if !strings.Contains(string(b), `"expires_at":"2026-03-02T10:30:00Z"`) || !strings.Contains(string(b), `"inbound_protection":true`) {
		t.Errorf("lock JSON: %s", b)
	}
	if ev := e.Events.Last(); ev.Kind != lock.EventLock || ev.Lock == nil || !ev.Lock.InboundProtection || ev.Lock.ExpiresAt == nil || !ev.Lock.ExpiresAt.Equal(exp) {
		t.Errorf("lock mail event: %+v", ev)
	}
	e.Clock.Advance(30*time.Minute - time.Second)
	ds, _ := e.Svc.DesiredState(e.Ctx)
	if len(ds.Locks) != 1 || ds.Locks[0].ExpiresAt == nil || !ds.Locks[0].ExpiresAt.Equal(exp) {
		t.Fatalf("desired before expiry: %+v", ds.Locks)
	}
	if n, err := e.Svc.ExpireLocks(e.Ctx); n != 0 || err != nil {
		t.Errorf("ExpireLocks before expiry = %d, %v", n, err)
	}
	e.Clock.Advance(time.Second)
	if ds, _ = e.Svc.DesiredState(e.Ctx); len(ds.Locks) != 0 {
		t.Errorf("expired lock still desired: %+v", ds.Locks)
	}
	e.Changes.Take()
	n, err := e.Svc.ExpireLocks(e.Ctx)
	if n != 1 || err != nil {
		t.Fatalf("ExpireLocks = %d, %v; want 1", n, err)
	}
	got, _ = e.Svc.GetLock(e.Ctx, e.Staff, l.ID)
	if got.State != lock.StateUnlocked || got.ProbationUntil != nil {
		t.Errorf("after expiry: state %s, probation %v (inbound protection: none)", got.State, got.ProbationUntil)
	}
	au := e.Audit(t, l.ID)
	if last := au[len(au)-1]; last.Action != string(lock.ActionUnlock) || last.ActorRole != lock.RoleSystem || last.Note != lock.ExpiredNote {
		t.Errorf("audit of the expiry: %+v", last)
	}
	if ev := e.Events.Last(); ev.Kind != lock.EventUnlock || ev.Note != lock.ExpiredNote || ev.Lock == nil || !ev.Lock.InboundProtection {
		t.Errorf("expiry mail event: %+v", ev)
	}
	if ch := e.Changes.Take(); len(ch) != 1 || ch[0].LockID != l.ID {
		t.Errorf("changes reported: %+v", ch)
	}
	if n, _ := e.Svc.ExpireLocks(e.Ctx); n != 0 {
		t.Errorf("second ExpireLocks unlocked %d again", n)
	}
	// A new inbound attack: no probation, so a new lock.
	exp2 := e.Clock.Now().Add(time.Hour)
	req.ExpiresAt = &exp2
	l2, err := e.Svc.CreateLock(e.Ctx, lock.System, req, "")
	if err != nil || l2.ID == l.ID {
		t.Errorf("second inbound protection: %+v %v, want a new lock", l2, err)
	}

	// An expiry must lie ahead (and after a warning deadline).
	past := e.Clock.Now().Add(-time.Minute)
	_, err = e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{addr("198.51.100.10")}}, Reason: lock.ReasonNetscan, ExpiresAt: &past}, "")
	if d := lock.ErrorDetails(err); !isKind(err, lock.ErrValidation) || d.Field != "expires_at" {
		t.Errorf("expiry in the past: %v", err)
	}
	warn, soon := e.Clock.Now().Add(2*time.Hour), e.Clock.Now().Add(time.Hour)
	_, err = e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{addr("198.51.100.10")}}, Reason: lock.ReasonNetscan, WarnUntil: &warn, ExpiresAt: &soon}, "")
	if !isKind(err, lock.ErrValidation) {
		t.Errorf("expiry before the warning deadline: %v", err)
	}

	// The fields round-trip through the store.
	mark := e.Clock.Now().Add(time.Hour).UTC().Truncate(time.Second)
	lm, err := e.Svc.CreateLock(e.Ctx, lock.System, lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{addr("198.51.100.11")}}, Reason: lock.ReasonNetworkAttack,
		Note: "blackholed to protect the network", ExpiresAt: &mark, InboundProtection: true, StaffUnlockOnly: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.Svc.GetLock(e.Ctx, e.Staff, lm.ID); err != nil || got.ExpiresAt == nil || !got.ExpiresAt.Equal(mark) || !got.InboundProtection || !got.StaffUnlockOnly {
		t.Errorf("stored lock: expires %v inbound %v staff-only %v (%v)", got.ExpiresAt, got.InboundProtection, got.StaffUnlockOnly, err)
	}

	// A recurrence within probation takes the new request's expiry.
	nl := e.LockIP(t, "198.51.100.10", lock.ReasonNetscan)
	if _, err := e.Svc.Unlock(e.Ctx, e.Staff, nl.ID, "fixed"); err != nil {
		t.Fatal(err)
	}
	exp3 := e.Clock.Now().Add(3 * time.Hour)
	re, err := e.Svc.CreateLock(e.Ctx, lock.System, lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{addr("198.51.100.10")}}, Reason: lock.ReasonNetscan, ExpiresAt: &exp3, StaffUnlockOnly: true}, "")
	if err != nil || re.ID != nl.ID || re.State != lock.StateLocked {
		t.Fatalf("relock: %+v %v", re, err)
	}
	re, _ = e.Svc.GetLock(e.Ctx, e.Staff, nl.ID)
	if re.ExpiresAt == nil || !re.ExpiresAt.Equal(exp3) || !re.StaffUnlockOnly {
		t.Errorf("relocked lock: expires %v staff-only %v", re.ExpiresAt, re.StaffUnlockOnly)
	}
}

// testLockMethod: a lock may carry its own enforcement method (the
// policy's blackhole for an inbound victim), which enforcement and the
// whitelist rules follow instead of the reason's.
// A storage box has no address: its locks go to the configured backend
// (locks.storage_box_method), whatever the reason's address-based method.
func testStorageBoxMethod(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{StorageBoxMethod: "box-backend"})
	box, err := e.Svc.CreateLock(e.Ctx, e.Billing, lock.CreateLockRequest{Scope: lock.Scope{StorageBoxID: e.BoxA.ID}, Reason: lock.ReasonNonPayment}, "")
	if err != nil {
		t.Fatal(err)
	}
	ip := e.LockIP(t, "198.51.100.10", lock.ReasonNonPayment)
	methods := map[int64]string{}
	for _, al := range mustDesired(t, e).Locks {
		methods[al.ID] = al.Method
	}
	if methods[box.ID] != "box-backend" || methods[ip.ID] != lock.MethodBlackhole {
		t.Errorf("desired methods %v: want the storage box's backend for the box, the reason's for the address", methods)
	}
}

func testLockMethod(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	l, err := e.Svc.CreateLock(e.Ctx, lock.System, lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{addr("203.0.113.20")}},
		Reason: lock.ReasonPacketLimit, Method: "blackhole"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Svc.GetLock(e.Ctx, e.Staff, l.ID); got.Method != lock.MethodBlackhole || e.Svc.Method(got) != lock.MethodBlackhole {
		t.Errorf("stored method %q", got.Method)
	}
	plain := e.LockIP(t, "198.51.100.10", lock.ReasonPacketLimit)
	methods := map[int64]string{}
	for _, al := range mustDesired(t, e).Locks {
		methods[al.ID] = al.Method
	}
	if methods[l.ID] != lock.MethodBlackhole || methods[plain.ID] != lock.MethodFlowSpec {
		t.Errorf("desired methods %v: want the lock's own, else the reason's", methods)
	}
	if ok, why := e.Svc.WhitelistOffered(l); ok || !strings.Contains(why, "drops all traffic") {
		t.Errorf("whitelist on a blackholed lock of a whitelisting reason: %v %q", ok, why)
	}
	if _, err := e.Svc.AddWhitelist(e.Ctx, e.CB, l.ID, "9.9.9.9"); !isKind(err, lock.ErrForbidden) {
		t.Errorf("AddWhitelist on the blackholed lock: %v", err)
	}
	if _, err := e.Svc.CreateLock(e.Ctx, e.Billing, lock.CreateLockRequest{Scope: lock.Scope{StorageBoxID: e.BoxA.ID}, Reason: lock.ReasonNonPayment, Method: "webhook"}, ""); !isKind(err, lock.ErrForbidden) {
		t.Errorf("billing choosing a method: %v", err)
	}
	// The method is stored with the lock.
	lm, err := e.Svc.CreateLock(e.Ctx, lock.System, lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{addr("198.51.100.11")}},
		Reason: lock.ReasonNetscan, Method: "nftables"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.Svc.GetLock(e.Ctx, e.Staff, lm.ID); err != nil || got.Method != lock.MethodNftables {
		t.Errorf("stored method: %q %v", got.Method, err)
	}
}

// testStaffUnlockOnly: billing cannot lift a staff-only lock, neither
// directly nor by a payment; staff can; the customer may still ask.
func testStaffUnlockOnly(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	box, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{StorageBoxID: e.BoxA.ID}, Reason: lock.ReasonNonPayment, StaffUnlockOnly: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := e.Svc.CreateLock(e.Ctx, e.Billing, lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvA.ID}, Reason: lock.ReasonNonPayment}, "")
	if err != nil {
		t.Fatal(err)
	}
	// billing's non-payment locks carry none of the abuse team's flags
	later := time.Now().Add(time.Hour)
	for name, req := range map[string]lock.CreateLockRequest{
		"inbound protection": {Scope: lock.Scope{StorageBoxID: e.BoxA.ID}, Reason: lock.ReasonNonPayment, InboundProtection: true},
		"end date":           {Scope: lock.Scope{StorageBoxID: e.BoxA.ID}, Reason: lock.ReasonNonPayment, ExpiresAt: &later},
		"staff-only unlock":  {Scope: lock.Scope{StorageBoxID: e.BoxA.ID}, Reason: lock.ReasonNonPayment, StaffUnlockOnly: true},
	} {
		if _, err := e.Svc.CreateLock(e.Ctx, e.Billing, req, ""); !isKind(err, lock.ErrForbidden) {
			t.Errorf("billing lock with %s: %v, want ErrForbidden", name, err)
		}
	}
	if _, err := e.Svc.RequestUnlock(e.Ctx, e.CA, srv.ID, "I paid"); !isKind(err, lock.ErrValidation) {
		t.Errorf("unlock request on a lock the payment lifts: %v, want ErrValidation", err)
	}
	if _, err := e.Svc.Unlock(e.Ctx, e.Billing, box.ID, "paid"); !isKind(err, lock.ErrForbidden) {
		t.Errorf("billing unlock of a staff-only lock: %v, want ErrForbidden", err)
	}
	unlocked, err := e.Svc.ClearNonPayment(e.Ctx, e.Billing, e.A.ID, "payment received")
	if err != nil {
		t.Fatal(err)
	}
	if ids := lockIDs(unlocked); !slices.Equal(ids, []int64{srv.ID}) {
		t.Errorf("payment unlocked %v, want only %d", ids, srv.ID)
	}
	if cur, _ := e.Svc.GetLock(e.Ctx, e.Staff, box.ID); cur.State != lock.StateLocked || !cur.StaffUnlockOnly {
		t.Errorf("staff-only lock after payment: %s staff-only=%v", cur.State, cur.StaffUnlockOnly)
	}
	r, err := e.Svc.RequestUnlock(e.Ctx, e.CA, box.ID, "paid and fixed")
	if err != nil {
		t.Fatalf("customer request on a staff-only lock: %v", err)
	}
	if _, _, err := e.Svc.ApproveUnlock(e.Ctx, e.Billing, r.ID, "ok"); !isKind(err, lock.ErrForbidden) {
		t.Errorf("billing approval of a staff-only lock: %v, want ErrForbidden", err)
	}
	if _, l, err := e.Svc.ApproveUnlock(e.Ctx, e.Staff, r.ID, "reviewed"); err != nil || l.State != lock.StateUnlocked {
		t.Errorf("staff approval: %+v %v", l, err)
	}
}

func mustDesired(t *testing.T, e *Env) lock.DesiredState {
	t.Helper()
	ds, err := e.Svc.DesiredState(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}
