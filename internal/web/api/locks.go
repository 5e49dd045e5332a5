package api

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"padlock/internal/lock"
)

type scopeIn struct {
	IPs          []string `json:"ips"`
	ServerID     int64    `json:"server_id"`
	StorageBoxID int64    `json:"storage_box_id"`
	Subnet       string   `json:"subnet"`
}

func (a *API) createLock(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	var in struct {
		Scope             scopeIn    `json:"scope"`
		Reason            string     `json:"reason"`
		Note              string     `json:"note"`
		WarnUntil         *time.Time `json:"warn_until"`
		Warn              bool       `json:"warn"`
		ExpiresAt         *time.Time `json:"expires_at"`
		StaffUnlockOnly   bool       `json:"staff_unlock_only"`
		InboundProtection bool       `json:"inbound_protection"`
		Method            string     `json:"method"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	req := lock.CreateLockRequest{Reason: lock.Reason(in.Reason), Note: in.Note, WarnUntil: in.WarnUntil, Warn: in.Warn,
		ExpiresAt: in.ExpiresAt, StaffUnlockOnly: in.StaffUnlockOnly, InboundProtection: in.InboundProtection, Method: in.Method}
	req.Scope.ServerID = in.Scope.ServerID
	req.Scope.StorageBoxID = in.Scope.StorageBoxID
	for i, s := range in.Scope.IPs {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return badRequest("scope.ips", "scope.ips[%d]: %q is not an IP address", i, s)
		}
		req.Scope.IPs = append(req.Scope.IPs, ip.Unmap())
	}
	if in.Scope.Subnet != "" {
		p, err := netip.ParsePrefix(in.Scope.Subnet)
		if err != nil || p.Masked() != p {
			return badRequest("scope.subnet", "scope.subnet: %q is not a prefix like 203.0.113.0/28", in.Scope.Subnet)
		}
		req.Scope.Subnet = p
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 200 {
		return badRequest("Idempotency-Key", "the Idempotency-Key header is longer than 200 characters")
	}
	l, err := a.svc.CreateLock(r.Context(), actor, req, key)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.view(actor, l))
	return nil
}

func (a *API) listLocks(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	q := r.URL.Query()
	f := lock.LockFilter{State: lock.State(q.Get("state")), Reason: lock.Reason(q.Get("reason"))}
	if f.State != "" && !validState(f.State) {
		return badRequest("state", "state must be one of warned, locked, unlock_requested, unlocked, not %q", f.State)
	}
	if err := queryInts(r, &f.Limit, map[string]*int64{"customer_id": &f.CustomerID, "server_id": &f.ServerID, "after_id": &f.AfterID}); err != nil {
		return err
	}
	if v := q.Get("ip"); v != "" {
		ip, err := netip.ParseAddr(v)
		if err != nil {
			return badRequest("ip", "ip must be an IP address, not %q", v)
		}
		f.IP = ip.Unmap()
	}
	ls, err := a.svc.ListLocks(r.Context(), actor, f)
	if err != nil {
		return err
	}
	views := make([]lockView, len(ls))
	for i, l := range ls {
		views[i] = a.view(actor, l)
	}
	writeJSON(w, http.StatusOK, list(views))
	return nil
}

func validState(s lock.State) bool {
	for _, x := range lock.States {
		if x == s {
			return true
		}
	}
	return false
}

type decisionOut struct {
	UnlockRequest lock.UnlockRequest `json:"unlock_request"`
	Lock          lockView           `json:"lock"`
}

// lockView is a lock as the API shows it: for staff with its enforcement
// state ("applied", or "pending"/"refused" with the error), so a lock is
// never presented as effective while the network does not apply it.
type lockView struct {
	lock.Lock
	Enforcement *enforcementView `json:"enforcement,omitempty"`
}

type enforcementView struct {
	State    string    `json:"state"`
	Error    string    `json:"error,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Attempts int       `json:"attempts,omitempty"`
}

func (a *API) view(actor lock.Actor, l lock.Lock) lockView {
	v := lockView{Lock: l}
	if a.enf == nil || actor.Role == lock.RoleCustomer {
		return v
	}
	if st, ok := a.enf.Status(l.ID); ok {
		v.Enforcement = &enforcementView{State: string(st.State), Error: st.Err, Since: st.Since, Attempts: st.Attempts}
	} else if lock.Active(l.State, l.WarnUntil, time.Now()) {
		v.Enforcement = &enforcementView{State: "pending", Error: "not reconciled yet"}
	} else {
		v.Enforcement = &enforcementView{State: "none"}
	}
	return v
}

// viewed wraps a lock getter so its result carries the enforcement state.
func (a *API) viewed(get func(context.Context, lock.Actor, int64) (lock.Lock, error)) func(context.Context, lock.Actor, int64) (lockView, error) {
	return func(ctx context.Context, ac lock.Actor, id int64) (lockView, error) {
		l, err := get(ctx, ac, id)
		return a.view(ac, l), err
	}
}

// viewedNote is viewed for calls that take a note.
func (a *API) viewedNote(call func(context.Context, lock.Actor, int64, string) (lock.Lock, error)) func(context.Context, lock.Actor, int64, string) (lockView, error) {
	return func(ctx context.Context, ac lock.Actor, id int64, note string) (lockView, error) {
		l, err := call(ctx, ac, id, note)
		return a.view(ac, l), err
	}
}

func (a *API) decide(call func(context.Context, lock.Actor, int64, string) (lock.UnlockRequest, lock.Lock, error)) handlerFunc {
	return onID(http.StatusOK, true, func(ctx context.Context, actor lock.Actor, id int64, in noteIn) (decisionOut, error) {
		ur, l, err := call(ctx, actor, id, in.Note)
		return decisionOut{UnlockRequest: ur, Lock: a.view(actor, l)}, err
	})
}

func (a *API) removeWhitelist(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := a.svc.RemoveWhitelist(r.Context(), actor, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
func (a *API) listUnlockRequests(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	f := lock.UnlockRequestFilter{State: lock.UnlockRequestState(r.URL.Query().Get("state"))}
	if err := queryInts(r, &f.Limit, map[string]*int64{"customer_id": &f.CustomerID, "lock_id": &f.LockID}); err != nil {
		return err
	}
	urs, err := a.svc.ListUnlockRequests(r.Context(), actor, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list(urs))
	return nil
}
