package store_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"padlock/internal/lock"
	"padlock/internal/store/storetest"
)

// BenchmarkCreateLock creates locks end to end through the service on
// SQLite — scope resolution, idempotency key, lock row and prefixes, audit
// event, rendered outbox mail, commit — and reports the latency
// percentiles of single calls (target: p99 < 10 ms).
//
//	go test ./internal/store -run XXX -bench CreateLock -benchtime 2000x
func BenchmarkCreateLock(b *testing.B) {
	benchCreateLock(b, storetest.SQLite)
}

// BenchmarkCreateLockPostgres is the same on PostgreSQL.
func BenchmarkCreateLockPostgres(b *testing.B) {
	benchCreateLock(b, storetest.Postgres)
}

func benchCreateLock(b *testing.B, open storetest.Opener) {
	e := storetest.NewEnv(b, open, lock.Configuration{})
	base := netip.MustParseAddr("2001:db8:a::")
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b16 := base.As16()
		b16[12], b16[13], b16[14], b16[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		req := lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{netip.AddrFrom16(b16)}}, Reason: lock.ReasonNonPayment, Note: "invoice overdue"}
		start := time.Now()
		if _, err := e.Svc.CreateLock(e.Ctx, e.Billing, req, fmt.Sprintf("inv-%d", i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
}
