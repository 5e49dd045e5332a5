package ingest

import (
	"net/netip"
	"testing"
	"time"

	"padlock/internal/flow"
)

// Exporter pairs that see the same packets are found; routers that each
// see their own share of the traffic are not.
func TestDuplicateExporters(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	a, b, c := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3")
	rec := func(exp netip.Addr, i int, at time.Duration, reply bool) flow.Record {
		src := netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 200)})
		dst := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		sp, dp := uint16(40000+i), uint16(443)
		if reply {
			src, dst, sp, dp = dst, src, dp, sp
		}
		return flow.Record{Exporter: exp, Format: flow.FormatNetFlow9, Start: t0.Add(at), End: t0.Add(at),
			SrcAddr: src, DstAddr: dst, SrcPort: sp, DstPort: dp, Proto: flow.ProtoTCP, Packets: 10, SamplingRate: 1}
	}
	for _, tt := range []struct {
		name string
		feed func(add func(flow.Record))
		want []netip.Addr // the pair found, or none
	}{
		{"sFlow at the switch and NetFlow at the router", func(add func(flow.Record)) {
			for i := range 4000 {
				add(rec(a, i, time.Duration(i)*10*time.Millisecond, false))
				if i%3 == 0 { // sampled: the switch sees a third of the flows
					add(rec(c, i, time.Duration(i)*10*time.Millisecond+2*time.Second, false))
				}
			}
		}, []netip.Addr{a, c}},
		{"asymmetric routing: requests through one router, answers through the other", func(add func(flow.Record)) {
			for i := range 4000 {
				add(rec(a, i, time.Duration(i)*10*time.Millisecond, false))
				add(rec(b, i, time.Duration(i)*10*time.Millisecond+20*time.Millisecond, true))
			}
		}, nil},
		{"ECMP over two routers, and a route change moving a few flows", func(add func(flow.Record)) {
			for i := range 4000 {
				at := time.Duration(i) * 10 * time.Millisecond
				exp := a
				if i%2 == 1 {
					exp = b
				}
				add(rec(exp, i, at, false))
				if i%50 == 0 { // the flow's next record comes through the other router
					other := b
					if exp == b {
						other = a
					}
					add(rec(other, i, at+30*time.Second, false))
				}
			}
		}, nil},
		{"the same flows a day apart (a replayed capture)", func(add func(flow.Record)) {
			for i := range 4000 {
				add(rec(a, i, time.Duration(i)*10*time.Millisecond, false))
			}
			for i := range 4000 {
				add(rec(b, i, 24*time.Hour+time.Duration(i)*10*time.Millisecond, false))
			}
		}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDuplicates()
			now := t0
			d.check(now)
			var batch []flow.Record
			tt.feed(func(r flow.Record) { batch = append(batch, r) })
			for len(batch) > 0 {
				n := min(len(batch), 256)
				d.observe(batch[:n])
				batch = batch[n:]
			}
			now = now.Add(time.Second)
			warn := d.check(now)
			if tt.want == nil {
				if len(warn) != 0 || d.count.Load() != 0 {
					t.Fatalf("found %+v (count %d), want none", warn, d.count.Load())
				}
				return
			}
			if len(warn) != 1 || warn[0].Exporters != [2]netip.Addr{tt.want[0], tt.want[1]} || d.count.Load() != 1 {
				t.Fatalf("found %+v (count %d), want %v", warn, d.count.Load(), tt.want)
			}
			if w := warn[0]; w.Matched < dupMinMatches || w.Matched*10 < w.Followed {
				t.Errorf("pair %+v: matches below what a verdict needs", w)
			}
			// warned once an hour, counted for two periods
			if again := d.check(now.Add(time.Minute)); len(again) != 0 {
				t.Errorf("warned again a minute later: %+v", again)
			}
			if d.check(now.Add(dupPeriod + time.Minute)); d.count.Load() != 1 {
				t.Errorf("the next period counts %d pairs, want the previous one's", d.count.Load())
			}
			if d.check(now.Add(2*dupPeriod + 2*time.Minute)); d.count.Load() != 0 {
				t.Errorf("two quiet periods later %d pairs are counted", d.count.Load())
			}
		})
	}
}

// BenchmarkDuplicatesObserve is the watch's cost per record on the
// engine's goroutine, for a batch in cache as the engine gets it (1,024
// records of distinct flows from one exporter, handed over in batches).
//
//	go test -run '^$' -bench BenchmarkDuplicatesObserve ./internal/ingest/
func BenchmarkDuplicatesObserve(b *testing.B) {
	exp := netip.MustParseAddr("198.51.100.1")
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	recs := make([]flow.Record, 1024)
	for i := range recs {
		recs[i] = flow.Record{Exporter: exp, End: t0.Add(time.Duration(i) * time.Millisecond), Proto: flow.ProtoTCP,
			SrcAddr: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), DstAddr: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}),
			SrcPort: uint16(32768 + i%20000), DstPort: 443}
	}
	d := newDuplicates()
	b.ResetTimer()
	for i := 0; i < b.N; i += 256 {
		j := i % len(recs)
		d.observe(recs[j:min(j+256, len(recs))])
	}
}

// BenchmarkFeedWithDuplicates is the engine goroutine's work per record
// with and without the watch, on batches that, as in serve, were just
// copied in by a collector's sink (the watch reads the lines the engine
// reads next).
//
//	go test -run '^$' -bench BenchmarkFeedWithDuplicates ./internal/ingest/
func BenchmarkFeedWithDuplicates(b *testing.B) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	exp := netip.MustParseAddr("198.51.100.1")
	src := make([]flow.Record, 1<<16)
	for i := range src {
		in := netip.AddrFrom4([4]byte{203, 0, 113, byte(i * 7)})
		ext := netip.AddrFrom4([4]byte{198, 18, byte(i >> 4), byte(i * 13)})
		r := flow.Record{Exporter: exp, Format: flow.FormatNetFlow9, Start: t0.Add(time.Duration(i) * time.Millisecond),
			End: t0.Add(time.Duration(i) * time.Millisecond), SrcAddr: in, DstAddr: ext, SrcPort: uint16(32768 + i%28000), DstPort: 443,
			Proto: flow.ProtoTCP, TCPFlags: flow.TCPAck | flow.TCPPsh, Packets: 3, Bytes: 3000, SampledPackets: 3, SampledBytes: 3000, SamplingRate: 1}
		if i%2 == 1 {
			r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort = r.DstAddr, r.SrcAddr, r.DstPort, r.SrcPort
		}
		src[i] = r
	}
	for _, watch := range []bool{false, true} {
		b.Run(map[bool]string{false: "engine", true: "engine+watch"}[watch], func(b *testing.B) {
			in, _ := newIngest(b, DefaultConfiguration(), nil)
			batch := make([]flow.Record, 256)
			b.ResetTimer()
			for i := 0; i < b.N; i += len(batch) {
				b.StopTimer()
				for k := range batch {
					src[(i+k)%len(src)].CopyTo(&batch[k])
				}
				b.StartTimer()
				if watch {
					in.dups.observe(batch)
				}
				in.eng.Records(batch)
			}
		})
	}
}
