package lock

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// RequestUnlock records the customer's unlock request for a lock (the
// customer itself, or staff on its behalf). There is at most one open
// request per lock: a second one is refused with an *Error of kind
// ErrConflict whose ExistingID is the open request, also when both arrive
// at the same time.
func (s *Service) RequestUnlock(ctx context.Context, a Actor, lockID int64, message string) (UnlockRequest, error) {
	if a.Role != RoleCustomer && !a.staff() {
		return UnlockRequest{}, forbidden("role %s may not request an unlock", a.Role)
	}
	message = strings.TrimSpace(message)
	if len(message) > 10000 {
		return UnlockRequest{}, invalid("message", "message is longer than 10000 characters")
	}
	var r UnlockRequest
	err := s.update(ctx, a, func(t *txn) error {
		l, err := t.loadLock(lockID)
		if err != nil {
			return err
		}
		if l.State == StateUnlockRequested {
			if open, err := t.tx.OpenUnlockRequest(ctx, l.ID); err == nil {
				return conflict(open.ID, "unlock request %d is already open for lock %s; please do not send multiple unlock requests for the same issue", open.ID, l.LockingID)
			}
		}
		if l.LiftedByPayment() {
			return invalid("lock", "lock %s is for non-payment: it is lifted automatically when the payment arrives, no unlock request is needed", l.LockingID)
		}
		if _, err := Transition(l.State, ActionRequestUnlock); err != nil {
			return fmt.Errorf("lock %s: %w", l.LockingID, err)
		}
		r = UnlockRequest{LockID: l.ID, LockingID: l.LockingID, CustomerID: l.CustomerID, Message: message,
			State: RequestOpen, CreatedAt: t.now, CreatedBy: a.String()}
		if err := t.tx.InsertUnlockRequest(ctx, &r); err != nil {
			return err
		}
		if err := t.audit("unlock_request_create", "unlock_request", r.ID, l.ID, l.CustomerID, nil, r, ""); err != nil {
			return err
		}
		if err := t.openRequestTicket(l, message); err != nil {
			return err
		}
		return t.apply(&l, ActionRequestUnlock, message, Event{UnlockRequest: &r})
	})
	if e := ErrorDetails(err); e != nil && errors.Is(err, ErrConflict) && e.ExistingID == 0 && e.Field == "unlock_request" {
		// Lost a race the row lock did not catch: point to the winner.
		if open, err2 := s.openRequest(ctx, lockID); err2 == nil {
			e.ExistingID = open.ID
			e.Message = fmt.Sprintf("unlock request %d is already open for this lock; please do not send multiple unlock requests for the same issue", open.ID)
		}
	}
	if err != nil {
		return UnlockRequest{}, err
	}
	return r, nil
}

func (s *Service) openRequest(ctx context.Context, lockID int64) (UnlockRequest, error) {
	var r UnlockRequest
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		r, err = tx.OpenUnlockRequest(ctx, lockID)
		return err
	})
	return r, err
}

// openRequestTicket opens the ticket of a new unlock request ("send us an
// unlock request via support ticket"), the request's message first.
func (t *txn) openRequestTicket(l Lock, message string) error {
	if message == "" {
		message = "Unlock request without a message."
	}
	tk := Ticket{CustomerID: l.CustomerID, Kind: TicketUnlockRequest, LockID: l.ID, Subject: "Unlock request for lock " + l.LockingID,
		State: "open", CreatedAt: t.now, UpdatedAt: t.now}
	if err := t.tx.InsertTicket(t.ctx, &tk); err != nil {
		return err
	}
	m := TicketMessage{TicketID: tk.ID, AuthorRole: t.actor.Role, Author: t.actor.String(), Body: message, CreatedAt: t.now}
	if err := t.tx.InsertTicketMessage(t.ctx, &m); err != nil {
		return err
	}
	return t.audit("ticket_open", "ticket", tk.ID, l.ID, l.CustomerID, nil, tk, "")
}

// closeRequestTicket answers the open unlock-request ticket of l with body
// and closes it (requests from before these tickets have none).
func (t *txn) closeRequestTicket(l Lock, body string) error {
	ts, err := t.tx.ListTickets(t.ctx, TicketFilter{LockID: l.ID, Kind: TicketUnlockRequest, State: "open", Limit: 10})
	if err != nil {
		return err
	}
	for _, tk := range ts {
		m := TicketMessage{TicketID: tk.ID, AuthorRole: t.actor.Role, Author: t.actor.String(), Body: body, CreatedAt: t.now}
		if err := t.tx.InsertTicketMessage(t.ctx, &m); err != nil {
			return err
		}
		before := tk
		tk.State, tk.UpdatedAt = "closed", t.now
		if err := t.tx.UpdateTicket(t.ctx, tk); err != nil {
			return err
		}
		if err := t.audit("ticket_close", "ticket", tk.ID, l.ID, l.CustomerID, before, tk, "unlock request decided"); err != nil {
			return err
		}
	}
	return nil
}

// decide approves or rejects an open request and moves its lock.
func (t *txn) decide(reqID int64, approve bool, note string) (UnlockRequest, Lock, error) {
	r, err := t.tx.UnlockRequest(t.ctx, reqID, true)
	if errors.Is(err, ErrNotFound) || err == nil && !t.actor.sees(r.CustomerID) {
		return r, Lock{}, notFound("unlock request %d", reqID)
	}
	if err != nil {
		return r, Lock{}, err
	}
	l, err := t.loadLock(r.LockID)
	if err != nil {
		return r, Lock{}, err
	}
	if !t.actor.mayLock(l.Reason) {
		return r, l, forbidden("role %s may not decide unlock requests for %s", t.actor.Role, l.Reason)
	}
	if err := staffOnly(t.actor, l); err != nil {
		return r, l, err
	}
	if r.State != RequestOpen {
		return r, l, conflict(r.ID, "unlock request %d is already %s", r.ID, r.State)
	}
	act, st := ActionRejectUnlock, RequestRejected
	if approve {
		act, st = ActionApproveUnlock, RequestApproved
	}
	before := r
	now := t.now
	r.State, r.DecidedAt, r.DecidedBy, r.Note = st, &now, t.actor.String(), note
	if err := t.tx.UpdateUnlockRequest(t.ctx, r); err != nil {
		return r, l, err
	}
	if err := t.audit("unlock_request_"+string(st), "unlock_request", r.ID, l.ID, l.CustomerID, before, r, note); err != nil {
		return r, l, err
	}
	body := "Your unlock request was rejected."
	if approve {
		body = "Your unlock request was approved: the product is unlocked."
	}
	if n := strings.TrimSpace(note); n != "" {
		body += "\n\n" + n // the decision note is written for the customer
	}
	if err := t.closeRequestTicket(l, body); err != nil {
		return r, l, err
	}
	if err := t.apply(&l, act, note, Event{UnlockRequest: &r}); err != nil {
		return r, l, err
	}
	return r, l, nil
}

// ApproveUnlock approves an open unlock request: the lock becomes unlocked
// (staff; billing for non_payment locks).
func (s *Service) ApproveUnlock(ctx context.Context, a Actor, requestID int64, note string) (UnlockRequest, Lock, error) {
	return s.decideRequest(ctx, a, requestID, true, note)
}

// RejectUnlock rejects an open unlock request with a note the customer
// sees; the lock returns to locked.
func (s *Service) RejectUnlock(ctx context.Context, a Actor, requestID int64, note string) (UnlockRequest, Lock, error) {
	if strings.TrimSpace(note) == "" {
		return UnlockRequest{}, Lock{}, invalid("note", "a rejection needs a note for the customer")
	}
	return s.decideRequest(ctx, a, requestID, false, note)
}

func (s *Service) decideRequest(ctx context.Context, a Actor, requestID int64, approve bool, note string) (UnlockRequest, Lock, error) {
	if len(note) > 10000 {
		return UnlockRequest{}, Lock{}, invalid("note", "note is longer than 10000 characters")
	}
	var r UnlockRequest
	var l Lock
	err := s.update(ctx, a, func(t *txn) error {
		var err error
		r, l, err = t.decide(requestID, approve, note)
		return err
	})
	if err != nil {
		return UnlockRequest{}, Lock{}, err
	}
	return r, l, nil
}

// GetUnlockRequest returns one unlock request.
func (s *Service) GetUnlockRequest(ctx context.Context, a Actor, id int64) (UnlockRequest, error) {
	var r UnlockRequest
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		r, err = tx.UnlockRequest(ctx, id, false)
		return err
	})
	if errors.Is(err, ErrNotFound) || err == nil && !a.sees(r.CustomerID) {
		return UnlockRequest{}, notFound("unlock request %d", id)
	}
	a.redactRequest(&r)
	return r, err
}

// ListUnlockRequests lists unlock requests, newest first.
func (s *Service) ListUnlockRequests(ctx context.Context, a Actor, f UnlockRequestFilter) ([]UnlockRequest, error) {
	f.CustomerID = a.scopeCustomer(f.CustomerID)
	f.Limit = limit(f.Limit)
	var out []UnlockRequest
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		out, err = tx.ListUnlockRequests(ctx, f)
		return err
	})
	for i := range out {
		a.redactRequest(&out[i])
	}
	return out, err
}

// CheckWhitelistIP validates a whitelist address as the customer typed it:
// one public IPv4 or IPv6 address, never a range, never loopback, private,
// link-local, multicast, a bogon, the provider's own network or an address
// of the inventory.
func (s *Service) CheckWhitelistIP(ip string) (netip.Addr, error) {
	ip = strings.TrimSpace(ip)
	if strings.ContainsAny(ip, "/-*") {
		return netip.Addr{}, invalid("ip", "%q is a range; whitelist a single address", ip)
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Addr{}, invalid("ip", "%q is not an IP address", ip)
	}
	if a.Zone() != "" {
		return netip.Addr{}, invalid("ip", "%q has a zone; whitelist a public address", ip)
	}
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsMulticast() || a.IsUnspecified() || a.IsInterfaceLocalMulticast() {
		return netip.Addr{}, invalid("ip", "%s is not a public address", a)
	}
	for _, p := range s.cfg.Bogons {
		if p.Contains(a) {
			return netip.Addr{}, invalid("ip", "%s is not a public address (%s is reserved)", a, p)
		}
	}
	for _, p := range s.cfg.OwnNetworks {
		if p.Contains(a) {
			return netip.Addr{}, invalid("ip", "%s belongs to our own network; enter the public address of your home or office", a)
		}
	}
	if x := s.index.Load(); x != nil {
		if _, ok := x.Lookup(a); ok {
			return netip.Addr{}, invalid("ip", "%s belongs to our own network; enter the public address of your home or office", a)
		}
	}
	return a, nil
}

// AddWhitelist gives one address temporary access to a locked product. It
// replaces the lock's previous entry (one address at a time) and expires
// after the reason's whitelist TTL. Refused with ErrInvalidTransition when
// the lock is not active, ErrForbidden when the reason does not offer
// whitelisting or the lock's enforcement method cannot let a single source
// through to every target of the lock (a blackhole; a storage box unless
// its method can; see Dependencies.CanWhitelist), ErrValidation (field
// "ip") for a bad address. WhitelistOffered tells in advance.
func (s *Service) AddWhitelist(ctx context.Context, a Actor, lockID int64, ip string) (Whitelist, error) {
	if a.Role != RoleCustomer && !a.staff() {
		return Whitelist{}, forbidden("role %s may not whitelist", a.Role)
	}
	if _, err := s.index0(ctx); err != nil {
		return Whitelist{}, err
	}
	var w Whitelist
	err := s.update(ctx, a, func(t *txn) error {
		l, err := t.loadLock(lockID)
		if err != nil {
			return err
		}
		pol := s.cfg.Reasons[l.Reason]
		if r := s.whitelistRefusal(l, t.now); r != nil {
			return r.err
		}
		blocking, err := s.blockingLocks(ctx, t.tx, l.CustomerID, t.now)
		if err != nil {
			return err
		}
		if r := stackedRefusal(l, blocking); r != nil {
			return r.err
		}
		addr, err := s.CheckWhitelistIP(ip)
		if err != nil {
			return err
		}
		old, err := t.tx.ActiveWhitelistOf(ctx, l.ID, t.now)
		if err != nil {
			return err
		}
		var before any
		for _, o := range old {
			if err := t.tx.RemoveWhitelist(ctx, o.ID, t.now); err != nil {
				return err
			}
			before = o
		}
		w = Whitelist{LockID: l.ID, IP: addr, CreatedAt: t.now, ExpiresAt: t.now.Add(pol.WhitelistTTL), CreatedBy: a.String()}
		if err := t.tx.InsertWhitelist(ctx, &w); err != nil {
			return err
		}
		if err := t.audit("whitelist_add", "whitelist", w.ID, l.ID, l.CustomerID, before, w, ""); err != nil {
			return err
		}
		if err := t.notify(Event{Kind: "whitelist_added", Lock: &l, Whitelist: &w}); err != nil {
			return err
		}
		t.changed(l.ID, "whitelist_add")
		return nil
	})
	return w, err
}

// RemoveWhitelist ends the lock's active whitelist entry now.
func (s *Service) RemoveWhitelist(ctx context.Context, a Actor, lockID int64) error {
	if a.Role != RoleCustomer && !a.staff() {
		return forbidden("role %s may not change the whitelist", a.Role)
	}
	return s.update(ctx, a, func(t *txn) error {
		l, err := t.loadLock(lockID)
		if err != nil {
			return err
		}
		old, err := t.tx.ActiveWhitelistOf(ctx, l.ID, t.now)
		if err != nil {
			return err
		}
		if len(old) == 0 {
			return notFound("lock %s has no active whitelist entry", l.LockingID)
		}
		for _, o := range old {
			if err := t.tx.RemoveWhitelist(ctx, o.ID, t.now); err != nil {
				return err
			}
			after := o
			now := t.now
			after.RemovedAt = &now
			if err := t.audit("whitelist_remove", "whitelist", o.ID, l.ID, l.CustomerID, o, after, ""); err != nil {
				return err
			}
		}
		t.changed(l.ID, "whitelist_remove")
		return nil
	})
}

// ListWhitelist returns every whitelist entry of a lock, active or not.
func (s *Service) ListWhitelist(ctx context.Context, a Actor, lockID int64) ([]Whitelist, error) {
	if _, err := s.GetLock(ctx, a, lockID); err != nil {
		return nil, err
	}
	var out []Whitelist
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		out, err = tx.ListWhitelist(ctx, lockID)
		return err
	})
	if a.customerView() {
		for i := range out {
			out[i].CreatedBy = anonymousActor(out[i].CreatedBy)
		}
	}
	return out, err
}

// ExpireWhitelists ends every whitelist entry whose time is up: it is
// marked removed, audited, and the customer gets a whitelist_expired mail.
// Enforcement never needs it (the desired state drops expired entries by
// itself); run it periodically as housekeeping. It returns how many
// entries expired.
func (s *Service) ExpireWhitelists(ctx context.Context) (int, error) {
	n := 0
	err := s.update(ctx, System, func(t *txn) error {
		n = 0
		ws, err := t.tx.ExpiredWhitelist(ctx, t.now, 1000)
		if err != nil {
			return err
		}
		for _, w := range ws {
			l, err := t.tx.Lock(ctx, w.LockID, true)
			if err != nil {
				return err
			}
			if err := t.tx.RemoveWhitelist(ctx, w.ID, w.ExpiresAt); err != nil {
				return err
			}
			after := w
			at := w.ExpiresAt
			after.RemovedAt = &at
			if err := t.audit("whitelist_expire", "whitelist", w.ID, l.ID, l.CustomerID, w, after, ""); err != nil {
				return err
			}
			if err := t.notify(Event{Kind: EventWhitelistExpired, Lock: &l, Whitelist: &after}); err != nil {
				return err
			}
			t.changed(l.ID, "whitelist_expire")
			n++
		}
		return nil
	})
	return n, err
}

// LiftedByPayment reports whether the payment lifts l by itself: a
// non-payment lock that staff did not reserve for review. Its customer
// sends no unlock request (the service refuses one) and gets no evidence.
func (l Lock) LiftedByPayment() bool {
	return l.Reason == ReasonNonPayment && !l.StaffUnlockOnly
}
