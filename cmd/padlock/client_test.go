package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"padlock/internal/lock"
	"padlock/internal/store"
	"padlock/internal/web/api"
)

// TestClientCommands drives import, export, lock, locks and unlock against
// a real API (SQLite store, lock service) as an operator's script would.
func TestClientCommands(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "padlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc, err := lock.New(lock.Configuration{}, lock.Dependencies{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Dependencies{Service: svc, Auth: storeAuth{db}}))
	defer srv.Close()
	tok, _, err := db.CreateToken(ctx, lock.System, "ops", lock.RoleStaff, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PADLOCK_URL", srv.URL)
	t.Setenv("PADLOCK_TOKEN", tok)
	cli := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != want {
			t.Fatalf("padlock %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	inv := filepath.Join(t.TempDir(), "inventory.json")
	os.WriteFile(inv, []byte(demoInventory), 0o644)
	if out := cli(0, "import", inv); !strings.Contains(out, "created") || strings.Contains(out, " 0 created") {
		t.Fatalf("first import: %s", out)
	}
	if out := cli(0, "import", inv); !strings.Contains(out, "0 created, 0 updated") {
		t.Fatalf("second import changed something: %s", out)
	}
	csv := cli(0, "export", "--format", "csv")
	if !strings.Contains(csv, "server,alice@example.net,web1,") {
		t.Fatalf("csv export: %s", csv)
	}
	csvFile := filepath.Join(t.TempDir(), "inventory.csv")
	os.WriteFile(csvFile, []byte(csv), 0o644)
	if out := cli(0, "import", csvFile); !strings.Contains(out, "0 created, 0 updated") {
		t.Fatalf("re-import of the CSV export changed something: %s", out)
	}
	out := cli(0, "lock", "--reason", "netscan", "--ip", "203.0.113.10", "--note", "seen by NOC", "--idempotency-key", "k1")
	if !strings.Contains(out, "locked: netscan 203.0.113.10/32") {
		t.Fatalf("lock: %s", out)
	}
	if again := cli(0, "lock", "--reason", "netscan", "--ip", "203.0.113.10", "--note", "seen by NOC", "--idempotency-key", "k1"); again != out {
		t.Fatalf("a retried lock with the same key differs:\n%s\n%s", out, again)
	}
	cli(1, "lock", "--reason", "netscan", "--ip", "198.51.100.1") // in nobody's inventory
	cli(2, "lock", "--reason", "netscan")                         // no scope
	list := cli(0, "locks", "--state", "locked")
	if !strings.Contains(list, "203.0.113.10/32") || strings.Count(list, "\n") != 2 {
		t.Fatalf("locks: %s", list)
	}
	id := strings.Fields(strings.Split(list, "\n")[1])[0]
	if out := cli(0, "unlock", "--note", "customer fixed it", id); !strings.Contains(out, "unlocked") {
		t.Fatalf("unlock: %s", out)
	}
	if out := cli(0, "locks", "--state", "locked"); strings.Count(out, "\n") != 1 {
		t.Fatalf("locked after unlock: %s", out)
	}
	t.Setenv("PADLOCK_TOKEN", "pl_wrong")
	if out := cli(1, "locks"); !strings.Contains(out, "invalid or revoked token") {
		t.Fatalf("bad token: %s", out)
	}
}

// TestUserCommandsAreAudited: web accounts made and changed on the command
// line are in the audit log under the operating-system account that ran
// padlock (behind sudo, the one that called sudo).
func TestUserCommandsAreAudited(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("a staff password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SUDO_USER", "mallory")
	for _, args := range [][]string{
		{"user", "create", "--data", dir, "--email", "ops@provider.example", "--role", "staff", "--password-file", pw},
		{"user", "password", "--data", dir, "--email", "ops@provider.example", "--password-file", pw},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("padlock %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		}
	}
	ctx := context.Background()
	db, err := store.Open(ctx, store.DefaultDSN(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var evs []lock.AuditEvent
	err = db.View(ctx, func(tx lock.Tx) error {
		evs, err = tx.ListAudit(ctx, lock.AuditFilter{ObjectType: "web_user", Limit: 10})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Action+" by "+e.Actor)
	}
	slices.Sort(got)
	if want := []string{"user_create by admin:cli:mallory", "user_password by admin:cli:mallory"}; !slices.Equal(got, want) {
		t.Errorf("audit: %q, want %q", got, want)
	}
}
