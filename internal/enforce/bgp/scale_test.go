package bgp

import (
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"padlock/internal/enforce"
)

// withBIRD starts BIRD and a padlock speaker+loop peering with it.
func withBIRD(tb testing.TB) (*padlock, *bird, *source) {
	tb.Helper()
	needTool(tb, "bird", "birdc")
	cfg := testConfig(tb)
	_, lport, _ := splitListen(cfg.Listen)
	b := startBIRD(tb, "127.0.0.2", "127.0.0.1", lport, 65002, 65001)
	cfg.Peers = []Peer{{Address: netip.MustParseAddr("127.0.0.2"), ASN: 65002, Port: b.port}}
	src := &source{}
	p := startPadlock(tb, cfg, src)
	waitFor(tb, 20*time.Second, "session established", func() bool {
		peers, _ := p.sp.EstablishedPeers(context.Background())
		return len(peers) == 1
	})
	return p, b, src
}

var imported = regexp.MustCompile(`Routes:\s+(\d+) imported`)

// birdImported returns the number of IPv4 routes BIRD has from padlock.
func (b *bird) imported(tb testing.TB) int {
	m := imported.FindStringSubmatch(b.show(tb, "show", "protocols", "all", "padlock"))
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func manyLocks(n int) enforce.Desired {
	var d enforce.Desired
	base := netip.MustParseAddr("198.18.0.0") // 198.18.0.0/15: 131,072 addresses
	a := base
	for i := range n {
		a = a.Next()
		d.Blocks = append(d.Blocks, enforce.Block{LockID: int64(i + 1), Target: enforce.Address(a), Method: enforce.MethodBlackhole})
	}
	return d
}

// TestTenThousandLocksAtBIRD announces 10,000 blackholes at once and
// withdraws them, checking BIRD's count and every lock's status.
func TestTenThousandLocksAtBIRD(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	p, b, src := withBIRD(t)
	start := time.Now()
	src.set(manyLocks(10000))
	p.loop.Trigger()
	waitFor(t, 30*time.Second, "10,000 routes at BIRD", func() bool { return b.imported(t) == 10000 })
	t.Logf("10,000 locks → all routes at BIRD: %s", time.Since(start))
	waitFor(t, 10*time.Second, "10,000 locks applied", func() bool {
		for _, s := range p.loop.Statuses() {
			if s.State != enforce.StateApplied {
				return false
			}
		}
		return len(p.loop.Statuses()) == 10000
	})
	start = time.Now()
	src.set(enforce.Desired{})
	p.loop.Trigger()
	waitFor(t, 30*time.Second, "10,000 withdrawals at BIRD", func() bool { return b.imported(t) == 0 })
	t.Logf("10,000 unlocks → all withdrawn at BIRD: %s", time.Since(start))
}

// BenchmarkLockToBIRD measures one lock, from Trigger to the route in BIRD's
// table, and its withdrawal.
func BenchmarkLockToBIRD(b *testing.B) {
	p, bd, src := withBIRD(b)
	one := manyLocks(1)
	var lock, unlock time.Duration
	b.ResetTimer()
	for b.Loop() {
		src.set(one)
		p.loop.Trigger()
		lock += waitFor(b, 5*time.Second, "route at BIRD", func() bool { return bd.imported(b) == 1 })
		src.set(enforce.Desired{})
		p.loop.Trigger()
		unlock += waitFor(b, 5*time.Second, "withdrawn at BIRD", func() bool { return bd.imported(b) == 0 })
	}
	b.ReportMetric(float64(lock.Milliseconds())/float64(b.N), "ms-lock-to-BIRD")
	b.ReportMetric(float64(unlock.Milliseconds())/float64(b.N), "ms-unlock-to-BIRD")
}

// BenchmarkTenThousandLocks announces and withdraws 10,000 blackholes per
// iteration, until BIRD has them all and then none.
func BenchmarkTenThousandLocks(b *testing.B) {
	p, bd, src := withBIRD(b)
	many := manyLocks(10000)
	var lock, unlock time.Duration
	b.ResetTimer()
	for b.Loop() {
		src.set(many)
		p.loop.Trigger()
		lock += waitFor(b, 60*time.Second, "10,000 routes at BIRD", func() bool { return bd.imported(b) == 10000 })
		src.set(enforce.Desired{})
		p.loop.Trigger()
		unlock += waitFor(b, 60*time.Second, "withdrawn at BIRD", func() bool { return bd.imported(b) == 0 })
	}
	b.ReportMetric(float64(lock.Milliseconds())/float64(b.N), "ms-10k-locks-to-BIRD")
	b.ReportMetric(float64(unlock.Milliseconds())/float64(b.N), "ms-10k-unlocks-to-BIRD")
}
