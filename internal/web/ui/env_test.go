package ui_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"

	"padlock/internal/enforce"
	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/mail"
	"padlock/internal/store"
	"padlock/internal/web/ui"
)

func TestMain(m *testing.M) {
	// Cheap hashes keep the tests fast; production uses store.PasswordParams.
	store.PasswordParams = &argon2id.Params{Memory: 8 * 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	os.Exit(m.Run())
}

const password = "correct horse battery"

// seedNetscan is the seed's own netscan log, as the evidence package
// renders it (stored with the finding, attached to the mail).
const seedNetscan = `###################################################################
#          Netscan detected from host   203.0.113.10              #
###################################################################

time                        src_ip		  dest_ip:dest_port
-------------------------------------------------------------------
Thu Nov 13 18:14:27 2021:  203.0.113.10 =>           10.0.0.2:   22
Thu Nov 13 18:14:27 2021:  203.0.113.10 =>           10.0.0.3:   22
`

// fakeEnforcement reports what the test sets; unit tests only.
type fakeEnforcement struct {
	mu sync.Mutex
	st map[int64]enforce.Status
}

func (f *fakeEnforcement) set(s enforce.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st[s.LockID] = s
}

func (f *fakeEnforcement) Status(id int64) (enforce.Status, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.st[id]
	return s, ok
}

func (f *fakeEnforcement) Statuses() []enforce.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []enforce.Status
	for _, s := range f.st {
		out = append(out, s)
	}
	return out
}

// render is a minimal mail renderer (the real one lives in cmd/padlock
// with the notify templates): subject with the Locking ID and the kind,
// the reason's text, evidence attached.
func render(ev lock.Event) ([]mail.Message, error) {
	if ev.Lock == nil {
		return nil, nil
	}
	m := mail.Message{Subject: fmt.Sprintf("[%s] %s", ev.Lock.LockingID, strings.ReplaceAll(ev.Kind, "_", " ")),
		Text: ev.Policy.CustomerText}
	if strings.HasPrefix(ev.Kind, "unlock_request_") && ev.Note != "" {
		m.Text += "\n\nOur answer: " + ev.Note
	}
	m.Attachments = append(m.Attachments, ev.Evidence...)
	return []mail.Message{m}, nil
}

type env struct {
	t       testing.TB
	ctx     context.Context
	db      *store.DB
	svc     *lock.Service
	enf     *fakeEnforcement
	srv     *httptest.Server
	h       http.Handler
	staff   lock.Actor
	A, B    inventory.Customer
	SrvA    inventory.Server
	SrvB    inventory.Server
	BoxA    inventory.StorageBox
	LockA   lock.Lock // netscan lock of SrvA, with a finding and evidence
	LockB   lock.Lock // packet_limit lock of SrvB
	PayA    lock.Lock // non_payment lock of BoxA (no whitelist)
	Finding store.FindingCase
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "padlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := lock.New(lock.Configuration{
		// The test uses documentation ranges, which are bogons by default;
		// the provider's own network is 203.0.113.0/24.
		Bogons:      []netip.Prefix{},
		OwnNetworks: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
	}, lock.Dependencies{Store: db, Render: render})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, db: db, svc: svc, enf: &fakeEnforcement{st: map[int64]enforce.Status{}}, staff: lock.Actor{Role: lock.RoleStaff, Name: "alice"}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	pfx := netip.MustParsePrefix
	e.A, err = svc.CreateCustomer(ctx, e.staff, inventory.Customer{Name: "Alpha GmbH", Email: "noc@alpha.example"})
	must(err)
	e.B, err = svc.CreateCustomer(ctx, e.staff, inventory.Customer{Name: "Beta Ltd", Email: "ops@beta.example"})
	must(err)
	e.SrvA, err = svc.CreateServer(ctx, e.staff, inventory.Server{CustomerID: e.A.ID, Name: "web-1", IPs: []netip.Prefix{pfx("203.0.113.10/32"), pfx("2001:db8:a::/64")}})
	must(err)
	e.SrvB, err = svc.CreateServer(ctx, e.staff, inventory.Server{CustomerID: e.B.ID, Name: "db-7", IPs: []netip.Prefix{pfx("203.0.113.20/32")}})
	must(err)
	e.BoxA, err = svc.CreateStorageBox(ctx, e.staff, inventory.StorageBox{CustomerID: e.A.ID, Name: "backup-3", Host: "backup-3.storage.example"})
	must(err)
	_, err = svc.CreateAddress(ctx, e.staff, inventory.Address{CustomerID: e.A.ID, Prefix: pfx("203.0.113.64/28"), Note: "failover subnet"})
	must(err)
	now := time.Now()
	e.Finding, _, err = db.RecordFinding(ctx, store.FindingInput{Kind: "netscan", InternalIP: netip.MustParseAddr("203.0.113.10"), CustomerID: e.A.ID,
		FirstSeen: now.Add(-time.Minute), LastSeen: now, Detail: []byte(`{"kind":"netscan","internal_ip":"203.0.113.10"}`),
		Evidence: []store.Evidence{
			{Name: "netscan.log", ContentType: "text/plain; charset=utf-8", Data: []byte(seedNetscan)},
			{Name: "traffic.pcap", ContentType: "application/vnd.tcpdump.pcap", Data: []byte("\xd4\xc3\xb2\xa1pcap-bytes")},
			{Name: "finding.json", ContentType: "application/json", Data: []byte(`{"kind":"netscan"}`)},
		}}, now)
	must(err)
	ev := []mail.Attachment{{Name: "netscan.log", ContentType: "text/plain; charset=utf-8", Data: []byte(seedNetscan)}}
	e.LockA, err = svc.CreateLock(ctx, e.staff, lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvA.ID}, Reason: lock.ReasonNetscan,
		Note: "internal: finding", FindingID: e.Finding.ID, Evidence: ev}, "")
	must(err)
	e.LockB, err = svc.CreateLock(ctx, e.staff, lock.CreateLockRequest{Scope: lock.Scope{ServerID: e.SrvB.ID}, Reason: lock.ReasonPacketLimit, Note: "flood"}, "")
	must(err)
	e.PayA, err = svc.CreateLock(ctx, lock.Actor{Role: lock.RoleBilling, Name: "billing"}, lock.CreateLockRequest{Scope: lock.Scope{StorageBoxID: e.BoxA.ID}, Reason: lock.ReasonNonPayment}, "")
	must(err)
	e.enf.set(enforce.Status{LockID: e.LockA.ID, State: enforce.StatePending, Err: "bgp: configured but not in effect: no established session", Since: now, Attempts: 3})
	e.enf.set(enforce.Status{LockID: e.LockB.ID, State: enforce.StateApplied, Since: now})
	for _, u := range []struct {
		email string
		role  lock.Role
		cid   int64
	}{{"alice@alpha.example", lock.RoleCustomer, e.A.ID}, {"bob@beta.example", lock.RoleCustomer, e.B.ID}, {"staff@padlock.example", lock.RoleStaff, 0}} {
		_, err := db.CreateUser(ctx, lock.System, u.email, password, u.role, u.cid, now)
		must(err)
	}
	h, err := ui.New(ui.Configuration{BaseURL: "http://padlock.example", TrustedProxies: []netip.Prefix{pfx("127.0.0.1/32")}},
		ui.Dependencies{Service: svc, Store: db, Enforcement: e.enf, Settings: map[string]any{"detect": map[string]any{"packet_limit": map[string]any{"threshold_pps": 100000, "window": "300s"}}}})
	must(err)
	e.h = h
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// client is a browser without JavaScript: cookies, forms, redirects.
type client struct {
	t    testing.TB
	e    *env
	c    *http.Client
	xff  string
	last string // body of the last page
	tok  string // the form token of the last page that had one
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: e.t, e: e, c: &http.Client{Jar: jar}}
}

func (c *client) do(req *http.Request) (int, string) {
	c.t.Helper()
	if c.xff != "" {
		req.Header.Set("X-Forwarded-For", c.xff)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	c.last = string(b)
	if m := csrfRE.FindStringSubmatch(c.last); m != nil {
		c.tok = m[1]
	}
	return resp.StatusCode, c.last
}

func (c *client) get(path string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.e.srv.URL+path, nil)
	return c.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// csrf is the form token of the last page.
func (c *client) csrf() string {
	return c.tok
}

// post submits a form as a browser would (with the last page's token
// unless the values carry one).
func (c *client) post(path string, v url.Values) (int, string) {
	c.t.Helper()
	if v == nil {
		v = url.Values{}
	}
	if !v.Has("csrf") {
		v.Set("csrf", c.csrf())
	}
	req, _ := http.NewRequest("POST", c.e.srv.URL+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

func (c *client) signin(email string) {
	c.t.Helper()
	c.get("/client/signin")
	code, body := c.post("/client/signin", url.Values{"email": {email}, "password": {password}})
	if code != 200 || strings.Contains(body, "Wrong email") {
		c.t.Fatalf("sign-in of %s: %d\n%s", email, code, body)
	}
}

func (c *client) mustContain(body string, want ...string) {
	c.t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			c.t.Fatalf("page lacks %q:\n%s", w, body)
		}
	}
}

func itoa(n int64) string { return fmt.Sprint(n) }

func evidenceID(t testing.TB, e *env, name string) string {
	files, err := e.db.FindingEvidence(e.ctx, e.Finding.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Name == name {
			return itoa(f.ID)
		}
	}
	t.Fatalf("no evidence %s", name)
	return ""
}

func lockFilterOpen() lock.UnlockRequestFilter {
	return lock.UnlockRequestFilter{State: lock.RequestOpen}
}

func lockTicketFilter() lock.TicketFilter { return lock.TicketFilter{Kind: lock.TicketKVMConsole} }

// The reconcile loop is what serve passes as Enforcement.
var _ ui.Enforcement = (*enforce.Loop)(nil)
