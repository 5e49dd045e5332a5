package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"padlock/internal/enforce"
	"padlock/internal/lock"
	"padlock/internal/store"
)

// storeAuth adapts the store's tokens to the API's Authenticator.
type storeAuth struct{ db *store.DB }

func (s storeAuth) Authenticate(ctx context.Context, tok string) (lock.Actor, error) {
	a, _, err := s.db.Authenticate(ctx, tok)
	return a, err
}

// fakeEnforcement stands in for the reconcile loop's status table.
type fakeEnforcement struct{ st map[int64]enforce.Status }

func (f *fakeEnforcement) Status(id int64) (enforce.Status, bool) { s, ok := f.st[id]; return s, ok }

type fixture struct {
	enf    *fakeEnforcement
	t      testing.TB
	srv    *httptest.Server
	db     *store.DB
	tokens map[string]string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "padlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := lock.New(lock.Configuration{
		// The test network uses documentation ranges, which the default
		// bogon list rightly refuses; the provider's own space is 203.0.113.0/24.
		Bogons:      []netip.Prefix{},
		OwnNetworks: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
	}, lock.Dependencies{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, db: db, tokens: map[string]string{}}
	f.enf = &fakeEnforcement{st: map[int64]enforce.Status{}}
	f.srv = httptest.NewServer(New(Dependencies{Service: svc, Auth: storeAuth{db}, Enforcement: f.enf}))
	t.Cleanup(f.srv.Close)
	for _, role := range []lock.Role{lock.RoleAdmin, lock.RoleStaff, lock.RoleBilling, lock.RoleReadonly} {
		f.tokens[string(role)] = f.token(role, 0)
	}
	return f
}

func (f *fixture) token(role lock.Role, customerID int64) string {
	secret, _, err := f.db.CreateToken(context.Background(), lock.System, "test-"+string(role), role, customerID, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return secret
}

type resp struct {
	Status int
	Body   map[string]any
	Raw    string
}

func (r resp) errField(k string) string {
	e, _ := r.Body["error"].(map[string]any)
	s, _ := e[k].(string)
	return s
}

func (r resp) num(k string) int64 {
	v, _ := r.Body[k].(float64)
	return int64(v)
}

func (f *fixture) do(token, method, path, body string, hdr ...string) resp {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{Status: res.StatusCode, Raw: string(raw)}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			f.t.Fatalf("%s %s: response is not a JSON object: %s", method, path, raw)
		}
		if res.Header.Get("Content-Type") != "application/json" {
			f.t.Fatalf("%s %s: content type %q", method, path, res.Header.Get("Content-Type"))
		}
	}
	return out
}

func (f *fixture) must(r resp, status int) resp {
	f.t.Helper()
	if r.Status != status {
		f.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	return r
}

func TestAPIStory(t *testing.T) {
	f := newFixture(t)
	staff := f.tokens["staff"]

	// Authentication.
	r := f.do("", "GET", "/api/v1/locks", "")
	if r.Status != 401 || r.errField("code") != "unauthorized" {
		t.Fatalf("no token: %d %s", r.Status, r.Raw)
	}
	if r := f.do("pl_bogus", "GET", "/api/v1/locks", ""); r.Status != 401 {
		t.Fatalf("bad token: %d", r.Status)
	}

	// Inventory.
	alice := f.must(f.do(staff, "POST", "/api/v1/customers", `{"name":"Alice GmbH","email":"alice@example.net"}`), 201).num("id")
	bob := f.must(f.do(staff, "POST", "/api/v1/customers", `{"name":"Bob","email":"bob@example.org"}`), 201).num("id")
	web1 := f.must(f.do(staff, "POST", "/api/v1/servers", `{"customer_id":`+itoa(alice)+`,"name":"web1","ips":["203.0.113.10","2001:db8:10::/64"]}`), 201).num("id")
	f.must(f.do(staff, "POST", "/api/v1/servers", `{"customer_id":`+itoa(bob)+`,"name":"db7","ips":["203.0.113.77"]}`), 201)
	box := f.must(f.do(staff, "POST", "/api/v1/storage-boxes", `{"customer_id":`+itoa(alice)+`,"name":"bx11"}`), 201).num("id")
	if box == 0 {
		t.Fatal("storage box without id")
	}
	lk := f.must(f.do(staff, "GET", "/api/v1/lookup?ip=2001:db8:10::5", ""), 200)
	if m, _ := lk.Body["match"].(map[string]any); m["product_id"] != float64(web1) {
		t.Fatalf("lookup of a server's v6 address: %s", lk.Raw)
	}
	f.must(f.do(staff, "GET", "/api/v1/lookup?ip=198.51.100.1", ""), 404)

	// Bad input names the field.
	r = f.must(f.do(staff, "POST", "/api/v1/customers", `{"name":"X","email":42}`), 400)
	if r.errField("field") != "email" {
		t.Fatalf("wrong type: %s", r.Raw)
	}
	r = f.must(f.do(staff, "POST", "/api/v1/customers", `{"name":"X","email":"x@example.net","colour":"red"}`), 400)
	if r.errField("field") != "colour" {
		t.Fatalf("unknown field: %s", r.Raw)
	}
	r = f.must(f.do(staff, "POST", "/api/v1/servers", `{"customer_id":1,"name":"s","ips":["203.0.113.300"]}`), 400)
	if r.errField("field") != "ips" {
		t.Fatalf("bad address: %s", r.Raw)
	}
	r = f.must(f.do(staff, "POST", "/api/v1/locks", `{"scope":{"server_id":`+itoa(web1)+`},"reason":"felt_like_it"}`), 400)
	if r.errField("field") != "reason" {
		t.Fatalf("bad reason: %s", r.Raw)
	}

	// A lock, retried safely with an Idempotency-Key.
	body := `{"scope":{"server_id":` + itoa(web1) + `},"reason":"netscan","note":"netscan from 203.0.113.10"}`
	l1 := f.must(f.do(staff, "POST", "/api/v1/locks", body, "Idempotency-Key", "k-1"), 201)
	l2 := f.must(f.do(staff, "POST", "/api/v1/locks", body, "Idempotency-Key", "k-1"), 201)
	if l1.num("id") != l2.num("id") {
		t.Fatalf("retry with the same Idempotency-Key created a second lock: %d and %d", l1.num("id"), l2.num("id"))
	}
	f.must(f.do(staff, "POST", "/api/v1/locks", strings.Replace(body, "netscan\"", "spam\"", 1), "Idempotency-Key", "k-1"), 409)
	lockID := itoa(l1.num("id"))
	if s := l1.Body["state"]; s != "locked" {
		t.Fatalf("state %v", s)
	}
	if lid, _ := l1.Body["locking_id"].(string); !lock.ValidLockingID(lid) {
		t.Fatalf("locking id %q", lid)
	}

	// Staff see whether the network applies the lock; customers do not see
	// the internals.
	if e, _ := l1.Body["enforcement"].(map[string]any); e["state"] != "pending" {
		t.Fatalf("a lock the loop has not reconciled must show enforcement pending: %s", l1.Raw)
	}
	f.enf.st[l1.num("id")] = enforce.Status{LockID: l1.num("id"), State: enforce.StatePending, Err: "flowspec: no established peer"}
	if e, _ := f.must(f.do(staff, "GET", "/api/v1/locks/"+itoa(l1.num("id")), ""), 200).Body["enforcement"].(map[string]any); e["state"] != "pending" || e["error"] != "flowspec: no established peer" {
		t.Fatalf("enforcement not shown to staff: %v", e)
	}

	// Billing may lock for non-payment only.
	billing := f.tokens["billing"]
	f.must(f.do(billing, "POST", "/api/v1/locks", `{"scope":{"storage_box_id":`+itoa(box)+`},"reason":"non_payment"}`), 201)
	f.must(f.do(billing, "POST", "/api/v1/locks", `{"scope":{"storage_box_id":`+itoa(box)+`},"reason":"abuse"}`), 403)
	f.must(f.do(f.tokens["readonly"], "POST", "/api/v1/locks/"+lockID+"/unlock", ""), 403)

	// The customer acts through the same API, on its own things only.
	cust := f.token(lock.RoleCustomer, alice)
	other := f.token(lock.RoleCustomer, bob)
	if got := f.must(f.do(cust, "GET", "/api/v1/locks/"+lockID, ""), 200); got.Body["enforcement"] != nil {
		t.Fatalf("customer sees enforcement internals: %s", got.Raw)
	}
	f.must(f.do(other, "GET", "/api/v1/locks/"+lockID, ""), 404)
	f.must(f.do(other, "POST", "/api/v1/locks/"+lockID+"/unlock-requests", `{"message":"mine?"}`), 404)
	f.must(f.do(other, "GET", "/api/v1/servers/"+itoa(web1), ""), 404)
	if ls := f.must(f.do(other, "GET", "/api/v1/locks", ""), 200); len(ls.Body["items"].([]any)) != 0 {
		t.Fatalf("bob sees alice's locks: %s", ls.Raw)
	}
	f.must(f.do(cust, "POST", "/api/v1/locks", body), 403)

	// Whitelist: a public single address, not a range or a bogon.
	f.must(f.do(cust, "POST", "/api/v1/locks/"+lockID+"/whitelist", `{"ip":"10.1.2.3"}`), 400)
	f.must(f.do(cust, "POST", "/api/v1/locks/"+lockID+"/whitelist", `{"ip":"198.51.100.0/24"}`), 400)
	f.must(f.do(cust, "POST", "/api/v1/locks/"+lockID+"/whitelist", `{"ip":"203.0.113.99"}`), 400)
	wl := f.must(f.do(cust, "POST", "/api/v1/locks/"+lockID+"/whitelist", `{"ip":"198.51.100.23"}`), 201)
	if wl.Body["ip"] != "198.51.100.23" || wl.Body["expires_at"] == nil {
		t.Fatalf("whitelist: %s", wl.Raw)
	}

	// One unlock request; the second points to the first.
	ur := f.must(f.do(cust, "POST", "/api/v1/locks/"+lockID+"/unlock-requests", `{"message":"removed the scanner, rotated keys"}`), 201)
	again := f.must(f.do(cust, "POST", "/api/v1/locks/"+lockID+"/unlock-requests", `{"message":"please"}`), 409)
	if d, _ := again.Body["error"].(map[string]any)["details"].(map[string]any); d["existing_id"] != float64(ur.num("id")) {
		t.Fatalf("second unlock request does not point to the first: %s", again.Raw)
	}
	f.must(f.do(cust, "POST", "/api/v1/unlock-requests/"+itoa(ur.num("id"))+"/approve", `{"note":"ok"}`), 403)
	dec := f.must(f.do(staff, "POST", "/api/v1/unlock-requests/"+itoa(ur.num("id"))+"/approve", `{"note":"thanks, confirmed clean"}`), 200)
	if l := dec.Body["lock"].(map[string]any); l["state"] != "unlocked" {
		t.Fatalf("approved lock state %v", l["state"])
	}
	if got := f.must(f.do(cust, "GET", "/api/v1/locks/"+lockID, ""), 200); got.Body["state"] != "unlocked" {
		t.Fatalf("customer sees %v", got.Body["state"])
	}

	// Everything is in the audit log.
	au := f.must(f.do(staff, "GET", "/api/v1/audit?lock_id="+lockID, ""), 200)
	actions := map[string]bool{}
	for _, it := range au.Body["items"].([]any) {
		actions[it.(map[string]any)["action"].(string)] = true
	}
	for _, want := range []string{"whitelist_add", "unlock_request_create", "unlock_request_approved"} {
		if !actions[want] {
			t.Errorf("audit log lacks %q: %v", want, actions)
		}
	}
	f.must(f.do(staff, "GET", "/api/v1/audit?since=yesterday", ""), 400)
	f.must(f.do(staff, "GET", "/api/v1/nope", ""), 404)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
