package lock

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"padlock/internal/mail"
)

// CreateLockRequest is the input of CreateLock.
type CreateLockRequest struct {
	Scope  Scope  `json:"scope"`
	Reason Reason `json:"reason"`
	Note   string `json:"note,omitempty"`
	// WarnUntil makes the lock a warning with this deadline; nil locks at
	// once. When the deadline passes the lock is active (enforced) and
	// LockOverdue moves it to locked.
	WarnUntil *time.Time `json:"warn_until,omitempty"`
	// Warn makes the lock a warning with the default deadline
	// (locks.default_warning from now) when WarnUntil is not given.
	Warn      bool  `json:"warn,omitempty"`
	FindingID int64 `json:"finding_id,omitempty"`
	// ExpiresAt makes the lock end by itself at that time (it must lie in
	// the future and after WarnUntil): enforcement drops it then and
	// ExpireLocks unlocks it. Nil: the lock lasts until unlocked.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// StaffUnlockOnly: only staff may lift the lock (see Lock).
	StaffUnlockOnly bool `json:"staff_unlock_only,omitempty"`
	// InboundProtection: the lock protects the network from traffic
	// towards a victim (see Lock).
	InboundProtection bool `json:"inbound_protection,omitempty"`
	// Method enforces this lock with another method than the reason's
	// (staff and system only): bgp_blackhole (alias blackhole), flowspec,
	// nftables, webhook or a webhook driver's name. Empty: the reason's.
	Method string `json:"method,omitempty"`
	// Evidence files are handed to Render for the lock mail.
	Evidence []mail.Attachment `json:"-"`
}

// NewLockingID returns a random Locking ID: "L" and 8 upper-case hex digits
// from crypto/rand (32 bits), e.g. L0029DB12. Uniqueness is enforced by
// the store; CreateLock retries on a collision.
func NewLockingID() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return fmt.Sprintf("L%08X", binary.BigEndian.Uint32(b[:]))
}

// ValidLockingID reports whether s looks like a Locking ID.
func ValidLockingID(s string) bool {
	if len(s) != 9 || s[0] != 'L' {
		return false
	}
	for _, c := range s[1:] {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// CreateLock locks (or warns) a product. Staff, admin and the system may
// lock for any reason, billing only for non_payment. With a non-empty
// idempotencyKey a retry with the same key and the same request returns the
// same lock; the same key with a different request is ErrConflict. A
// recurrence — same customer, scope and reason — within the probation of an
// unlocked lock re-locks that lock at once (no new warning) and returns it.
func (s *Service) CreateLock(ctx context.Context, a Actor, req CreateLockRequest, idempotencyKey string) (Lock, error) {
	if err := a.check(); err != nil {
		return Lock{}, err
	}
	if _, ok := s.cfg.Reasons[req.Reason]; !ok {
		return Lock{}, invalid("reason", "unknown reason %q (want one of %s)", req.Reason, reasonList())
	}
	if !a.mayLock(req.Reason) {
		return Lock{}, forbidden("role %s may not lock for %s", a.Role, req.Reason)
	}
	if !a.staff() {
		// billing locks for non-payment: protecting a victim, an end date
		// and reserving the unlock for staff are the abuse team's calls
		switch {
		case req.InboundProtection:
			return Lock{}, forbidden("role %s may not lock as inbound protection", a.Role)
		case req.ExpiresAt != nil:
			return Lock{}, forbidden("role %s may not give a lock an end date", a.Role)
		case req.StaffUnlockOnly:
			return Lock{}, forbidden("role %s may not reserve the unlock for staff", a.Role)
		}
	}
	req.Method = NormalizeMethod(req.Method)
	if req.Method != "" {
		if !a.staff() {
			return Lock{}, forbidden("role %s may not choose the enforcement method", a.Role)
		}
		if len(req.Method) > 64 || strings.ContainsAny(req.Method, " \t\r\n") {
			return Lock{}, invalid("method", "%q is not a method name", req.Method)
		}
	}
	if len(req.Note) > 10000 {
		return Lock{}, invalid("note", "note is longer than 10000 characters")
	}
	if len(idempotencyKey) > 200 {
		return Lock{}, invalid("idempotency_key", "idempotency key is longer than 200 characters")
	}
	if req.ExpiresAt != nil {
		x := req.ExpiresAt.UTC().Truncate(time.Microsecond)
		req.ExpiresAt = &x
	}
	hash := requestHash(req)
	var out Lock
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		err = s.update(ctx, a, func(t *txn) error {
			var err error
			out, err = t.createLock(req, idempotencyKey, hash)
			return err
		})
		if e := ErrorDetails(err); e != nil && errors.Is(err, ErrConflict) && (e.Field == "locking_id" || e.Field == "idempotency_key" && e.ExistingID == 0 && attempt == 0) {
			continue // Locking ID collision, or a concurrent first use of the key: run again
		}
		break
	}
	return out, err
}

func reasonList() string {
	s := make([]string, len(Reasons))
	for i, r := range Reasons {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

func requestHash(req CreateLockRequest) string {
	r := req
	r.Scope.IPs = slices.Clone(r.Scope.IPs)
	slices.SortFunc(r.Scope.IPs, func(a, b netip.Addr) int { return a.Compare(b) })
	b, _ := json.Marshal(r)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (t *txn) createLock(req CreateLockRequest, key, hash string) (Lock, error) {
	ctx := t.ctx
	scope := t.actor.String()
	if key != "" {
		h, id, err := t.tx.IdempotencyKey(ctx, scope, key)
		switch {
		case err == nil && h == hash:
			return t.tx.Lock(ctx, id, false)
		case err == nil:
			return Lock{}, &Error{Kind: ErrConflict, Field: "idempotency_key", ExistingID: id,
				Message: "the idempotency key was already used with a different request"}
		case !errors.Is(err, ErrNotFound):
			return Lock{}, err
		}
	}
	if req.Warn && req.WarnUntil == nil {
		w := t.now.Add(t.s.cfg.DefaultWarning)
		req.WarnUntil = &w
	}
	if req.WarnUntil != nil && !req.WarnUntil.After(t.now) {
		return Lock{}, invalid("warn_until", "the warning deadline must be in the future")
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(t.now) {
		return Lock{}, invalid("expires_at", "the expiry must be in the future")
	}
	if req.ExpiresAt != nil && req.WarnUntil != nil && !req.ExpiresAt.After(*req.WarnUntil) {
		return Lock{}, invalid("expires_at", "the expiry must be after the warning deadline")
	}
	l, err := t.resolveScope(req.Scope)
	if err != nil {
		return Lock{}, err
	}
	l.Reason, l.Note, l.FindingID = req.Reason, req.Note, req.FindingID
	l.ExpiresAt, l.StaffUnlockOnly, l.InboundProtection, l.Method = req.ExpiresAt, req.StaffUnlockOnly, req.InboundProtection, req.Method

	// Recurrence within probation: re-lock the old lock at once. Protecting
	// a victim is no recurrence: it gets its own lock, and the customer's
	// earlier lock keeps its probation and history.
	old, err := t.tx.ProbationLock(ctx, l.CustomerID, l.ScopeKey, l.Reason, t.now)
	if req.InboundProtection {
		old, err = Lock{}, notFound("no recurrence")
	}
	switch {
	case err == nil:
		// The recurrence's own terms apply: its expiry (or none), its
		// kind; staff-only stays once set.
		old.ExpiresAt, old.InboundProtection, old.Method = req.ExpiresAt, req.InboundProtection, req.Method
		old.StaffUnlockOnly = old.StaffUnlockOnly || req.StaffUnlockOnly
		if err := t.apply(&old, ActionRelock, req.Note, Event{Evidence: req.Evidence}); err != nil {
			return Lock{}, err
		}
		if key != "" {
			if err := t.tx.PutIdempotencyKey(ctx, scope, key, hash, old.ID, t.now); err != nil {
				return Lock{}, err
			}
		}
		return old, nil
	case !errors.Is(err, ErrNotFound):
		return Lock{}, err
	}

	act := ActionLock
	if req.WarnUntil != nil {
		act = ActionWarn
		w := req.WarnUntil.UTC().Truncate(time.Microsecond)
		l.WarnUntil = &w
	}
	to, err := Transition(StateNone, act)
	if err != nil {
		return Lock{}, err
	}
	l.State = to
	l.LockingID = NewLockingID()
	l.CreatedAt, l.UpdatedAt, l.CreatedBy = t.now, t.now, t.actor.String()
	if to == StateLocked {
		now := t.now
		l.LockedAt = &now
	}
	if err := t.tx.InsertLock(ctx, &l); err != nil {
		return Lock{}, err
	}
	if err := t.audit(string(act), "lock", l.ID, l.ID, l.CustomerID, nil, l, req.Note); err != nil {
		return Lock{}, err
	}
	kind := "lock"
	if act == ActionWarn {
		kind = "warning"
	}
	if err := t.notify(Event{Kind: kind, Lock: &l, Note: req.Note, Evidence: req.Evidence}); err != nil {
		return Lock{}, err
	}
	if key != "" {
		if err := t.tx.PutIdempotencyKey(ctx, scope, key, hash, l.ID, t.now); err != nil {
			return Lock{}, err
		}
	}
	t.changed(l.ID, string(act))
	return l, nil
}

// resolveScope checks the scope and finds its customer and addresses.
func (t *txn) resolveScope(sc Scope) (Lock, error) {
	ctx := t.ctx
	l := Lock{Scope: sc, ScopeKind: sc.Kind()}
	switch l.ScopeKind {
	case "":
		return l, invalid("scope", "set exactly one of ips, server_id, storage_box_id, subnet")
	case ScopeIP, ScopeIPs:
		x, err := t.s.index0(ctx)
		if err != nil {
			return l, err
		}
		ips := make([]netip.Addr, 0, len(sc.IPs))
		for _, ip := range sc.IPs {
			if !ip.IsValid() {
				return l, invalid("scope.ips", "invalid address")
			}
			ips = append(ips, ip.Unmap().WithZone(""))
		}
		slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
		ips = slices.Compact(ips)
		if len(ips) > 1024 {
			return l, invalid("scope.ips", "at most 1024 addresses per lock")
		}
		keys := make([]string, len(ips))
		for i, ip := range ips {
			e, ok := x.Lookup(ip)
			if !ok || !t.actor.sees(e.CustomerID) {
				return l, invalid("scope.ips", "%s belongs to no product in the inventory", ip)
			}
			if i > 0 && e.CustomerID != l.CustomerID {
				return l, invalid("scope.ips", "the addresses belong to different customers; lock them separately")
			}
			l.CustomerID = e.CustomerID
			l.Prefixes = append(l.Prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			keys[i] = ip.String()
		}
		l.Scope.IPs = ips
		if len(ips) == 1 {
			l.ScopeKind = ScopeIP
		}
		l.ScopeKey = "ips:" + strings.Join(keys, ",")
	case ScopeServer:
		sv, err := t.tx.Server(ctx, sc.ServerID)
		if errors.Is(err, ErrNotFound) || err == nil && !t.actor.sees(sv.CustomerID) {
			return l, notFound("server %d", sc.ServerID)
		}
		if err != nil {
			return l, err
		}
		if len(sv.IPs) == 0 {
			return l, invalid("scope.server_id", "server %s has no addresses to lock", sv.Name)
		}
		l.CustomerID, l.Prefixes = sv.CustomerID, slices.Clone(sv.IPs)
		l.ScopeKey = fmt.Sprintf("server:%d", sv.ID)
	case ScopeStorageBox:
		b, err := t.tx.StorageBox(ctx, sc.StorageBoxID)
		if errors.Is(err, ErrNotFound) || err == nil && !t.actor.sees(b.CustomerID) {
			return l, notFound("storage box %d", sc.StorageBoxID)
		}
		if err != nil {
			return l, err
		}
		l.CustomerID = b.CustomerID
		l.ScopeKey = fmt.Sprintf("storage_box:%d", b.ID)
	case ScopeSubnet:
		p := sc.Subnet
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Masked() != p {
			return l, invalid("scope.subnet", "%s has host bits set (did you mean %s?)", sc.Subnet, p.Masked())
		}
		x, err := t.s.index0(ctx)
		if err != nil {
			return l, err
		}
		e, ok := x.LookupPrefix(p)
		if !ok || !t.actor.sees(e.CustomerID) {
			return l, invalid("scope.subnet", "%s lies in no product of the inventory", p)
		}
		l.CustomerID = e.CustomerID
		l.Scope.Subnet = p
		l.Prefixes = []netip.Prefix{p}
		l.ScopeKey = "subnet:" + p.String()
	}
	return l, nil
}

// apply moves l through action act inside the transaction: the transition
// table decides, the lock row is updated, the audit event and the mails are
// written, and side effects on whitelist entries and unlock requests follow.
func (t *txn) apply(l *Lock, act Action, note string, ev Event) error {
	to, err := Transition(l.State, act)
	if err != nil {
		return fmt.Errorf("lock %s: %w", l.LockingID, err)
	}
	if act == ActionRelock && (l.ProbationUntil == nil || !t.now.Before(*l.ProbationUntil)) {
		return &Error{Kind: ErrInvalidTransition, Message: fmt.Sprintf("cannot relock lock %s: its probation is over; create a new lock", l.LockingID)}
	}
	before := *l
	now := t.now
	l.State, l.UpdatedAt = to, now
	switch act {
	case ActionLock, ActionRelock:
		l.LockedAt = &now
		l.UnlockedAt, l.ProbationUntil = nil, nil
	case ActionApproveUnlock, ActionUnlock:
		l.UnlockedAt = &now
		// An inbound-protection blackhole protected a victim: nothing to
		// be on probation for.
		if !l.InboundProtection {
			p := now.Add(t.s.cfg.Probation)
			l.ProbationUntil = &p
		}
	}
	if err := t.tx.UpdateLock(t.ctx, l); err != nil {
		return err
	}
	if to == StateUnlocked {
		// Leaving the locked states: whitelist entries lose their meaning,
		// an open unlock request is answered by the unlock itself.
		wl, err := t.tx.ActiveWhitelistOf(t.ctx, l.ID, now)
		if err != nil {
			return err
		}
		for _, w := range wl {
			if err := t.tx.RemoveWhitelist(t.ctx, w.ID, now); err != nil {
				return err
			}
			if err := t.audit("whitelist_remove", "whitelist", w.ID, l.ID, l.CustomerID, w, nil, "the lock ended"); err != nil {
				return err
			}
		}
		if act == ActionUnlock && before.State == StateUnlockRequested {
			r, err := t.tx.OpenUnlockRequest(t.ctx, l.ID)
			if err == nil {
				before := r
				r.State, r.DecidedAt, r.DecidedBy, r.Note = RequestSuperseded, &now, t.actor.String(), note
				if err := t.tx.UpdateUnlockRequest(t.ctx, r); err != nil {
					return err
				}
				if err := t.audit("unlock_request_superseded", "unlock_request", r.ID, l.ID, l.CustomerID, before, r, note); err != nil {
					return err
				}
				// the unlock note is internal: the customer reads the fact
				if err := t.closeRequestTicket(*l, "The product was unlocked; your unlock request needs no decision any more."); err != nil {
					return err
				}
			} else if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
	}
	if err := t.audit(string(act), "lock", l.ID, l.ID, l.CustomerID, before, *l, note); err != nil {
		return err
	}
	kind := map[Action]string{ActionLock: "lock", ActionRelock: "relock", ActionUnlock: "unlock",
		ActionApproveUnlock: "unlock_request_approved", ActionRejectUnlock: "unlock_request_rejected",
		ActionRequestUnlock: "unlock_request_received"}[act]
	if kind != "" {
		ev.Kind, ev.Lock, ev.Note = kind, l, note
		if err := t.notify(ev); err != nil {
			return err
		}
	}
	t.changed(l.ID, string(act))
	return nil
}

// loadLock loads a lock for update and hides other customers' locks.
func (t *txn) loadLock(id int64) (Lock, error) {
	l, err := t.tx.Lock(t.ctx, id, true)
	if errors.Is(err, ErrNotFound) || err == nil && !t.actor.sees(l.CustomerID) {
		return Lock{}, notFound("lock %d", id)
	}
	return l, err
}

// GetLock returns one lock.
func (s *Service) GetLock(ctx context.Context, a Actor, id int64) (Lock, error) {
	var l Lock
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		l, err = tx.Lock(ctx, id, false)
		return err
	})
	if errors.Is(err, ErrNotFound) || err == nil && !a.sees(l.CustomerID) {
		return Lock{}, notFound("lock %d", id)
	}
	a.redactLock(&l)
	return l, err
}

// GetLockByLockingID returns the lock with a Locking ID like L0029DB12.
func (s *Service) GetLockByLockingID(ctx context.Context, a Actor, lockingID string) (Lock, error) {
	lockingID = strings.ToUpper(strings.TrimSpace(lockingID))
	if !ValidLockingID(lockingID) {
		return Lock{}, invalid("locking_id", "%q is not a Locking ID (L and 8 hex digits)", lockingID)
	}
	var l Lock
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		l, err = tx.LockByLockingID(ctx, lockingID)
		return err
	})
	if errors.Is(err, ErrNotFound) || err == nil && !a.sees(l.CustomerID) {
		return Lock{}, notFound("lock %s", lockingID)
	}
	a.redactLock(&l)
	return l, err
}

// ListLocks lists locks, newest first (a customer sees only its own).
func (s *Service) ListLocks(ctx context.Context, a Actor, f LockFilter) ([]Lock, error) {
	f.CustomerID = a.scopeCustomer(f.CustomerID)
	f.Limit = limit(f.Limit)
	if f.State != "" && !slices.Contains(States, f.State) {
		return nil, invalid("state", "unknown state %q", f.State)
	}
	if f.Reason != "" {
		if _, ok := s.cfg.Reasons[f.Reason]; !ok {
			return nil, invalid("reason", "unknown reason %q", f.Reason)
		}
	}
	if f.IP.IsValid() {
		f.IP = f.IP.Unmap().WithZone("")
	}
	var out []Lock
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		out, err = tx.ListLocks(ctx, f)
		return err
	})
	a.redactLocks(out)
	return out, err
}

// Apply performs one transition action on a lock: lock (escalate a
// warning), request_unlock (note = the customer's message), approve_unlock
// and reject_unlock (on the lock's open request), unlock, relock. Invalid
// transitions are refused with ErrInvalidTransition and the reason.
func (s *Service) Apply(ctx context.Context, a Actor, lockID int64, act Action, note string) (Lock, error) {
	switch act {
	case ActionRequestUnlock:
		_, err := s.RequestUnlock(ctx, a, lockID, note)
		if err != nil {
			return Lock{}, err
		}
		return s.GetLock(ctx, a, lockID)
	case ActionApproveUnlock, ActionRejectUnlock:
		var l Lock
		err := s.update(ctx, a, func(t *txn) error {
			var err error
			l, err = t.loadLock(lockID)
			if err != nil {
				return err
			}
			if !a.mayLock(l.Reason) {
				return forbidden("role %s may not decide unlock requests for %s", a.Role, l.Reason)
			}
			if err := staffOnly(a, l); err != nil {
				return err
			}
			if _, err := Transition(l.State, act); err != nil {
				return fmt.Errorf("lock %s: %w", l.LockingID, err)
			}
			r, err := t.tx.OpenUnlockRequest(ctx, l.ID)
			if err != nil {
				return err
			}
			_, l, err = t.decide(r.ID, act == ActionApproveUnlock, note)
			return err
		})
		return l, err
	}
	var l Lock
	err := s.update(ctx, a, func(t *txn) error {
		var err error
		l, err = t.loadLock(lockID)
		if err != nil {
			return err
		}
		if !a.mayLock(l.Reason) {
			return forbidden("role %s may not %s a %s lock", a.Role, act, l.Reason)
		}
		if act == ActionUnlock {
			if err := staffOnly(a, l); err != nil {
				return err
			}
		}
		return t.apply(&l, act, note, Event{})
	})
	return l, err
}

// Unlock lifts a lock directly (staff; billing only non_payment).
func (s *Service) Unlock(ctx context.Context, a Actor, lockID int64, note string) (Lock, error) {
	return s.Apply(ctx, a, lockID, ActionUnlock, note)
}

// Escalate turns a warning into a lock before or at its deadline.
func (s *Service) Escalate(ctx context.Context, a Actor, lockID int64, note string) (Lock, error) {
	return s.Apply(ctx, a, lockID, ActionLock, note)
}

// Relock re-locks an unlocked lock within its probation.
func (s *Service) Relock(ctx context.Context, a Actor, lockID int64, note string) (Lock, error) {
	return s.Apply(ctx, a, lockID, ActionRelock, note)
}

// staffOnly refuses a non-staff actor on a StaffUnlockOnly lock.
func staffOnly(a Actor, l Lock) error {
	if l.StaffUnlockOnly && !a.staff() {
		return forbidden("lock %s can only be lifted by staff after review", l.LockingID)
	}
	return nil
}

// ClearNonPayment unlocks every non_payment lock of a customer (billing
// after a payment). Locks for other reasons stay, and so do non_payment
// locks marked StaffUnlockOnly when the caller is not staff. It returns the
// locks it unlocked.
func (s *Service) ClearNonPayment(ctx context.Context, a Actor, customerID int64, note string) ([]Lock, error) {
	if !a.mayLock(ReasonNonPayment) {
		return nil, forbidden("role %s may not unlock", a.Role)
	}
	var out []Lock
	err := s.update(ctx, a, func(t *txn) error {
		out = nil
		if _, err := t.tx.Customer(ctx, customerID); err != nil {
			return err
		}
		for _, st := range []State{StateWarned, StateLocked, StateUnlockRequested} {
			ls, err := t.tx.ListLocks(ctx, LockFilter{CustomerID: customerID, Reason: ReasonNonPayment, State: st, Limit: 1000})
			if err != nil {
				return err
			}
			for _, l := range ls {
				l, err := t.tx.Lock(ctx, l.ID, true)
				if err != nil {
					return err
				}
				if staffOnly(a, l) != nil {
					s.log.Info("payment does not lift a staff-only lock", "lock_id", l.ID, "locking_id", l.LockingID)
					continue
				}
				if err := t.apply(&l, ActionUnlock, note, Event{}); err != nil {
					return err
				}
				out = append(out, l)
			}
		}
		return nil
	})
	return out, err
}

// LockOverdue escalates every warning whose deadline has passed (run it
// periodically as the system actor). It returns how many it locked.
func (s *Service) LockOverdue(ctx context.Context) (int, error) {
	n := 0
	err := s.update(ctx, System, func(t *txn) error {
		n = 0
		ls, err := t.tx.ListLocks(ctx, LockFilter{State: StateWarned, Limit: 1000})
		if err != nil {
			return err
		}
		for _, l := range ls {
			if l.WarnUntil == nil || t.now.Before(*l.WarnUntil) {
				continue
			}
			l, err := t.tx.Lock(ctx, l.ID, true)
			if err != nil {
				return err
			}
			if err := t.apply(&l, ActionLock, "warning deadline passed", Event{}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// ExpiredNote is the note of the unlock ExpireLocks writes (audit event
// and the unlock mail's Event.Note).
const ExpiredNote = "the lock expired"

// ExpireLocks unlocks every lock whose ExpiresAt has passed, as the system
// actor: each gets an unlock audit event with ExpiredNote and the customer
// an unlock mail. Enforcement does not wait for it (the desired state drops
// a lock at its expiry); run it periodically. It returns how many locks it
// unlocked.
func (s *Service) ExpireLocks(ctx context.Context) (int, error) {
	n := 0
	err := s.update(ctx, System, func(t *txn) error {
		n = 0
		ls, err := t.tx.ExpiredLocks(ctx, t.now, 1000)
		if err != nil {
			return err
		}
		for _, l := range ls {
			l, err := t.tx.Lock(ctx, l.ID, true)
			if err != nil {
				return err
			}
			if l.State == StateUnlocked || l.ExpiresAt == nil || t.now.Before(*l.ExpiresAt) {
				continue
			}
			if err := t.apply(&l, ActionUnlock, ExpiredNote, Event{}); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
