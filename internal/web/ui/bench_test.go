package ui_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"padlock/internal/inventory"
	"padlock/internal/lock"
)

// benchEnv is the test environment plus 10,000 locks: 100 of customer A
// (40 locked, 60 unlocked), the rest spread over 998 other customers, 300
// of them with an open unlock request, each with its audit event.
func benchEnv(b *testing.B) (*env, map[string]*http.Cookie) {
	e := newEnv(b)
	now := time.Now().UTC().Truncate(time.Microsecond)
	err := e.db.Update(e.ctx, func(tx lock.Tx) error {
		cids := []int64{e.A.ID}
		for i := 0; i < 998; i++ {
			c := inventory.Customer{Name: fmt.Sprintf("Bulk %d", i), Email: fmt.Sprintf("bulk%d@bulk.example", i)}
			if err := tx.InsertCustomer(e.ctx, &c); err != nil {
				return err
			}
			cids = append(cids, c.ID)
		}
		for i := 0; i < 10000; i++ {
			cid := cids[1+i%998]
			if i < 100 {
				cid = e.A.ID
			}
			ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			st := lock.StateLocked
			if i%5 >= 2 {
				st = lock.StateUnlocked
			}
			if i >= 100 && i%33 == 0 {
				st = lock.StateUnlockRequested
			}
			at := now.Add(-time.Duration(10000-i) * time.Minute)
			l := lock.Lock{LockingID: fmt.Sprintf("L%08X", 0x10000000+i), CustomerID: cid, Reason: lock.Reasons[1+i%7], State: st,
				ScopeKind: lock.ScopeIP, Scope: lock.Scope{IPs: []netip.Addr{ip}}, Prefixes: []netip.Prefix{netip.PrefixFrom(ip, 32)},
				ScopeKey: "ips:" + ip.String(), CreatedAt: at, UpdatedAt: at, LockedAt: &at, CreatedBy: "system:padlock"}
			if st == lock.StateUnlocked {
				l.UnlockedAt = &at
			}
			if err := tx.InsertLock(e.ctx, &l); err != nil {
				return err
			}
			if err := tx.InsertAudit(e.ctx, &lock.AuditEvent{At: at, Actor: "system:padlock", ActorRole: lock.RoleSystem, Action: "lock",
				ObjectType: "lock", ObjectID: l.ID, LockID: l.ID, CustomerID: cid}); err != nil {
				return err
			}
			if st == lock.StateUnlockRequested {
				r := lock.UnlockRequest{LockID: l.ID, LockingID: l.LockingID, CustomerID: cid, Message: "fixed", State: lock.RequestOpen, CreatedAt: at, CreatedBy: "customer"}
				if err := tx.InsertUnlockRequest(e.ctx, &r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	cookies := map[string]*http.Cookie{}
	for _, who := range []string{"alice@alpha.example", "staff@padlock.example"} {
		c := e.client()
		c.signin(who)
		u, _ := url.Parse(e.srv.URL)
		for _, ck := range c.c.Jar.Cookies(u) {
			if ck.Name == "padlock_session" {
				cookies[who] = ck
			}
		}
	}
	return e, cookies
}

func benchPage(b *testing.B, who, path string) {
	e, cookies := benchEnv(b)
	if path == "lockA" {
		path = "/client/locks/" + e.LockA.LockingID
	}
	serve := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(cookies[who])
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		return w
	}
	if w := serve(); w.Code != 200 {
		b.Fatalf("GET %s = %d\n%s", path, w.Code, w.Body)
	}
	b.ResetTimer()
	for b.Loop() {
		serve()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
}

func BenchmarkLockList(b *testing.B) { benchPage(b, "staff@padlock.example", "/admin/locks") }
func BenchmarkLockListFiltered(b *testing.B) {
	benchPage(b, "staff@padlock.example", "/admin/locks?state=unlock_requested&reason=spam")
}
func BenchmarkDashboard(b *testing.B)      { benchPage(b, "staff@padlock.example", "/admin/") }
func BenchmarkRequests(b *testing.B)       { benchPage(b, "staff@padlock.example", "/admin/requests") }
func BenchmarkAudit(b *testing.B)          { benchPage(b, "staff@padlock.example", "/admin/audit") }
func BenchmarkClientProducts(b *testing.B) { benchPage(b, "alice@alpha.example", "/client/") }
func BenchmarkServerLocking(b *testing.B) {
	benchPage(b, "alice@alpha.example", "/client/server-locking")
}
func BenchmarkClientLock(b *testing.B) { benchPage(b, "alice@alpha.example", "lockA") }
