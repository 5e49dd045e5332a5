package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/notify"
	"padlock/internal/policy"
)

// TestInboundProtectionMail: a lock whose note carries the pipeline's
// inbound-protection marker is mailed as protection of a victim (not the
// customer's fault, lifted at the expiry the note names); any other lock is
// mailed as the customer's problem.
func TestInboundProtectionMail(t *testing.T) {
	r, err := notify.NewRenderer(notify.RendererConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m := &mailRenderer{r: r}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	mk := func(note string) lock.Event {
		return lock.Event{Kind: lock.EventLock, At: at, Customer: inventory.Customer{ID: 1, Name: "Alice", Email: "alice@example.net", Language: "en"},
			Lock: &lock.Lock{ID: 1, LockingID: "L0029DB12", Reason: lock.ReasonPacketLimit, State: lock.StateLocked, ScopeKind: lock.ScopeIP,
				Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}, Note: note, LockedAt: &at, CreatedAt: at}}
	}
	msgs, err := m.Render(mk(policy.InboundProtectionMarker + " expires 2026-11-25T13:00:00Z: blackholed to protect the network"))
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	if !strings.Contains(msgs[0].Subject, "under attack") || !strings.Contains(msgs[0].Text, "This is not your fault") ||
		!strings.Contains(msgs[0].Text, "lifted automatically at") || !strings.Contains(msgs[0].Text, "13:00") {
		t.Errorf("inbound mail:\n%s\n%s", msgs[0].Subject, msgs[0].Text)
	}
	msgs, err = m.Render(mk("automatic: action lock"))
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	if strings.Contains(msgs[0].Subject, "under attack") || strings.Contains(msgs[0].Text, "not your fault") {
		t.Errorf("ordinary lock mailed as inbound protection:\n%s\n%s", msgs[0].Subject, msgs[0].Text)
	}
}
