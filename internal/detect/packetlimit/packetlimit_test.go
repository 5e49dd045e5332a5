package packetlimit_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/detect/detector"
	"padlock/internal/detect/detector/detectortest"
	"padlock/internal/detect/packetlimit"
	"padlock/internal/flow"
)

var t0 = time.Date(2026, 11, 13, 18, 14, 27, 0, time.UTC)

// flood: 150k packets/s for 320 s as 1:1000 samples, from src to dst.
func flood(src, dst string) []flow.Record {
	var recs []flow.Record
	for i := 0; i < 320*150; i++ {
		ts := t0.Add(time.Duration(i) * time.Second / 150)
		recs = append(recs, flow.Record{Start: ts, End: ts, Format: flow.FormatSFlow5, SamplingRate: 1000,
			SrcAddr: netip.MustParseAddr(src), DstAddr: netip.MustParseAddr(dst), SrcPort: 123, DstPort: 80,
			Proto: flow.ProtoUDP, Packets: 1000, Bytes: 468000})
	}
	return recs
}

func TestDirections(t *testing.T) {
	out := flood("203.0.113.9", "198.51.100.1")
	in := flood("198.51.100.1", "203.0.113.10")
	for _, tt := range []struct {
		name string
		dirs []detector.Direction
		recs []flow.Record
		want []detector.Direction
	}{
		{"out watched", []detector.Direction{detector.DirOut}, out, []detector.Direction{detector.DirOut}},
		{"in not watched", []detector.Direction{detector.DirOut}, in, nil},
		{"in watched", []detector.Direction{detector.DirIn}, in, []detector.Direction{detector.DirIn}},
		{"both", []detector.Direction{detector.DirOut, detector.DirIn}, append(append([]flow.Record{}, out...), in...),
			[]detector.Direction{detector.DirOut, detector.DirIn}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conf := packetlimit.Defaults()
			conf.Directions = tt.dirs
			r := detectortest.NewRecorder()
			d := packetlimit.New(conf, r.Env())
			r.Feed(d, tt.recs)
			var got []detector.Direction
			for _, f := range r.Findings {
				if f.Summary == nil || f.Summary.Direction != f.Direction {
					t.Errorf("summary direction does not match the finding's")
				}
				// fired once, then muted for a second of event time: the engine's rearm does the rest
				if len(got) == 0 || got[len(got)-1] != f.Direction {
					got = append(got, f.Direction)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("directions (-want +got):\n%s", diff)
			}
		})
	}
}

// A host that went quiet is demoted and its per-second ring serves the next
// flooding host.
func TestHotStateReused(t *testing.T) {
	r := detectortest.NewRecorder()
	d := packetlimit.New(packetlimit.Defaults(), r.Env())
	a := flood("203.0.113.9", "198.51.100.1")
	b := flood("203.0.113.10", "198.51.100.1")
	for i := range b { // the second flood starts an hour later
		b[i].Start = b[i].Start.Add(time.Hour)
		b[i].End = b[i].End.Add(time.Hour)
	}
	quiet := flood("203.0.113.9", "198.51.100.1")[:1]
	quiet[0].Start, quiet[0].End = t0.Add(50*time.Minute), t0.Add(50*time.Minute)
	quiet[0].Packets = 1
	r.Feed(d, append(append(a, quiet...), b...))
	if d.Hot() != 1 {
		t.Errorf("hot hosts %d, want 1 (the first demoted)", d.Hot())
	}
	hosts := map[netip.Addr]bool{}
	for _, f := range r.Findings {
		hosts[f.InternalIP] = true
	}
	if len(hosts) != 2 {
		t.Errorf("findings for %d hosts, want 2", len(hosts))
	}
}

// TestSummaryPeriodExplained: a burst that crosses the limit within seconds
// gets a per-address summary of those seconds only (counting per address
// starts when the address comes near its limit); the finding says so
// instead of showing a period that contradicts its headline.
func TestSummaryPeriodExplained(t *testing.T) {
	conf := packetlimit.Defaults()
	conf.ThresholdPPS, conf.Window = 50, detector.Duration(15*time.Second)
	var recs []flow.Record
	for i := 0; i < 1500; i++ { // 1,500 packets in 60 ms
		ts := t0.Add(time.Duration(i) * 40 * time.Microsecond)
		recs = append(recs, flow.Record{Start: ts, End: ts, Format: flow.FormatPcap, SamplingRate: 1,
			SrcAddr: netip.MustParseAddr("198.51.100.90"), DstAddr: netip.MustParseAddr("203.0.113.20"),
			SrcPort: 41000, DstPort: 9999, Proto: flow.ProtoUDP, Packets: 1, Bytes: 540})
	}
	r := detectortest.NewRecorder()
	r.Feed(packetlimit.New(conf, r.Env()), recs)
	if len(r.Findings) == 0 {
		t.Fatal("no finding for 1,500 packets against a limit of 50/s over 15 s")
	}
	f := r.Findings[0]
	if f.Summary.Window >= 15*time.Second {
		t.Fatalf("summary covers %s: the burst's per-address counting should cover less than the window", f.Summary.Window)
	}
	want := fmt.Sprintf("the per-address summary covers the last %ds of it", int(f.Summary.Window/time.Second))
	if !strings.Contains(f.Detail, want) {
		t.Errorf("detail %q does not explain the summary's period (%q)", f.Detail, want)
	}
}

// TestLongRecordAtPromotion: a NetFlow record of 299 s whose 31 million
// packets alone exceed 100,000 packets/s over the 300 s window, followed
// by a few small records (the minimum sample count). The record promotes
// the host to its per-second ring; its share of the coarse bucket that
// straddles the window's start used to be dropped with that bucket (about
// an eighth), so no finding came.
func TestLongRecordAtPromotion(t *testing.T) {
	in, out := netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("198.51.100.1")
	recs := []flow.Record{{Start: t0, End: t0.Add(298 * time.Second), Format: flow.FormatNetFlow9, SamplingRate: 1,
		SrcAddr: in, DstAddr: out, SrcPort: 40000, DstPort: 80, Proto: flow.ProtoUDP, Packets: 31_000_000, Bytes: 31_000_000 * 500}}
	for i := range 12 {
		ts := t0.Add(298 * time.Second)
		recs = append(recs, flow.Record{Start: ts, End: ts, Format: flow.FormatNetFlow9, SamplingRate: 1,
			SrcAddr: in, DstAddr: out, SrcPort: 40001 + uint16(i), DstPort: 80, Proto: flow.ProtoUDP, Packets: 1, Bytes: 500})
	}
	r := detectortest.NewRecorder()
	r.Feed(packetlimit.New(packetlimit.Defaults(), r.Env()), recs)
	if len(r.Findings) == 0 {
		t.Fatal("no finding for 31,000,012 packets in 299 s against 100,000 packets/s over 300 s")
	}
	if m := r.Findings[0].Measured; m < 100000 || m > 103400 {
		t.Errorf("measured %.0f packets/s, want 100,000..103,400 (31,000,012 packets / 300 s = 103,333)", m)
	}
}

// netflowRec is an unsampled NetFlow v9 record of pps packets/s over
// [from, from+secs).
func netflowRec(from time.Time, secs int, src, dst string, sport, dport uint16, pps uint64) flow.Record {
	n := pps * uint64(secs)
	return flow.Record{Start: from, End: from.Add(time.Duration(secs-1) * time.Second), Format: flow.FormatNetFlow9,
		SamplingRate: 1, SrcAddr: netip.MustParseAddr(src), DstAddr: netip.MustParseAddr(dst), SrcPort: sport, DstPort: dport,
		Proto: flow.ProtoUDP, Packets: n, Bytes: n * 512, SampledPackets: n, SampledBytes: n * 512}
}

// TestSummaryOfLongNetFlowRecords: records of a whole window (a 300 s
// active timeout), 12 flows of 20,000 packets/s staggered by 25 s (of
// which the records ended by any moment prove 195,000 packets/s): the
// summary the customer receives must show those flows at a rate over the
// limit, not the last two records over the records' length.
func TestSummaryOfLongNetFlowRecords(t *testing.T) {
	var recs []flow.Record
	for k := 0; k < 6; k++ { // 30 minutes
		for i := 0; i < 12; i++ {
			from := t0.Add(time.Duration(k*300+i*25) * time.Second)
			recs = append(recs, netflowRec(from, 300, "203.0.113.9", fmt.Sprintf("198.51.100.%d", i+1), 40000, 9000, 20000))
		}
	}
	r := detectortest.NewRecorder()
	r.Feed(packetlimit.New(packetlimit.Defaults(), r.Env()), sortByEnd(recs))
	if len(r.Findings) == 0 {
		t.Fatal("no finding for 240,000 packets/s")
	}
	for _, f := range r.Findings {
		s := f.Summary
		secs := uint64(s.Window / time.Second)
		if s.Sum.Flows < 4 || s.Sum.Packets/secs <= 100000 || secs > 300 {
			t.Fatalf("finding at %s: summary of %d flows, %d packets in %ds (%d packets/s), measured %.0f packets/s",
				f.LastSeen.Sub(t0), s.Sum.Flows, s.Sum.Packets, secs, s.Sum.Packets/secs, f.Measured)
		}
		var ext detector.Counters
		for _, e := range s.Externals {
			ext.Merge(e.Counters)
		}
		// scaled to the window, each address rounded down
		n := uint64(len(s.Externals))
		if ext.Packets > s.Sum.Packets || ext.Packets+n < s.Sum.Packets || ext.Flows > s.Sum.Flows {
			t.Errorf("externals add up to %+v, Sum is %+v", ext, s.Sum)
		}
	}
}

// TestSingleFlowFloodInNetFlow: one 5-tuple at 500,000 packets/s, exported
// unsampled in 60 s records (5 records in a window): every packet is a
// sample, so min_samples is no obstacle.
func TestSingleFlowFloodInNetFlow(t *testing.T) {
	var recs []flow.Record
	for m := 0; m < 10; m++ {
		recs = append(recs, netflowRec(t0.Add(time.Duration(m)*time.Minute), 60, "203.0.113.9", "198.51.100.1", 40000, 9000, 500000))
	}
	r := detectortest.NewRecorder()
	r.Feed(packetlimit.New(packetlimit.Defaults(), r.Env()), recs)
	if len(r.Findings) == 0 {
		t.Fatal("a single-flow flood at 5 times the limit gave no finding")
	}
	if f := r.Findings[0]; f.Samples < 10 || f.SamplingRate != 1 {
		t.Errorf("samples %d, sampling rate %d", f.Samples, f.SamplingRate)
	}
}

// TestLaterFindingShowsItsOwnTraffic: a flood that goes on for 40 minutes
// is reported again after the rearm period (15 minutes); each finding's
// traffic dump holds packets of its own window, not the first minutes of
// the episode.
func TestLaterFindingShowsItsOwnTraffic(t *testing.T) {
	var recs []flow.Record
	for i := 0; i < 2400*150; i++ {
		ts := t0.Add(time.Duration(i) * time.Second / 150)
		recs = append(recs, flow.Record{Start: ts, End: ts, Format: flow.FormatSFlow5, SamplingRate: 1000,
			SrcAddr: netip.MustParseAddr("203.0.113.9"), DstAddr: netip.MustParseAddr("198.51.100.1"), SrcPort: 123, DstPort: 80,
			Proto: flow.ProtoUDP, Packets: 1000, Bytes: 468000, HeaderLength: 0})
	}
	r := detectortest.NewRearming(15 * time.Minute)
	r.Feed(packetlimit.New(packetlimit.Defaults(), r.Env()), recs)
	if len(r.Findings) != 3 {
		t.Fatalf("%d findings in 40 minutes with a rearm period of 15, want 3", len(r.Findings))
	}
	last := r.Findings[len(r.Findings)-1]
	if last.LastSeen.Sub(t0) < 30*time.Minute || len(last.Packets) == 0 {
		t.Fatalf("last finding at %s with %d packets", last.LastSeen.Sub(t0), len(last.Packets))
	}
	from := last.LastSeen.Add(-300 * time.Second)
	for _, p := range last.Packets {
		if p.End.Before(from) {
			t.Fatalf("finding at %s shows a packet of %s", last.LastSeen.Sub(t0), p.End.Sub(t0))
		}
	}
}

func sortByEnd(recs []flow.Record) []flow.Record {
	slices.SortStableFunc(recs, func(a, b flow.Record) int { return a.End.Compare(b.End) })
	return recs
}

// A flood that stopped before the window of a later finding is not in
// that finding's summary: 300,000 packets/s to A for a minute, a pause,
// then 400,000 packets/s to B; the finding fires with only B in its window
// and its summary lists B alone, with the packets B received in it.
func TestSummaryLeavesOutTrafficBeforeTheWindow(t *testing.T) {
	var recs []flow.Record
	add := func(from, to, pps int, dst string) { // sFlow 1:1000
		for i := from * pps; i < to*pps; i++ {
			ts := t0.Add(time.Duration(i) * time.Second / time.Duration(pps))
			recs = append(recs, flow.Record{Start: ts, End: ts, Format: flow.FormatSFlow5, SamplingRate: 1000,
				SrcAddr: netip.MustParseAddr("203.0.113.9"), DstAddr: netip.MustParseAddr(dst), SrcPort: 123, DstPort: 80,
				Proto: flow.ProtoUDP, Packets: 1000, Bytes: 500000})
		}
	}
	add(0, 60, 300, "198.51.100.6")
	add(300, 400, 400, "198.51.100.7")
	r := detectortest.NewRearming(15 * time.Minute)
	r.Feed(packetlimit.New(packetlimit.Defaults(), r.Env()), recs)
	if len(r.Findings) != 1 {
		t.Fatalf("%d findings, want 1", len(r.Findings))
	}
	f := r.Findings[0]
	if from := f.LastSeen.Add(-300 * time.Second); from.Before(t0.Add(60 * time.Second)) {
		t.Fatalf("fired at %s with the first flood still in the window", f.LastSeen.Sub(t0))
	}
	if got := f.Summary.Externals; len(got) != 1 || got[0].Addr != netip.MustParseAddr("198.51.100.7") || got[0].Packets < 29_000_000 {
		t.Errorf("summary lists %+v, want 198.51.100.7 alone with its 30 M packets", got)
	}
}

// TestStaggeredFlowRecordsOfALongFlood: ten flows of 10,500 packets/s
// (105,000 together, 5 % over the limit) for 30 minutes, exported in
// records of a 60 s active timeout whose cache entries are 6 s apart, and
// the same with a 300 s timeout (30 s apart, 180,000 packets/s). The
// window ending at the newest record is never complete (the last minute's
// records are still in the exporter's cache), but the windows ending 60 s
// and 300 s earlier are, and prove the flood long before the input ends.
func TestStaggeredFlowRecordsOfALongFlood(t *testing.T) {
	for _, tc := range []struct {
		timeout, gap int
		pps          uint64
		by           time.Duration // proven by then
	}{{60, 6, 10500, 7 * time.Minute}, {300, 30, 18000, 11 * time.Minute}} {
		var recs []flow.Record
		for f := range 10 {
			for from := f * tc.gap; from+tc.timeout <= 30*60; from += tc.timeout {
				recs = append(recs, netflowRec(t0.Add(time.Duration(from)*time.Second), tc.timeout,
					"203.0.113.9", "198.51.100.1", 40000+uint16(f), 9000, tc.pps))
			}
		}
		r := detectortest.NewRecorder()
		r.Feed(packetlimit.New(packetlimit.Defaults(), r.Env()), sortByEnd(recs))
		if len(r.Findings) == 0 {
			t.Errorf("%d s timeout: a 30-minute flood of %d packets/s never reported", tc.timeout, 10*tc.pps)
			continue
		}
		f := r.Findings[0]
		if f.LastSeen.Sub(t0) > tc.by || f.Measured <= 100000 || f.LastSeen.Sub(f.FirstSeen) > 300*time.Second {
			t.Errorf("%d s timeout: first finding %s..%s measuring %.0f packets/s; want one by %s over a window of 300 s",
				tc.timeout, f.FirstSeen.Sub(t0), f.LastSeen.Sub(t0), f.Measured, tc.by)
		}
	}
}

// TestLongRecordDoesNotInflateTheSeed: a 30-minute NetFlow record (a 30
// minute active timeout) of 6,000 packets/s and then one second of 27 M
// packets: the window holds 28.8 M packets, under the 30 M limit. The long
// record's seconds before the coarse meter's buckets must not be folded
// into its newest bucket, which seeds the ring at promotion.
func TestLongRecordDoesNotInflateTheSeed(t *testing.T) {
	a := netflowRec(t0, 1800, "203.0.113.9", "198.51.100.1", 40000, 9000, 6000)
	b := netflowRec(a.End, 1, "203.0.113.9", "198.51.100.2", 40001, 9000, 27_000_000)
	r := detectortest.NewRecorder()
	r.Feed(packetlimit.New(packetlimit.Defaults(), r.Env()), sortByEnd([]flow.Record{a, b}))
	for _, f := range r.Findings {
		t.Errorf("finding %q for a window of 28.8 M packets (limit 30 M)", f.Detail)
	}
}
