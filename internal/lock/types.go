package lock

import (
	"net/netip"
	"time"

	"padlock/internal/inventory"
	"padlock/internal/mail"
)

// Reason is why a product is locked.
type Reason string

const (
	ReasonNonPayment       Reason = "non_payment"
	ReasonAbuse            Reason = "abuse"
	ReasonIllegalContent   Reason = "illegal_content"
	ReasonSpam             Reason = "spam"
	ReasonNetworkAttack    Reason = "network_attack"
	ReasonNetscan          Reason = "netscan"
	ReasonPacketLimit      Reason = "packet_limit"
	ReasonIncorrectNetwork Reason = "incorrect_network_config"
)

// Reasons lists every reason.
var Reasons = []Reason{ReasonNonPayment, ReasonAbuse, ReasonIllegalContent, ReasonSpam,
	ReasonNetworkAttack, ReasonNetscan, ReasonPacketLimit, ReasonIncorrectNetwork}

// ScopeKind says what a lock covers.
type ScopeKind string

const (
	ScopeIP         ScopeKind = "ip"          // exactly one address
	ScopeIPs        ScopeKind = "ips"         // a set of addresses
	ScopeServer     ScopeKind = "server"      // all addresses of a server
	ScopeStorageBox ScopeKind = "storage_box" // a storage box (enforced through its backend)
	ScopeSubnet     ScopeKind = "subnet"      // one prefix
)

// Scope is what a lock covers, as the caller gives it: exactly one of IPs,
// ServerID, StorageBoxID, Subnet is set.
type Scope struct {
	IPs          []netip.Addr `json:"ips,omitempty"`
	ServerID     int64        `json:"server_id,omitempty"`
	StorageBoxID int64        `json:"storage_box_id,omitempty"`
	Subnet       netip.Prefix `json:"subnet,omitzero"`
}

// Kind returns the scope's kind ("" when the scope is empty or ambiguous).
func (s Scope) Kind() ScopeKind {
	n := 0
	var k ScopeKind
	if len(s.IPs) > 0 {
		n++
		k = ScopeIPs
		if len(s.IPs) == 1 {
			k = ScopeIP
		}
	}
	if s.ServerID != 0 {
		n++
		k = ScopeServer
	}
	if s.StorageBoxID != 0 {
		n++
		k = ScopeStorageBox
	}
	if s.Subnet.IsValid() {
		n++
		k = ScopeSubnet
	}
	if n != 1 {
		return ""
	}
	return k
}

// Lock is one lock of one product for one reason.
type Lock struct {
	ID         int64     `json:"id"`
	LockingID  string    `json:"locking_id"` // short human ID like L0029DB12, used in mails and tickets
	CustomerID int64     `json:"customer_id"`
	Reason     Reason    `json:"reason"`
	State      State     `json:"state"`
	ScopeKind  ScopeKind `json:"scope_kind"`
	Scope      Scope     `json:"scope"`
	// Prefixes are the addresses the lock blocks, resolved at creation (a
	// server's addresses, the IPs or the subnet). Empty for a storage box.
	Prefixes []netip.Prefix `json:"prefixes"`
	// Note is the staff's note on the lock (internal reason, ticket ref).
	Note           string     `json:"note,omitempty"`
	FindingID      int64      `json:"finding_id,omitempty"`
	WarnUntil      *time.Time `json:"warn_until,omitempty"`
	LockedAt       *time.Time `json:"locked_at,omitempty"`
	UnlockedAt     *time.Time `json:"unlocked_at,omitempty"`
	ProbationUntil *time.Time `json:"probation_until,omitempty"`
	// ExpiresAt makes the lock end by itself: at that time enforcement
	// stops applying it and ExpireLocks unlocks it (audit event and unlock
	// mail). Nil: the lock lasts until someone unlocks it.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// StaffUnlockOnly marks a lock only staff may lift after review (the
	// n-th lock of a repeat offender): billing cannot unlock it, neither
	// directly nor through ClearNonPayment, and the customer is told that
	// staff must review the unlock request.
	StaffUnlockOnly bool `json:"staff_unlock_only,omitempty"`
	// InboundProtection marks a blackhole that protects the network from
	// traffic towards a victim: the customer did nothing wrong, the mail
	// says so, and its unlock starts no probation.
	InboundProtection bool `json:"inbound_protection,omitempty"`
	// Method is the enforcement method chosen for this lock (e.g. the
	// policy's bgp_blackhole for an inbound victim); empty: the reason
	// policy's method applies (Service.Method).
	Method    string    `json:"method,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	CreatedBy string    `json:"created_by"`
	// ScopeKey identifies the product for recurrence detection
	// ("server:12", "ips:198.51.100.7,198.51.100.8", ...).
	ScopeKey string `json:"-"`
}

// Whitelist is one customer address allowed through a lock until it expires.
type Whitelist struct {
	ID        int64      `json:"id"`
	LockID    int64      `json:"lock_id"`
	IP        netip.Addr `json:"ip"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RemovedAt *time.Time `json:"removed_at,omitempty"`
	CreatedBy string     `json:"created_by"`
}

// UnlockRequestState is the state of an unlock request.
type UnlockRequestState string

const (
	RequestOpen       UnlockRequestState = "open"
	RequestApproved   UnlockRequestState = "approved"
	RequestRejected   UnlockRequestState = "rejected"
	RequestSuperseded UnlockRequestState = "superseded" // the lock was unlocked directly
)

// UnlockRequest is the customer's request to lift one lock.
type UnlockRequest struct {
	ID         int64              `json:"id"`
	LockID     int64              `json:"lock_id"`
	LockingID  string             `json:"locking_id"`
	CustomerID int64              `json:"customer_id"`
	Message    string             `json:"message"`
	State      UnlockRequestState `json:"state"`
	CreatedAt  time.Time          `json:"created_at"`
	CreatedBy  string             `json:"created_by"`
	DecidedAt  *time.Time         `json:"decided_at,omitempty"`
	DecidedBy  string             `json:"decided_by,omitempty"`
	// Note is the staff's decision note; the customer sees it.
	Note string `json:"note,omitempty"`
}

// TicketKind is the kind of a support ticket.
type TicketKind string

const (
	TicketSupport    TicketKind = "support"
	TicketKVMConsole TicketKind = "kvm_console"
	// TicketUnlockRequest is the thread of an unlock request: opened with
	// the request (its message first), where the customer adds
	// information and staff answer; closed with the decision.
	TicketUnlockRequest TicketKind = "unlock_request"
)

// Ticket is a support conversation tied to a lock or a product.
type Ticket struct {
	ID          int64           `json:"id"`
	CustomerID  int64           `json:"customer_id"`
	Kind        TicketKind      `json:"kind"`
	LockID      int64           `json:"lock_id,omitempty"`
	ProductType string          `json:"product_type,omitempty"` // inventory.ProductType
	ProductID   int64           `json:"product_id,omitempty"`
	Subject     string          `json:"subject"`
	State       string          `json:"state"` // open, closed
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	Messages    []TicketMessage `json:"messages,omitempty"`
}

// TicketMessage is one message of a ticket.
type TicketMessage struct {
	ID         int64     `json:"id"`
	TicketID   int64     `json:"ticket_id"`
	AuthorRole Role      `json:"author_role"`
	Author     string    `json:"author"`
	Body       string    `json:"body"`
	CreatedAt  time.Time `json:"created_at"`
}

// AuditEvent is one append-only entry of the audit log. Before and After
// are JSON snapshots of the object (null when it did not exist / is gone).
type AuditEvent struct {
	ID         int64     `json:"id"`
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	ActorRole  Role      `json:"actor_role"`
	Action     string    `json:"action"`
	ObjectType string    `json:"object_type"`
	ObjectID   int64     `json:"object_id"`
	LockID     int64     `json:"lock_id,omitempty"`
	CustomerID int64     `json:"customer_id,omitempty"`
	Before     string    `json:"before,omitempty"`
	After      string    `json:"after,omitempty"`
	Note       string    `json:"note,omitempty"`
}

// LockFilter selects locks. Zero fields do not filter.
type LockFilter struct {
	State      State
	CustomerID int64
	Reason     Reason
	IP         netip.Addr // locks whose prefixes contain this address
	ServerID   int64
	Limit      int   // default 100, at most 1000
	AfterID    int64 // keyset pagination: only IDs below this one (newest first)
}

// AuditFilter selects audit events. Zero fields do not filter.
type AuditFilter struct {
	LockID     int64
	CustomerID int64
	ObjectType string
	ObjectID   int64
	Action     string
	Actor      string
	Since      time.Time
	Until      time.Time
	Limit      int   // default 100, at most 1000
	BeforeID   int64 // keyset pagination: only IDs below this one (newest first)
}

// UnlockRequestFilter selects unlock requests.
type UnlockRequestFilter struct {
	State      UnlockRequestState
	LockID     int64
	CustomerID int64
	Limit      int
}

// TicketFilter selects tickets.
type TicketFilter struct {
	CustomerID int64
	LockID     int64
	Kind       TicketKind
	State      string
	Limit      int
}

// ActiveLock is a lock enforcement must apply now.
type ActiveLock struct {
	ID           int64          `json:"id"`
	LockingID    string         `json:"locking_id"`
	CustomerID   int64          `json:"customer_id"`
	Reason       Reason         `json:"reason"`
	State        State          `json:"state"`
	ScopeKind    ScopeKind      `json:"scope_kind"`
	Prefixes     []netip.Prefix `json:"prefixes"`
	StorageBoxID int64          `json:"storage_box_id,omitempty"`
	// ExpiresAt is when the lock ends by itself (nil: never); the desired
	// state drops the lock at that time even before ExpireLocks ran.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Method is the enforcement method: the lock's own, else the one
	// configured for the reason (filled by Service.DesiredState; from the
	// store only the lock's own).
	Method string `json:"method"`
}

// ActiveWhitelist is an unexpired whitelist entry of an active lock.
type ActiveWhitelist struct {
	ID        int64      `json:"id"`
	LockID    int64      `json:"lock_id"`
	IP        netip.Addr `json:"ip"`
	ExpiresAt time.Time  `json:"expires_at"`
}

// DesiredState is everything enforcement must apply at At: each active
// lock with its addresses (or storage box) and each unexpired whitelist
// entry of an active lock. Reconcile the network towards it.
type DesiredState struct {
	At        time.Time         `json:"at"`
	Locks     []ActiveLock      `json:"locks"`
	Whitelist []ActiveWhitelist `json:"whitelist"`
}

// Event kinds handed to Render. The notifier's kinds are a subset:
// relock mails as lock, unlock_request_approved as unlock; ticket events
// may render nothing.
const (
	EventWarning               = "warning"
	EventLock                  = "lock"
	EventRelock                = "relock"
	EventUnlock                = "unlock" // also a lock that expired (Note ExpiredNote)
	EventWhitelistAdded        = "whitelist_added"
	EventWhitelistExpired      = "whitelist_expired"
	EventUnlockRequestReceived = "unlock_request_received"
	EventUnlockRequestApproved = "unlock_request_approved"
	EventUnlockRequestRejected = "unlock_request_rejected"
	EventTicketOpened          = "ticket_opened"
	EventKVMOrder              = "kvm_order"
	EventTicketMessage         = "ticket_message"
)

// Event is what happened, handed to Render to produce the customer's mails
// inside the transaction of the change. The lock's ExpiresAt,
// StaffUnlockOnly and InboundProtection tell the renderer when a blackhole
// lifts, that only staff can unlock, and that the customer is the victim.
// Kind unlock with Note ExpiredNote is a lock that ended by itself.
type Event struct {
	Kind          string             `json:"kind"` // lock, warning, relock, unlock, whitelist_added, unlock_request_received, unlock_request_approved, unlock_request_rejected, ticket_message, kvm_order
	At            time.Time          `json:"at"`
	Lock          *Lock              `json:"lock,omitempty"`
	Customer      inventory.Customer `json:"customer"`
	Policy        ReasonPolicy       `json:"policy"`
	Whitelist     *Whitelist         `json:"whitelist,omitempty"`
	UnlockRequest *UnlockRequest     `json:"unlock_request,omitempty"`
	Ticket        *Ticket            `json:"ticket,omitempty"`
	Note          string             `json:"note,omitempty"`
	Evidence      []mail.Attachment  `json:"-"`
}

// Change is reported to OnChange after a commit that may alter what
// enforcement must apply.
type Change struct {
	LockID int64
	Action string
}
