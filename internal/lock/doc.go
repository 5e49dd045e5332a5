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
// Whitelisting is decided here, not in the front ends: a lock gets a
// whitelist entry only while it is active, when its reason's policy offers
// it, and when its enforcement method (the lock's own Method or the
// reason's) can let a single source through to every target of the lock —
// Dependencies.CanWhitelist, wired from the enforcement drivers'
// capabilities (DefaultCanWhitelist without it). WhitelistOffered tells the
// client area in advance, with the sentence the customer reads.
//
// A lock may end by itself (ExpiresAt: the desired state drops it then and
// ExpireLocks unlocks it with an audit event and an unlock mail), may be
// liftable by staff only (StaffUnlockOnly: billing and payments cannot),
// and may protect an inbound victim (InboundProtection: no probation after
// it).
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
