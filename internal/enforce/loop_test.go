package enforce

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// memDriver is an in-memory equipment for unit tests of the loop.
type memDriver struct {
	name   string
	caps   Capabilities
	mu     sync.Mutex
	blocks map[string]Block
	allows map[string]Allow
	fail   error // Apply fails (after applying nothing) while set
	calls  int
}

func newMem(name string, allow bool) *memDriver {
	return &memDriver{name: name, caps: Capabilities{BlockInbound: true, BlockOutbound: true, Allow: allow,
		Scopes: []Scope{ScopeAddress, ScopeSubnet}}, blocks: map[string]Block{}, allows: map[string]Allow{}}
}

func (m *memDriver) Name() string               { return m.name }
func (m *memDriver) Capabilities() Capabilities { return m.caps }
func (m *memDriver) Apply(_ context.Context, c Change) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail != nil {
		return m.fail
	}
	for _, a := range c.Add.Allows {
		m.allows[a.Key()] = a
	}
	for _, b := range c.Add.Blocks {
		m.blocks[b.Key()] = Block{Target: b.Target}
	}
	for _, b := range c.Remove.Blocks {
		delete(m.blocks, b.Key())
	}
	for _, a := range c.Remove.Allows {
		delete(m.allows, a.Key())
	}
	return nil
}
func (m *memDriver) Applied(context.Context) (Desired, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var d Desired
	for _, b := range m.blocks {
		d.Blocks = append(d.Blocks, b)
	}
	for _, a := range m.allows {
		d.Allows = append(d.Allows, Allow{Source: a.Source, Target: a.Target})
	}
	return d, nil
}

type staticSource struct {
	mu sync.Mutex
	d  Desired
}

func (s *staticSource) Desired(context.Context) (Desired, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d, nil
}
func (s *staticSource) set(d Desired) { s.mu.Lock(); s.d = d; s.mu.Unlock() }

var (
	srv    = netip.MustParseAddr("203.0.113.10")
	client = netip.MustParseAddr("198.51.100.7")
)

func newTestLoop(t *testing.T, src Source, drivers ...Driver) (*Loop, *prometheus.Registry, *time.Time) {
	t.Helper()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cfg := DefaultConfiguration()
	cfg.Protected = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/29")}
	reg := prometheus.NewRegistry()
	l, err := New(cfg, Dependencies{Source: src, Drivers: drivers, Registerer: reg, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return l, reg, &now
}

func TestProtectedPrefixIsRefused(t *testing.T) {
	nft := newMem(MethodNftables, true)
	src := &staticSource{d: Desired{Blocks: []Block{{LockID: 1, Target: Address(netip.MustParseAddr("203.0.113.5")), Method: MethodNftables}}}}
	l, _, _ := newTestLoop(t, src, nft)
	if err := l.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, _ := l.Status(1)
	if s.State != StateRefused || !strings.Contains(s.Err, "protected prefix 203.0.113.0/29") {
		t.Fatalf("status = %+v, want refused naming the protected prefix", s)
	}
	if len(nft.blocks) != 0 {
		t.Fatalf("protected address was blocked: %v", nft.blocks)
	}
}

func TestFailedApplyIsPendingThenApplied(t *testing.T) {
	nft := newMem(MethodNftables, true)
	nft.fail = errors.New("netlink: operation not permitted")
	src := &staticSource{d: Desired{Blocks: []Block{{LockID: 7, Target: Address(srv), Method: MethodNftables}}}}
	var seen []Status
	l, reg, _ := newTestLoop(t, src, nft)
	l.deps.OnStatus = func(s Status) { seen = append(seen, s) }
	if err := l.Reconcile(context.Background()); err == nil {
		t.Fatal("reconcile with a failing driver returned no error")
	}
	s, ok := l.Status(7)
	if !ok || s.State != StatePending || !strings.Contains(s.Err, "operation not permitted") || s.Attempts != 1 {
		t.Fatalf("status = %+v, want pending with the driver error", s)
	}
	if got := value(t, l.metrics.failures.WithLabelValues(MethodNftables)); got != 1 {
		t.Fatalf("failures_total = %v, want 1", got)
	}
	nft.fail = nil
	if err := l.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s, _ := l.Status(7); s.State != StateApplied || s.Err != "" {
		t.Fatalf("status after recovery = %+v, want applied", s)
	}
	if len(seen) != 2 || seen[0].State != StatePending || seen[1].State != StateApplied {
		t.Fatalf("OnStatus calls = %+v", seen)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count uint64
	for _, mf := range mfs {
		if mf.GetName() == "padlock_enforce_reconcile_duration_seconds" {
			count = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if count != 2 {
		t.Fatalf("reconcile_duration_seconds count = %d, want 2", count)
	}
	// Unlock: rule removed, status forgotten.
	src.set(Desired{})
	if err := l.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Status(7); ok || len(nft.blocks) != 0 {
		t.Fatalf("after unlock: status kept or rule left: %v", nft.blocks)
	}
}

func TestDriftIsCountedAndRepaired(t *testing.T) {
	nft := newMem(MethodNftables, true)
	src := &staticSource{d: Desired{Blocks: []Block{{LockID: 1, Target: Address(srv), Method: MethodNftables}}}}
	l, _, _ := newTestLoop(t, src, nft)
	ctx := context.Background()
	if err := l.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	nft.mu.Lock()
	nft.blocks = map[string]Block{"198.18.0.1/32": {Target: Address(netip.MustParseAddr("198.18.0.1"))}} // hand edit
	nft.mu.Unlock()
	if err := l.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := value(t, l.metrics.drift.WithLabelValues(MethodNftables)); got != 2 {
		t.Fatalf("drift_total = %v, want 2 (one missing, one foreign)", got)
	}
	got, _ := nft.Applied(ctx)
	if diff := cmp.Diff([]Block{{Target: Address(srv)}}, got.Blocks, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Fatalf("blocks after repair (-want +got):\n%s", diff)
	}
}

func TestAllowExpires(t *testing.T) {
	nft := newMem(MethodNftables, true)
	bh := newMem(MethodBlackhole, false)
	l, _, now := newTestLoop(t, &staticSource{}, nft, bh)
	l.deps.Source = &staticSource{d: Desired{
		Blocks: []Block{{LockID: 1, Target: Address(srv), Method: MethodNftables}},
		Allows: []Allow{{LockID: 1, Source: client, Target: Address(srv), Expires: now.Add(time.Hour), Method: MethodNftables}},
	}}
	ctx := context.Background()
	if err := l.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if len(nft.allows) != 1 || !l.nextExpiry.Equal(now.Add(time.Hour)) {
		t.Fatalf("allow not applied or expiry not scheduled: %v %v", nft.allows, l.nextExpiry)
	}
	*now = now.Add(time.Hour)
	if err := l.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if len(nft.allows) != 0 {
		t.Fatalf("expired allow still applied: %v", nft.allows)
	}
	if s, _ := l.Status(1); s.State != StateApplied {
		t.Fatalf("status = %+v", s)
	}
	// A blackhole cannot whitelist: refused, not silently ignored.
	l.deps.Source = &staticSource{d: Desired{
		Blocks: []Block{{LockID: 2, Target: Address(srv), Method: MethodBlackhole}},
		Allows: []Allow{{LockID: 2, Source: client, Target: Address(srv), Method: MethodBlackhole}},
	}}
	if err := l.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := l.Status(2); s.State != StateRefused || !strings.Contains(s.Err, "whitelist") {
		t.Fatalf("status = %+v, want refused whitelist", s)
	}
}

func TestDiffRenewsEarlierExpiry(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := Allow{Source: client, Target: Address(srv)}
	have := a
	have.Expires = t0
	want := a
	want.Expires = t0.Add(time.Hour)
	c := Diff(Desired{Allows: []Allow{want}}, Desired{Allows: []Allow{have}})
	if len(c.Add.Allows) != 1 || len(c.Remove.Allows) != 0 {
		t.Fatalf("change = %+v, want one re-add", c)
	}
	if c := Diff(Desired{Allows: []Allow{have}}, Desired{Allows: []Allow{have}}); !c.Empty() {
		t.Fatalf("change = %+v, want empty", c)
	}
}

func TestStartReconcilesAndTriggers(t *testing.T) {
	nft := newMem(MethodNftables, true)
	src := &staticSource{}
	cfg := DefaultConfiguration()
	l, err := New(cfg, Dependencies{Source: src, Drivers: []Driver{nft}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer l.Stop(ctx)
	src.set(Desired{Blocks: []Block{{LockID: 3, Target: Address(srv), Method: MethodNftables}}})
	l.Trigger()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if s, ok := l.Status(3); ok && s.State == StateApplied {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lock not applied within 2s of Trigger")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue() + m.GetGauge().GetValue()
}

func TestNotEffectiveIsPendingAndStillRemoved(t *testing.T) {
	bh := newMem(MethodBlackhole, false)
	src := &staticSource{d: Desired{Blocks: []Block{{LockID: 5, Target: Address(srv), Method: MethodBlackhole}}}}
	l, _, _ := newTestLoop(t, src, notEffectiveDriver{bh})
	ctx := context.Background()
	if err := l.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := l.Status(5); s.State != StatePending || !strings.Contains(s.Err, "family not negotiated") {
		t.Fatalf("status = %+v, want pending with the driver's reason", s)
	}
	src.set(Desired{})
	if err := l.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if len(bh.blocks) != 0 {
		t.Fatalf("unwanted rule that was not in effect left configured: %v", bh.blocks)
	}
}

// notEffectiveDriver reports everything configured but not in effect.
type notEffectiveDriver struct{ *memDriver }

func (d notEffectiveDriver) Applied(ctx context.Context) (Desired, error) {
	got, err := d.memDriver.Applied(ctx)
	for i := range got.Blocks {
		got.Blocks[i].NotEffective = "family not negotiated"
	}
	return got, err
}

// flakyDriver fails its first n Applies.
type flakyDriver struct {
	*memDriver
	mu sync.Mutex
	n  int
}

func (d *flakyDriver) Apply(ctx context.Context, c Change) error {
	d.mu.Lock()
	fail := d.n > 0
	d.n--
	d.mu.Unlock()
	if fail {
		return errors.New("device busy")
	}
	return d.memDriver.Apply(ctx, c)
}

// The running loop retries a failed lock by itself (backoff) and removes a
// whitelist when it expires, without any Trigger.
func TestRunningLoopRetriesAndExpires(t *testing.T) {
	d := &flakyDriver{memDriver: newMem(MethodNftables, true), n: 3}
	exp := time.Now().Add(300 * time.Millisecond)
	src := &staticSource{d: Desired{
		Blocks: []Block{{LockID: 1, Target: Address(srv), Method: MethodNftables}},
		Allows: []Allow{{LockID: 1, Source: client, Target: Address(srv), Expires: exp, Method: MethodNftables}},
	}}
	cfg := DefaultConfiguration()
	cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 20*time.Millisecond
	var mu sync.Mutex
	var states []State
	l, err := New(cfg, Dependencies{Source: src, Drivers: []Driver{d}, OnStatus: func(s Status) {
		mu.Lock()
		states = append(states, s.State)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer l.Stop(ctx)
	deadline := time.Now().Add(2 * time.Second)
	for {
		s, _ := l.Status(1)
		if s.State == StateApplied {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not applied after retries: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	if states[0] != StatePending {
		t.Errorf("first status %s, want pending while the device fails", states[0])
	}
	mu.Unlock()
	d.memDriver.mu.Lock()
	n := len(d.memDriver.allows)
	d.memDriver.mu.Unlock()
	if n != 1 {
		t.Fatalf("whitelist not applied: %d", n)
	}
	for {
		d.memDriver.mu.Lock()
		n := len(d.memDriver.allows)
		d.memDriver.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(exp.Add(500 * time.Millisecond)) {
			t.Fatal("whitelist still applied 500ms after it expired")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if late := time.Since(exp); late < 0 {
		t.Fatalf("whitelist removed %s before it expired", -late)
	}
}
