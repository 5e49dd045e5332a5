package api

import (
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

func (a *API) getLock(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	l, err := a.svc.GetLock(r.Context(), actor, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

type noteIn struct {
	Note string `json:"note"`
}

// decodeOptional decodes a JSON body when there is one; an empty body is
// fine for calls whose fields are all optional.
func decodeOptional(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	if err := decodeJSON(r, v); err != nil {
		return err
	}
	return nil
}

func (a *API) unlockLock(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in noteIn
	if err := decodeOptional(r, &in); err != nil {
		return err
	}
	l, err := a.svc.Unlock(r.Context(), actor, id, in.Note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (a *API) relockLock(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in noteIn
	if err := decodeOptional(r, &in); err != nil {
		return err
	}
	l, err := a.svc.Relock(r.Context(), actor, id, in.Note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

func (a *API) listWhitelist(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ws, err := a.svc.ListWhitelist(r.Context(), actor, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list(ws))
	return nil
}

func (a *API) addWhitelist(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in struct {
		IP string `json:"ip"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	wl, err := a.svc.AddWhitelist(r.Context(), actor, id, in.IP)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, wl)
	return nil
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

func (a *API) requestUnlock(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in struct {
		Message string `json:"message"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	ur, err := a.svc.RequestUnlock(r.Context(), actor, id, in.Message)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ur)
	return nil
}

func (a *API) listLockUnlockRequests(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if _, err := a.svc.GetLock(r.Context(), actor, id); err != nil {
		return err
	}
	urs, err := a.svc.ListUnlockRequests(r.Context(), actor, lock.UnlockRequestFilter{LockID: id})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list(urs))
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

func (a *API) getUnlockRequest(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	ur, err := a.svc.GetUnlockRequest(r.Context(), actor, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ur)
	return nil
}

type decisionOut struct {
	UnlockRequest lock.UnlockRequest `json:"unlock_request"`
	Lock          lock.Lock          `json:"lock"`
}

func (a *API) approveUnlock(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	return a.decide(w, r, actor, a.svc.ApproveUnlock)
}

func (a *API) rejectUnlock(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	return a.decide(w, r, actor, a.svc.RejectUnlock)
}

func (a *API) decide(w http.ResponseWriter, r *http.Request, actor lock.Actor,
	fn func(ctx contextT, a lock.Actor, id int64, note string) (lock.UnlockRequest, lock.Lock, error)) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in noteIn
	if err := decodeOptional(r, &in); err != nil {
		return err
	}
	ur, l, err := fn(r.Context(), actor, id, in.Note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, decisionOut{UnlockRequest: ur, Lock: l})
	return nil
}
