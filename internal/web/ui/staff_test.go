package ui_test

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"padlock/internal/lock"
	"padlock/internal/web/ui"
)

// TestStaffPagesWithoutJavaScript: inventory import by upload, the outbox
// view with a failed mail's error, the policy page with the effective
// configuration, and locking from a finding with its evidence.
func TestStaffPagesWithoutJavaScript(t *testing.T) {
	e := newEnv(t)
	s := e.client()
	s.signin("staff@padlock.example")

	// Import a CSV inventory by file upload.
	s.get("/admin/inventory")
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("csrf", s.csrf())
	fw, _ := mw.CreateFormFile("file", "inventory.csv")
	fw.Write([]byte("kind,customer_email,name,language,ips,macs,host,note\ncustomer,noc@gamma.example,Gamma AG,de,,,,\nserver,noc@gamma.example,gamma-1,,198.51.100.77,,,\n"))
	mw.Close()
	req, _ := http.NewRequest("POST", e.srv.URL+"/admin/inventory/import", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	_, body := s.do(req)
	s.mustContain(body, "Imported inventory.csv: 2 created, 0 updated, 0 unchanged.", "Gamma AG")

	// A failed mail shows its last error in the outbox view and on the dashboard.
	ms, _ := e.db.ListMails(e.ctx, e.LockB.ID, 0, 10)
	if len(ms) == 0 {
		t.Fatal("no mail for lock B")
	}
	if _, err := e.db.ClaimMails(e.ctx, time.Now(), time.Now().Add(time.Minute), 100); err != nil {
		t.Fatal(err)
	}
	if err := e.db.MarkMailFailed(e.ctx, ms[0].ID, "smtp: 451 greylisted", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, body = s.get("/admin/mails?state=failed")
	s.mustContain(body, "smtp: 451 greylisted", "failed, will retry", ms[0].Subject)
	_, body = s.get("/admin/")
	s.mustContain(body, "smtp: 451 greylisted")

	_, body = s.get("/admin/policy")
	s.mustContain(body, "threshold_pps", "100000", "Network scans from your server", "flowspec", "yes, 24 hours", "not configured")

	// Lock from a finding: the evidence goes with the lock.
	_, body = s.get("/admin/findings/" + itoa(e.Finding.ID))
	s.mustContain(body, "Netscan detected from host", "traffic.pcap")
	e.svc.Unlock(e.ctx, e.staff, e.LockA.ID, "test")
	_, body = s.post("/admin/locks", url.Values{"kind": {"ips"}, "target": {"203.0.113.10"}, "reason": {"netscan"}, "note": {"again"}, "finding": {itoa(e.Finding.ID)}})
	s.mustContain(body, "created.", "Netscan detected from host", "enforcement: pending", "not reconciled yet")

	// Staff unlock by hand needs a note; the audit search finds it.
	_, body = s.post("/admin/locks/"+itoa(e.LockB.ID)+"/unlock", url.Values{"note": {""}})
	s.mustContain(body, "needs a reason note")
	_, body = s.post("/admin/locks/"+itoa(e.LockB.ID)+"/unlock", url.Values{"note": {"mistaken detection"}})
	s.mustContain(body, "is now unlocked")
	_, body = s.get("/admin/audit?" + url.Values{"locking_id": {e.LockB.LockingID}, "action": {"unlock"}}.Encode())
	s.mustContain(body, "mistaken detection")
	if strings.Count(body, "<th scope=\"row\">unlock</th>") != 1 {
		t.Fatalf("audit search for unlock of %s:\n%s", e.LockB.LockingID, body)
	}
}

func TestStartPrunesExpiredWebState(t *testing.T) {
	e := newEnv(t)
	if err := e.db.Sessions().Commit("old", []byte("x"), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	u, err := ui.New(ui.Configuration{}, ui.Dependencies{Service: e.svc, Store: e.db})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := e.db.SQL().QueryRow(`SELECT count(*) FROM web_sessions WHERE token = 'old'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("expired session not pruned")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := u.Stop(e.ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPerAddressLimitAndSessionsSurviveRestart: twenty failed sign-ins
// from one address (for different accounts) block that address; a
// sign-in made before survives a restart of the web component because
// sessions live in the database.
func TestPerAddressLimitAndSessionsSurviveRestart(t *testing.T) {
	e := newEnv(t)
	alice := e.client()
	alice.signin("alice@alpha.example")

	att := e.client()
	att.xff = "198.51.100.66"
	att.get("/client/signin")
	for i := 0; i < 20; i++ {
		att.post("/client/signin", url.Values{"email": {fmt.Sprintf("guess%d@alpha.example", i)}, "password": {"wrong password!"}})
	}
	if code, _ := att.post("/client/signin", url.Values{"email": {"bob@beta.example"}, "password": {password}}); code != http.StatusTooManyRequests {
		t.Fatalf("21st attempt from the same address = %d, want 429", code)
	}
	other := e.client()
	other.xff = "198.51.100.67"
	other.signin("bob@beta.example") // another address is not affected

	// Restart: a new handler on the same database.
	h2, err := ui.New(ui.Configuration{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, ui.Dependencies{Service: e.svc, Store: e.db})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Config.Handler = h2
	if _, body := alice.get("/client/"); !strings.Contains(body, "web-1") {
		t.Fatalf("session lost across the restart:\n%s", body)
	}
}

type fakeBreaker struct {
	open   bool
	resets int
}

func (f *fakeBreaker) CircuitBreaker(context.Context) ui.BreakerState {
	if f.open {
		return ui.BreakerState{State: "open", Detail: "12 servers within 5m0s", Since: time.Now().Add(-time.Minute)}
	}
	return ui.BreakerState{State: "closed"}
}

func (f *fakeBreaker) ResetCircuitBreaker(context.Context) error {
	f.open = false
	f.resets++
	return nil
}

// Staff close an open circuit breaker on the policy page (the breaker
// alert tells them to); a read-only account cannot.
func TestCloseCircuitBreaker(t *testing.T) {
	e := newEnv(t)
	fb := &fakeBreaker{open: true}
	h, err := ui.New(ui.Configuration{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		ui.Dependencies{Service: e.svc, Store: e.db, Policy: fb})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Config.Handler = h
	if _, err := e.db.CreateUser(e.ctx, lock.System, "auditor@padlock.example", password, lock.RoleReadonly, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	ro := e.client()
	ro.signin("auditor@padlock.example")
	ro.get("/admin/policy")
	if code, _ := ro.post("/admin/policy/breaker/reset", nil); code != http.StatusForbidden || fb.resets != 0 {
		t.Fatalf("read-only reset: %d, resets %d", code, fb.resets)
	}
	s := e.client()
	s.signin("staff@padlock.example")
	_, body := s.get("/admin/policy")
	s.mustContain(body, "12 servers within 5m0s", `id="breaker-reset"`)
	_, body = s.post("/admin/policy/breaker/reset", nil)
	s.mustContain(body, "Circuit breaker closed")
	if fb.resets != 1 || strings.Contains(body, `id="breaker-reset"`) {
		t.Fatalf("after the reset: resets %d\n%s", fb.resets, body)
	}
}
