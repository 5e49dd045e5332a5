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
		Scope     scopeIn    `json:"scope"`
		Reason    string     `json:"reason"`
		Note      string     `json:"note"`
		WarnUntil *time.Time `json:"warn_until"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	req := lock.CreateLockRequest{Reason: lock.Reason(in.Reason), Note: in.Note, WarnUntil: in.WarnUntil}
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
	writeJSON(w, http.StatusCreated, l)
	return nil
}

func (a *API) listLocks(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	q := r.URL.Query()
	f := lock.LockFilter{State: lock.State(q.Get("state")), Reason: lock.Reason(q.Get("reason"))}
	if f.State != "" && !validState(f.State) {
		return badRequest("state", "state must be one of warned, locked, unlock_requested, unlocked, not %q", f.State)
	}
	var err error
	if f.CustomerID, err = queryInt(r, "customer_id"); err != nil {
		return err
	}
	if f.ServerID, err = queryInt(r, "server_id"); err != nil {
		return err
	}
	if f.AfterID, err = queryInt(r, "after_id"); err != nil {
		return err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	f.Limit = int(limit)
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
	writeJSON(w, http.StatusOK, list(ls))
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
	Lock          lock.Lock          `json:"lock"`
}

func (a *API) decide(call func(context.Context, lock.Actor, int64, string) (lock.UnlockRequest, lock.Lock, error)) handlerFunc {
	return onID(http.StatusOK, true, func(ctx context.Context, actor lock.Actor, id int64, in noteIn) (decisionOut, error) {
		ur, l, err := call(ctx, actor, id, in.Note)
		return decisionOut{UnlockRequest: ur, Lock: l}, err
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
	var err error
	if f.CustomerID, err = queryInt(r, "customer_id"); err != nil {
		return err
	}
	if f.LockID, err = queryInt(r, "lock_id"); err != nil {
		return err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	f.Limit = int(limit)
	urs, err := a.svc.ListUnlockRequests(r.Context(), actor, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list(urs))
	return nil
}
