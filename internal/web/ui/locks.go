package ui

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/mail"
	"padlock/internal/store"
)

// Shared views of a lock for both areas.

var reasonLabels = map[lock.Reason]string{
	lock.ReasonNonPayment:       "Non-payment",
	lock.ReasonAbuse:            "Abuse",
	lock.ReasonIllegalContent:   "Phishing, malware or copyright-infringing material",
	lock.ReasonSpam:             "Sending spam",
	lock.ReasonNetworkAttack:    "Attacks from your server",
	lock.ReasonNetscan:          "Network scans from your server",
	lock.ReasonPacketLimit:      "Packet limit exceeded",
	lock.ReasonIncorrectNetwork: "Incorrect network configuration",
}

func reasonLabel(r lock.Reason) string {
	if s, ok := reasonLabels[r]; ok {
		return s
	}
	return string(r)
}

var stateLabels = map[lock.State]string{
	lock.StateWarned:          "Warned",
	lock.StateLocked:          "Locked",
	lock.StateUnlockRequested: "Locked, unlock requested",
	lock.StateUnlocked:        "Unlocked",
}

func stateLabel(s lock.State) string {
	if l, ok := stateLabels[s]; ok {
		return l
	}
	return string(s)
}

var actionLabels = map[string]string{
	"warn":                      "Warning sent",
	"lock":                      "Product locked",
	"relock":                    "Locked again (the issue came back during probation)",
	"request_unlock":            "Lock state: unlock requested",
	"unlock_request_create":     "Unlock request received",
	"unlock_request_approved":   "Unlock request approved",
	"unlock_request_rejected":   "Unlock request rejected",
	"approve_unlock":            "Product unlocked after the unlock request",
	"reject_unlock":             "Product stays locked",
	"unlock":                    "Product unlocked",
	"whitelist_add":             "IP address whitelisted",
	"whitelist_remove":          "Whitelist entry removed",
	"whitelist_expire":          "Whitelist entry expired",
	"ticket_open":               "Ticket opened",
	"ticket_message":            "Ticket message",
	"ticket_close":              "Ticket closed",
	"customer_create":           "Customer created",
	"customer_update":           "Customer changed",
	"server_create":             "Server created",
	"server_update":             "Server changed",
	"token_create":              "API token created",
	"token_revoke":              "API token revoked",
	"unlock_request_superseded": "Unlock request answered by the unlock",
	"storage_box_create":        "Storage box created",
	"address_create":            "Address created",
	"storage_box_update":        "Storage box changed",
	"address_update":            "Address changed",
}

func actionLabel(a string) string {
	if s, ok := actionLabels[a]; ok {
		return s
	}
	return strings.ReplaceAll(a, "_", " ")
}

// timelineEntry is one audit event as an area shows it.
type timelineEntry struct {
	At    time.Time
	What  string
	Who   string
	Note  string
	Event lock.AuditEvent
}

func timeline(evs []lock.AuditEvent, forCustomer bool) []timelineEntry {
	out := make([]timelineEntry, 0, len(evs))
	for i := len(evs) - 1; i >= 0; i-- { // oldest first
		e := evs[i]
		t := timelineEntry{At: e.At, What: actionLabel(e.Action), Who: e.Actor, Note: e.Note, Event: e}
		if forCustomer {
			switch e.ActorRole {
			case lock.RoleCustomer:
				t.Who = "you"
			case lock.RoleSystem:
				t.Who = "padlock (automatic)"
			default:
				t.Who = "our staff"
			}
			// the service has removed internal notes already
		}
		out = append(out, t)
	}
	return out
}

// product names what a lock covers.
type product struct {
	Kind     string // Server, IP address, Storage box, Subnet
	Name     string
	ServerID int64 // the server a KVM console can be ordered for
}

func (u *UI) productOf(ctx context.Context, a lock.Actor, l lock.Lock) product {
	switch l.ScopeKind {
	case lock.ScopeServer:
		p := product{Kind: "Server", Name: fmt.Sprintf("server %d", l.Scope.ServerID), ServerID: l.Scope.ServerID}
		if sv, err := u.svc.GetServer(ctx, a, l.Scope.ServerID); err == nil {
			p.Name = sv.Name
		}
		return p
	case lock.ScopeStorageBox:
		p := product{Kind: "Storage box", Name: fmt.Sprintf("storage box %d", l.Scope.StorageBoxID)}
		if b, err := u.svc.GetStorageBox(ctx, a, l.Scope.StorageBoxID); err == nil {
			p.Name = b.Name
		}
		return p
	}
	p := product{Kind: "IP address", Name: prefixes(l.Prefixes)}
	if l.ScopeKind == lock.ScopeSubnet {
		p.Kind = "Subnet"
	}
	if l.ScopeKind == lock.ScopeIPs {
		p.Kind = "IP addresses"
	}
	if len(l.Prefixes) > 0 {
		if x := u.svc.Index(); x != nil {
			if e, ok := x.Lookup(l.Prefixes[0].Addr()); ok && e.Type == inventory.ProductServer {
				if sv, err := u.svc.GetServer(ctx, a, e.ProductID); err == nil {
					p.ServerID = sv.ID
					p.Name += " (server " + sv.Name + ")"
				}
			}
		}
	}
	return p
}

func prefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = inventory.FormatPrefix(p)
	}
	return strings.Join(s, ", ")
}

// whitelistOffer says whether the customer can whitelist an address for
// the lock now and, if not, why not in plain words. The service decides,
// with the same rules AddWhitelist enforces (state, reason policy, what the
// enforcement method can let through for the lock's targets).
func (u *UI) whitelistOffer(l lock.Lock, now time.Time) (bool, string) {
	return u.svc.WhitelistOfferedAt(l, now)
}

// activeWhitelist returns the unexpired, unremoved entries of a lock.
func activeWhitelist(ws []lock.Whitelist, now time.Time) []lock.Whitelist {
	var out []lock.Whitelist
	for _, w := range ws {
		if w.RemovedAt == nil && w.ExpiresAt.After(now) {
			out = append(out, w)
		}
	}
	return out
}

// evidenceView is one evidence file as the lock pages show it: text
// inline, exactly as attached to the mail; binary files as downloads.
type evidenceView struct {
	ID          int64
	Name        string
	ContentType string
	Size        int
	Text        string
	Inline      bool
}

func (u *UI) evidenceOf(ctx context.Context, findingID int64) ([]evidenceView, error) {
	if findingID == 0 {
		return nil, nil
	}
	files, err := u.db.FindingEvidence(ctx, findingID, true)
	if errors.Is(err, lock.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return evidenceViews(files), nil
}

func evidenceViews(files []store.Evidence) []evidenceView {
	out := make([]evidenceView, 0, len(files))
	for _, f := range files {
		v := evidenceView{ID: f.ID, Name: f.Name, ContentType: f.ContentType, Size: f.Size}
		if strings.HasPrefix(f.ContentType, "text/plain") {
			v.Inline, v.Text = true, string(f.Data)
		}
		out = append(out, v)
	}
	// The seed's order: netscan log, summary, traffic dump, then files.
	slices.SortStableFunc(out, func(a, b evidenceView) int {
		if a.Inline != b.Inline {
			if a.Inline {
				return -1
			}
			return 1
		}
		return 0
	})
	return out
}

// mailEvidence is the evidence attached to the lock's mail, for locks
// without a stored finding.
func mailEvidence(ms []mail.Queued) []evidenceView {
	for _, m := range ms {
		if m.Kind != lock.EventLock && m.Kind != lock.EventRelock && m.Kind != lock.EventWarning {
			continue
		}
		var out []evidenceView
		for _, a := range m.Attachments {
			if strings.HasPrefix(a.ContentType, "text/plain") {
				out = append(out, evidenceView{Name: a.Name, ContentType: a.ContentType, Size: len(a.Data), Text: string(a.Data), Inline: true})
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// mailState says where a queued mail is.
func mailState(m mail.Queued) string {
	switch {
	case m.SentAt != nil:
		return "sent"
	case m.LastError != "":
		return "failed, will retry"
	default:
		return "queued"
	}
}

// enforcementOf is the staff-only enforcement line of a lock.
func (u *UI) enforcementOf(l lock.Lock, now time.Time) (state, errText string) {
	if !lock.Active(l.State, l.WarnUntil, now) {
		return "not enforced (lock not active)", ""
	}
	if u.enf == nil {
		return "unknown (no enforcement loop)", ""
	}
	st, ok := u.enf.Status(l.ID)
	if !ok {
		return "pending", "not reconciled yet"
	}
	return string(st.State), st.Err
}
