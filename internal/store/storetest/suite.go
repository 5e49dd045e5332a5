package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/mail"
	"padlock/internal/store"
)

// Run runs the whole conformance suite against one engine.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"Transitions", testTransitions},
		{"ProbationRecurrence", testProbationRecurrence},
		{"UnlockRequestRace", testUnlockRequestRace},
		{"OneOpenRequestIndex", testOneOpenRequestIndex},
		{"UnlockRequestDecisions", testUnlockRequestDecisions},
		{"Idempotency", testIdempotency},
		{"Whitelist", testWhitelist},
		{"WhitelistPolicy", testWhitelistPolicy},
		{"WhitelistEnforcement", testWhitelistEnforcement},
		{"WhitelistStacked", testWhitelistStacked},
		{"LockExpiry", testLockExpiry},
		{"StaffUnlockOnly", testStaffUnlockOnly},
		{"LockMethod", testLockMethod},
		{"StorageBoxMethod", testStorageBoxMethod},
		{"Authorization", testAuthorization},
		{"CustomerView", testCustomerView},
		{"UnlockRequestTicket", testUnlockRequestTicket},
		{"Lookup", testLookup},
		{"Scopes", testScopes},
		{"StackingAndPayment", testStackingAndPayment},
		{"DesiredState", testDesiredState},
		{"AtomicChange", testAtomicChange},
		{"Outbox", testOutbox},
		{"AuditAppendOnly", testAuditAppendOnly},
		{"Tickets", testTickets},
		{"Import", testImport},
		{"Tokens", testTokens},
		{"Findings", testFindings},
		{"FindingMails", testFindingMails},
		{"Breaker", testBreaker},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func isKind(err, kind error) bool { return err != nil && errors.Is(err, kind) }

// lockIn brings a fresh lock of server A's first address into state st.
func lockIn(t *testing.T, e *Env, st lock.State, ip string) lock.Lock {
	t.Helper()
	req := lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{addr(ip)}}, Reason: lock.ReasonNetscan, Note: "seen scanning"}
	if st == lock.StateWarned {
		w := e.Clock.Now().Add(time.Hour)
		req.WarnUntil = &w
	}
	l, err := e.Svc.CreateLock(e.Ctx, e.Staff, req, "")
	if err != nil {
		t.Fatal(err)
	}
	switch st {
	case lock.StateUnlockRequested:
		if _, err := e.Svc.RequestUnlock(e.Ctx, e.CA, l.ID, "fixed it"); err != nil {
			t.Fatal(err)
		}
	case lock.StateUnlocked:
		if _, err := e.Svc.Unlock(e.Ctx, e.Staff, l.ID, "resolved"); err != nil {
			t.Fatal(err)
		}
	}
	l, err = e.Svc.GetLock(e.Ctx, e.Staff, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if l.State != st {
		t.Fatalf("setup: lock is %s, want %s", l.State, st)
	}
	return l
}

// testTransitions tries every action from every state through the service:
// the transition table's valid moves succeed and write an audit event with
// the before and after state; everything else is refused with
// ErrInvalidTransition and a reason, changing nothing.
func testTransitions(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	n := 0
	for _, from := range lock.States {
		for _, act := range lock.Actions {
			t.Run(fmt.Sprintf("%s/%s", from, act), func(t *testing.T) {
				n++
				ip := fmt.Sprintf("2001:db8:a::%x", n)
				l := lockIn(t, e, from, ip)
				auditBefore := len(e.Audit(t, l.ID))
				want, werr := lock.Transition(from, act)
				actor := e.Staff
				if act == lock.ActionRequestUnlock {
					actor = e.CA
				}
				got, err := e.Svc.Apply(e.Ctx, actor, l.ID, act, "note for "+string(act))
				audit := e.Audit(t, l.ID)
				if werr != nil && from == lock.StateUnlockRequested && act == lock.ActionRequestUnlock {
					// The seed's rule: a second unlock request is refused
					// with a pointer to the open one.
					if d := lock.ErrorDetails(err); !isKind(err, lock.ErrConflict) || d.ExistingID == 0 {
						t.Fatalf("second unlock request: %v, want ErrConflict with the open request's ID", err)
					}
					if len(audit) != auditBefore {
						t.Errorf("refused request wrote %d audit events", len(audit)-auditBefore)
					}
					return
				}
				if werr != nil {
					if !isKind(err, lock.ErrInvalidTransition) {
						t.Fatalf("%s from %s: err = %v, want ErrInvalidTransition", act, from, err)
					}
					if d := lock.ErrorDetails(err); d == nil || !strings.Contains(d.Message, "cannot") || len(d.Message) < 20 {
						t.Errorf("refusal without a reason: %v", err)
					}
					cur, _ := e.Svc.GetLock(e.Ctx, e.Staff, l.ID)
					if cur.State != from {
						t.Errorf("refused transition changed state to %s", cur.State)
					}
					if len(audit) != auditBefore {
						t.Errorf("refused transition wrote %d audit events", len(audit)-auditBefore)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s from %s: %v", act, from, err)
				}
				if got.State != want {
					t.Fatalf("%s from %s: state %s, want %s", act, from, got.State, want)
				}
				if !lock.Allowed(from, want) {
					t.Errorf("Allowed(%s, %s) = false for a table transition", from, want)
				}
				var ev *lock.AuditEvent
				for i := range audit[auditBefore:] {
					if audit[auditBefore+i].Action == string(act) {
						ev = &audit[auditBefore+i]
					}
				}
				if ev == nil {
					t.Fatalf("no audit event %q after %s from %s", act, act, from)
				}
				if !strings.Contains(ev.Before, `"state":"`+string(from)+`"`) || !strings.Contains(ev.After, `"state":"`+string(want)+`"`) {
					t.Errorf("audit before/after do not show %s → %s:\n%s\n%s", from, want, ev.Before, ev.After)
				}
				if ev.Actor != actor.String() || !ev.At.Equal(e.Clock.Now()) || ev.Note != "note for "+string(act) {
					t.Errorf("audit event = %+v", ev)
				}
			})
		}
	}
}

func testProbationRecurrence(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{Probation: 48 * time.Hour})
	scope := lock.Scope{ServerID: e.SrvA.ID}
	l, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: scope, Reason: lock.ReasonSpam}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.Unlock(e.Ctx, e.Staff, l.ID, "customer fixed the mail server"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(24 * time.Hour)
	// A recurrence within probation re-locks at once, even if the caller asked for a warning.
	w := e.Clock.Now().Add(6 * time.Hour)
	again, err := e.Svc.CreateLock(e.Ctx, e.System(), lock.CreateLockRequest{Scope: scope, Reason: lock.ReasonSpam, WarnUntil: &w}, "")
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != l.ID || again.State != lock.StateLocked {
		t.Fatalf("recurrence within probation: got lock %d in %s, want lock %d re-locked", again.ID, again.State, l.ID)
	}
	if k := e.Events.Kinds(); k[len(k)-1] != "relock" {
		t.Errorf("last mail kind %q, want relock", k[len(k)-1])
	}
	// Protecting the server as a victim is not a recurrence: its own lock,
	// the spam lock keeps its state and probation.
	if _, err := e.Svc.Unlock(e.Ctx, e.Staff, l.ID, "fixed once more"); err != nil {
		t.Fatal(err)
	}
	until := e.Clock.Now().Add(time.Hour)
	victim, err := e.Svc.CreateLock(e.Ctx, e.System(), lock.CreateLockRequest{Scope: scope, Reason: lock.ReasonSpam, InboundProtection: true, ExpiresAt: &until}, "")
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := e.Svc.GetLock(e.Ctx, e.Staff, l.ID); victim.ID == l.ID || cur.State != lock.StateUnlocked || cur.InboundProtection {
		t.Fatalf("inbound protection re-locked the customer's lock: victim %d, old %+v", victim.ID, cur)
	}
	if _, err := e.Svc.Unlock(e.Ctx, e.Staff, victim.ID, "attack over"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.Relock(e.Ctx, e.Staff, l.ID, "spam again"); err != nil {
		t.Fatalf("the spam lock lost its probation: %v", err)
	}
	// Another reason is another lock.
	other, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: scope, Reason: lock.ReasonNetscan}, "")
	if err != nil || other.ID == l.ID {
		t.Fatalf("other reason: %v, id %d", err, other.ID)
	}
	// After probation: a new warning, a new lock.
	if _, err := e.Svc.Unlock(e.Ctx, e.Staff, l.ID, "fixed again"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(49 * time.Hour)
	if _, err := e.Svc.Relock(e.Ctx, e.Staff, l.ID, ""); !isKind(err, lock.ErrInvalidTransition) || !strings.Contains(err.Error(), "probation") {
		t.Errorf("relock after probation: %v, want ErrInvalidTransition naming the probation", err)
	}
	w = e.Clock.Now().Add(6 * time.Hour)
	fresh, err := e.Svc.CreateLock(e.Ctx, e.System(), lock.CreateLockRequest{Scope: scope, Reason: lock.ReasonSpam, WarnUntil: &w}, "")
	if err != nil {
		t.Fatal(err)
	}
	if fresh.ID == l.ID || fresh.State != lock.StateWarned {
		t.Errorf("after probation: lock %d in %s, want a new warned lock", fresh.ID, fresh.State)
	}
}

// System is the automatic pipeline's actor.
func (e *Env) System() lock.Actor { return lock.System }

// testUnlockRequestRace submits many unlock requests for one lock at the
// same time: exactly one wins, all others get ErrConflict pointing to it.
func testUnlockRequestRace(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	for round := 0; round < 3; round++ {
		l := e.LockIP(t, fmt.Sprintf("2001:db8:a::%d", 100+round), lock.ReasonAbuse)
		const n = 16
		var wg sync.WaitGroup
		start := make(chan struct{})
		ids := make([]int64, n)
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				r, err := e.Svc.RequestUnlock(e.Ctx, e.CA, l.ID, fmt.Sprintf("request %d", i))
				ids[i], errs[i] = r.ID, err
			}(i)
		}
		close(start)
		wg.Wait()
		var winner int64
		wins := 0
		for i := range n {
			if errs[i] == nil {
				wins++
				winner = ids[i]
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d requests succeeded, want exactly 1 (errors: %v)", round, wins, errs)
		}
		for i := range n {
			if errs[i] == nil {
				continue
			}
			d := lock.ErrorDetails(errs[i])
			if !isKind(errs[i], lock.ErrConflict) || d == nil || d.ExistingID != winner {
				t.Errorf("round %d: loser %d: %v (existing %v), want ErrConflict pointing to %d", round, i, errs[i], d, winner)
			}
		}
		open, err := e.Svc.ListUnlockRequests(e.Ctx, e.Staff, lock.UnlockRequestFilter{LockID: l.ID})
		if err != nil || len(open) != 1 {
			t.Fatalf("stored requests: %d (%v), want 1", len(open), err)
		}
	}
}

// testOneOpenRequestIndex bypasses the service: the database itself
// refuses a second open request for a lock.
func testOneOpenRequestIndex(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	l := e.LockIP(t, "198.51.100.10", lock.ReasonAbuse)
	ins := func() error {
		return e.DB.Update(e.Ctx, func(tx lock.Tx) error {
			return tx.InsertUnlockRequest(e.Ctx, &lock.UnlockRequest{LockID: l.ID, LockingID: l.LockingID, CustomerID: e.A.ID,
				State: lock.RequestOpen, CreatedAt: e.Clock.Now(), CreatedBy: "test"})
		})
	}
	if err := ins(); err != nil {
		t.Fatal(err)
	}
	err := ins()
	if d := lock.ErrorDetails(err); !isKind(err, lock.ErrConflict) || d.Field != "unlock_request" {
		t.Fatalf("second open request: %v, want ErrConflict on unlock_request", err)
	}
	reqs, _ := e.Svc.ListUnlockRequests(e.Ctx, e.Staff, lock.UnlockRequestFilter{LockID: l.ID})
	if len(reqs) != 1 {
		t.Errorf("%d requests stored", len(reqs))
	}
}

func testUnlockRequestDecisions(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	l := e.LockIP(t, "198.51.100.10", lock.ReasonNetscan)
	r1, err := e.Svc.RequestUnlock(e.Ctx, e.CA, l.ID, "we removed the scanner")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Svc.RequestUnlock(e.Ctx, e.CA, l.ID, "please!")
	if d := lock.ErrorDetails(err); !isKind(err, lock.ErrConflict) || d.ExistingID != r1.ID || !strings.Contains(d.Message, "multiple unlock requests") {
		t.Fatalf("second request: %v", err)
	}
	if _, _, err := e.Svc.RejectUnlock(e.Ctx, e.Staff, r1.ID, ""); !isKind(err, lock.ErrValidation) {
		t.Errorf("reject without note: %v, want ErrValidation", err)
	}
	r, lk, err := e.Svc.RejectUnlock(e.Ctx, e.Staff, r1.ID, "the scan is still running at 14:02")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != lock.RequestRejected || lk.State != lock.StateLocked {
		t.Fatalf("after reject: request %s, lock %s", r.State, lk.State)
	}
	got, err := e.Svc.GetUnlockRequest(e.Ctx, e.CA, r1.ID)
	if err != nil || got.Note != "the scan is still running at 14:02" {
		t.Errorf("customer sees request %+v, %v; want the rejection note", got, err)
	}
	if _, _, err := e.Svc.ApproveUnlock(e.Ctx, e.Staff, r1.ID, ""); !isKind(err, lock.ErrConflict) {
		t.Errorf("approving a rejected request: %v, want ErrConflict", err)
	}
	r2, err := e.Svc.RequestUnlock(e.Ctx, e.CA, l.ID, "now really fixed")
	if err != nil {
		t.Fatalf("new request after rejection: %v", err)
	}
	if _, _, err := e.Svc.ApproveUnlock(e.Ctx, e.CA, r2.ID, ""); !isKind(err, lock.ErrForbidden) {
		t.Errorf("customer approving: %v, want ErrForbidden", err)
	}
	r, lk, err = e.Svc.ApproveUnlock(e.Ctx, e.Staff, r2.ID, "thanks")
	if err != nil || r.State != lock.RequestApproved || lk.State != lock.StateUnlocked {
		t.Fatalf("approve: %v %s %s", err, r.State, lk.State)
	}
	kinds := e.Events.Kinds()
	for _, k := range []string{"unlock_request_received", "unlock_request_rejected", "unlock_request_approved"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("no %s mail (mails: %v)", k, kinds)
		}
	}
}

func testIdempotency(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	req := lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvA.ID}, Reason: lock.ReasonNonPayment, Note: "invoice 4711"}
	l1, err := e.Svc.CreateLock(e.Ctx, e.Billing, req, "inv-4711")
	if err != nil {
		t.Fatal(err)
	}
	l2, err := e.Svc.CreateLock(e.Ctx, e.Billing, req, "inv-4711")
	if err != nil || l2.ID != l1.ID || l2.LockingID != l1.LockingID {
		t.Fatalf("retry: %v, lock %d, want %d", err, l2.ID, l1.ID)
	}
	other := req
	other.Note = "invoice 4712"
	_, err = e.Svc.CreateLock(e.Ctx, e.Billing, other, "inv-4711")
	if d := lock.ErrorDetails(err); !isKind(err, lock.ErrConflict) || d.Field != "idempotency_key" || d.ExistingID != l1.ID {
		t.Fatalf("same key, other body: %v", err)
	}
	ls, _ := e.Svc.ListLocks(e.Ctx, e.Staff, lock.LockFilter{CustomerID: e.A.ID})
	if len(ls) != 1 {
		t.Fatalf("%d locks after retries, want 1", len(ls))
	}
	if n := len(e.Audit(t, l1.ID)); n != 1 {
		t.Errorf("%d audit events after retries, want 1", n)
	}
	// Concurrent first use of one key: one lock, every caller gets it.
	req2 := lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvB.ID}, Reason: lock.ReasonNonPayment}
	const n = 8
	var wg sync.WaitGroup
	ids := make([]int64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := e.Svc.CreateLock(e.Ctx, e.Billing, req2, "inv-9000")
			ids[i], errs[i] = l.ID, err
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Errorf("concurrent retry %d: lock %d, %v (first %d)", i, ids[i], errs[i], ids[0])
		}
	}
	ls, _ = e.Svc.ListLocks(e.Ctx, e.Staff, lock.LockFilter{CustomerID: e.B.ID})
	if len(ls) != 1 {
		t.Errorf("%d locks after concurrent retries, want 1", len(ls))
	}
}

func testWhitelist(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{OwnNetworks: []netip.Prefix{pfx("192.0.0.0/8"), pfx("2a01:4f8::/29")}})
	l := e.LockIP(t, "198.51.100.10", lock.ReasonNetscan)
	for _, tc := range []struct{ ip, why string }{
		{"9.9.9.0/24", "range"},
		{"9.9.9.1-9.9.9.9", "range"},
		{"not-an-ip", "not an IP"},
		{"10.1.2.3", "private"},
		{"192.168.1.10", "private"},
		{"127.0.0.1", "loopback"},
		{"::1", "loopback"},
		{"fe80::1%eth0", "zone"},
		{"169.254.1.1", "link-local"},
		{"224.0.0.5", "multicast"},
		{"0.0.0.0", "unspecified"},
		{"100.64.1.1", "shared (CGNAT)"},
		{"203.0.113.9", "documentation bogon"},
		{"2001:db8::5", "documentation bogon v6"},
		{"fd00::1", "unique local v6"},
		{"192.1.2.3", "own network"},
		{"2a01:4f8:1::1", "own network v6"},
		{"198.51.100.11", "inventory address (also doc range)"},
	} {
		_, err := e.Svc.AddWhitelist(e.Ctx, e.CA, l.ID, tc.ip)
		if d := lock.ErrorDetails(err); !isKind(err, lock.ErrValidation) || d.Field != "ip" {
			t.Errorf("whitelist %s (%s): %v, want ErrValidation on field ip", tc.ip, tc.why, err)
		}
	}
	w, err := e.Svc.AddWhitelist(e.Ctx, e.CA, l.ID, "9.9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	if !w.ExpiresAt.Equal(e.Clock.Now().Add(24 * time.Hour)) {
		t.Errorf("expires %v, want 24h after %v", w.ExpiresAt, e.Clock.Now())
	}
	ds, _ := e.Svc.DesiredState(e.Ctx)
	if len(ds.Whitelist) != 1 || ds.Whitelist[0].IP != addr("9.9.9.9") {
		t.Fatalf("desired whitelist %+v", ds.Whitelist)
	}
	// A new address replaces the old one: a single address at a time.
	w6, err := e.Svc.AddWhitelist(e.Ctx, e.CA, l.ID, "2a00:1450:4001::1")
	if err != nil {
		t.Fatal(err)
	}
	ds, _ = e.Svc.DesiredState(e.Ctx)
	if len(ds.Whitelist) != 1 || ds.Whitelist[0].ID != w6.ID {
		t.Fatalf("after replacement, desired whitelist %+v", ds.Whitelist)
	}
	e.Clock.Advance(24*time.Hour - time.Second)
	if ds, _ = e.Svc.DesiredState(e.Ctx); len(ds.Whitelist) != 1 {
		t.Errorf("whitelist gone before expiry")
	}
	e.Clock.Advance(time.Second)
	if ds, _ = e.Svc.DesiredState(e.Ctx); len(ds.Whitelist) != 0 {
		t.Errorf("whitelist still desired at expiry: %+v", ds.Whitelist)
	}
	if err := e.Svc.RemoveWhitelist(e.Ctx, e.CA, l.ID); !isKind(err, lock.ErrNotFound) {
		t.Errorf("remove expired: %v, want ErrNotFound", err)
	}
	n, err := e.Svc.ExpireWhitelists(e.Ctx)
	if err != nil || n != 1 {
		t.Errorf("ExpireWhitelists = %d, %v; want 1 (the replaced entry was removed already)", n, err)
	}
	if k := e.Events.Kinds(); k[len(k)-1] != lock.EventWhitelistExpired {
		t.Errorf("no whitelist_expired mail: %v", k)
	}
	if n, _ := e.Svc.ExpireWhitelists(e.Ctx); n != 0 {
		t.Errorf("second ExpireWhitelists expired %d again", n)
	}
	if _, err := e.Svc.AddWhitelist(e.Ctx, e.CA, l.ID, "9.9.9.9"); err != nil {
		t.Fatal(err)
	}
	if err := e.Svc.RemoveWhitelist(e.Ctx, e.CA, l.ID); err != nil {
		t.Fatal(err)
	}
	if ds, _ = e.Svc.DesiredState(e.Ctx); len(ds.Whitelist) != 0 {
		t.Errorf("removed whitelist still desired")
	}
	all, _ := e.Svc.ListWhitelist(e.Ctx, e.CA, l.ID)
	if len(all) != 3 {
		t.Errorf("whitelist history has %d entries, want 3", len(all))
	}
	// Not while only warned, not after unlock.
	warned := lockIn(t, e, lock.StateWarned, "2001:db8:a::77")
	if _, err := e.Svc.AddWhitelist(e.Ctx, e.CA, warned.ID, "9.9.9.9"); !isKind(err, lock.ErrInvalidTransition) {
		t.Errorf("whitelist on a warning: %v", err)
	}
	if _, err := e.Svc.AddWhitelist(e.Ctx, e.Billing, l.ID, "9.9.9.9"); !isKind(err, lock.ErrForbidden) {
		t.Errorf("billing whitelisting: %v, want ErrForbidden", err)
	}
}

func testWhitelistPolicy(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{Reasons: map[lock.Reason]lock.ReasonPolicy{
		lock.ReasonSpam: {Whitelist: true, WhitelistTTL: 2 * time.Hour},
	}})
	for _, r := range []lock.Reason{lock.ReasonNonPayment, lock.ReasonIllegalContent} {
		l, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvA.ID}, Reason: r}, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Svc.AddWhitelist(e.Ctx, e.CA, l.ID, "9.9.9.9"); !isKind(err, lock.ErrForbidden) {
			t.Errorf("whitelist for %s: %v, want ErrForbidden (not offered)", r, err)
		}
	}
	l := e.LockIP(t, "203.0.113.20", lock.ReasonSpam)
	w, err := e.Svc.AddWhitelist(e.Ctx, e.CB, l.ID, "9.9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	if got := w.ExpiresAt.Sub(w.CreatedAt); got != 2*time.Hour {
		t.Errorf("spam whitelist lasts %v, want the configured 2h", got)
	}
}

// A customer reads its locks, audit log, tickets and unlock requests
// without the staff's internal notes, names and audit snapshots; staff
// read all of it. The decision note written for the customer stays.
func testCustomerView(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	l, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{addr("198.51.100.10")}},
		Reason: lock.ReasonAbuse, Note: "internal: complaint #4711 from CERT"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.RequestUnlock(e.Ctx, e.CA, l.ID, "fixed, please unlock"); err != nil {
		t.Fatal(err)
	}
	reqs, _ := e.Svc.ListUnlockRequests(e.Ctx, e.Staff, lock.UnlockRequestFilter{LockID: l.ID})
	if len(reqs) != 1 {
		t.Fatalf("requests: %+v", reqs)
	}
	if _, _, err := e.Svc.RejectUnlock(e.Ctx, e.Staff, reqs[0].ID, "The log still shows the scan."); err != nil {
		t.Fatal(err)
	}
	tk, err := e.Svc.OpenTicket(e.Ctx, e.CA, lock.NewTicket{LockID: l.ID, Subject: "Why?", Message: "why locked?"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.AddTicketMessage(e.Ctx, e.Staff, tk.ID, "See the attached log."); err != nil {
		t.Fatal(err)
	}
	leaks := func(what, s string) {
		t.Helper()
		if strings.Contains(s, "4711") || strings.Contains(s, e.Staff.Name) {
			t.Errorf("%s shows the customer staff data: %s", what, s)
		}
	}
	got, err := e.Svc.GetLock(e.Ctx, e.CA, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	leaks("GetLock", fmt.Sprintf("%+v", got))
	byID, _ := e.Svc.GetLockByLockingID(e.Ctx, e.CA, l.LockingID)
	leaks("GetLockByLockingID", fmt.Sprintf("%+v", byID))
	ls, _ := e.Svc.ListLocks(e.Ctx, e.CA, lock.LockFilter{})
	leaks("ListLocks", fmt.Sprintf("%+v", ls))
	evs, _ := e.Svc.ListAudit(e.Ctx, e.CA, lock.AuditFilter{LockID: l.ID})
	leaks("ListAudit", fmt.Sprintf("%+v", evs))
	answer := false
	for _, ev := range evs {
		if ev.Before != "" || ev.After != "" {
			t.Errorf("audit snapshot shown to the customer: %+v", ev)
		}
		answer = answer || ev.Note == "The log still shows the scan."
	}
	if !answer {
		t.Errorf("the decision note for the customer is gone: %+v", evs)
	}
	gt, _ := e.Svc.GetTicket(e.Ctx, e.CA, tk.ID)
	leaks("GetTicket", fmt.Sprintf("%+v", gt))
	if len(gt.Messages) != 2 || gt.Messages[1].Author != "staff" || gt.Messages[1].Body != "See the attached log." {
		t.Errorf("staff reply as the customer sees it: %+v", gt.Messages)
	}
	ts, _ := e.Svc.ListTickets(e.Ctx, e.CA, lock.TicketFilter{})
	leaks("ListTickets", fmt.Sprintf("%+v", ts))
	rq, _ := e.Svc.ListUnlockRequests(e.Ctx, e.CA, lock.UnlockRequestFilter{LockID: l.ID})
	leaks("ListUnlockRequests", fmt.Sprintf("%+v", rq))
	if len(rq) != 1 || rq[0].Note != "The log still shows the scan." || rq[0].DecidedBy != "staff" {
		t.Errorf("decided request as the customer sees it: %+v", rq)
	}
	// Staff see everything.
	sl, _ := e.Svc.GetLock(e.Ctx, e.Staff, l.ID)
	sa, _ := e.Svc.ListAudit(e.Ctx, e.Staff, lock.AuditFilter{LockID: l.ID})
	if sl.Note != "internal: complaint #4711 from CERT" || !strings.Contains(fmt.Sprintf("%+v", sa), "staff:alice") {
		t.Errorf("staff view lost data: %q %+v", sl.Note, sa)
	}
}

// An unlock request is sent "via support ticket": it opens a ticket with
// its message, where the customer adds information; the decision answers
// and closes it; an unlock that supersedes the request closes it without
// the staff's internal unlock note.
func testUnlockRequestTicket(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	l := e.LockIP(t, "198.51.100.10", lock.ReasonAbuse)
	requestTicket := func() lock.Ticket {
		t.Helper()
		ts, err := e.Svc.ListTickets(e.Ctx, e.CA, lock.TicketFilter{LockID: l.ID, Kind: lock.TicketUnlockRequest, State: "open"})
		if err != nil || len(ts) != 1 {
			t.Fatalf("open unlock-request tickets: %+v %v", ts, err)
		}
		tk, err := e.Svc.GetTicket(e.Ctx, e.CA, ts[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	r, err := e.Svc.RequestUnlock(e.Ctx, e.CA, l.ID, "Cause: a cron job. Fixed: removed it.")
	if err != nil {
		t.Fatal(err)
	}
	tk := requestTicket()
	if tk.Subject != "Unlock request for lock "+l.LockingID || len(tk.Messages) != 1 || tk.Messages[0].Body != "Cause: a cron job. Fixed: removed it." {
		t.Fatalf("request ticket: %+v", tk)
	}
	if _, err := e.Svc.AddTicketMessage(e.Ctx, e.CA, tk.ID, "Also rotated all passwords."); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.CloseTicket(e.Ctx, e.CA, tk.ID, ""); !isKind(err, lock.ErrValidation) {
		t.Errorf("customer closes the request's ticket: %v", err)
	}
	if _, _, err := e.Svc.RejectUnlock(e.Ctx, e.Staff, r.ID, "The log still shows the scan at 10:05."); err != nil {
		t.Fatal(err)
	}
	done, _ := e.Svc.GetTicket(e.Ctx, e.CA, tk.ID)
	if done.State != "closed" || len(done.Messages) != 3 || !strings.Contains(done.Messages[2].Body, "rejected") ||
		!strings.Contains(done.Messages[2].Body, "The log still shows the scan at 10:05.") || done.Messages[2].Author != "staff" {
		t.Fatalf("decided request's ticket: %+v", done)
	}
	// a second request: a new ticket; a direct unlock closes it
	r2, err := e.Svc.RequestUnlock(e.Ctx, e.CA, l.ID, "Now really fixed.")
	if err != nil {
		t.Fatal(err)
	}
	tk2 := requestTicket()
	if tk2.ID == tk.ID {
		t.Fatal("second request reuses the closed ticket")
	}
	if _, err := e.Svc.AddWhitelist(e.Ctx, e.CA, l.ID, "9.9.9.9"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.Unlock(e.Ctx, e.Staff, l.ID, "internal: CERT case closed"); err != nil {
		t.Fatal(err)
	}
	// the unlock's side effects are audit events of their own
	acts := map[string]bool{}
	for _, ev := range e.Audit(t, l.ID) {
		acts[ev.Action] = true
	}
	if !acts["unlock_request_superseded"] || !acts["whitelist_remove"] {
		t.Errorf("audit of the unlock lacks the superseded request or the removed whitelist entry: %v", acts)
	}
	done2, _ := e.Svc.GetTicket(e.Ctx, e.CA, tk2.ID)
	rq, _ := e.Svc.GetUnlockRequest(e.Ctx, e.CA, r2.ID)
	if done2.State != "closed" || strings.Contains(fmt.Sprintf("%+v %+v", done2, rq), "CERT") || rq.State != lock.RequestSuperseded {
		t.Errorf("superseded request and ticket as the customer sees them: %+v %+v", done2, rq)
	}
}

func testAuthorization(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	la := e.LockIP(t, "198.51.100.10", lock.ReasonAbuse)
	// Customer B cannot see or touch anything of A: always ErrNotFound.
	notFound := map[string]error{}
	_, notFound["GetLock"] = e.Svc.GetLock(e.Ctx, e.CB, la.ID)
	_, notFound["GetLockByLockingID"] = e.Svc.GetLockByLockingID(e.Ctx, e.CB, la.LockingID)
	_, notFound["RequestUnlock"] = e.Svc.RequestUnlock(e.Ctx, e.CB, la.ID, "mine?")
	_, notFound["AddWhitelist"] = e.Svc.AddWhitelist(e.Ctx, e.CB, la.ID, "9.9.9.9")
	notFound["RemoveWhitelist"] = e.Svc.RemoveWhitelist(e.Ctx, e.CB, la.ID)
	_, notFound["ListWhitelist"] = e.Svc.ListWhitelist(e.Ctx, e.CB, la.ID)
	_, notFound["GetServer"] = e.Svc.GetServer(e.Ctx, e.CB, e.SrvA.ID)
	_, notFound["GetStorageBox"] = e.Svc.GetStorageBox(e.Ctx, e.CB, e.BoxA.ID)
	_, notFound["GetCustomer"] = e.Svc.GetCustomer(e.Ctx, e.CB, e.A.ID)
	_, notFound["Lookup"] = e.Svc.Lookup(e.Ctx, e.CB, addr("198.51.100.10"))
	_, notFound["OrderKVM"] = e.Svc.OrderKVM(e.Ctx, e.CB, e.SrvA.ID, "")
	_, notFound["OpenTicket"] = e.Svc.OpenTicket(e.Ctx, e.CB, lock.NewTicket{LockID: la.ID, Subject: "x", Message: "y"})
	_, notFound["GetLock(missing)"] = e.Svc.GetLock(e.Ctx, e.CB, 999999)
	for name, err := range notFound {
		if !isKind(err, lock.ErrNotFound) {
			t.Errorf("customer B %s on A's object: %v, want ErrNotFound", name, err)
		}
	}
	tk, err := e.Svc.OpenTicket(e.Ctx, e.CA, lock.NewTicket{LockID: la.ID, Subject: "Lock", Message: "why?"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.GetTicket(e.Ctx, e.CB, tk.ID); !isKind(err, lock.ErrNotFound) {
		t.Errorf("B reads A's ticket: %v", err)
	}
	if _, err := e.Svc.AddTicketMessage(e.Ctx, e.CB, tk.ID, "hi"); !isKind(err, lock.ErrNotFound) {
		t.Errorf("B writes to A's ticket: %v", err)
	}
	// Lists are narrowed, whatever filter the customer passes.
	ls, err := e.Svc.ListLocks(e.Ctx, e.CB, lock.LockFilter{CustomerID: e.A.ID})
	if err != nil || len(ls) != 0 {
		t.Errorf("B lists A's locks: %d, %v", len(ls), err)
	}
	sv, _ := e.Svc.ListServers(e.Ctx, e.CB, lock.InventoryFilter{})
	if len(sv) != 1 || sv[0].ID != e.SrvB.ID {
		t.Errorf("B lists servers %+v, want only its own", sv)
	}
	au, _ := e.Svc.ListAudit(e.Ctx, e.CB, lock.AuditFilter{LockID: la.ID})
	if len(au) != 0 {
		t.Errorf("B sees %d audit events of A's lock", len(au))
	}
	// Customer A sees its own.
	if _, err := e.Svc.GetLock(e.Ctx, e.CA, la.ID); err != nil {
		t.Errorf("A reads own lock: %v", err)
	}
	// Roles.
	scope := lock.Scope{ServerID: e.SrvA.ID}
	forbidden := map[string]error{}
	_, forbidden["customer locks"] = e.Svc.CreateLock(e.Ctx, e.CA, lock.CreateLockRequest{Scope: scope, Reason: lock.ReasonAbuse}, "")
	_, forbidden["readonly locks"] = e.Svc.CreateLock(e.Ctx, e.RO, lock.CreateLockRequest{Scope: scope, Reason: lock.ReasonNonPayment}, "")
	_, forbidden["billing locks abuse"] = e.Svc.CreateLock(e.Ctx, e.Billing, lock.CreateLockRequest{Scope: scope, Reason: lock.ReasonAbuse}, "")
	_, forbidden["billing unlocks abuse"] = e.Svc.Unlock(e.Ctx, e.Billing, la.ID, "paid")
	_, forbidden["readonly unlocks"] = e.Svc.Unlock(e.Ctx, e.RO, la.ID, "")
	_, forbidden["customer unlocks"] = e.Svc.Unlock(e.Ctx, e.CA, la.ID, "")
	_, forbidden["readonly creates customer"] = e.Svc.CreateCustomer(e.Ctx, e.RO, inventory.Customer{Name: "x", Email: "x@example.com"})
	_, forbidden["customer creates server"] = e.Svc.CreateServer(e.Ctx, e.CA, inventory.Server{CustomerID: e.A.ID, Name: "x"})
	_, forbidden["readonly requests unlock"] = e.Svc.RequestUnlock(e.Ctx, e.RO, la.ID, "")
	_, forbidden["bad role"] = e.Svc.GetLock(e.Ctx, lock.Actor{Role: "root"}, la.ID)
	_, forbidden["customer without id"] = e.Svc.GetLock(e.Ctx, lock.Actor{Role: lock.RoleCustomer}, la.ID)
	for name, err := range forbidden {
		if !isKind(err, lock.ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", name, err)
		}
	}
	if _, err := e.Svc.GetLock(e.Ctx, e.RO, la.ID); err != nil {
		t.Errorf("readonly reads: %v", err)
	}
	np, err := e.Svc.CreateLock(e.Ctx, e.Billing, lock.CreateLockRequest{Scope: scope, Reason: lock.ReasonNonPayment}, "")
	if err != nil {
		t.Fatalf("billing locks non_payment: %v", err)
	}
	if _, err := e.Svc.Unlock(e.Ctx, e.Billing, np.ID, "paid"); err != nil {
		t.Errorf("billing unlocks non_payment: %v", err)
	}
}

func testLookup(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	for _, tc := range []struct {
		ip       string
		customer int64
		typ      inventory.ProductType
		id       int64
		prefix   string
	}{
		{"198.51.100.10", e.A.ID, inventory.ProductServer, e.SrvA.ID, "198.51.100.10/32"},
		{"198.51.100.12", e.A.ID, inventory.ProductAddress, e.NetA.ID, "198.51.100.0/24"},
		{"198.51.100.200", e.B.ID, inventory.ProductAddress, e.NetB.ID, "198.51.100.128/25"},
		{"::ffff:198.51.100.200", e.B.ID, inventory.ProductAddress, e.NetB.ID, "198.51.100.128/25"},
		{"2001:db8:a::1234", e.A.ID, inventory.ProductServer, e.SrvA.ID, "2001:db8:a::/64"},
		{"203.0.113.20", e.B.ID, inventory.ProductServer, e.SrvB.ID, "203.0.113.20/32"},
	} {
		r, err := e.Svc.Lookup(e.Ctx, e.RO, addr(tc.ip))
		if err != nil {
			t.Errorf("lookup %s: %v", tc.ip, err)
			continue
		}
		if r.Customer.ID != tc.customer || r.Entry.Type != tc.typ || r.Entry.ProductID != tc.id || r.Entry.Prefix.String() != tc.prefix {
			t.Errorf("lookup %s = %+v, want customer %d %s %d %s", tc.ip, r, tc.customer, tc.typ, tc.id, tc.prefix)
		}
	}
	for _, ip := range []string{"198.51.101.1", "2001:db8:b::1", "9.9.9.9"} {
		if _, err := e.Svc.Lookup(e.Ctx, e.RO, addr(ip)); !isKind(err, lock.ErrNotFound) {
			t.Errorf("lookup %s: %v, want ErrNotFound", ip, err)
		}
	}
	// The index follows inventory changes at once.
	if _, err := e.Svc.CreateServer(e.Ctx, e.Staff, inventory.Server{CustomerID: e.B.ID, Name: "srv-b2", IPs: []netip.Prefix{pfx("198.51.101.7/32")}}); err != nil {
		t.Fatal(err)
	}
	if r, err := e.Svc.Lookup(e.Ctx, e.RO, addr("198.51.101.7")); err != nil || r.Customer.ID != e.B.ID {
		t.Errorf("lookup of a new server: %+v, %v", r, err)
	}
	// A prefix can belong to one product only.
	_, err := e.Svc.CreateServer(e.Ctx, e.Staff, inventory.Server{CustomerID: e.A.ID, Name: "dup", IPs: []netip.Prefix{pfx("198.51.101.7/32")}})
	if d := lock.ErrorDetails(err); !isKind(err, lock.ErrConflict) || d.Field != "ips" {
		t.Errorf("duplicate address: %v, want ErrConflict on ips", err)
	}
	_, err = e.Svc.CreateAddress(e.Ctx, e.Staff, inventory.Address{CustomerID: e.A.ID, Prefix: pfx("198.51.100.10/32")})
	if d := lock.ErrorDetails(err); !isKind(err, lock.ErrConflict) || d.Field != "prefix" {
		t.Errorf("standalone address of a server: %v, want ErrConflict on prefix", err)
	}
	_, err = e.Svc.CreateCustomer(e.Ctx, e.Staff, inventory.Customer{Name: "Dup", Email: "NOC@alpha.example"})
	if d := lock.ErrorDetails(err); !isKind(err, lock.ErrConflict) || d.Field != "email" {
		t.Errorf("duplicate email: %v, want ErrConflict on email", err)
	}
	_, err = e.Svc.CreateServer(e.Ctx, e.Staff, inventory.Server{CustomerID: 424242, Name: "orphan"})
	if d := lock.ErrorDetails(err); !isKind(err, lock.ErrValidation) || d.Field != "customer_id" {
		t.Errorf("server of a missing customer: %v", err)
	}
}

func testScopes(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	mk := func(s lock.Scope) (lock.Lock, error) {
		return e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: s, Reason: lock.ReasonAbuse}, "")
	}
	srv, err := mk(lock.Scope{ServerID: e.SrvA.ID})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"198.51.100.10/32", "198.51.100.11/32", "2001:db8:a::/64"}, prefixStrings(srv.Prefixes)); diff != "" {
		t.Errorf("server lock prefixes (-want +got):\n%s", diff)
	}
	if !lock.ValidLockingID(srv.LockingID) || srv.ScopeKind != lock.ScopeServer || srv.CustomerID != e.A.ID {
		t.Errorf("server lock %+v", srv)
	}
	ips, err := mk(lock.Scope{IPs: []netip.Addr{addr("198.51.100.11"), addr("198.51.100.10"), addr("198.51.100.11")}})
	if err != nil || ips.ScopeKind != lock.ScopeIPs || len(ips.Prefixes) != 2 {
		t.Errorf("ips lock %+v, %v", ips, err)
	}
	box, err := mk(lock.Scope{StorageBoxID: e.BoxA.ID})
	if err != nil || box.ScopeKind != lock.ScopeStorageBox || len(box.Prefixes) != 0 || box.CustomerID != e.A.ID {
		t.Errorf("storage box lock %+v, %v", box, err)
	}
	sub, err := mk(lock.Scope{Subnet: pfx("198.51.100.128/26")})
	if err != nil || sub.CustomerID != e.B.ID || sub.ScopeKind != lock.ScopeSubnet {
		t.Errorf("subnet lock %+v, %v", sub, err)
	}
	got, err := e.Svc.GetLockByLockingID(e.Ctx, e.CB, strings.ToLower(sub.LockingID))
	if err != nil || got.ID != sub.ID {
		t.Errorf("by locking id: %+v %v", got, err)
	}
	for name, tc := range map[string]struct {
		s     lock.Scope
		kind  error
		field string
	}{
		"empty":           {lock.Scope{}, lock.ErrValidation, "scope"},
		"two":             {lock.Scope{ServerID: e.SrvA.ID, StorageBoxID: e.BoxA.ID}, lock.ErrValidation, "scope"},
		"unknown ip":      {lock.Scope{IPs: []netip.Addr{addr("9.9.9.9")}}, lock.ErrValidation, "scope.ips"},
		"mixed customers": {lock.Scope{IPs: []netip.Addr{addr("198.51.100.10"), addr("203.0.113.20")}}, lock.ErrValidation, "scope.ips"},
		"host bits":       {lock.Scope{Subnet: netip.PrefixFrom(addr("198.51.100.129"), 26)}, lock.ErrValidation, "scope.subnet"},
		"outside":         {lock.Scope{Subnet: pfx("198.51.0.0/16")}, lock.ErrValidation, "scope.subnet"},
		"missing server":  {lock.Scope{ServerID: 99999}, lock.ErrNotFound, ""},
		"missing box":     {lock.Scope{StorageBoxID: 99999}, lock.ErrNotFound, ""},
	} {
		_, err := mk(tc.s)
		if !isKind(err, tc.kind) || tc.field != "" && lock.ErrorDetails(err).Field != tc.field {
			t.Errorf("%s: %v, want %v on %q", name, err, tc.kind, tc.field)
		}
	}
	if _, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvA.ID}, Reason: "bored"}, ""); !isKind(err, lock.ErrValidation) {
		t.Errorf("unknown reason: %v", err)
	}
	past := e.Clock.Now().Add(-time.Minute)
	if _, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvA.ID}, Reason: lock.ReasonSpam, WarnUntil: &past}, ""); !isKind(err, lock.ErrValidation) {
		t.Errorf("warning deadline in the past: %v", err)
	}
	// Filter by IP finds locks whose prefixes contain it.
	byIP, err := e.Svc.ListLocks(e.Ctx, e.Staff, lock.LockFilter{IP: addr("2001:db8:a::42")})
	if err != nil || len(byIP) != 1 || byIP[0].ID != srv.ID {
		t.Errorf("locks containing 2001:db8:a::42: %v %v", lockIDs(byIP), err)
	}
	byIP, _ = e.Svc.ListLocks(e.Ctx, e.Staff, lock.LockFilter{IP: addr("198.51.100.10")})
	if diff := cmp.Diff([]int64{ips.ID, srv.ID}, lockIDs(byIP)); diff != "" {
		t.Errorf("locks containing 198.51.100.10 (-want +got):\n%s", diff)
	}
	// Locking IDs are unique and not sequential.
	seen := map[string]bool{}
	for _, l := range []lock.Lock{srv, ips, box, sub} {
		if seen[l.LockingID] {
			t.Errorf("duplicate locking id %s", l.LockingID)
		}
		seen[l.LockingID] = true
	}
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func lockIDs(ls []lock.Lock) []int64 {
	out := make([]int64, len(ls))
	for i, l := range ls {
		out[i] = l.ID
	}
	return out
}

func testStackingAndPayment(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	scope := lock.Scope{ServerID: e.SrvA.ID}
	np, err := e.Svc.CreateLock(e.Ctx, e.Billing, lock.CreateLockRequest{Scope: scope, Reason: lock.ReasonNonPayment}, "")
	if err != nil {
		t.Fatal(err)
	}
	ab, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: scope, Reason: lock.ReasonAbuse}, "")
	if err != nil {
		t.Fatal(err)
	}
	box, err := e.Svc.CreateLock(e.Ctx, e.Billing, lock.CreateLockRequest{Scope: lock.Scope{StorageBoxID: e.BoxA.ID}, Reason: lock.ReasonNonPayment}, "")
	if err != nil {
		t.Fatal(err)
	}
	unlocked, err := e.Svc.ClearNonPayment(e.Ctx, e.Billing, e.A.ID, "payment received")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{np.ID, box.ID}, sortedIDs(unlocked)); diff != "" {
		t.Errorf("payment unlocked (-want +got):\n%s", diff)
	}
	cur, _ := e.Svc.GetLock(e.Ctx, e.Staff, ab.ID)
	if cur.State != lock.StateLocked {
		t.Errorf("abuse lock is %s after payment, want locked", cur.State)
	}
	ds, _ := e.Svc.DesiredState(e.Ctx)
	if len(ds.Locks) != 1 || ds.Locks[0].ID != ab.ID {
		t.Errorf("desired locks after payment: %+v", ds.Locks)
	}
	if _, err := e.Svc.ClearNonPayment(e.Ctx, e.RO, e.A.ID, ""); !isKind(err, lock.ErrForbidden) {
		t.Errorf("readonly payment: %v", err)
	}
}

func sortedIDs(ls []lock.Lock) []int64 {
	ids := lockIDs(ls)
	slices.Sort(ids)
	return ids
}

func testDesiredState(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	w := e.Clock.Now().Add(time.Hour)
	warned, err := e.Svc.CreateLock(e.Ctx, e.System(), lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{addr("203.0.113.20")}}, Reason: lock.ReasonPacketLimit, WarnUntil: &w}, "")
	if err != nil {
		t.Fatal(err)
	}
	box, err := e.Svc.CreateLock(e.Ctx, e.Billing, lock.CreateLockRequest{Scope: lock.Scope{StorageBoxID: e.BoxA.ID}, Reason: lock.ReasonNonPayment}, "")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := e.Svc.DesiredState(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []lock.ActiveLock{{ID: box.ID, LockingID: box.LockingID, CustomerID: e.A.ID, Reason: lock.ReasonNonPayment, State: lock.StateLocked,
		ScopeKind: lock.ScopeStorageBox, Prefixes: []netip.Prefix{}, StorageBoxID: e.BoxA.ID, Method: lock.MethodBlackhole}}
	if diff := cmp.Diff(want, ds.Locks, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("desired locks before the deadline (-want +got):\n%s", diff)
	}
	e.Clock.Advance(time.Hour)
	ds, _ = e.Svc.DesiredState(e.Ctx)
	if len(ds.Locks) != 2 || ds.Locks[0].ID != warned.ID || ds.Locks[0].State != lock.StateWarned || ds.Locks[0].Prefixes[0] != pfx("203.0.113.20/32") {
		t.Errorf("desired locks at the deadline: %+v", ds.Locks)
	}
	n, err := e.Svc.LockOverdue(e.Ctx)
	if err != nil || n != 1 {
		t.Fatalf("LockOverdue = %d, %v", n, err)
	}
	l, _ := e.Svc.GetLock(e.Ctx, e.Staff, warned.ID)
	if l.State != lock.StateLocked || l.LockedAt == nil || !l.LockedAt.Equal(e.Clock.Now()) {
		t.Errorf("overdue warning: %+v", l)
	}
}

// testAtomicChange: when any step of a change fails (here: rendering its
// mail), nothing of it is stored — no lock, no prefix, no audit, no mail.
func testAtomicChange(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	e.Changes.Take()
	e.Events.FailWith(errors.New("template broken"))
	_, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvA.ID}, Reason: lock.ReasonAbuse}, "k1")
	if err == nil {
		t.Fatal("lock created although its mail could not be rendered")
	}
	e.Events.FailWith(nil)
	ls, _ := e.Svc.ListLocks(e.Ctx, e.Staff, lock.LockFilter{})
	au, _ := e.Svc.ListAudit(e.Ctx, e.Staff, lock.AuditFilter{Action: "lock"})
	ms, _ := e.DB.ListMails(e.Ctx, 0, 0, 100)
	var rows int
	if err := e.DB.SQL().QueryRow(`SELECT count(*) FROM lock_prefixes`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if len(ls) != 0 || len(au) != 0 || len(ms) != 0 || rows != 0 {
		t.Errorf("half-written change: %d locks, %d audit, %d mails, %d prefixes", len(ls), len(au), len(ms), rows)
	}
	if ch := e.Changes.Take(); len(ch) != 0 {
		t.Errorf("OnChange called for a rolled-back change: %+v", ch)
	}
	// The idempotency key was not consumed either.
	l, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvA.ID}, Reason: lock.ReasonAbuse}, "k1")
	if err != nil {
		t.Errorf("retry after failure: %v", err)
	}
	if diff := cmp.Diff([]lock.Change{{LockID: l.ID, Action: "lock"}}, e.Changes.Take()); diff != "" {
		t.Errorf("OnChange after commit (-want +got):\n%s", diff)
	}
}

func testOutbox(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	ev := []mail.Attachment{{Name: "netscan.txt", ContentType: "text/plain", Data: []byte("#####\n")}}
	l, err := e.Svc.CreateLock(e.Ctx, e.System(), lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{addr("198.51.100.10")}}, Reason: lock.ReasonNetscan, Evidence: ev}, "")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := e.DB.ListMails(e.Ctx, l.ID, 0, 10)
	if err != nil || len(ms) != 1 {
		t.Fatalf("mails of the lock: %d, %v", len(ms), err)
	}
	m := ms[0]
	if m.To != "noc@alpha.example" || m.CustomerID != e.A.ID || m.Kind != "lock" || !strings.Contains(m.Subject, l.LockingID) ||
		len(m.Attachments) != 1 || string(m.Attachments[0].Data) != "#####\n" || m.SentAt != nil {
		t.Errorf("queued mail %+v", m)
	}
	now := e.Clock.Now()
	c1, err := e.DB.ClaimMails(e.Ctx, now, now.Add(time.Minute), 10)
	if err != nil || len(c1) != 1 || c1[0].ID != m.ID || c1[0].Attempts != 1 {
		t.Fatalf("claim: %+v, %v", c1, err)
	}
	if c2, _ := e.DB.ClaimMails(e.Ctx, now, now.Add(time.Minute), 10); len(c2) != 0 {
		t.Errorf("leased mail claimed twice")
	}
	if err := e.DB.MarkMailFailed(e.Ctx, m.ID, "421 try later", now.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.DB.ClaimMails(e.Ctx, now.Add(4*time.Minute), now.Add(5*time.Minute), 10); len(c) != 0 {
		t.Errorf("failed mail claimed before its next attempt")
	}
	c3, _ := e.DB.ClaimMails(e.Ctx, now.Add(5*time.Minute), now.Add(6*time.Minute), 10)
	if len(c3) != 1 || c3[0].Attempts != 2 || c3[0].LastError != "421 try later" {
		t.Fatalf("retry claim: %+v", c3)
	}
	// A worker that dies leaves the lease to run out; then the mail is due again.
	c4, _ := e.DB.ClaimMails(e.Ctx, now.Add(6*time.Minute), now.Add(7*time.Minute), 10)
	if len(c4) != 1 {
		t.Fatalf("mail not due again after its lease ran out")
	}
	if err := e.DB.MarkMailSent(e.Ctx, m.ID, now.Add(6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.DB.ClaimMails(e.Ctx, now.Add(time.Hour), now.Add(2*time.Hour), 10); len(c) != 0 {
		t.Errorf("sent mail claimed again")
	}
	ms, _ = e.DB.ListMails(e.Ctx, 0, e.A.ID, 10)
	if len(ms) != 1 || ms[0].SentAt == nil || !ms[0].SentAt.Equal(now.Add(6*time.Minute)) {
		t.Errorf("mails of the customer: %+v", ms)
	}
	// Concurrent workers never claim the same mail.
	for i := 0; i < 20; i++ {
		if _, err := e.DB.EnqueueMail(e.Ctx, mail.Message{To: "x@example.com", Subject: fmt.Sprint(i)}, now); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	claimed := map[int64]int{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := e.DB.ClaimMails(e.Ctx, now.Add(time.Hour), now.Add(2*time.Hour), 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(c) == 0 {
					return
				}
				mu.Lock()
				for _, m := range c {
					claimed[m.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claimed) != 20 {
		t.Errorf("claimed %d distinct mails, want 20", len(claimed))
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("mail %d claimed %d times", id, n)
		}
	}
}

func testAuditAppendOnly(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	l := e.LockIP(t, "198.51.100.10", lock.ReasonAbuse)
	if _, err := e.DB.SQL().Exec(`UPDATE audit_events SET note = 'forged'`); err == nil {
		t.Error("audit events can be updated")
	}
	if _, err := e.DB.SQL().Exec(`DELETE FROM audit_events`); err == nil {
		t.Error("audit events can be deleted")
	}
	ev, err := e.Svc.ListAudit(e.Ctx, e.Staff, lock.AuditFilter{LockID: l.ID, Action: "lock", Actor: e.Staff.String(),
		Since: e.Clock.Now(), Until: e.Clock.Now().Add(time.Second)})
	if err != nil || len(ev) != 1 || ev[0].ObjectType != "lock" || ev[0].Before != "" || !strings.Contains(ev[0].After, l.LockingID) {
		t.Errorf("audit query: %+v, %v", ev, err)
	}
	if ev, _ := e.Svc.ListAudit(e.Ctx, e.Staff, lock.AuditFilter{LockID: l.ID, Since: e.Clock.Now().Add(time.Second)}); len(ev) != 0 {
		t.Errorf("time filter ignored: %d events", len(ev))
	}
	all, _ := e.Svc.ListAudit(e.Ctx, e.Staff, lock.AuditFilter{Limit: 2})
	if len(all) != 2 || all[0].ID < all[1].ID {
		t.Errorf("limit/order: %+v", all)
	}
	page, _ := e.Svc.ListAudit(e.Ctx, e.Staff, lock.AuditFilter{BeforeID: all[1].ID, Limit: 1})
	if len(page) != 1 || page[0].ID >= all[1].ID {
		t.Errorf("keyset page: %+v", page)
	}
}

func testTickets(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	l := e.LockIP(t, "198.51.100.10", lock.ReasonNetscan)
	tk, err := e.Svc.OpenTicket(e.Ctx, e.CA, lock.NewTicket{LockID: l.ID, Subject: "Lock " + l.LockingID, Message: "What happened?"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.AddTicketMessage(e.Ctx, e.Staff, tk.ID, "Your server scanned port 22."); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.AddTicketMessage(e.Ctx, e.CA, tk.ID, "Thanks, fixed."); err != nil {
		t.Fatal(err)
	}
	got, err := e.Svc.GetTicket(e.Ctx, e.CA, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, m := range got.Messages {
		bodies = append(bodies, string(m.AuthorRole)+": "+m.Body)
	}
	if diff := cmp.Diff([]string{"customer: What happened?", "staff: Your server scanned port 22.", "customer: Thanks, fixed."}, bodies); diff != "" {
		t.Errorf("ticket messages (-want +got):\n%s", diff)
	}
	if got.CustomerID != e.A.ID || got.LockID != l.ID || got.Kind != lock.TicketSupport {
		t.Errorf("ticket %+v", got)
	}
	kvm, err := e.Svc.OrderKVM(e.Ctx, e.CA, e.SrvA.ID, "")
	if err != nil || kvm.Kind != lock.TicketKVMConsole || kvm.ProductID != e.SrvA.ID {
		t.Fatalf("KVM order: %+v, %v", kvm, err)
	}
	if _, err := e.Svc.OpenTicket(e.Ctx, e.CA, lock.NewTicket{Kind: lock.TicketKVMConsole, ProductType: "storage_box", ProductID: e.BoxA.ID, Subject: "kvm", Message: "x"}); !isKind(err, lock.ErrValidation) {
		t.Errorf("KVM for a storage box: %v", err)
	}
	// A customer's general request (no lock, no product) is its own ticket;
	// staff open tickets about a lock or product only.
	gen, err := e.Svc.OpenTicket(e.Ctx, e.CA, lock.NewTicket{Subject: "No email received", Message: "Is anything locked?"})
	if err != nil || gen.CustomerID != e.A.ID || gen.LockID != 0 || gen.ProductID != 0 {
		t.Fatalf("general ticket: %+v, %v", gen, err)
	}
	if _, err := e.Svc.GetTicket(e.Ctx, e.CB, gen.ID); !isKind(err, lock.ErrNotFound) {
		t.Errorf("another customer reads the general ticket: %v", err)
	}
	if _, err := e.Svc.OpenTicket(e.Ctx, e.Staff, lock.NewTicket{Subject: "x", Message: "y"}); !isKind(err, lock.ErrValidation) {
		t.Errorf("staff ticket about nothing: %v", err)
	}
	if _, err := e.Svc.OpenTicket(e.Ctx, e.CA, lock.NewTicket{ProductType: "server", Subject: "x", Message: "y"}); !isKind(err, lock.ErrValidation) {
		t.Errorf("product type without product: %v", err)
	}
	list, _ := e.Svc.ListTickets(e.Ctx, e.CA, lock.TicketFilter{Kind: lock.TicketKVMConsole})
	if len(list) != 1 || list[0].ID != kvm.ID {
		t.Errorf("KVM tickets: %+v", list)
	}
	if _, err := e.Svc.CloseTicket(e.Ctx, e.Staff, tk.ID, "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.AddTicketMessage(e.Ctx, e.CA, tk.ID, "one more thing"); !isKind(err, lock.ErrConflict) {
		t.Errorf("message on a closed ticket: %v", err)
	}
	if k := e.Events.Kinds(); !slices.Contains(k, "ticket_message") || !slices.Contains(k, "kvm_order") {
		t.Errorf("mails: %v", k)
	}
}

func testImport(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	doc := inventory.Document{Customers: []inventory.DocCustomer{
		{Name: "Gamma AG", Email: "it@gamma.example", Language: "de",
			Servers:      []inventory.DocServer{{Name: "gamma-1", IPs: []string{"192.0.2.10", "2001:db8:c::/48"}, MACs: []string{"52-54-00-CC-00-01"}}},
			StorageBoxes: []inventory.DocStorageBox{{Name: "gamma-box", Host: "gb.example"}},
			IPs:          []inventory.DocAddress{{Prefix: "192.0.2.64/26", Note: "routed"}}},
		{Name: "Alpha GmbH", Email: "noc@alpha.example", Language: "de",
			Servers: []inventory.DocServer{{Name: "srv-a", IPs: []string{"198.51.100.10", "198.51.100.11", "2001:db8:a::/64"}, MACs: []string{"52:54:00:aa:00:01"}}}},
	}}
	res, err := e.Svc.Import(e.Ctx, e.Staff, doc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lock.ImportResult{Created: 4, Unchanged: 2}, res); diff != "" {
		t.Errorf("first import (-want +got):\n%s", diff)
	}
	auditBefore, _ := e.Svc.ListAudit(e.Ctx, e.Staff, lock.AuditFilter{Limit: 1000})
	res, err = e.Svc.Import(e.Ctx, e.Staff, doc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lock.ImportResult{Unchanged: 6}, res); diff != "" {
		t.Errorf("re-import (-want +got):\n%s", diff)
	}
	auditAfter, _ := e.Svc.ListAudit(e.Ctx, e.Staff, lock.AuditFilter{Limit: 1000})
	if len(auditAfter) != len(auditBefore) {
		t.Errorf("re-import wrote %d audit events", len(auditAfter)-len(auditBefore))
	}
	if r, err := e.Svc.Lookup(e.Ctx, e.Staff, addr("2001:db8:c:1::9")); err != nil || r.Customer.Email != "it@gamma.example" {
		t.Errorf("lookup of imported prefix: %+v %v", r, err)
	}
	// A changed file updates in place.
	doc.Customers[0].Servers[0].IPs = []string{"192.0.2.11"}
	res, err = e.Svc.Import(e.Ctx, e.Staff, doc)
	if err != nil || res.Updated != 1 {
		t.Fatalf("changed import: %+v %v", res, err)
	}
	if _, err := e.Svc.Lookup(e.Ctx, e.Staff, addr("192.0.2.10")); !isKind(err, lock.ErrNotFound) {
		t.Errorf("old address still found after update: %v", err)
	}
	// Export → import round trip through both formats changes nothing.
	exp, err := e.Svc.Export(e.Ctx, e.Staff)
	if err != nil {
		t.Fatal(err)
	}
	var csvBuf, jsonBuf strings.Builder
	if err := inventory.EncodeCSV(&csvBuf, exp); err != nil {
		t.Fatal(err)
	}
	if err := inventory.EncodeJSON(&jsonBuf, exp); err != nil {
		t.Fatal(err)
	}
	fromCSV, err := inventory.DecodeCSV(strings.NewReader(csvBuf.String()))
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := inventory.DecodeJSON(strings.NewReader(jsonBuf.String()))
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]inventory.Document{"csv": fromCSV, "json": fromJSON} {
		res, err := e.Svc.Import(e.Ctx, e.Staff, d)
		if err != nil || res.Created != 0 || res.Updated != 0 {
			t.Errorf("re-import of the %s export: %+v %v", name, res, err)
		}
	}
	// Bad documents are refused as a whole.
	bad := inventory.Document{Customers: []inventory.DocCustomer{{Name: "X", Email: "x@example.com", Servers: []inventory.DocServer{{Name: "x1", IPs: []string{"192.0.2.300"}}}}}}
	if _, err := e.Svc.Import(e.Ctx, e.Staff, bad); !isKind(err, lock.ErrValidation) {
		t.Errorf("bad document: %v", err)
	}
	if _, err := e.Svc.Import(e.Ctx, e.CA, doc); !isKind(err, lock.ErrForbidden) {
		t.Errorf("customer import: %v", err)
	}
}

func testTokens(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	now := e.Clock.Now()
	admin := lock.Actor{Role: lock.RoleAdmin, Name: "cli"}
	secret, tok, err := e.DB.CreateToken(e.Ctx, admin, "billing", lock.RoleBilling, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	a, got, err := e.DB.Authenticate(e.Ctx, secret)
	if err != nil || a.Role != lock.RoleBilling || got.ID != tok.ID {
		t.Fatalf("authenticate: %+v %+v %v", a, got, err)
	}
	cs, _, err := e.DB.CreateToken(e.Ctx, admin, "", lock.RoleCustomer, e.B.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	if a, _, err := e.DB.Authenticate(e.Ctx, cs); err != nil || a.Role != lock.RoleCustomer || a.CustomerID != e.B.ID {
		t.Errorf("customer token: %+v %v", a, err)
	}
	for name, f := range map[string]func() error{
		"customer without id": func() error { _, _, err := e.DB.CreateToken(e.Ctx, admin, "", lock.RoleCustomer, 0, now); return err },
		"missing customer":    func() error { _, _, err := e.DB.CreateToken(e.Ctx, admin, "", lock.RoleCustomer, 777, now); return err },
		"staff with customer": func() error { _, _, err := e.DB.CreateToken(e.Ctx, admin, "", lock.RoleStaff, e.A.ID, now); return err },
		"bad role":            func() error { _, _, err := e.DB.CreateToken(e.Ctx, admin, "", "root", 0, now); return err },
	} {
		if err := f(); !isKind(err, lock.ErrValidation) {
			t.Errorf("%s: %v, want ErrValidation", name, err)
		}
	}
	if _, _, err := e.DB.Authenticate(e.Ctx, secret+"x"); !isKind(err, lock.ErrNotFound) {
		t.Errorf("wrong secret: %v", err)
	}
	if err := e.DB.RevokeToken(e.Ctx, admin, tok.ID, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.DB.Authenticate(e.Ctx, secret); !isKind(err, lock.ErrNotFound) {
		t.Errorf("revoked token: %v", err)
	}
	var stored string
	if err := e.DB.SQL().QueryRow(`SELECT hash FROM api_tokens WHERE id = 1`).Scan(&stored); err != nil || strings.Contains(stored, secret[3:]) {
		t.Errorf("token stored in the clear? %q %v", stored, err)
	}
}

// A finding's notice and staff alert are queued in the transaction that
// records it: with the case (naming its ID), or, when queueing fails, with
// neither the case nor any mail stored.
func testFindingMails(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	now := e.Clock.Now()
	in := FindingInputFor("netscan", "198.51.100.20", e.A.ID, now)
	in.Mails = func(fc store.FindingCase) []mail.Message {
		return []mail.Message{
			{To: "customer@example.com", Subject: "Notice", Kind: "notice", CustomerID: e.A.ID,
				Attachments: []mail.Attachment{{Name: "netscan.txt", ContentType: "text/plain", Data: []byte("####\n")}}},
			{To: "abuse@example.net", Subject: fmt.Sprintf("Case %d", fc.ID), Kind: "staff_notify"},
		}
	}
	c, _, err := e.DB.RecordFinding(e.Ctx, in, now)
	if err != nil || len(c.Queued) != 2 {
		t.Fatalf("finding with mails: %+v %v", c, err)
	}
	ms, err := e.DB.ListMails(e.Ctx, 0, 0, 10)
	if err != nil || len(ms) != 2 {
		t.Fatalf("outbox: %+v %v", ms, err)
	}
	byID := map[int64]mail.Queued{}
	for _, m := range ms {
		byID[m.ID] = m
	}
	if n := byID[c.Queued[0]]; n.To != "customer@example.com" || len(n.Attachments) != 1 {
		t.Errorf("notice: %+v", n)
	}
	if a := byID[c.Queued[1]]; a.Subject != fmt.Sprintf("Case %d", c.ID) {
		t.Errorf("staff alert does not name the case %d: %+v", c.ID, a)
	}

	// The transaction fails while queueing (its context ends after the
	// case was written): nothing of it remains.
	ctx, cancel := context.WithCancel(e.Ctx)
	in = FindingInputFor("spam", "198.51.100.21", e.A.ID, now)
	in.Mails = func(store.FindingCase) []mail.Message {
		cancel()
		return []mail.Message{{To: "customer@example.com", Subject: "Notice"}}
	}
	if _, _, err := e.DB.RecordFinding(ctx, in, now); err == nil {
		t.Fatal("finding recorded although its mail could not be queued")
	}
	if l, err := e.DB.ListFindings(e.Ctx, FindingFilterFor("198.51.100.21", "spam")); err != nil || len(l) != 0 {
		t.Errorf("half-recorded finding: %+v %v", l, err)
	}
	if ms, _ := e.DB.ListMails(e.Ctx, 0, 0, 10); len(ms) != 2 {
		t.Errorf("outbox after the failed finding: %d mails, want the 2 of before", len(ms))
	}
}

// The circuit breaker's state survives in the store: absent means closed;
// an open one comes back with its reason and time; closing overwrites it.
func testBreaker(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	if b, err := e.DB.Breaker(e.Ctx); err != nil || b.Open {
		t.Fatalf("fresh store: %+v %v", b, err)
	}
	since := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	if err := e.DB.SetBreaker(e.Ctx, store.BreakerRecord{Open: true, Reason: "11 servers tripped netscan", Since: since}, since); err != nil {
		t.Fatal(err)
	}
	if b, err := e.DB.Breaker(e.Ctx); err != nil || !b.Open || b.Reason != "11 servers tripped netscan" || !b.Since.Equal(since) {
		t.Fatalf("stored open breaker: %+v %v", b, err)
	}
	if err := e.DB.SetBreaker(e.Ctx, store.BreakerRecord{}, since.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b, _ := e.DB.Breaker(e.Ctx); b.Open || b.Reason != "" {
		t.Fatalf("closed breaker: %+v", b)
	}
}

func testFindings(t *testing.T, open Opener) {
	e := NewEnv(t, open, lock.Configuration{})
	now := e.Clock.Now()
	in := FindingInputFor("netscan", "198.51.100.10", e.A.ID, now)
	c1, created, err := e.DB.RecordFinding(e.Ctx, in, now)
	if err != nil || !created || c1.Count != 1 {
		t.Fatalf("first finding: %+v %v %v", c1, created, err)
	}
	in2 := FindingInputFor("netscan", "198.51.100.10", e.A.ID, now.Add(time.Minute))
	c2, created, err := e.DB.RecordFinding(e.Ctx, in2, now.Add(time.Minute))
	if err != nil || created || c2.ID != c1.ID || c2.Count != 2 || !c2.LastSeen.Equal(now.Add(time.Minute)) || !c2.FirstSeen.Equal(now) {
		t.Fatalf("second finding: %+v %v %v", c2, created, err)
	}
	c3, created, _ := e.DB.RecordFinding(e.Ctx, FindingInputFor("packet_limit", "198.51.100.10", e.A.ID, now), now)
	if !created || c3.ID == c1.ID {
		t.Errorf("other kind shares the case")
	}
	ev, err := e.DB.FindingEvidence(e.Ctx, c1.ID, true)
	if err != nil || len(ev) != 2 || string(ev[1].Data) != "log at "+now.Add(time.Minute).Format(time.RFC3339) || ev[0].Size != len(ev[0].Data) {
		t.Fatalf("evidence: %+v %v", ev, err)
	}
	f, err := e.DB.EvidenceFile(e.Ctx, ev[0].ID)
	if err != nil || f.Name != "netscan.txt" {
		t.Errorf("evidence file: %+v %v", f, err)
	}
	list, _ := e.DB.ListFindings(e.Ctx, FindingFilterFor("198.51.100.10", "netscan"))
	if len(list) != 1 || list[0].ID != c1.ID {
		t.Errorf("list findings: %+v", list)
	}
	if err := e.DB.CloseFinding(e.Ctx, c1.ID, 0, now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	c4, created, _ := e.DB.RecordFinding(e.Ctx, in, now.Add(3*time.Minute))
	if !created || c4.ID == c1.ID {
		t.Errorf("finding after close appended to the closed case")
	}
	// Concurrent findings for one IP and kind: one open case.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := e.DB.RecordFinding(e.Ctx, FindingInputFor("spam", "198.51.100.11", 0, now.Add(time.Duration(i)*time.Second)), now); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	spam, _ := e.DB.ListFindings(e.Ctx, FindingFilterFor("198.51.100.11", "spam"))
	if len(spam) != 1 || spam[0].Count != 8 {
		t.Errorf("concurrent findings: %+v", spam)
	}
}
