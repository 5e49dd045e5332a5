package notify

import (
	"fmt"
	"time"

	"padlock/internal/mail"
)

// Kind names the event a mail tells the customer about. The values are
// stored as mail.Message.Kind.
type Kind string

const (
	// KindNotice tells the customer what was seen from their product
	// (policy action notify): nothing is locked, so it has no lock and no
	// Locking ID.
	KindNotice                Kind = "notice"
	KindWarning               Kind = "warning"
	KindLock                  Kind = "lock"
	KindWhitelistAdded        Kind = "whitelist_added"
	KindWhitelistExpired      Kind = "whitelist_expired"
	KindUnlockRequestReceived Kind = "unlock_request_received"
	KindUnlockRequestRejected Kind = "unlock_request_rejected"
	KindUnlock                Kind = "unlock"
)

// Kinds lists every kind in the order of a lock's life.
var Kinds = []Kind{
	KindNotice, KindWarning, KindLock, KindWhitelistAdded, KindWhitelistExpired,
	KindUnlockRequestReceived, KindUnlockRequestRejected, KindUnlock,
}

// Reasons lists the lock reasons the templates explain (DESIGN.md "Locks").
var Reasons = []string{
	"non_payment", "abuse", "illegal_content", "spam",
	"network_attack", "netscan", "packet_limit", "incorrect_network_config",
}

// Customer is the addressee of a mail.
type Customer struct {
	ID    int64
	Name  string
	Email string
	// Language is a BCP 47 tag or prefix ("de", "de-AT", "en"); the mail is
	// written in it when templates for it exist, in English otherwise.
	Language string
}

// Event is everything a mail may say about one change of a lock. The lock
// manager fills it in the transaction that makes the change, renders it and
// queues the result in the outbox.
type Event struct {
	Kind Kind
	// LockID is the lock's database id, LockingID its short human id
	// ("L0029DB12") that goes into the subject. A notice has neither.
	LockID    int64
	LockingID string
	// Reason is one of Reasons.
	Reason   string
	Customer Customer
	// ProductKind is "server", "storage_box", "ip" or "subnet" (translated
	// in the mail); empty when Product already says what it is.
	ProductKind string
	// Product names the locked product: "web1 (203.0.113.10)" with
	// ProductKind "server", or "server web1 (203.0.113.10)" without.
	Product string
	// Addresses are the locked addresses (may be fewer than the server has).
	Addresses []string
	// At is when this event happened (unlock, rejection, ...). Since is when
	// the lock began, Deadline when a warning turns into a lock, Until when a
	// lock ends by itself (inbound protection), ProbationUntil the end of the
	// probation after an unlock. Zero values are left out of the mail.
	At, Since, Deadline, Until, ProbationUntil time.Time
	// WhitelistIP and WhitelistExpires describe the whitelist entry of a
	// whitelist_added or whitelist_expired mail.
	WhitelistIP      string
	WhitelistExpires time.Time
	// WarningOnly marks an unlock of a lock that never went beyond its
	// warning (it lapsed, or staff lifted it): the mail closes the warning
	// instead of saying the product is reachable again.
	WarningOnly bool
	// WhitelistOffered says whether the reason and the enforcement method of
	// the lock allow the customer to whitelist an IP.
	WhitelistOffered bool
	// Note is the staff's note of a rejected unlock request.
	Note string
	// ClientAreaURL links the lock's page in the client area; the
	// renderer's default is used when empty.
	ClientAreaURL string
	// Evidence files (netscan.log, summary.txt, traffic.txt, traffic.pcap)
	// are attached to notice, warning and lock mails.
	Evidence []mail.Attachment
	// InboundProtection marks a blackhole that protects a victim of an
	// inbound attack: not the customer's fault, and the mail says so.
	InboundProtection bool
}

func (ev *Event) validate() error {
	known := false
	for _, k := range Kinds {
		if ev.Kind == k {
			known = true
		}
	}
	if !known {
		return fmt.Errorf("unknown event kind %q", ev.Kind)
	}
	known = false
	for _, r := range Reasons {
		if ev.Reason == r {
			known = true
		}
	}
	if !known {
		return fmt.Errorf("unknown reason %q", ev.Reason)
	}
	if ev.LockingID == "" && ev.Kind != KindNotice {
		return fmt.Errorf("event %s: empty locking id", ev.Kind)
	}
	if ev.Customer.Email == "" {
		return fmt.Errorf("event %s: customer %d has no email address", ev.Kind, ev.Customer.ID)
	}
	return nil
}
