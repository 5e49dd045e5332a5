package api

import (
	"net/http"

	"padlock/internal/lock"
)

func (a *API) listTickets(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	q := r.URL.Query()
	f := lock.TicketFilter{Kind: lock.TicketKind(q.Get("kind")), State: q.Get("state")}
	if err := queryInts(r, &f.Limit, map[string]*int64{"customer_id": &f.CustomerID, "lock_id": &f.LockID}); err != nil {
		return err
	}
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
	err := queryInts(r, &f.Limit, map[string]*int64{"lock_id": &f.LockID, "customer_id": &f.CustomerID, "object_id": &f.ObjectID, "before_id": &f.BeforeID})
	if err != nil {
		return err
	}
	if f.Since, err = queryTime(r, "since"); err != nil {
		return err
	}
	if f.Until, err = queryTime(r, "until"); err != nil {
		return err
	}
	evs, err := a.svc.ListAudit(r.Context(), actor, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list(evs))
	return nil
}
