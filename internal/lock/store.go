package lock

import (
	"context"
	"net/netip"
	"time"

	"padlock/internal/inventory"
	"padlock/internal/mail"
)

// Store is the persistence the service needs. Update runs fn in ONE
// read-write transaction: if fn returns an error nothing of it is kept.
// View runs fn with read access. Implementations return errors wrapping
// ErrNotFound for missing rows and *Error{Kind: ErrConflict, Field: ...}
// for unique-key violations (Field names the key: "email", "name",
// "prefix", "locking_id", "idempotency_key", "unlock_request").
type Store interface {
	Update(ctx context.Context, fn func(Tx) error) error
	View(ctx context.Context, fn func(Tx) error) error
}

// Tx is the set of operations inside one Update or View.
type Tx interface {
	// Inventory.
	InsertCustomer(ctx context.Context, c *inventory.Customer) error
	UpdateCustomer(ctx context.Context, c inventory.Customer) error
	Customer(ctx context.Context, id int64) (inventory.Customer, error)
	CustomerByEmail(ctx context.Context, email string) (inventory.Customer, error)
	ListCustomers(ctx context.Context, f InventoryFilter) ([]inventory.Customer, error)
	InsertServer(ctx context.Context, s *inventory.Server) error
	UpdateServer(ctx context.Context, s inventory.Server) error // replaces addresses and MACs
	Server(ctx context.Context, id int64) (inventory.Server, error)
	ServerByName(ctx context.Context, name string) (inventory.Server, error)
	ListServers(ctx context.Context, f InventoryFilter) ([]inventory.Server, error)
	InsertStorageBox(ctx context.Context, b *inventory.StorageBox) error
	UpdateStorageBox(ctx context.Context, b inventory.StorageBox) error
	StorageBox(ctx context.Context, id int64) (inventory.StorageBox, error)
	StorageBoxByName(ctx context.Context, name string) (inventory.StorageBox, error)
	ListStorageBoxes(ctx context.Context, f InventoryFilter) ([]inventory.StorageBox, error)
	InsertAddress(ctx context.Context, a *inventory.Address) error
	UpdateAddress(ctx context.Context, a inventory.Address) error
	Address(ctx context.Context, id int64) (inventory.Address, error)
	AddressByPrefix(ctx context.Context, p netip.Prefix) (inventory.Address, error)
	ListAddresses(ctx context.Context, f InventoryFilter) ([]inventory.Address, error)
	Inventory(ctx context.Context) (*inventory.Snapshot, error)

	// Locks. Lock with forUpdate=true locks the row until the end of the
	// transaction (SELECT ... FOR UPDATE where the engine has it).
	InsertLock(ctx context.Context, l *Lock) error
	UpdateLock(ctx context.Context, l *Lock) error
	Lock(ctx context.Context, id int64, forUpdate bool) (Lock, error)
	LockByLockingID(ctx context.Context, lockingID string) (Lock, error)
	ListLocks(ctx context.Context, f LockFilter) ([]Lock, error)
	// ProbationLock returns the newest unlocked lock of the customer with
	// the same scope key and reason whose probation lasts beyond now.
	ProbationLock(ctx context.Context, customerID int64, scopeKey string, reason Reason, now time.Time) (Lock, error)
	// ExpiredLocks returns locks not unlocked whose ExpiresAt is at or
	// before now, oldest expiry first.
	ExpiredLocks(ctx context.Context, now time.Time, limit int) ([]Lock, error)

	InsertWhitelist(ctx context.Context, w *Whitelist) error
	ActiveWhitelistOf(ctx context.Context, lockID int64, now time.Time) ([]Whitelist, error)
	ListWhitelist(ctx context.Context, lockID int64) ([]Whitelist, error)
	RemoveWhitelist(ctx context.Context, id int64, at time.Time) error
	// ExpiredWhitelist returns entries not yet removed whose expiry is at
	// or before now.
	ExpiredWhitelist(ctx context.Context, now time.Time, limit int) ([]Whitelist, error)

	// InsertUnlockRequest fails with ErrConflict (Field "unlock_request")
	// when the lock already has an open request.
	InsertUnlockRequest(ctx context.Context, r *UnlockRequest) error
	UpdateUnlockRequest(ctx context.Context, r UnlockRequest) error
	UnlockRequest(ctx context.Context, id int64, forUpdate bool) (UnlockRequest, error)
	OpenUnlockRequest(ctx context.Context, lockID int64) (UnlockRequest, error)
	ListUnlockRequests(ctx context.Context, f UnlockRequestFilter) ([]UnlockRequest, error)

	InsertTicket(ctx context.Context, t *Ticket) error
	UpdateTicket(ctx context.Context, t Ticket) error
	Ticket(ctx context.Context, id int64) (Ticket, error)
	ListTickets(ctx context.Context, f TicketFilter) ([]Ticket, error)
	InsertTicketMessage(ctx context.Context, m *TicketMessage) error
	TicketMessages(ctx context.Context, ticketID int64) ([]TicketMessage, error)

	InsertAudit(ctx context.Context, e *AuditEvent) error
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)

	EnqueueMail(ctx context.Context, m mail.Message, now time.Time) (int64, error)

	// IdempotencyKey returns the request hash and lock ID stored for key
	// in scope (ErrNotFound when unknown).
	IdempotencyKey(ctx context.Context, scope, key string) (hash string, lockID int64, err error)
	PutIdempotencyKey(ctx context.Context, scope, key, hash string, lockID int64, now time.Time) error

	DesiredState(ctx context.Context, now time.Time) (DesiredState, error)
}

// InventoryFilter selects inventory objects. Zero fields do not filter.
type InventoryFilter struct {
	CustomerID int64
	Limit      int   // default 100, at most 1000
	AfterID    int64 // keyset pagination: only IDs above this one (oldest first)
}
