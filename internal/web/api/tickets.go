package api

import (
	"net/http"

	"padlock/internal/lock"
)

func (a *API) listTickets(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	q := r.URL.Query()
	f := lock.TicketFilter{Kind: lock.TicketKind(q.Get("kind")), State: q.Get("state")}
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
	ts, err := a.svc.ListTickets(r.Context(), actor, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list(ts))
	return nil
}

func (a *API) openTicket(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	var in lock.NewTicket
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	t, err := a.svc.OpenTicket(r.Context(), actor, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, t)
	return nil
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	q := r.URL.Query()
	f := lock.AuditFilter{ObjectType: q.Get("object_type"), Action: q.Get("action"), Actor: q.Get("actor")}
	var err error
	for name, dst := range map[string]*int64{"lock_id": &f.LockID, "customer_id": &f.CustomerID, "object_id": &f.ObjectID, "before_id": &f.BeforeID} {
		if *dst, err = queryInt(r, name); err != nil {
			return err
		}
	}
	if f.Since, err = queryTime(r, "since"); err != nil {
		return err
	}
	if f.Until, err = queryTime(r, "until"); err != nil {
		return err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return err
	}
	f.Limit = int(limit)
	evs, err := a.svc.ListAudit(r.Context(), actor, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list(evs))
	return nil
}
