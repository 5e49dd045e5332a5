// Package storetest is the store conformance suite: the same tests run
// against every engine (SQLite in a temp dir, PostgreSQL in a fresh schema)
// through the lock service, so the service's guarantees — transition table,
// single open unlock request under concurrency, idempotency, whitelist
// rules, authorization, lookup, outbox — are proven on each engine.
//
// It imports store, lock, inventory and mail; nothing imports it outside
// tests.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/mail"
	"padlock/internal/store"
)

// Opener opens a fresh, empty, migrated database for one test.
type Opener func(t testing.TB) *store.DB

// SQLite opens a database in the test's temp dir.
func SQLite(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "padlock.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PostgresDSNs are tried in order; PADLOCK_TEST_POSTGRES overrides them.
var PostgresDSNs = []string{
	"postgres://root@127.0.0.1:5432/test?sslmode=disable",
	"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
}

// Postgres opens a database in a fresh schema pl_<random> of the test
// PostgreSQL, dropped when the test ends. Without a reachable PostgreSQL it
// skips, or fails when the environment variable CI is set.
func Postgres(t testing.TB) *store.DB {
	t.Helper()
	dsns := PostgresDSNs
	if v := os.Getenv("PADLOCK_TEST_POSTGRES"); v != "" {
		dsns = []string{v}
	}
	var admin *sql.DB
	var base string
	var errs []string
	for _, dsn := range dsns {
		db, err := sql.Open("pgx", dsn)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err = db.PingContext(ctx)
			cancel()
		}
		if err == nil {
			admin, base = db, dsn
			break
		}
		if db != nil {
			db.Close()
		}
		errs = append(errs, err.Error())
	}
	if admin == nil {
		msg := "PostgreSQL unreachable: " + strings.Join(errs, "; ")
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "pl_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	db, err := store.Open(context.Background(), base+sep+"search_path="+schema)
	if err != nil {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() {
		db.Close()
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	return db
}

// Clock is a settable clock for tests.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Env is one test's database, service and fixture.
type Env struct {
	DB      *store.DB
	Svc     *lock.Service
	Clock   *Clock
	Ctx     context.Context
	Events  *Events
	Changes *Changes
	Staff   lock.Actor
	Billing lock.Actor
	RO      lock.Actor
	A, B    inventory.Customer // two customers
	CA, CB  lock.Actor         // acting as A and as B
	SrvA    inventory.Server   // 198.51.100.10, 198.51.100.11, 2001:db8:a::/64
	SrvB    inventory.Server   // 203.0.113.20
	BoxA    inventory.StorageBox
	NetB    inventory.Address // 198.51.100.128/25 standalone of B (inside A's /24)
	NetA    inventory.Address // 198.51.100.0/24 standalone of A
}

// Changes records what OnChange reported.
type Changes struct {
	mu   sync.Mutex
	list []lock.Change
}

func (c *Changes) add(ch lock.Change) { c.mu.Lock(); c.list = append(c.list, ch); c.mu.Unlock() }

// Take returns and forgets the recorded changes.
func (c *Changes) Take() []lock.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.list
	c.list = nil
	return l
}

// Events records what Render was asked to render.
type Events struct {
	mu   sync.Mutex
	list []lock.Event
	fail error
}

// Kinds returns the kinds of the rendered events.
func (e *Events) Kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.list {
		out = append(out, ev.Kind)
	}
	return out
}

// Last returns the last rendered event.
func (e *Events) Last() lock.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.list) == 0 {
		return lock.Event{}
	}
	return e.list[len(e.list)-1]
}

// FailWith makes Render fail (nil: succeed again).
func (e *Events) FailWith(err error) { e.mu.Lock(); e.fail = err; e.mu.Unlock() }

func (e *Events) render(ev lock.Event) ([]mail.Message, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return nil, e.fail
	}
	e.list = append(e.list, ev)
	lid := ""
	if ev.Lock != nil {
		lid = ev.Lock.LockingID
	}
	m := mail.Message{Subject: fmt.Sprintf("[%s] %s", lid, ev.Kind), Text: ev.Policy.CustomerText + "\n" + ev.Note}
	m.Attachments = append(m.Attachments, ev.Evidence...)
	return []mail.Message{m}, nil
}

// NewEnv opens a database, starts a service with cfg and creates the
// fixture inventory. Each deps function may change the service's
// dependencies (e.g. CanWhitelist) before it starts.
func NewEnv(t testing.TB, open Opener, cfg lock.Configuration, deps ...func(*lock.Dependencies)) *Env {
	t.Helper()
	e := &Env{DB: open(t), Clock: NewClock(), Ctx: context.Background(), Events: &Events{}, Changes: &Changes{}}
	d := lock.Dependencies{Store: e.DB, Clock: e.Clock.Now, Render: e.Events.render, OnChange: e.Changes.add}
	for _, f := range deps {
		f(&d)
	}
	svc, err := lock.New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(e.Ctx); err != nil {
		t.Fatal(err)
	}
	e.Svc = svc
	e.Staff = lock.Actor{Role: lock.RoleStaff, Name: "alice"}
	e.Billing = lock.Actor{Role: lock.RoleBilling, Name: "billing-sync"}
	e.RO = lock.Actor{Role: lock.RoleReadonly, Name: "auditor"}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	e.A, err = svc.CreateCustomer(e.Ctx, e.Staff, inventory.Customer{Name: "Alpha GmbH", Email: "noc@alpha.example", Language: "de"})
	must(err)
	e.B, err = svc.CreateCustomer(e.Ctx, e.Staff, inventory.Customer{Name: "Beta Ltd", Email: "ops@beta.example", Language: "en"})
	must(err)
	e.CA = lock.Actor{Role: lock.RoleCustomer, CustomerID: e.A.ID}
	e.CB = lock.Actor{Role: lock.RoleCustomer, CustomerID: e.B.ID}
	e.SrvA, err = svc.CreateServer(e.Ctx, e.Staff, inventory.Server{CustomerID: e.A.ID, Name: "srv-a",
		IPs: []netip.Prefix{pfx("198.51.100.10/32"), pfx("198.51.100.11/32"), pfx("2001:db8:a::/64")}, MACs: []string{"52:54:00:AA:00:01"}})
	must(err)
	e.SrvB, err = svc.CreateServer(e.Ctx, e.Staff, inventory.Server{CustomerID: e.B.ID, Name: "srv-b", IPs: []netip.Prefix{pfx("203.0.113.20/32")}})
	must(err)
	e.BoxA, err = svc.CreateStorageBox(e.Ctx, e.Staff, inventory.StorageBox{CustomerID: e.A.ID, Name: "box-a", Host: "box-a.storage.example"})
	must(err)
	e.NetA, err = svc.CreateAddress(e.Ctx, e.Staff, inventory.Address{CustomerID: e.A.ID, Prefix: pfx("198.51.100.0/24")})
	must(err)
	e.NetB, err = svc.CreateAddress(e.Ctx, e.Staff, inventory.Address{CustomerID: e.B.ID, Prefix: pfx("198.51.100.128/25"), Note: "routed"})
	must(err)
	return e
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// LockIP locks one address as staff.
func (e *Env) LockIP(t testing.TB, ip string, r lock.Reason) lock.Lock {
	t.Helper()
	l, err := e.Svc.CreateLock(e.Ctx, e.Staff, lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{addr(ip)}}, Reason: r, Note: "test"}, "")
	if err != nil {
		t.Fatalf("lock %s: %v", ip, err)
	}
	return l
}

// Audit returns the audit events of a lock, oldest first.
func (e *Env) Audit(t testing.TB, lockID int64) []lock.AuditEvent {
	t.Helper()
	ev, err := e.Svc.ListAudit(e.Ctx, e.Staff, lock.AuditFilter{LockID: lockID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(ev)-1; i < j; i, j = i+1, j-1 {
		ev[i], ev[j] = ev[j], ev[i]
	}
	return ev
}
