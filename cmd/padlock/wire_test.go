package main

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"padlock/internal/config"
	"padlock/internal/detect"
	"padlock/internal/evidence"
	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/mail"
	"padlock/internal/notify"
	"padlock/internal/store"
	"padlock/internal/web/api"
)

// TestInboundProtectionMail: an inbound-protection lock is mailed as
// protection of a victim (not the customer's fault, lifted at its expiry);
// any other lock is mailed as the customer's problem.
func TestInboundProtectionMail(t *testing.T) {
	r, err := notify.NewRenderer(notify.RendererConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m := &mailRenderer{r: r}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	mk := func(inbound bool, until *time.Time) lock.Event {
		return lock.Event{Kind: lock.EventLock, At: at, Customer: inventory.Customer{ID: 1, Name: "Alice", Email: "alice@example.net", Language: "en"},
			Lock: &lock.Lock{ID: 1, LockingID: "L0029DB12", Reason: lock.ReasonPacketLimit, State: lock.StateLocked, ScopeKind: lock.ScopeIP,
				Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}, InboundProtection: inbound, ExpiresAt: until, LockedAt: &at, CreatedAt: at}}
	}
	until := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	msgs, err := m.Render(mk(true, &until))
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	if !strings.Contains(msgs[0].Subject, "under attack") || !strings.Contains(msgs[0].Text, "This is not your fault") ||
		!strings.Contains(msgs[0].Text, "lifted automatically at") || !strings.Contains(msgs[0].Text, "13:00") {
		t.Errorf("inbound mail:\n%s\n%s", msgs[0].Subject, msgs[0].Text)
	}
	msgs, err = m.Render(mk(false, nil))
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	if strings.Contains(msgs[0].Subject, "under attack") || strings.Contains(msgs[0].Text, "not your fault") {
		t.Errorf("ordinary lock mailed as inbound protection:\n%s\n%s", msgs[0].Subject, msgs[0].Text)
	}
}

// TestFindingsAreCustomerScoped: through the API a customer sees only its
// own finding cases and their evidence; another customer's are 404, as if
// they did not exist; staff see all.
func TestFindingsAreCustomerScoped(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "padlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	rec := func(ip string, cust int64) int64 {
		c, _, err := db.RecordFinding(ctx, store.FindingInput{Kind: "netscan", InternalIP: netip.MustParseAddr(ip), CustomerID: cust,
			FirstSeen: now, LastSeen: now, Detail: []byte(`{"rule":"netscan.horizontal","direction":"out","measured":300,"threshold":250,"samples":300}`),
			Evidence: []store.Evidence{{Name: "netscan.log", ContentType: "text/plain", Data: []byte("#### log of " + ip)}}}, now)
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	mine, theirs := rec("203.0.113.10", 1), rec("203.0.113.77", 2)
	src := findingSource{db}
	alice := lock.Actor{Role: lock.RoleCustomer, CustomerID: 1, Name: "alice"}
	fs, err := src.ListFindings(ctx, alice, api.FindingFilter{})
	if err != nil || len(fs) != 1 || fs[0].ID != mine || fs[0].Rule != "netscan.horizontal" || fs[0].Evidence[0] != "netscan.log" {
		t.Fatalf("alice's findings: %+v, %v", fs, err)
	}
	if _, data, err := src.EvidenceFile(ctx, alice, mine, "netscan.log"); err != nil || string(data) != "#### log of 203.0.113.10" {
		t.Fatalf("own evidence: %q, %v", data, err)
	}
	if _, _, err := src.EvidenceFile(ctx, alice, theirs, "netscan.log"); !errors.Is(err, lock.ErrNotFound) {
		t.Fatalf("another customer's evidence: %v, want not found", err)
	}
	if _, _, err := src.EvidenceFile(ctx, alice, theirs+100, "netscan.log"); !errors.Is(err, lock.ErrNotFound) {
		t.Fatalf("a missing case: %v, want not found", err)
	}
	staff := lock.Actor{Role: lock.RoleStaff, Name: "noc"}
	if fs, err := src.ListFindings(ctx, staff, api.FindingFilter{}); err != nil || len(fs) != 2 {
		t.Fatalf("staff see %d findings, %v", len(fs), err)
	}
}

// TestNoticeRenderer: the pipeline's notice of a notify case, rendered
// through the notify templates with the customer and server from a real
// store and lock service, goes to the customer in their language, names the
// server, attaches the evidence and says that nothing is locked; an address
// without a server is named as an IP address.
func TestNoticeRenderer(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "padlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc, err := lock.New(lock.Configuration{Bogons: []netip.Prefix{}}, lock.Dependencies{Store: db,
		Render: func(lock.Event) ([]mail.Message, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Stop(ctx)
	doc := inventory.Document{Customers: []inventory.DocCustomer{
		{Name: "Erika Mustermann", Email: "erika@example.org", Language: "de", Servers: []inventory.DocServer{{Name: "web1", IPs: []string{"203.0.113.10"}}}},
		{Name: "Bob", Email: "bob@example.net", IPs: []inventory.DocAddress{{Prefix: "203.0.113.20"}}},
	}}
	if _, err := svc.Import(ctx, lock.Actor{Role: lock.RoleAdmin, Name: "test"}, doc); err != nil {
		t.Fatal(err)
	}
	r, err := notify.NewRenderer(notify.RendererConfig{})
	if err != nil {
		t.Fatal(err)
	}
	n := noticeRenderer{svc: svc, r: r, clientURL: "https://robot.example.net/"}
	at := time.Date(2026, 11, 25, 14, 22, 0, 0, time.UTC)
	f := detect.Finding{Kind: detect.KindNetscan, Rule: "netscan.horizontal", FirstSeen: at, LastSeen: at.Add(time.Minute)}
	files := []evidence.File{{Name: evidence.NameNetscanLog, ContentType: "text/plain", Data: []byte("#### Netscan detected from host 203.0.113.10")}}
	notice := func(ip string) mail.Message {
		t.Helper()
		a := netip.MustParseAddr(ip)
		e, ok := svc.Index().Lookup(a)
		if !ok {
			t.Fatalf("%s not in the inventory", ip)
		}
		m, err := n.Notice(ctx, f, a, e.CustomerID, files)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	m := notice("203.0.113.10")
	if m.To != "erika@example.org" || m.Kind != "notice" || m.CustomerID == 0 || m.LockID != 0 {
		t.Errorf("notice metadata %+v", m)
	}
	if want := "Abuse-Hinweis zu Ihrem Produkt Server web1 (203.0.113.10): Netzwerkscan"; m.Subject != want {
		t.Errorf("subject %q, want %q", m.Subject, want)
	}
	for _, s := range []string{"Es wurde nichts gesperrt", "keine Entsperranfrage", "sperren das Produkt", "25.11.2026 14:22 UTC",
		"netscan.log", "https://robot.example.net/client/"} {
		if !strings.Contains(m.Text, s) {
			t.Errorf("text lacks %q:\n%s", s, m.Text)
		}
	}
	if len(m.Attachments) != 1 || m.Attachments[0].Name != "netscan.log" || !strings.Contains(string(m.Attachments[0].Data), "Netscan detected") {
		t.Errorf("attachments %+v", m.Attachments)
	}

	if m := notice("203.0.113.20"); m.To != "bob@example.net" || m.Subject != "Abuse notice for your IP address 203.0.113.20: network scan" {
		t.Errorf("address notice to %q: %q", m.To, m.Subject)
	}
	if _, err := n.Notice(ctx, detect.Finding{Kind: "bogus"}, netip.MustParseAddr("203.0.113.10"), 1, nil); err == nil {
		t.Error("a finding kind without a lock reason rendered a notice")
	}
}

// TestEscalatedLockMailCarriesTheWarningsLog: a warning's mail carries the
// log; when staff escalate it to a lock (or the deadline passes), the lock
// mail attaches the same log instead of arriving without one.
func TestEscalatedLockMailCarriesTheWarningsLog(t *testing.T) {
	w := newWired(t, "203.0.113.10/32")
	ctx, db, svc, staff, sv := w.ctx, w.db, w.svc, w.staff, w.srv
	deadline := time.Now().Add(24 * time.Hour)
	log := []byte("###################################################################\n#          Netscan detected from host   203.0.113.10              #\n")
	l, err := svc.CreateLock(ctx, staff, lock.CreateLockRequest{Scope: lock.Scope{ServerID: sv.ID}, Reason: lock.ReasonNetscan, WarnUntil: &deadline,
		Evidence: []mail.Attachment{{Name: "netscan.log", ContentType: "text/plain", Data: log}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	// a second warning, lifted before its deadline: its mail closes the
	// warning instead of announcing an unlock
	deadline2 := time.Now().Add(48 * time.Hour)
	w2, err := svc.CreateLock(ctx, staff, lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{netip.MustParseAddr("203.0.113.10")}},
		Reason: lock.ReasonSpam, WarnUntil: &deadline2}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Unlock(ctx, staff, w2.ID, "false alarm"); err != nil {
		t.Fatal(err)
	}
	ws, _ := db.ListMails(ctx, w2.ID, 0, 10)
	closed := false
	for _, m := range ws {
		if m.Kind == lock.EventUnlock {
			closed = strings.Contains(m.Subject, "The warning for your") && !strings.Contains(m.Text, "has been unlocked")
		}
	}
	if !closed {
		t.Errorf("mails of the lifted warning: %+v", ws)
	}
	if _, err := svc.Escalate(ctx, staff, l.ID, "no reaction"); err != nil {
		t.Fatal(err)
	}
	ms, err := db.ListMails(ctx, l.ID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, m := range ms {
		kinds[m.Kind]++
		if m.Kind == lock.EventLock && (len(m.Attachments) != 1 || string(m.Attachments[0].Data) != string(log)) {
			t.Errorf("lock mail after the warning attaches %+v, want the warning's netscan.log", m.Attachments)
		}
	}
	if kinds[lock.EventWarning] != 1 || kinds[lock.EventLock] != 1 {
		t.Fatalf("mails of the lock: %v", kinds)
	}
}

// TestWhitelistAllowsMatchTheIPVersion: a whitelisted IPv4 address is let
// through to the lock's IPv4 addresses only; before, an allow towards the
// server's IPv6 prefix was generated too, which enforcement refuses, and
// the whole lock showed as refused.
func TestWhitelistAllowsMatchTheIPVersion(t *testing.T) {
	w := newWired(t, "203.0.113.10/32", "2001:db8:77::/64")
	ctx, db, svc, staff, sv, c := w.ctx, w.db, w.svc, w.staff, w.srv, w.cust
	l, err := svc.CreateLock(ctx, staff, lock.CreateLockRequest{Scope: lock.Scope{ServerID: sv.ID}, Reason: lock.ReasonNetscan}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddWhitelist(ctx, lock.Actor{Role: lock.RoleCustomer, CustomerID: c.ID}, l.ID, "198.51.100.7"); err != nil {
		t.Fatal(err)
	}
	d, err := desiredSource{svc: svc, db: db}.Desired(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Blocks) != 2 {
		t.Fatalf("blocks: %+v", d.Blocks)
	}
	if len(d.Allows) != 1 || d.Allows[0].Target.Prefix != netip.MustParsePrefix("203.0.113.10/32") {
		t.Fatalf("allows: %+v, want one towards 203.0.113.10/32", d.Allows)
	}
}

// TestBreakerSurvivesRestart: a circuit breaker that was open when padlock
// stopped is open again after the start, so a crash does not turn
// automatic locking back on; closing it in the admin area stores that too.
func TestBreakerSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, store.DefaultDSN(dir))
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	if err := db.SetBreaker(ctx, store.BreakerRecord{Open: true, Reason: "11 servers tripped netscan within 5m0s", Since: since}, time.Now()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = dir
	s, err := newServer(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if st := s.policy.State(); !st.Open || !st.Since.Equal(since) || st.Reason != "11 servers tripped netscan within 5m0s" {
		t.Fatalf("breaker after the restart: %+v", st)
	}
	bv := breakerView{p: s.policy, db: s.db, log: slog.New(slog.DiscardHandler)}
	if err := bv.ResetCircuitBreaker(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.db.Breaker(ctx); b.Open || s.policy.State().Open {
		t.Fatalf("closed breaker: stored %+v, in memory %+v", b, s.policy.State())
	}
}

// wired is a lock service on a fresh SQLite store, rendering its mails with
// the real templates (mailRenderer), with one customer (Alpha) and its
// server web1 on the given prefixes.
type wired struct {
	ctx   context.Context
	db    *store.DB
	svc   *lock.Service
	staff lock.Actor
	cust  inventory.Customer
	srv   inventory.Server
}

func newWired(t *testing.T, prefixes ...string) *wired {
	t.Helper()
	w := &wired{ctx: context.Background(), staff: lock.Actor{Role: lock.RoleStaff, Name: "alice"}}
	var err error
	if w.db, err = store.Open(w.ctx, filepath.Join(t.TempDir(), "padlock.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.db.Close() })
	r, err := notify.NewRenderer(notify.RendererConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mr := &mailRenderer{db: w.db, r: r}
	if w.svc, err = lock.New(lock.Configuration{Bogons: []netip.Prefix{}}, lock.Dependencies{Store: w.db, Render: mr.Render}); err != nil {
		t.Fatal(err)
	}
	mr.svc = w.svc
	if err := w.svc.Start(w.ctx); err != nil {
		t.Fatal(err)
	}
	if w.cust, err = w.svc.CreateCustomer(w.ctx, w.staff, inventory.Customer{Name: "Alpha", Email: "noc@alpha.example"}); err != nil {
		t.Fatal(err)
	}
	sv := inventory.Server{CustomerID: w.cust.ID, Name: "web1"}
	for _, p := range prefixes {
		sv.IPs = append(sv.IPs, netip.MustParsePrefix(p))
	}
	if w.srv, err = w.svc.CreateServer(w.ctx, w.staff, sv); err != nil {
		t.Fatal(err)
	}
	return w
}
