package lock

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestAllowedEveryStatePair pins the lifecycle: for every pair of states
// (including "no lock yet" as the source) it says whether the table allows
// a move, so a change to the table shows up here as a diff.
func TestAllowedEveryStatePair(t *testing.T) {
	allowed := map[[2]State]bool{
		{StateNone, StateWarned}:              true,
		{StateNone, StateLocked}:              true,
		{StateWarned, StateLocked}:            true,
		{StateWarned, StateUnlocked}:          true,
		{StateLocked, StateUnlockRequested}:   true,
		{StateLocked, StateUnlocked}:          true,
		{StateUnlockRequested, StateLocked}:   true,
		{StateUnlockRequested, StateUnlocked}: true,
		{StateUnlocked, StateLocked}:          true,
	}
	from := append([]State{StateNone}, States...)
	for _, a := range from {
		for _, b := range States {
			if got := Allowed(a, b); got != allowed[[2]State{a, b}] {
				t.Errorf("Allowed(%q, %q) = %v, want %v", a, b, got, !got)
			}
		}
	}
}

// TestTransitionRefusalsExplain checks every refused (state, action) pair
// returns ErrInvalidTransition with a reason naming the action.
func TestTransitionRefusalsExplain(t *testing.T) {
	for _, st := range append([]State{StateNone}, States...) {
		for _, a := range Actions {
			to, err := Transition(st, a)
			if err == nil {
				if !Allowed(st, to) {
					t.Errorf("Transition(%s, %s) = %s but Allowed disagrees", st, a, to)
				}
				continue
			}
			if !errors.Is(err, ErrInvalidTransition) || to != st {
				t.Errorf("Transition(%s, %s) = %s, %v", st, a, to, err)
			}
			if !strings.Contains(err.Error(), "cannot "+string(a)) {
				t.Errorf("refusal of %s in %s does not say what was refused: %v", a, st, err)
			}
		}
	}
	_, err := Transition(StateUnlocked, ActionUnlock)
	if !strings.Contains(err.Error(), "already unlocked") {
		t.Errorf("refusal reason: %v", err)
	}
}

func TestActive(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Second), now.Add(time.Second)
	for _, tc := range []struct {
		s    State
		w    *time.Time
		want bool
	}{
		{StateLocked, nil, true}, {StateUnlockRequested, nil, true}, {StateUnlocked, nil, false},
		{StateWarned, nil, false}, {StateWarned, &future, false}, {StateWarned, &past, true}, {StateWarned, &now, true},
	} {
		if got := Active(tc.s, tc.w, now); got != tc.want {
			t.Errorf("Active(%s, %v) = %v", tc.s, tc.w, got)
		}
	}
}

func TestLockingID(t *testing.T) {
	seen := map[string]bool{}
	var prev uint64
	sequential := 0
	for i := 0; i < 2000; i++ {
		id := NewLockingID()
		if !ValidLockingID(id) {
			t.Fatalf("%q is not a valid Locking ID", id)
		}
		if seen[id] {
			t.Fatalf("duplicate Locking ID %s after %d", id, i)
		}
		seen[id] = true
		var v uint64
		fmt.Sscanf(id[1:], "%X", &v)
		if v == prev+1 {
			sequential++
		}
		prev = v
	}
	if sequential > 2 {
		t.Errorf("%d Locking IDs followed their predecessor", sequential)
	}
	for _, s := range []string{"L0029DB1", "l0029DB12", "L0029DB1G", "X0029DB12", "L0029db12"} {
		if ValidLockingID(s) {
			t.Errorf("ValidLockingID(%q) = true", s)
		}
	}
}

// nopStore is a Store that is never reached in these unit tests.
type nopStore struct{}

func (nopStore) Update(context.Context, func(Tx) error) error    { return errors.New("no store") }
func (nopStore) View(_ context.Context, fn func(Tx) error) error { return fn(noLocks{}) }

// noLocks is a read transaction that knows no locks (the whitelist offer
// asks for a product's other locks); any other call panics (nil Tx).
type noLocks struct{ Tx }

func (noLocks) ListLocks(context.Context, LockFilter) ([]Lock, error) { return nil, nil }

func TestCheckWhitelistIP(t *testing.T) {
	s, err := New(Configuration{OwnNetworks: []netip.Prefix{netip.MustParsePrefix("88.99.0.0/16")}}, Dependencies{Store: nopStore{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{"9.9.9.9", " 1.1.1.1 ", "2a00:1450:4001::1", "::ffff:9.9.9.9"} {
		if _, err := s.CheckWhitelistIP(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "9.9.9.0/24", "9.9.9.9/32", "9.9.9.*", "9.9.9.1-9.9.9.2", "example.com", "10.0.0.1", "172.16.5.4",
		"192.168.0.1", "127.0.0.1", "::1", "::", "0.0.0.0", "169.254.0.1", "fe80::1", "fe80::1%eth0", "ff02::1", "224.0.0.1",
		"100.64.0.1", "198.18.0.1", "192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1", "fc00::1", "240.0.0.1",
		"255.255.255.255", "88.99.1.2", "::ffff:10.0.0.1"} {
		_, err := s.CheckWhitelistIP(bad)
		var e *Error
		if !errors.As(err, &e) || e.Kind != ErrValidation || e.Field != "ip" {
			t.Errorf("%q: %v, want ErrValidation on ip", bad, err)
		}
	}
}

func TestActorScoping(t *testing.T) {
	c := Actor{Role: RoleCustomer, CustomerID: 7}
	if !c.sees(7) || c.sees(8) || c.scopeCustomer(8) != 7 || c.mayLock(ReasonNonPayment) {
		t.Error("customer scoping")
	}
	b := Actor{Role: RoleBilling}
	if !b.mayLock(ReasonNonPayment) || b.mayLock(ReasonAbuse) || b.staff() {
		t.Error("billing rights")
	}
	if (Actor{Role: RoleReadonly}).mayLock(ReasonNonPayment) {
		t.Error("readonly may lock")
	}
	if err := (Actor{Role: RoleCustomer}).check(); !errors.Is(err, ErrForbidden) {
		t.Errorf("customer without ID: %v", err)
	}
}
