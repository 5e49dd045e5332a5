package notify

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/store"
)

// The store is the Outbox of production; this fails to compile if the two
// drift apart.
var _ Outbox = (*store.DB)(nil)

// TestWorkerWithSQLiteStore runs the worker on the real store (SQLite): a
// rendered lock mail with its evidence goes through the database, a 451 is
// recorded with its next attempt, and the retry delivers it exactly once
// with the evidence byte for byte.
func TestWorkerWithSQLiteStore(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "padlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := startSMTPServer(t, serverOptions{failData: 1})
	q := queuedLockMail(t, 0)
	t0 := time.Now().UTC().Truncate(time.Second)
	id, err := db.EnqueueMail(ctx, q.Message, t0)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: t0}
	c, err := New(Configuration{
		SMTP:     SMTPConfig{Host: srv.Host, Port: srv.Port, From: "Abuse Team <abuse@example.net>", TLS: TLSNone, Timeout: 5 * time.Second},
		RetryMin: time.Minute, RetryMax: time.Hour,
	}, Dependencies{Outbox: db, Clock: clock, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := c.RunOnce(ctx); res != (Result{Claimed: 1, Failed: 1}) {
		t.Fatalf("first pass %+v, want one failure", res)
	}
	mails, err := db.ListMails(ctx, q.LockID, 0, 10)
	if err != nil || len(mails) != 1 {
		t.Fatalf("ListMails = %v, %v", mails, err)
	}
	m := mails[0]
	if m.SentAt != nil || m.Attempts != 1 || !strings.Contains(m.LastError, "451") || !m.NextAttempt.Equal(t0.Add(time.Minute)) {
		t.Errorf("after the 451: sent=%v attempts=%d last_error=%q next=%v, want unsent, 1 attempt, 451, +1m",
			m.SentAt, m.Attempts, m.LastError, m.NextAttempt)
	}
	clock.Advance(59 * time.Second)
	if res, _ := c.RunOnce(ctx); res.Claimed != 0 {
		t.Fatalf("claimed before the backoff ended: %+v", res)
	}
	clock.Advance(time.Second)
	if res, _ := c.RunOnce(ctx); res != (Result{Claimed: 1, Sent: 1}) {
		t.Fatalf("retry %+v, want one sent", res)
	}
	clock.Advance(24 * time.Hour)
	if res, _ := c.RunOnce(ctx); res.Claimed != 0 {
		t.Fatalf("a sent mail was claimed again: %+v", res)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("server holds %d messages, want exactly 1", len(msgs))
	}
	mails, _ = db.ListMails(ctx, q.LockID, 0, 10)
	q.ID, q.CreatedAt = id, mails[0].CreatedAt
	checkDelivered(t, msgs[0], q)
	if mails[0].SentAt == nil {
		t.Error("the store does not show the mail as sent")
	}
}
