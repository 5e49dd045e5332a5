package nftables

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"padlock/internal/enforce"
)

// The test topology, made by the test and deleted again (also on failure);
// veth pairs are created inside the namespaces, never on the host:
//
//	srv (203.0.113.10) ── edge (padlock's table, forwarding) ── inet (clients A 198.51.100.7, B 198.51.100.8)
type topology struct {
	srv, edge, inet string
}

var (
	server  = netip.MustParseAddr("203.0.113.10")
	clientA = netip.MustParseAddr("198.51.100.7")
	clientB = netip.MustParseAddr("198.51.100.8")
)

func need(t testing.TB) {
	t.Helper()
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root"
	}
	for _, tool := range []string{"ip", "nft", "nc", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = tool
		}
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s needed (CI is set)", missing)
		}
		t.Skipf("%s needed", missing)
	}
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newTopology(t testing.TB) *topology {
	t.Helper()
	p := fmt.Sprintf("pl-enforce-%d-", os.Getpid())
	tp := &topology{srv: p + "srv", edge: p + "edge", inet: p + "inet"}
	t.Cleanup(func() {
		for _, ns := range []string{tp.srv, tp.edge, tp.inet} {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for _, ns := range []string{tp.srv, tp.edge, tp.inet} {
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", tp.srv, "link", "add", "eth0", "type", "veth", "peer", "name", "s0", "netns", tp.edge)
	run(t, "ip", "-n", tp.inet, "link", "add", "eth0", "type", "veth", "peer", "name", "i0", "netns", tp.edge)
	run(t, "ip", "-n", tp.srv, "addr", "add", "203.0.113.10/24", "dev", "eth0")
	run(t, "ip", "-n", tp.edge, "addr", "add", "203.0.113.1/24", "dev", "s0")
	run(t, "ip", "-n", tp.edge, "addr", "add", "198.51.100.1/24", "dev", "i0")
	run(t, "ip", "-n", tp.inet, "addr", "add", "198.51.100.7/24", "dev", "eth0")
	run(t, "ip", "-n", tp.inet, "addr", "add", "198.51.100.8/24", "dev", "eth0")
	for _, l := range [][2]string{{tp.srv, "eth0"}, {tp.edge, "s0"}, {tp.edge, "i0"}, {tp.inet, "eth0"}} {
		run(t, "ip", "-n", l[0], "link", "set", l[1], "up")
	}
	run(t, "ip", "-n", tp.srv, "route", "add", "default", "via", "203.0.113.1")
	run(t, "ip", "-n", tp.inet, "route", "add", "default", "via", "198.51.100.1")
	run(t, "ip", "netns", "exec", tp.edge, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// SSH-like listener on the server, and a listener on the clients for
	// connections the server opens.
	tp.listen(t, tp.srv, "22")
	tp.listen(t, tp.inet, "8080")
	return tp
}

// listen opens a TCP listener inside ns that accepts every connection and
// closes it at once. It is a socket of this process (made on a thread moved
// into ns), not "nc -lk": that serves one connection at a time, so a
// connection whose FIN a lock dropped kept it busy and filled its backlog,
// and later probes failed although nothing dropped them any more.
func (tp *topology) listen(t testing.TB, ns, port string) {
	t.Helper()
	ln, err := inNetNS(ns, func() (net.Listener, error) { return net.Listen("tcp4", ":"+port) })
	if err != nil {
		t.Fatalf("listener on %s:%s: %v", ns, port, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
}

// inNetNS runs f on a locked OS thread switched into the named namespace;
// sockets f opens stay in that namespace.
func inNetNS[T any](ns string, f func() (T, error)) (T, error) {
	var zero T
	h, err := netns.GetFromName(ns)
	if err != nil {
		return zero, err
	}
	defer h.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return zero, err
	}
	defer orig.Close()
	if err := netns.Set(h); err != nil {
		runtime.UnlockOSThread()
		return zero, err
	}
	defer func() {
		// A thread that cannot go back stays locked, so the runtime ends
		// it with this goroutine instead of reusing it in the wrong namespace.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return f()
}

// reach reports whether a TCP connection from src (in ns) to dst:port
// succeeds within one second.
func reach(ns string, src, dst netip.Addr, port string) bool {
	return exec.Command("ip", "netns", "exec", ns, "nc", "-z", "-w1", "-s", src.String(), dst.String(), port).Run() == nil
}

func ping(ns string, src, dst netip.Addr) bool {
	return exec.Command("ip", "netns", "exec", ns, "ping", "-c1", "-W1", "-I", src.String(), dst.String()).Run() == nil
}

// connectivity checks all six paths in parallel: A and B to the server's
// port 22 and by ping, the server to A and B.
type connectivity struct{ aTCP, bTCP, aPing, bPing, srvToA, srvToB bool }

func (tp *topology) check() connectivity {
	var c connectivity
	var wg sync.WaitGroup
	for _, f := range []func(){
		func() { c.aTCP = reach(tp.inet, clientA, server, "22") },
		func() { c.bTCP = reach(tp.inet, clientB, server, "22") },
		func() { c.aPing = ping(tp.inet, clientA, server) },
		func() { c.bPing = ping(tp.inet, clientB, server) },
		func() { c.srvToA = reach(tp.srv, server, clientA, "8080") },
		func() { c.srvToB = reach(tp.srv, server, clientB, "8080") },
	} {
		wg.Go(f)
	}
	wg.Wait()
	return c
}

type source struct {
	mu sync.Mutex
	d  enforce.Desired
}

func (s *source) Desired(context.Context) (enforce.Desired, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d, nil
}
func (s *source) set(d enforce.Desired) { s.mu.Lock(); s.d = d; s.mu.Unlock() }

func startLoop(t testing.TB, tp *topology, src enforce.Source) (*Driver, *enforce.Loop) {
	t.Helper()
	cfg := DefaultConfiguration()
	cfg.NetNS = "/run/netns/" + tp.edge
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	lc := enforce.DefaultConfiguration()
	lc.Interval = 200 * time.Millisecond
	lc.MinBackoff, lc.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
	loop, err := enforce.New(lc, enforce.Dependencies{Source: src, Drivers: []enforce.Driver{d}})
	if err != nil {
		t.Fatal(err)
	}
	if err := loop.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loop.Stop(ctx); _ = d.Stop(ctx) })
	return d, loop
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// firstDrop dials the server from client B inside the inet namespace until
// a connection fails, and returns when that happened.
func firstDrop(tp *topology, limit time.Duration) (time.Time, error) {
	return inNetNS(tp.inet, func() (time.Time, error) {
		d := net.Dialer{Timeout: 100 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: clientB.AsSlice()}}
		end := time.Now().Add(limit)
		for time.Now().Before(end) {
			c, err := d.Dial("tcp4", "203.0.113.10:22")
			if err != nil {
				return time.Now().Add(-d.Timeout), nil // the SYN that went unanswered was sent then
			}
			c.Close()
			time.Sleep(time.Millisecond)
		}
		return time.Time{}, fmt.Errorf("no drop within %s", limit)
	})
}

func TestLockWhitelistUnlockWithRealPackets(t *testing.T) {
	need(t)
	tp := newTopology(t)
	if got := tp.check(); got != (connectivity{true, true, true, true, true, true}) {
		t.Fatalf("before the lock: %+v, want everything reachable", got)
	}
	src := &source{}
	d, loop := startLoop(t, tp, src)

	// Lock the server; measure from the lock to the first dropped SYN.
	type drop struct {
		at  time.Time
		err error
	}
	dropped := make(chan drop, 1)
	go func() { at, err := firstDrop(tp, 3*time.Second); dropped <- drop{at, err} }()
	time.Sleep(20 * time.Millisecond) // the prober is connecting successfully
	lockAt := time.Now()
	src.set(enforce.Desired{Blocks: []enforce.Block{{LockID: 1, Target: enforce.Address(server), Method: enforce.MethodNftables}}})
	loop.Trigger()
	if r := <-dropped; r.err != nil {
		t.Fatal(r.err)
	} else {
		t.Logf("lock → first dropped packet: %s", max(r.at.Sub(lockAt), 0))
	}
	waitFor(t, 2*time.Second, "lock applied", func() bool { s, _ := loop.Status(1); return s.State == enforce.StateApplied })
	if got := tp.check(); got != (connectivity{}) {
		t.Fatalf("locked: %+v, want nothing reachable in either direction", got)
	}

	// Whitelist client A: A reaches port 22 (and the server answers A),
	// B still cannot.
	src.set(enforce.Desired{
		Blocks: []enforce.Block{{LockID: 1, Target: enforce.Address(server), Method: enforce.MethodNftables}},
		Allows: []enforce.Allow{{LockID: 1, Source: clientA, Target: enforce.Address(server), Method: enforce.MethodNftables,
			Expires: time.Now().Add(time.Hour)}},
	})
	loop.Trigger()
	waitFor(t, 2*time.Second, "whitelist applied", func() bool {
		got, _ := d.Applied(context.Background())
		return len(got.Allows) == 1
	})
	if got := tp.check(); got != (connectivity{aTCP: true, aPing: true, srvToA: true}) {
		t.Fatalf("A whitelisted: %+v, want only A ↔ server", got)
	}

	// Drift: the table is deleted by hand; the loop restores it.
	run(t, "ip", "netns", "exec", tp.edge, "nft", "delete", "table", "inet", "padlock")
	waitFor(t, 3*time.Second, "table restored", func() bool {
		out, err := exec.Command("ip", "netns", "exec", tp.edge, "nft", "list", "set", "inet", "padlock", "allow4").CombinedOutput()
		return err == nil && strings.Contains(string(out), "198.51.100.7 . 203.0.113.10")
	})
	if got := tp.check(); got != (connectivity{aTCP: true, aPing: true, srvToA: true}) {
		t.Fatalf("after repair: %+v, want only A ↔ server", got)
	}
	out := run(t, "ip", "netns", "exec", tp.edge, "nft", "list", "table", "inet", "padlock")
	t.Logf("padlock's table:\n%s", out)

	// Unlock: everything reachable again.
	src.set(enforce.Desired{})
	loop.Trigger()
	waitFor(t, 2*time.Second, "unlock applied", func() bool {
		got, _ := d.Applied(context.Background())
		return len(got.Blocks) == 0 && len(got.Allows) == 0
	})
	if got := tp.check(); got != (connectivity{true, true, true, true, true, true}) {
		t.Fatalf("after unlock: %+v, want everything reachable", got)
	}
}

// The kernel expires a whitelist entry on time even while padlock is down.
func TestWhitelistExpiresWithoutPadlock(t *testing.T) {
	need(t)
	tp := newTopology(t)
	src := &source{d: enforce.Desired{
		Blocks: []enforce.Block{{LockID: 1, Target: enforce.Address(server), Method: enforce.MethodNftables}},
		Allows: []enforce.Allow{{LockID: 1, Source: clientA, Target: enforce.Address(server), Method: enforce.MethodNftables,
			Expires: time.Now().Add(1500 * time.Millisecond)}},
	}}
	_, loop := startLoop(t, tp, src)
	waitFor(t, 2*time.Second, "lock applied", func() bool { s, _ := loop.Status(1); return s.State == enforce.StateApplied })
	if !reach(tp.inet, clientA, server, "22") {
		t.Fatal("whitelisted A cannot connect")
	}
	if err := loop.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1600 * time.Millisecond)
	if reach(tp.inet, clientA, server, "22") {
		t.Fatal("A still connects after its whitelist expired")
	}
	out := run(t, "ip", "netns", "exec", tp.edge, "nft", "list", "set", "inet", "padlock", "allow4")
	if strings.Contains(out, "198.51.100.7") {
		t.Fatalf("expired element still in the set:\n%s", out)
	}
}

func TestSubnetLockRoundTrip(t *testing.T) {
	need(t)
	tp := newTopology(t)
	cfg := DefaultConfiguration()
	cfg.NetNS = "/run/netns/" + tp.edge
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Stop(ctx)
	blocks := []enforce.Block{
		{Target: enforce.Target{Prefix: netip.MustParsePrefix("203.0.113.0/28")}},
		{Target: enforce.Target{Prefix: netip.MustParsePrefix("203.0.113.16/32")}},
		{Target: enforce.Target{Prefix: netip.MustParsePrefix("2001:db8:1::/48")}},
		{Target: enforce.Target{Prefix: netip.MustParsePrefix("2001:db8:2::1/128")}},
	}
	if err := d.Apply(ctx, enforce.Change{Add: enforce.Desired{Blocks: blocks}}); err != nil {
		t.Fatal(err)
	}
	got, err := d.Applied(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, b := range got.Blocks {
		keys = append(keys, b.Key())
	}
	want := "203.0.113.0/28 203.0.113.16/32 2001:db8:1::/48 2001:db8:2::1/128"
	if strings.Join(keys, " ") != want {
		t.Fatalf("read back %v, want %s", keys, want)
	}
	if reach(tp.inet, clientA, server, "22") {
		t.Fatal("server in a locked /28 reachable")
	}
	if err := d.Apply(ctx, enforce.Change{Remove: enforce.Desired{Blocks: blocks[:1]}}); err != nil {
		t.Fatal(err)
	}
	if !reach(tp.inet, clientA, server, "22") {
		t.Fatal("server unreachable after its /28 was unlocked")
	}
}

// BenchmarkLockToFirstDrop measures, in the namespace topology, the time
// from a lock (Trigger of the reconcile loop) to the first SYN from a client
// that goes unanswered, and from the unlock to the first answered one.
func BenchmarkLockToFirstDrop(b *testing.B) {
	need(b)
	tp := newTopology(b)
	src := &source{}
	_, loop := startLoop(b, tp, src)
	lock := enforce.Desired{Blocks: []enforce.Block{{LockID: 1, Target: enforce.Address(server), Method: enforce.MethodNftables}}}
	var total time.Duration
	b.ResetTimer()
	for b.Loop() {
		type drop struct {
			at  time.Time
			err error
		}
		dropped := make(chan drop, 1)
		go func() { at, err := firstDrop(tp, 3*time.Second); dropped <- drop{at, err} }()
		time.Sleep(20 * time.Millisecond)
		start := time.Now()
		src.set(lock)
		loop.Trigger()
		r := <-dropped
		if r.err != nil {
			b.Fatal(r.err)
		}
		total += max(r.at.Sub(start), 0)
		src.set(enforce.Desired{})
		loop.Trigger()
		waitFor(b, 3*time.Second, "unlocked", func() bool { return reach(tp.inet, clientB, server, "22") })
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-lock-to-first-drop")
}

// BenchmarkTenThousandLocks adds 10,000 locked addresses and 10,000
// whitelist pairs to the table in the edge namespace and removes them.
func BenchmarkTenThousandLocks(b *testing.B) {
	need(b)
	tp := newTopology(b)
	cfg := DefaultConfiguration()
	cfg.NetNS = "/run/netns/" + tp.edge
	d, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer d.Stop(ctx)
	var want enforce.Desired
	a := netip.MustParseAddr("198.18.0.0")
	for i := range 10000 {
		a = a.Next()
		want.Blocks = append(want.Blocks, enforce.Block{LockID: int64(i), Target: enforce.Address(a)})
		want.Allows = append(want.Allows, enforce.Allow{LockID: int64(i), Source: clientA, Target: enforce.Address(a), Expires: time.Now().Add(time.Hour)})
	}
	b.ResetTimer()
	for b.Loop() {
		if err := d.Apply(ctx, enforce.Change{Add: want}); err != nil {
			b.Fatal(err)
		}
		got, err := d.Applied(ctx)
		if err != nil || len(got.Blocks) != 10000 || len(got.Allows) != 10000 {
			b.Fatalf("applied %d blocks, %d allows: %v", len(got.Blocks), len(got.Allows), err)
		}
		if err := d.Apply(ctx, enforce.Change{Remove: got}); err != nil {
			b.Fatal(err)
		}
	}
}
