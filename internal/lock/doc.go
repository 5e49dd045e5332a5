// Package lock owns the lock domain and the service layer every front end
// goes through: the REST API, the client area, the admin area, billing and
// the automatic pipeline all call Service, so authorization, validation, the
// state machine, the audit log and the mail outbox are enforced in one
// place.
//
// A lock covers a scope (one IP, a set of IPs, a whole server, a storage box,
// a subnet) for one reason. Its lifecycle is the single transition table in
// transition.go: warned (optional deadline) → locked → unlock_requested →
// unlocked, with probation after unlock (a recurrence within probation
// re-locks at once) and reject returning to locked. Several locks may stack
// on one product and each clears on its own.
//
// Every change runs in one store transaction that also appends the audit
// event and enqueues the customer's mails (outbox), so a crash never leaves a
// half-written lock or a lock without its mail. After commit the OnChange
// hook lets enforcement reconcile.
//
// The package declares what it needs (Store, Tx, Render, OnChange) and must
// not import the store, enforcement, notification or web packages; it
// imports only inventory and mail from padlock.
package lock
