package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"padlock/internal/mail"
	"padlock/internal/store"
	"padlock/internal/store/storetest"
)

func TestConformanceSQLite(t *testing.T) { storetest.Run(t, storetest.SQLite) }

// TestConformancePostgres needs the PostgreSQL on 127.0.0.1:5432 (database
// test); it skips without it, and fails when CI is set.
func TestConformancePostgres(t *testing.T) { storetest.Run(t, storetest.Postgres) }

// The outbox contract the notifier declares (internal/notify.Outbox and
// OutboxStats), restated here so the store cannot drift from it.
var _ interface {
	ClaimMails(ctx context.Context, now, leaseUntil time.Time, limit int) ([]mail.Queued, error)
	MarkMailSent(ctx context.Context, id int64, at time.Time) error
	MarkMailFailed(ctx context.Context, id int64, errText string, next time.Time) error
	ListMails(ctx context.Context, lockID, customerID int64, limit int) ([]mail.Queued, error)
	OutboxStats(ctx context.Context) (depth int, oldest time.Time, err error)
} = (*store.DB)(nil)

func TestParseDSN(t *testing.T) {
	for in, want := range map[string][2]string{
		"sqlite:///var/lib/padlock/padlock.db": {"sqlite", "/var/lib/padlock/padlock.db"},
		"sqlite:data/padlock.db":               {"sqlite", "data/padlock.db"},
		"./padlock-data/padlock.db":            {"sqlite", "./padlock-data/padlock.db"},
		"postgres://u@db:5432/padlock":         {"postgres", "postgres://u@db:5432/padlock"},
		"postgresql://u@db/padlock":            {"postgres", "postgresql://u@db/padlock"},
	} {
		d, src, err := store.ParseDSN(in)
		if err != nil || string(d) != want[0] || src != want[1] {
			t.Errorf("ParseDSN(%q) = %s %q %v, want %v", in, d, src, err, want)
		}
	}
	for _, bad := range []string{"", "mysql://x", "http://x"} {
		if _, _, err := store.ParseDSN(bad); err == nil {
			t.Errorf("ParseDSN(%q) accepted", bad)
		}
	}
}

// TestReopen: data survives close and reopen, and migrating twice is a no-op.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "padlock.db")
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.EnqueueMail(ctx, mail.Message{To: "a@example.com", Subject: "s"}, time.Unix(100, 0)); err != nil {
		t.Fatal(err)
	}
	n, oldest, err := db.OutboxStats(ctx)
	if err != nil || n != 1 || !oldest.Equal(time.Unix(100, 0)) {
		t.Errorf("OutboxStats = %d %v %v", n, oldest, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, err := db.ListMails(ctx, 0, 0, 10)
	if err != nil || len(ms) != 1 || ms[0].Subject != "s" {
		t.Errorf("after reopen: %+v %v", ms, err)
	}
	var mode string
	if err := db.SQL().QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q %v, want wal", mode, err)
	}
}
