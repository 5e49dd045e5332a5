package ingest

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"padlock/internal/detect"
	"padlock/internal/flow"
)

func newIngest(t testing.TB, conf Configuration, onChange func(*flow.Record, uint32)) (*Ingest, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	in, err := New(conf, Dependencies{
		Detect:           detect.Defaults(),
		Networks:         detect.NewPrefixes([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}),
		OnSamplingChange: onChange,
		Registerer:       reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return in, reg
}

// A horizontal SYN scan handed to a collector sink comes out as a netscan
// finding, and a change of an exporter's sampling rate is reported once:
// record by record, and in datagrams of 30 as the collector hands them
// over (flow.Batcher), with batches of 64 filling up inside a datagram.
func TestScanThroughSinkAndSamplingChange(t *testing.T) {
	t.Run("records", func(t *testing.T) { testScanThroughSink(t, 0) })
	t.Run("datagrams", func(t *testing.T) { testScanThroughSink(t, 30) })
}

func testScanThroughSink(t *testing.T, datagram int) {
	var changes atomic.Int32
	conf := DefaultConfiguration()
	if datagram > 0 {
		conf.Batch = 64
	}
	in, reg := newIngest(t, conf, func(r *flow.Record, old uint32) {
		if old != 1 || r.SamplingRate != 100 {
			t.Errorf("sampling change %d → %d", old, r.SamplingRate)
		}
		changes.Add(1)
	})
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	plain := in.NewSink(0)
	n := 0
	sink := flow.SinkFunc(func(r *flow.Record) {
		if datagram == 0 {
			plain.Record(r)
			return
		}
		b := plain.(flow.Batcher)
		if n%datagram == 0 {
			b.BeginBatch()
		}
		b.Record(r)
		n++
		if n%datagram == 0 {
			b.EndBatch()
		}
	})
	defer func() {
		if datagram > 0 && n%datagram != 0 {
			t.Fatal("test bug: a datagram left open")
		}
	}()
	exporter := netip.MustParseAddr("127.0.0.1")
	now := time.Now()
	for i := range 400 {
		r := flow.Record{Start: now, End: now, Format: flow.FormatNetFlow9, Exporter: exporter, SamplingRate: 1,
			SrcAddr: netip.MustParseAddr("203.0.113.10"), DstAddr: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}),
			SrcPort: 40000, DstPort: 22, Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn, Packets: 1, Bytes: 44, SampledPackets: 1, SampledBytes: 44}
		sink.Record(&r)
	}
	r := flow.Record{Start: now, End: now, Format: flow.FormatNetFlow9, Exporter: exporter, SamplingRate: 100,
		SrcAddr: netip.MustParseAddr("198.51.100.1"), DstAddr: netip.MustParseAddr("203.0.113.20"), Proto: flow.ProtoUDP, Packets: 100}
	sink.Record(&r)
	sink.Record(&r)
	// Event time moves past the netscan answer grace: the verdict is due.
	later := now.Add(10 * time.Second)
	r.Start, r.End = later, later
	sink.Record(&r)
	for datagram > 0 && n%datagram != 0 { // fill the last datagram
		sink.Record(&r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var got []detect.Finding
	for f := range in.Findings() {
		got = append(got, f)
	}
	if len(got) != 1 || got[0].Kind != detect.KindNetscan || got[0].InternalIP != netip.MustParseAddr("203.0.113.10") {
		t.Fatalf("findings %+v", got)
	}
	if n := changes.Load(); n != 1 {
		t.Errorf("%d sampling changes reported, want 1", n)
	}
	if want := float64(max(403, n)); testutil.ToFloat64(in.records) != want {
		t.Errorf("records counted %v, want %v", testutil.ToFloat64(in.records), want)
	}
	_ = reg
}

// A full queue drops whole batches and counts them; it never blocks the
// collector.
func TestFullQueueDropsAndCounts(t *testing.T) {
	conf := DefaultConfiguration()
	conf.Queue, conf.Batch = 1, 10
	in, _ := newIngest(t, conf, nil)
	// Not started: nothing drains the queue.
	sink := in.NewSink(0)
	now := time.Now()
	done := make(chan struct{})
	go func() {
		for range 50 {
			r := flow.Record{Start: now, End: now, SrcAddr: netip.MustParseAddr("203.0.113.10"), DstAddr: netip.MustParseAddr("198.18.0.1"), Proto: 17, Packets: 1}
			sink.Record(&r)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the sink blocked on a full queue")
	}
	if d := testutil.ToFloat64(in.dropped); d != 40 {
		t.Errorf("dropped %v records, want 40 (4 of 5 batches)", d)
	}
}

// A sampling-change callback that panics inside a datagram (the collector
// recovers it) loses no records, is not called again for the same change,
// and the sink keeps working for the next datagrams.
func TestPanickingCallbackInDatagram(t *testing.T) {
	var calls atomic.Int32
	conf := DefaultConfiguration()
	conf.Batch = 2
	in, _ := newIngest(t, conf, func(*flow.Record, uint32) {
		if calls.Add(1) == 1 {
			panic("callback")
		}
	})
	if err := in.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := in.NewSink(0).(flow.Batcher)
	now := time.Now()
	rec := func(rate uint32) *flow.Record {
		return &flow.Record{Start: now, End: now, Format: flow.FormatNetFlow9, Exporter: netip.MustParseAddr("127.0.0.1"),
			SamplingRate: rate, SrcAddr: netip.MustParseAddr("198.51.100.1"), DstAddr: netip.MustParseAddr("203.0.113.20"),
			Proto: flow.ProtoUDP, Packets: uint64(rate)}
	}
	datagram := func(rates ...uint32) {
		defer func() { recover() }() // as the collector's worker does
		b.BeginBatch()
		defer b.EndBatch()
		for _, r := range rates {
			b.Record(rec(r))
		}
	}
	datagram(1, 1, 1)
	datagram(10, 10, 10, 10) // a rate change: the callback panics
	datagram(10, 10, 10, 10, 10)
	datagram(1, 1) // a second change: the callback runs normally
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for range in.Findings() {
	}
	if v := testutil.ToFloat64(in.records) + testutil.ToFloat64(in.dropped); v != 14 {
		t.Errorf("records counted or dropped %v, want all 14", v)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("callback called %d times, want 2 (one per change)", n)
	}
}
