// Package mail holds the plain value types of an email as padlock queues and
// sends it: the message with its attachments and its outbox record. It
// imports only the standard library, so the store can persist messages and
// the notifier can render and send them without either importing the other.
package mail

import "time"

// Attachment is one file attached to a message (evidence log, pcap, ...).
type Attachment struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Data        []byte `json:"-"`
}

// Message is a rendered email, ready to be queued and sent.
type Message struct {
	To          string       `json:"to"`
	Subject     string       `json:"subject"`
	Text        string       `json:"text"`
	HTML        string       `json:"html,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
	// LockID ties the message to a lock (0 when none) so the client and
	// admin areas can list the mails of a lock.
	LockID int64 `json:"lock_id,omitempty"`
	// CustomerID ties the message to a customer (0 when none).
	CustomerID int64 `json:"customer_id,omitempty"`
	// Kind names the event that caused the message ("lock", "warning",
	// "whitelist_added", "unlock_request_received", ...).
	Kind string `json:"kind,omitempty"`
}

// Queued is a message in the transactional outbox.
type Queued struct {
	ID int64 `json:"id"`
	Message
	Attempts    int        `json:"attempts"`
	CreatedAt   time.Time  `json:"created_at"`
	NextAttempt time.Time  `json:"next_attempt"`
	SentAt      *time.Time `json:"sent_at,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
}
