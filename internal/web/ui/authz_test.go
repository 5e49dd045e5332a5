package ui_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"padlock/internal/lock"
	"padlock/internal/web/api"
)

type storeAuth struct{ e *env }

func (s storeAuth) Authenticate(ctx context.Context, tok string) (lock.Actor, error) {
	a, _, err := s.e.db.Authenticate(ctx, tok)
	return a, err
}

// TestAuthorizationMatrix tries every customer route with another
// customer's session and that customer's IDs: each answers 404 with the
// same page as an ID that does not exist, and changes nothing. Staff-only
// routes are refused for customers. The REST API on the same service
// answers the same way.
func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t)
	// Alice (customer A) has a ticket and an evidence file to probe for.
	tk, err := e.svc.OrderKVM(e.ctx, lock.Actor{Role: lock.RoleCustomer, CustomerID: e.A.ID}, e.SrvA.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	eid := evidenceID(t, e, "traffic.pcap")
	bob := e.client()
	bob.signin("bob@beta.example")
	bob.get("/client/")

	notFoundPage := func(path string) string {
		code, body := bob.get(path)
		if code != http.StatusNotFound {
			t.Fatalf("GET %s = %d, want 404", path, code)
		}
		return mainOf(body)
	}
	ref := notFoundPage("/client/locks/L00000000")
	aLock := "/client/locks/" + e.LockA.LockingID
	for _, p := range []string{aLock, aLock + "/evidence/" + eid, "/client/locks/" + e.LockB.LockingID + "/evidence/" + eid,
		"/client/tickets/" + itoa(tk.ID), "/client/locks/" + e.PayA.LockingID, "/client/locks/not-an-id", "/client/nothing"} {
		if body := notFoundPage(p); body != ref {
			t.Errorf("GET %s differs from the page of a lock that does not exist", p)
		}
	}
	posts := map[string]url.Values{
		aLock + "/whitelist":                          {"ip": {"198.51.100.23"}},
		aLock + "/whitelist/remove":                   nil,
		aLock + "/unlock-request":                     {"cause": {"x"}, "fixed": {"y"}},
		"/client/servers/" + itoa(e.SrvA.ID) + "/kvm": nil,
		"/client/tickets/" + itoa(tk.ID) + "/reply":   {"body": {"hello"}},
		"/client/tickets?lock":                        {"lock": {e.LockA.LockingID}, "subject": {"s"}, "message": {"m"}},
		"/client/tickets?server":                      {"server": {itoa(e.SrvA.ID)}, "subject": {"s"}, "message": {"m"}},
	}
	for p, v := range posts {
		path, _, _ := strings.Cut(p, "?")
		if code, body := bob.post(path, v); code != http.StatusNotFound || mainOf(body) != ref {
			t.Errorf("POST %s (%v) = %d, want the 404 page", p, v, code)
		}
	}
	// Staff-only routes: customers get 404 and change nothing.
	for _, p := range []string{"/admin/", "/admin/locks", "/admin/locks/" + itoa(e.LockA.ID), "/admin/requests", "/admin/findings",
		"/admin/findings/" + itoa(e.Finding.ID), "/admin/findings/" + itoa(e.Finding.ID) + "/evidence/" + eid, "/admin/inventory",
		"/admin/mails", "/admin/audit", "/admin/policy", "/admin/tickets", "/admin/tickets/" + itoa(tk.ID)} {
		if code, body := bob.get(p); code != http.StatusNotFound || strings.Contains(body, "Alpha") || strings.Contains(body, e.LockA.LockingID) {
			t.Errorf("customer GET %s = %d, want 404 without data", p, code)
		}
	}
	for _, p := range []string{"/admin/locks", "/admin/locks/" + itoa(e.LockB.ID) + "/unlock", "/admin/locks/" + itoa(e.LockA.ID) + "/whitelist",
		"/admin/requests/1/approve", "/admin/inventory/import", "/admin/tickets/" + itoa(tk.ID) + "/reply"} {
		if code, _ := bob.post(p, url.Values{"note": {"x"}, "kind": {"server"}, "target": {itoa(e.SrvA.ID)}, "reason": {"abuse"}, "ip": {"198.51.100.1"}, "body": {"x"}}); code != http.StatusNotFound {
			t.Errorf("customer POST %s = %d, want 404", p, code)
		}
	}
	// Nothing of Alpha's changed.
	l, _ := e.svc.GetLock(e.ctx, e.staff, e.LockA.ID)
	wl, _ := e.svc.ListWhitelist(e.ctx, e.staff, e.LockA.ID)
	ts, _ := e.svc.ListTickets(e.ctx, e.staff, lock.TicketFilter{CustomerID: e.A.ID})
	lb, _ := e.svc.GetLock(e.ctx, e.staff, e.LockB.ID)
	if l.State != lock.StateLocked || len(wl) != 0 || len(ts) != 1 || lb.State != lock.StateLocked {
		t.Fatalf("refused requests changed state: lock %s, %d whitelist, %d tickets, own lock %s", l.State, len(wl), len(ts), lb.State)
	}
	// Staff see the admin area but have no client area.
	s := e.client()
	s.signin("staff@padlock.example")
	if code, _ := s.get("/client/locks/" + e.LockA.LockingID); code != http.StatusNotFound {
		t.Errorf("staff GET client lock = %d, want 404", code)
	}

	// The REST API on the same service: Bob's token, Alice's IDs.
	tok, _, err := e.db.CreateToken(e.ctx, e.staff, "bob", lock.RoleCustomer, e.B.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(api.New(api.Dependencies{Service: e.svc, Auth: storeAuth{e}}))
	defer apiSrv.Close()
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/locks/" + itoa(e.LockA.ID), ""},
		{"GET", "/api/v1/locks/" + itoa(e.LockA.ID) + "/whitelist", ""},
		{"POST", "/api/v1/locks/" + itoa(e.LockA.ID) + "/whitelist", `{"ip":"198.51.100.23"}`},
		{"DELETE", "/api/v1/locks/" + itoa(e.LockA.ID) + "/whitelist", ""},
		{"POST", "/api/v1/locks/" + itoa(e.LockA.ID) + "/unlock-requests", `{"message":"x"}`},
		{"GET", "/api/v1/servers/" + itoa(e.SrvA.ID), ""},
		{"POST", "/api/v1/servers/" + itoa(e.SrvA.ID) + "/kvm", `{}`},
		{"GET", "/api/v1/tickets/" + itoa(tk.ID), ""},
		{"POST", "/api/v1/tickets/" + itoa(tk.ID) + "/messages", `{"body":"x"}`},
		{"GET", "/api/v1/customers/" + itoa(e.A.ID), ""},
	} {
		req, _ := http.NewRequest(c.method, apiSrv.URL+c.path, bytes.NewBufferString(c.body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("API %s %s with another customer's token = %d, want 404", c.method, c.path, resp.StatusCode)
		}
	}
}

// mainOf is the page's main content (the navigation highlights the
// section of the URL, which is no information).
func mainOf(body string) string {
	_, after, _ := strings.Cut(body, "<main")
	m, _, _ := strings.Cut(after, "</main>")
	return m
}
