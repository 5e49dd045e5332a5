package lock

import "strings"

// What a customer sees of the staff's side. The service removes it from
// everything it returns to a customer actor, so that the client area and
// the API (a customer's token) show the same: the staff's internal notes
// on locks, staff names (a customer reads "staff", never "staff:alice"),
// and the audit log's object snapshots, which carry both. The notes staff
// write for the customer (an unlock request's decision) stay.

// customerNote reports whether the note of an audit action is written for
// the customer (an unlock request's decision); other notes are internal.
func customerNote(action string) bool {
	switch action {
	case "unlock_request_approved", "unlock_request_rejected", "approve_unlock", "reject_unlock":
		return true
	}
	return false
}

// customerView reports whether a sees the customer's view of things.
func (a Actor) customerView() bool { return a.Role == RoleCustomer }

// anonymous is how a customer sees an actor of role r that is not itself.
func anonymous(r Role, name string) string {
	if r == RoleCustomer {
		return name
	}
	return string(r)
}

// anonymousActor is an Actor.String() value as a customer sees it:
// a customer's own stays, others become their role ("staff:alice" →
// "staff").
func anonymousActor(s string) string {
	role, _, _ := strings.Cut(s, ":")
	return anonymous(Role(role), s)
}

func (a Actor) redactLock(l *Lock) {
	if a.customerView() {
		l.Note = ""
		l.CreatedBy = anonymousActor(l.CreatedBy)
	}
}

func (a Actor) redactLocks(ls []Lock) {
	for i := range ls {
		a.redactLock(&ls[i])
	}
}

func (a Actor) redactAudit(evs []AuditEvent) {
	if !a.customerView() {
		return
	}
	for i := range evs {
		e := &evs[i]
		e.Actor = anonymous(e.ActorRole, e.Actor)
		e.Before, e.After = "", ""
		if !customerNote(e.Action) {
			e.Note = ""
		}
	}
}

func (a Actor) redactTicket(t *Ticket) {
	if !a.customerView() {
		return
	}
	for i := range t.Messages {
		m := &t.Messages[i]
		m.Author = anonymous(m.AuthorRole, m.Author)
	}
}

func (a Actor) redactRequest(r *UnlockRequest) {
	if a.customerView() {
		if r.State == RequestSuperseded {
			r.Note = "" // the note of the unlock that superseded it is internal
		}
		r.CreatedBy = anonymousActor(r.CreatedBy)
		if r.DecidedBy != "" {
			r.DecidedBy = anonymousActor(r.DecidedBy)
		}
	}
}
