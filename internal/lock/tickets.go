package lock

import (
	"context"
	"errors"
	"strings"

	"padlock/internal/inventory"
)

// NewTicket is the input of OpenTicket: tied to a lock, a product, or both.
type NewTicket struct {
	Kind        TicketKind `json:"kind"` // support (default) or kvm_console
	LockID      int64      `json:"lock_id,omitempty"`
	ProductType string     `json:"product_type,omitempty"` // server, storage_box, address
	ProductID   int64      `json:"product_id,omitempty"`
	Subject     string     `json:"subject"`
	Message     string     `json:"message"`
}

// OpenTicket opens a support ticket with its first message: the customer
// about its own lock or product, or about nothing in particular (a general
// support request, for example "I received no email but cannot reach my
// server"), or staff on the customer's behalf about a lock or product.
func (s *Service) OpenTicket(ctx context.Context, a Actor, nt NewTicket) (Ticket, error) {
	if a.Role != RoleCustomer && !a.staff() {
		return Ticket{}, forbidden("role %s may not open tickets", a.Role)
	}
	if nt.Kind == "" {
		nt.Kind = TicketSupport
	}
	if nt.Kind != TicketSupport && nt.Kind != TicketKVMConsole {
		return Ticket{}, invalid("kind", "unknown ticket kind %q", nt.Kind)
	}
	nt.Subject, nt.Message = strings.TrimSpace(nt.Subject), strings.TrimSpace(nt.Message)
	if nt.Subject == "" || len(nt.Subject) > 200 {
		return Ticket{}, invalid("subject", "a subject of 1 to 200 characters is required")
	}
	if nt.Message == "" || len(nt.Message) > 20000 {
		return Ticket{}, invalid("message", "a message of 1 to 20000 characters is required")
	}
	if nt.LockID == 0 && nt.ProductID == 0 && a.Role != RoleCustomer {
		return Ticket{}, invalid("lock_id", "a ticket staff open is about a lock or a product")
	}
	if nt.ProductID == 0 && nt.ProductType != "" {
		return Ticket{}, invalid("product_id", "a product type needs a product ID")
	}
	if nt.Kind == TicketKVMConsole && nt.ProductType != string(inventory.ProductServer) {
		return Ticket{}, invalid("product_type", "a KVM console is ordered for a server")
	}
	var tk Ticket
	err := s.update(ctx, a, func(t *txn) error {
		cid := int64(0)
		if nt.LockID != 0 {
			l, err := t.loadLock(nt.LockID)
			if err != nil {
				return err
			}
			cid = l.CustomerID
		}
		if nt.ProductID != 0 {
			pc, err := t.productCustomer(nt.ProductType, nt.ProductID)
			if err != nil {
				return err
			}
			if cid != 0 && pc != cid {
				return invalid("product_id", "the product and the lock belong to different customers")
			}
			cid = pc
		}
		if cid == 0 {
			cid = a.CustomerID // a customer's general request
		}
		tk = Ticket{CustomerID: cid, Kind: nt.Kind, LockID: nt.LockID, ProductType: nt.ProductType, ProductID: nt.ProductID,
			Subject: nt.Subject, State: "open", CreatedAt: t.now, UpdatedAt: t.now}
		if err := t.tx.InsertTicket(ctx, &tk); err != nil {
			return err
		}
		m := TicketMessage{TicketID: tk.ID, AuthorRole: a.Role, Author: a.String(), Body: nt.Message, CreatedAt: t.now}
		if err := t.tx.InsertTicketMessage(ctx, &m); err != nil {
			return err
		}
		tk.Messages = []TicketMessage{m}
		if err := t.audit("ticket_open", "ticket", tk.ID, tk.LockID, cid, nil, tk, ""); err != nil {
			return err
		}
		kind := "ticket_opened"
		if tk.Kind == TicketKVMConsole {
			kind = "kvm_order"
		}
		return t.notify(Event{Kind: kind, Ticket: &tk})
	})
	return tk, err
}

// OrderKVM orders a KVM console for a server: a ticket of kind kvm_console.
func (s *Service) OrderKVM(ctx context.Context, a Actor, serverID int64, message string) (Ticket, error) {
	if strings.TrimSpace(message) == "" {
		message = "Please connect a KVM console to this server."
	}
	return s.OpenTicket(ctx, a, NewTicket{Kind: TicketKVMConsole, ProductType: string(inventory.ProductServer), ProductID: serverID,
		Subject: "KVM console order", Message: message})
}

func (t *txn) productCustomer(typ string, id int64) (int64, error) {
	var cid int64
	var err error
	switch inventory.ProductType(typ) {
	case inventory.ProductServer:
		var v inventory.Server
		v, err = t.tx.Server(t.ctx, id)
		cid = v.CustomerID
	case inventory.ProductStorageBox:
		var v inventory.StorageBox
		v, err = t.tx.StorageBox(t.ctx, id)
		cid = v.CustomerID
	case inventory.ProductAddress:
		var v inventory.Address
		v, err = t.tx.Address(t.ctx, id)
		cid = v.CustomerID
	default:
		return 0, invalid("product_type", "unknown product type %q (want server, storage_box or address)", typ)
	}
	if errors.Is(err, ErrNotFound) || err == nil && !t.actor.sees(cid) {
		return 0, notFound("%s %d", typ, id)
	}
	return cid, err
}

// AddTicketMessage appends a message to an open ticket. A staff message is
// mailed to the customer.
func (s *Service) AddTicketMessage(ctx context.Context, a Actor, ticketID int64, body string) (TicketMessage, error) {
	if a.Role != RoleCustomer && !a.staff() {
		return TicketMessage{}, forbidden("role %s may not write to tickets", a.Role)
	}
	body = strings.TrimSpace(body)
	if body == "" || len(body) > 20000 {
		return TicketMessage{}, invalid("body", "a message of 1 to 20000 characters is required")
	}
	var m TicketMessage
	err := s.update(ctx, a, func(t *txn) error {
		tk, err := t.tx.Ticket(ctx, ticketID)
		if errors.Is(err, ErrNotFound) || err == nil && !a.sees(tk.CustomerID) {
			return notFound("ticket %d", ticketID)
		}
		if err != nil {
			return err
		}
		if tk.State != "open" {
			return &Error{Kind: ErrConflict, Message: "the ticket is closed", ExistingID: tk.ID}
		}
		m = TicketMessage{TicketID: tk.ID, AuthorRole: a.Role, Author: a.String(), Body: body, CreatedAt: t.now}
		if err := t.tx.InsertTicketMessage(ctx, &m); err != nil {
			return err
		}
		tk.UpdatedAt = t.now
		if err := t.tx.UpdateTicket(ctx, tk); err != nil {
			return err
		}
		if err := t.audit("ticket_message", "ticket", tk.ID, tk.LockID, tk.CustomerID, nil, m, ""); err != nil {
			return err
		}
		if a.Role != RoleCustomer {
			tk.Messages = []TicketMessage{m}
			return t.notify(Event{Kind: "ticket_message", Ticket: &tk})
		}
		return nil
	})
	return m, err
}

// CloseTicket closes a ticket (staff, or the customer its own).
func (s *Service) CloseTicket(ctx context.Context, a Actor, ticketID int64, note string) (Ticket, error) {
	if a.Role != RoleCustomer && !a.staff() {
		return Ticket{}, forbidden("role %s may not close tickets", a.Role)
	}
	var tk Ticket
	err := s.update(ctx, a, func(t *txn) error {
		var err error
		tk, err = t.tx.Ticket(ctx, ticketID)
		if errors.Is(err, ErrNotFound) || err == nil && !a.sees(tk.CustomerID) {
			return notFound("ticket %d", ticketID)
		}
		if err != nil {
			return err
		}
		if tk.State == "closed" {
			return &Error{Kind: ErrConflict, Message: "the ticket is already closed", ExistingID: tk.ID}
		}
		if tk.Kind == TicketUnlockRequest && a.Role == RoleCustomer {
			return invalid("ticket", "an unlock request's ticket is closed when staff decide the request")
		}
		before := tk
		tk.State, tk.UpdatedAt = "closed", t.now
		if err := t.tx.UpdateTicket(ctx, tk); err != nil {
			return err
		}
		return t.audit("ticket_close", "ticket", tk.ID, tk.LockID, tk.CustomerID, before, tk, note)
	})
	return tk, err
}

// GetTicket returns a ticket with its messages.
func (s *Service) GetTicket(ctx context.Context, a Actor, id int64) (Ticket, error) {
	var tk Ticket
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		tk, err = tx.Ticket(ctx, id)
		if err != nil || !a.sees(tk.CustomerID) {
			return err
		}
		tk.Messages, err = tx.TicketMessages(ctx, id)
		return err
	})
	if errors.Is(err, ErrNotFound) || err == nil && !a.sees(tk.CustomerID) {
		return Ticket{}, notFound("ticket %d", id)
	}
	a.redactTicket(&tk)
	return tk, err
}

// ListTickets lists tickets, newest first, without messages.
func (s *Service) ListTickets(ctx context.Context, a Actor, f TicketFilter) ([]Ticket, error) {
	f.CustomerID = a.scopeCustomer(f.CustomerID)
	f.Limit = limit(f.Limit)
	var out []Ticket
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		out, err = tx.ListTickets(ctx, f)
		return err
	})
	for i := range out {
		a.redactTicket(&out[i])
	}
	return out, err
}
