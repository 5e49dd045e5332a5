package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"padlock/internal/detect"
	"padlock/internal/flow"
	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/mail"
	"padlock/internal/policy"
	"padlock/internal/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	db    *store.DB
	svc   *lock.Service
	pol   *policy.Policy
	p     *Pipeline
	clk   *clock
	reg   *prometheus.Registry
	locks Locks
}

// newEnv builds a real SQLite store and lock service with n customers, each
// owning one server 198.51.100.i, and a pipeline over them.
func newEnv(t testing.TB, n int, pc policy.Configuration, wrap func(Locks) Locks) *env {
	t.Helper()
	var doc inventory.Document
	for i := 1; i <= n; i++ {
		doc.Customers = append(doc.Customers, inventory.DocCustomer{Name: fmt.Sprintf("c%d", i), Email: fmt.Sprintf("c%d@example.net", i),
			Servers: []inventory.DocServer{{Name: fmt.Sprintf("s%d", i), IPs: []string{fmt.Sprintf("198.51.100.%d", i)}}}})
	}
	return newEnvDoc(t, doc, netip.MustParsePrefix("198.51.100.0/24"), pc, wrap)
}

// newEnvDoc is newEnv with an explicit inventory and internal network.
func newEnvDoc(t testing.TB, doc inventory.Document, customers netip.Prefix, pc policy.Configuration, wrap func(Locks) Locks) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{clk: &clock{t: time.Now().UTC().Truncate(time.Second)}, reg: prometheus.NewRegistry()}
	db, err := store.Open(ctx, store.DefaultDSN(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	e.svc, err = lock.New(lock.Configuration{Bogons: []netip.Prefix{}}, lock.Dependencies{
		Store: db, Clock: e.clk.Now, Logger: quiet,
		Render: func(ev lock.Event) ([]mail.Message, error) {
			if ev.Lock == nil || ev.Kind != lock.EventLock && ev.Kind != lock.EventWarning && ev.Kind != lock.EventRelock {
				return nil, nil
			}
			return []mail.Message{{To: ev.Customer.Email, Subject: ev.Kind + " " + ev.Lock.LockingID, Text: ev.Lock.Note,
				Attachments: ev.Evidence, LockID: ev.Lock.ID, CustomerID: ev.Customer.ID, Kind: ev.Kind}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Import(ctx, lock.Actor{Role: lock.RoleAdmin, Name: "test"}, doc); err != nil {
		t.Fatal(err)
	}
	e.locks = Locks(e.svc)
	if wrap != nil {
		e.locks = wrap(e.svc)
	}
	e.pol, err = policy.New(pc, policy.Dependencies{Registerer: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	conf := DefaultConfiguration()
	conf.FlushInterval, conf.ExpireInterval = 10*time.Millisecond, 20*time.Millisecond
	e.p, err = New(conf, Dependencies{Detect: detect.Defaults(), Customers: []netip.Prefix{customers},
		Policy: e.pol, Store: db, Locks: e.locks, Clock: e.clk.Now, Logger: quiet, Registerer: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func scanFinding(ip string, at time.Time) detect.Finding {
	src := netip.MustParseAddr(ip)
	f := detect.Finding{Kind: detect.KindNetscan, Direction: detect.DirOut, InternalIP: src, Rule: "netscan.horizontal",
		Measured: 300, Threshold: 250, Unit: "destinations", FirstSeen: at.Add(-time.Minute), LastSeen: at, SamplingRate: 1, Samples: 300, Port: 22}
	for i := range 300 {
		f.Probes = append(f.Probes, detect.Probe{Time: at, Src: src, Dst: netip.AddrFrom4([4]byte{198, 18, byte(i / 256), byte(i)}), DstPort: 22, Proto: 6})
	}
	return f
}

// TestFindingToLockWithEvidence: a netscan finding is stored as a case with
// its evidence, locks the address with the netscan log attached to the
// queued mail; a second finding appends to the case and locks nothing more.
func TestFindingToLockWithEvidence(t *testing.T) {
	e := newEnv(t, 2, policy.DefaultConfiguration(), nil)
	ctx := context.Background()
	if err := e.p.Handle(ctx, scanFinding("198.51.100.1", e.clk.Now())); err != nil {
		t.Fatal(err)
	}
	cases, err := e.db.ListFindings(ctx, store.FindingFilter{IP: netip.MustParseAddr("198.51.100.1")})
	if err != nil || len(cases) != 1 {
		t.Fatalf("cases %+v %v", cases, err)
	}
	c := cases[0]
	if c.LockID == 0 || c.Kind != "netscan" || c.CustomerID == 0 || !strings.Contains(string(c.Detail), `"action":"lock"`) {
		t.Fatalf("case %+v detail %s", c, c.Detail)
	}
	l, err := e.svc.GetLock(ctx, lock.System, c.LockID)
	if err != nil || l.Reason != lock.ReasonNetscan || l.State != lock.StateLocked || l.FindingID != c.ID || l.Prefixes[0] != netip.MustParsePrefix("198.51.100.1/32") {
		t.Fatalf("lock %+v %v", l, err)
	}
	mails, err := e.db.ListMails(ctx, l.ID, 0, 10)
	if err != nil || len(mails) != 1 {
		t.Fatalf("mails %d %v", len(mails), err)
	}
	var names []string
	for _, a := range mails[0].Attachments {
		names = append(names, a.Name)
		if a.Name == "netscan.log" && !strings.Contains(string(a.Data), "Netscan detected from host   198.51.100.1") {
			t.Errorf("netscan.log:\n%.300s", a.Data)
		}
	}
	if strings.Join(names, ",") != "netscan.log" {
		t.Errorf("attachments %v, want the netscan log (flow findings without packets have no dump or pcap)", names)
	}

	e.clk.Add(20 * time.Minute)
	if err := e.p.Handle(ctx, scanFinding("198.51.100.1", e.clk.Now())); err != nil {
		t.Fatal(err)
	}
	cases, _ = e.db.ListFindings(ctx, store.FindingFilter{IP: netip.MustParseAddr("198.51.100.1")})
	if len(cases) != 1 || cases[0].Count != 2 || cases[0].LockID != l.ID {
		t.Fatalf("after a second finding: %+v", cases)
	}
	ls, _ := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{})
	if len(ls) != 1 {
		t.Errorf("%d locks after a repeated finding, want 1", len(ls))
	}
	if v := testutil.ToFloat64(e.p.m.outcomes.WithLabelValues("appended", "ok")); v != 1 {
		t.Errorf("appended outcomes %v", v)
	}
	ev, _ := e.db.FindingEvidence(ctx, c.ID, false)
	if len(ev) != 4 { // netscan.log and finding.json, twice
		t.Errorf("%d evidence files, want 4", len(ev))
	}
}

// TestCircuitBreakerFlood: findings from 15 servers at once: the first 10
// lock, then the breaker opens, the rest queue for review, the alert is
// raised once and its state is readable.
func TestCircuitBreakerFlood(t *testing.T) {
	pc := policy.DefaultConfiguration()
	pc.AutoLockLimit = policy.RateLimit{PerHour: 100, PerCustomer: 5}
	e := newEnv(t, 15, pc, nil)
	var alerts []policy.BreakerState
	e.pol, _ = policy.New(pc, policy.Dependencies{OnTrip: func(s policy.BreakerState) { alerts = append(alerts, s) }})
	e.p.deps.Policy = e.pol
	ctx := context.Background()
	for i := 1; i <= 15; i++ {
		if err := e.p.Handle(ctx, scanFinding(fmt.Sprintf("198.51.100.%d", i), e.clk.Now())); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(time.Second)
	}
	ls, _ := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{})
	if len(ls) != 10 {
		t.Errorf("%d locks, want 10 before the breaker opened", len(ls))
	}
	st := e.pol.State()
	if !st.Open || !strings.Contains(st.Reason, "11 servers tripped netscan") || len(alerts) != 1 {
		t.Errorf("breaker %+v, alerts %d", st, len(alerts))
	}
	cases, _ := e.db.ListFindings(ctx, store.FindingFilter{Kind: "netscan"})
	review := 0
	for _, c := range cases {
		if c.LockID == 0 && strings.Contains(string(c.Detail), `"action":"review"`) {
			review++
		}
	}
	if len(cases) != 15 || review != 5 {
		t.Errorf("%d cases, %d queued for review; want 15 and 5", len(cases), review)
	}
	if v := testutil.ToFloat64(e.p.m.outcomes.WithLabelValues("review", "ok")); v != 5 {
		t.Errorf("review outcome metric %v", v)
	}
}

// failingLocks fails CreateLock, as if padlock died between recording the
// finding and creating the lock.
type failingLocks struct {
	Locks
	fail bool
}

func (f *failingLocks) CreateLock(ctx context.Context, a lock.Actor, req lock.CreateLockRequest, key string) (lock.Lock, error) {
	if f.fail {
		return lock.Lock{}, fmt.Errorf("killed")
	}
	return f.Locks.CreateLock(ctx, a, req, key)
}

// TestRecoverInterruptedAction: a decided lock that never reached the lock
// service is applied at the next start, once, however often it recovers.
func TestRecoverInterruptedAction(t *testing.T) {
	var fl *failingLocks
	e := newEnv(t, 1, policy.DefaultConfiguration(), func(l Locks) Locks { fl = &failingLocks{Locks: l, fail: true}; return fl })
	ctx := context.Background()
	if err := e.p.Handle(ctx, scanFinding("198.51.100.1", e.clk.Now())); err == nil {
		t.Fatal("no error from the failing lock service")
	}
	fl.fail = false
	e.p.recover(ctx)
	e.p.recover(ctx)
	ls, _ := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{})
	cases, _ := e.db.ListFindings(ctx, store.FindingFilter{})
	if len(ls) != 1 || len(cases) != 1 || cases[0].LockID != ls[0].ID {
		t.Fatalf("locks %+v cases %+v", ls, cases)
	}
	mails, _ := e.db.ListMails(ctx, ls[0].ID, 0, 10)
	if len(mails) != 1 || len(mails[0].Attachments) == 0 {
		t.Errorf("mails %+v", mails)
	}
}

// TestInboundBlackholeExpires: an inbound victim is blackholed as inbound
// protection and the sweeper lifts it when its expiry passes.
func TestInboundBlackholeExpires(t *testing.T) {
	pc := policy.DefaultConfiguration()
	pc.InboundBlackhole = policy.InboundBlackhole{Enabled: true, Expiry: 30 * time.Minute}
	e := newEnv(t, 1, pc, nil)
	ctx := context.Background()
	now := e.clk.Now()
	f := detect.Finding{Kind: detect.KindPacketLimit, Direction: detect.DirIn, InternalIP: netip.MustParseAddr("198.51.100.1"), Rule: "packet_limit.pps",
		Measured: 200000, Threshold: 100000, FirstSeen: now.Add(-time.Minute), LastSeen: now, SamplingRate: 1, Samples: 5000,
		Summary: &detect.Summary{Direction: detect.DirIn, Internal: netip.MustParseAddr("198.51.100.1"), ThresholdPPS: 100000, Window: 300 * time.Second}}
	if err := e.p.Handle(ctx, f); err != nil {
		t.Fatal(err)
	}
	ls, _ := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{})
	if len(ls) != 1 || ls[0].Reason != lock.ReasonPacketLimit {
		t.Fatalf("locks %+v", ls)
	}
	if !ls[0].InboundProtection || ls[0].ExpiresAt == nil || !ls[0].ExpiresAt.Equal(now.Add(30*time.Minute)) {
		t.Errorf("inbound protection %v, expires %v; want the lock's own fields set", ls[0].InboundProtection, ls[0].ExpiresAt)
	}
	if ls[0].Method != lock.MethodBlackhole {
		t.Errorf("method %q: the victim's blackhole must be an RTBH, not the reason's method", ls[0].Method)
	}
	e.clk.Add(29 * time.Minute)
	e.p.Sweep(ctx)
	if l, _ := e.svc.GetLock(ctx, lock.System, ls[0].ID); l.State != lock.StateLocked {
		t.Fatalf("lifted early: %s", l.State)
	}
	e.clk.Add(2 * time.Minute)
	e.p.Sweep(ctx)
	if l, _ := e.svc.GetLock(ctx, lock.System, ls[0].ID); l.State != lock.StateUnlocked || l.ProbationUntil != nil {
		t.Fatalf("not lifted after expiry: %s (probation %v: a victim is on no probation)", l.State, l.ProbationUntil)
	}
	if a, _ := e.svc.ListAudit(ctx, lock.System, lock.AuditFilter{LockID: ls[0].ID, Action: string(lock.ActionUnlock)}); len(a) != 1 || a[0].Note != lock.ExpiredNote {
		t.Errorf("unlock audit %+v, want one with %q", a, lock.ExpiredNote)
	}
}

// TestRecordsThroughEngine: records handed to the sink reach the engine
// and a horizontal scan becomes a stored, locked case without Handle being
// called by the test; a sampling-rate change opens the breaker.
func TestRecordsThroughEngine(t *testing.T) {
	e := newEnv(t, 1, policy.DefaultConfiguration(), nil)
	e.clk.t = time.Now().UTC()
	ctx := context.Background()
	if err := e.p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.p.Stop(ctx)
	sink := e.p.Sink()
	start := time.Now().UTC().Add(-30 * time.Second)
	exporter := netip.MustParseAddr("127.0.0.1")
	for i := range 300 {
		r := flow.Record{Start: start.Add(time.Duration(i) * time.Millisecond), End: start.Add(time.Duration(i) * time.Millisecond), Format: flow.FormatNetFlow9,
			Exporter: exporter, SamplingRate: 1, SrcAddr: netip.MustParseAddr("198.51.100.1"), DstAddr: netip.AddrFrom4([4]byte{198, 18, byte(i / 256), byte(i)}),
			SrcPort: 40000, DstPort: 22, Proto: 6, TCPFlags: flow.TCPSyn, Packets: 1, Bytes: 44, SampledPackets: 1, SampledBytes: 44}
		sink.Record(&r)
	}
	end := time.Now().Add(20 * time.Second)
	for {
		ls, _ := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{})
		if len(ls) == 1 && ls[0].Reason == lock.ReasonNetscan {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no lock from the record stream; locks %+v", ls)
		}
		e.clk.Add(time.Second)
		time.Sleep(50 * time.Millisecond)
	}
	if v := metricValue(t, e.reg, "padlock_ingest_records_total"); v != 300 {
		t.Errorf("records metric %v", v)
	}
	r := flow.Record{Start: time.Now(), End: time.Now(), Format: flow.FormatNetFlow9, Exporter: exporter, SamplingRate: 100,
		SrcAddr: netip.MustParseAddr("198.51.100.1"), DstAddr: netip.MustParseAddr("198.18.9.9"), Proto: 6, Packets: 100}
	sink.Record(&r)
	if st := e.pol.State(); !st.Open || !strings.Contains(st.Reason, "changed from 1 to 100") {
		t.Errorf("breaker after a sampling change: %+v", st)
	}
}

// scanRecords are the flow records of a horizontal SYN scan from src.
func scanRecords(src netip.Addr, start time.Time) []flow.Record {
	out := make([]flow.Record, 0, 300)
	for i := range 300 {
		at := start.Add(time.Duration(i) * time.Millisecond)
		out = append(out, flow.Record{Start: at, End: at, Format: flow.FormatNetFlow9, Exporter: netip.MustParseAddr("127.0.0.1"), SamplingRate: 1,
			SrcAddr: src, DstAddr: netip.AddrFrom4([4]byte{198, 18, byte(i / 256), byte(i)}), SrcPort: 40000, DstPort: 22, Proto: 6,
			TCPFlags: flow.TCPSyn, Packets: 1, Bytes: 44, SampledPackets: 1, SampledBytes: 44})
	}
	return out
}

// TestCircuitBreakerFromRecords: 15 servers scan at once; their records go
// through the sink and the engine. Automatic locking stops after the 10th,
// the breaker is open with its reason, the alert fired, and the other
// cases wait for review.
func TestCircuitBreakerFromRecords(t *testing.T) {
	pc := policy.DefaultConfiguration()
	pc.AutoLockLimit = policy.RateLimit{PerHour: 100, PerCustomer: 5}
	e := newEnv(t, 15, pc, nil)
	var mu sync.Mutex
	var alerts []policy.BreakerState
	e.pol, _ = policy.New(pc, policy.Dependencies{OnTrip: func(s policy.BreakerState) { mu.Lock(); alerts = append(alerts, s); mu.Unlock() }})
	e.p.deps.Policy = e.pol
	e.clk.t = time.Now().UTC()
	ctx := context.Background()
	if err := e.p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.p.Stop(ctx)
	start := time.Now().UTC().Add(-30 * time.Second)
	var wg sync.WaitGroup
	for w := range 3 { // three collector goroutines, five servers each
		wg.Add(1)
		go func() {
			defer wg.Done()
			sink := e.p.NewSink(w)
			for i := w*5 + 1; i <= w*5+5; i++ {
				for _, r := range scanRecords(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), start) {
					sink.Record(&r)
				}
			}
		}()
	}
	wg.Wait()
	end := time.Now().Add(30 * time.Second)
	for {
		cases, _ := e.db.ListFindings(ctx, store.FindingFilter{Kind: "netscan"})
		if len(cases) == 15 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d cases from 15 scanning servers", len(cases))
		}
		e.clk.Add(time.Second)
		time.Sleep(50 * time.Millisecond)
	}
	ls, _ := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{})
	if len(ls) != 10 {
		t.Errorf("%d locks, want 10: automatic locking must stop when the 11th server trips netscan", len(ls))
	}
	st := e.pol.State()
	mu.Lock()
	n := len(alerts)
	mu.Unlock()
	if !st.Open || !strings.Contains(st.Reason, "servers tripped netscan") || n != 1 {
		t.Errorf("breaker %+v, %d alerts", st, n)
	}
	if v := metricValue(t, e.reg, "padlock_ingest_dropped_records_total"); v != 0 {
		t.Errorf("%v records dropped", v)
	}
}

// metricValue reads one unlabelled counter or gauge from the registry.
func metricValue(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	tb.Fatalf("metric %s not registered", name)
	return 0
}
