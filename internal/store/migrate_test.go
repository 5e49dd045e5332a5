package store_test

import (
	"fmt"
	"testing"
	"time"

	"padlock/internal/lock"
	"padlock/internal/store"
	"padlock/internal/store/storetest"
)

func TestMigrationLockFieldsSQLite(t *testing.T)   { testMigrationLockFields(t, storetest.SQLite) }
func TestMigrationLockFieldsPostgres(t *testing.T) { testMigrationLockFields(t, storetest.Postgres) }

// testMigrationLockFields: locks written before migrations 00200 and
// 00201 carried inbound protection, its expiry, staff-only unlock and the
// method as note markers; the migrations turn them into the new columns,
// and down/up is clean.
func testMigrationLockFields(t *testing.T, open storetest.Opener) {
	e := storetest.NewEnv(t, open, lock.Configuration{})
	inbound := e.LockIP(t, "203.0.113.20", lock.ReasonPacketLimit)
	staff := e.LockIP(t, "198.51.100.10", lock.ReasonNetscan)
	plain := e.LockIP(t, "198.51.100.11", lock.ReasonNetscan)
	if err := store.MigrateTo(e.Ctx, e.DB, 100); err != nil {
		t.Fatal(err)
	}
	for id, note := range map[int64]string{
		inbound.ID: "[inbound-protection] expires 2026-03-02T10:30:00Z: this address receives more traffic than the network can carry. [method] blackhole. automatic: x",
		staff.ID:   "[staff-unlock-only] repeat offence: only staff may unlock. automatic: netscan",
		plain.ID:   "automatic: netscan",
	} {
		if _, err := e.DB.SQL().ExecContext(e.Ctx, fmt.Sprintf(`UPDATE locks SET note = '%s' WHERE id = %d`, note, id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.MigrateTo(e.Ctx, e.DB, 201); err != nil {
		t.Fatal(err)
	}
	get := func(id int64) lock.Lock {
		l, err := e.Svc.GetLock(e.Ctx, e.Staff, id)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	want := time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC)
	if l := get(inbound.ID); !l.InboundProtection || l.StaffUnlockOnly || l.ExpiresAt == nil || !l.ExpiresAt.Equal(want) || l.Method != lock.MethodBlackhole {
		t.Errorf("inbound lock after migration: inbound %v staff-only %v expires %v method %q", l.InboundProtection, l.StaffUnlockOnly, l.ExpiresAt, l.Method)
	}
	if l := get(staff.ID); l.InboundProtection || !l.StaffUnlockOnly || l.ExpiresAt != nil || l.Method != "" {
		t.Errorf("staff-only lock after migration: %+v", l)
	}
	if l := get(plain.ID); l.InboundProtection || l.StaffUnlockOnly || l.ExpiresAt != nil || l.Method != "" {
		t.Errorf("plain lock after migration: %+v", l)
	}
	// The sweeper lifts the migrated blackhole at its expiry.
	e.Clock.Advance(30 * time.Minute)
	if n, err := e.Svc.ExpireLocks(e.Ctx); n != 1 || err != nil {
		t.Errorf("ExpireLocks after migration = %d, %v; want 1", n, err)
	}
}
