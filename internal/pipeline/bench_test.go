package pipeline

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"padlock/internal/flow"
	"padlock/internal/policy"
)

// BenchmarkSinkToEngine: records from one collector goroutine through the
// batching sink and the queue into the engine (benign traffic: no
// findings). Reports records/s; any drop fails the benchmark.
func BenchmarkSinkToEngine(b *testing.B) {
	e := newEnv(b, 1, policy.DefaultConfiguration(), nil)
	ctx := context.Background()
	if err := e.p.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer e.p.Stop(ctx)
	sink := e.p.NewSink(0)
	now := time.Now().UTC()
	recs := make([]flow.Record, 4096)
	for i := range recs {
		recs[i] = flow.Record{Start: now, End: now, Format: flow.FormatNetFlow9, SamplingRate: 1,
			SrcAddr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 200)}), DstAddr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}),
			SrcPort: 443, DstPort: uint16(30000 + i), Proto: 6, TCPFlags: flow.TCPAck, Packets: 10, Bytes: 10000}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := &recs[i%len(recs)]
		sink.Record(r)
		if i%4096 == 4095 {
			for e.p.in.Queued() > e.p.conf.Queue/2 {
				time.Sleep(100 * time.Microsecond) // stay below the queue bound; a drop would fail
			}
		}
	}
	e.p.in.Stop(context.Background()) // flushes partial batches and works the queue off
	for e.p.in.Queued() > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if d := metricValue(b, e.reg, "padlock_ingest_dropped_records_total"); d != 0 {
		b.Fatalf("%v records dropped", d)
	}
}
