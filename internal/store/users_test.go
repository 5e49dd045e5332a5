package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/store"
	"padlock/internal/store/storetest"
)

func TestUsersSQLite(t *testing.T)   { testUsers(t, storetest.SQLite) }
func TestUsersPostgres(t *testing.T) { testUsers(t, storetest.Postgres) }

func testUsers(t *testing.T, open storetest.Opener) {
	ctx := context.Background()
	db := open(t)
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	var cust inventory.Customer
	err := db.Update(ctx, func(tx lock.Tx) error {
		cust = inventory.Customer{Name: "Alpha", Email: "noc@alpha.example"}
		return tx.InsertCustomer(ctx, &cust)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateUser(ctx, lock.System, "a@alpha.example", "short", lock.RoleCustomer, cust.ID, now); !errors.Is(err, lock.ErrValidation) {
		t.Fatalf("short password: %v", err)
	}
	if _, err := db.CreateUser(ctx, lock.System, "a@alpha.example", "long enough pw", lock.RoleCustomer, 0, now); !errors.Is(err, lock.ErrValidation) {
		t.Fatalf("customer without customer: %v", err)
	}
	u, err := db.CreateUser(ctx, lock.System, "A@Alpha.example", "long enough pw", lock.RoleCustomer, cust.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateUser(ctx, lock.System, "a@alpha.EXAMPLE", "long enough pw", lock.RoleStaff, 0, now); !errors.Is(err, lock.ErrConflict) {
		t.Fatalf("duplicate email: %v", err)
	}
	got, err := db.CheckPassword(ctx, "a@alpha.example", "long enough pw")
	if err != nil || got.ID != u.ID || got.Actor().CustomerID != cust.ID || got.Role != lock.RoleCustomer {
		t.Fatalf("CheckPassword = %+v, %v", got, err)
	}
	for _, c := range [][2]string{{"a@alpha.example", "wrong password"}, {"nobody@x.example", "long enough pw"}} {
		if _, err := db.CheckPassword(ctx, c[0], c[1]); !errors.Is(err, store.ErrBadCredentials) {
			t.Fatalf("CheckPassword(%q) = %v, want ErrBadCredentials", c[0], err)
		}
	}

	// Reset links: single use, expiring.
	secret, err := db.CreatePasswordReset(ctx, u.ID, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.PasswordResetUser(ctx, secret, now.Add(2*time.Hour)); !errors.Is(err, lock.ErrNotFound) {
		t.Fatalf("expired link: %v", err)
	}
	if _, err := db.ResetPassword(ctx, secret, "a new password", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ResetPassword(ctx, secret, "another password", now.Add(2*time.Minute)); !errors.Is(err, lock.ErrNotFound) {
		t.Fatalf("second use: %v", err)
	}
	if _, err := db.CheckPassword(ctx, "a@alpha.example", "a new password"); err != nil {
		t.Fatalf("new password: %v", err)
	}

	// Every change of an account is in the audit log, by whom, without
	// any password or hash; the refused duplicate left no record.
	admin := lock.Actor{Role: lock.RoleAdmin, Name: "cli:root"}
	if err := db.SetPassword(ctx, admin, u.ID, "set by an admin", now.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPassword(ctx, admin, u.ID+100, "set by an admin", now); !errors.Is(err, lock.ErrNotFound) {
		t.Fatalf("password of a missing account: %v", err)
	}
	var evs []lock.AuditEvent
	err = db.View(ctx, func(tx lock.Tx) error {
		evs, err = tx.ListAudit(ctx, lock.AuditFilter{ObjectType: "web_user", Limit: 100})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	type ev struct{ action, actor string }
	var audited []ev
	for _, e := range evs {
		if e.ObjectID != u.ID || e.CustomerID != cust.ID {
			t.Errorf("audit %s: object %d customer %d, want %d %d", e.Action, e.ObjectID, e.CustomerID, u.ID, cust.ID)
		}
		for _, secret := range []string{"long enough pw", "a new password", "set by an admin", "argon2id"} {
			if strings.Contains(e.Before+e.After+e.Note, secret) {
				t.Errorf("audit %s holds %q", e.Action, secret)
			}
		}
		audited = append(audited, ev{e.Action, e.Actor})
	}
	slices.SortFunc(audited, func(a, b ev) int { return strings.Compare(a.action, b.action) })
	want := []ev{{"user_create", lock.System.String()}, {"user_password", admin.String()}, {"user_password_reset", u.Actor().String()}}
	if !slices.Equal(audited, want) {
		t.Errorf("audit of the account: %v, want %v", audited, want)
	}

	// Login attempts: failures since the last success.
	for i := 0; i < 3; i++ {
		_ = db.RecordLogin(ctx, "a@alpha.example", "198.51.100.1", false, now.Add(time.Duration(i)*time.Second))
	}
	acc, ip, err := db.FailedLogins(ctx, "A@alpha.example", "198.51.100.1", now.Add(-time.Minute))
	if err != nil || acc != 3 || ip != 3 {
		t.Fatalf("FailedLogins = %d, %d, %v; want 3, 3", acc, ip, err)
	}
	_ = db.RecordLogin(ctx, "a@alpha.example", "198.51.100.1", true, now.Add(10*time.Second))
	if acc, ip, _ = db.FailedLogins(ctx, "a@alpha.example", "198.51.100.1", now.Add(-time.Minute)); acc != 0 || ip != 0 {
		t.Fatalf("after success FailedLogins = %d, %d; want 0, 0", acc, ip)
	}

	// Sessions.
	ss := db.Sessions()
	if err := ss.Commit("tok", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := ss.Commit("tok", []byte("data2"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b, ok, err := ss.Find("tok"); err != nil || !ok || string(b) != "data2" {
		t.Fatalf("Find = %q, %v, %v", b, ok, err)
	}
	if err := ss.Commit("old", []byte("x"), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := ss.Find("old"); ok {
		t.Fatal("expired session found")
	}
	if err := ss.Delete("tok"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := ss.Find("tok"); ok {
		t.Fatal("deleted session found")
	}
}
