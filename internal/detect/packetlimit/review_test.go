package packetlimit_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"padlock/internal/detect/detector/detectortest"
	"padlock/internal/detect/packetlimit"
	"padlock/internal/flow"
)

// TestSpoofedDDoSOmittedCount: an inbound flood of 400,000 packets/s to one
// customer address from 50,000 spoofed sources, sFlow 1:2000 (200 samples
// a second, each from the next source), for 20 minutes. The summary lists
// 20 sources; its "..... N more external addresses left out" line must
// count the sources really left out, not only those among the first 4,096
// the detector tracks per address (tracked_externals).
func TestSpoofedDDoSOmittedCount(t *testing.T) {
	victim := netip.MustParseAddr("203.0.113.50")
	const sources = 50000
	var recs []flow.Record
	for i := 0; i < 1200*200; i++ {
		ts := t0.Add(time.Duration(i) * time.Second / 200)
		n := i % sources
		recs = append(recs, flow.Record{Start: ts, End: ts, Format: flow.FormatSFlow5, SamplingRate: 2000,
			SrcAddr: netip.AddrFrom4([4]byte{100, 64 + byte(n>>16), byte(n >> 8), byte(n)}), DstAddr: victim,
			SrcPort: uint16(1024 + n%60000), DstPort: 80, Proto: flow.ProtoUDP, Packets: 2000, Bytes: 2000 * 60,
			SampledPackets: 1, SampledBytes: 60})
	}
	r := detectortest.NewRearming(15 * time.Minute)
	r.Feed(packetlimit.New(packetlimit.Defaults(), r.Env()), recs)
	if len(r.Findings) != 2 {
		t.Fatalf("%d findings in 20 minutes with a rearm period of 15, want 2", len(r.Findings))
	}
	for _, f := range r.Findings {
		s := f.Summary
		// every sample in the summary's period came from the next source:
		// as many distinct sources as samples (flows) while under 50,000
		secs := int(s.Window / time.Second)
		want := min(int(s.Sum.Flows), sources)
		got := len(s.Externals) + s.ExternalsOmitted
		if d := got - want; d < -want/50 || d > want/50 {
			t.Errorf("finding at %s: summary of %ds lists %d sources and says %d more were left out (%d in all); the period had %d distinct sources",
				f.LastSeen.Sub(t0), secs, len(s.Externals), s.ExternalsOmitted, got, want)
		}
	}
}

// TestClockSetBackAnHour: an exporter whose clock ran an hour ahead
// (summer time set twice) reports a host's ordinary traffic for two
// minutes, then its clock is fixed and it reports, with true times, a
// flood of 300,000 packets/s for 30 minutes. The records are an hour
// older than the newest the host's meter has seen; they must still be
// measured, not dropped until the clock catches up with the wrong one.
func TestClockSetBackAnHour(t *testing.T) {
	var recs []flow.Record
	for s := range 120 {
		recs = append(recs, netflowRec(t0.Add(time.Hour+time.Duration(s)*time.Second), 1, "203.0.113.9", "198.51.100.1", 40000, 9000, 50000))
	}
	for s := 120; s < 1920; s++ {
		recs = append(recs, netflowRec(t0.Add(time.Duration(s)*time.Second), 1, "203.0.113.9", "198.51.100.2", 40000, 9000, 300000))
	}
	r := detectortest.NewRearming(15 * time.Minute)
	r.Feed(packetlimit.New(packetlimit.Defaults(), r.Env()), recs)
	if len(r.Findings) == 0 {
		t.Fatal("a 30-minute flood of 300,000 packets/s after the exporter's clock was set back an hour never reported")
	}
	if f := r.Findings[0]; f.LastSeen.After(t0.Add(5*time.Minute)) || f.Measured <= 100000 ||
		len(f.Summary.Externals) != 1 || f.Summary.Externals[0].Addr != netip.MustParseAddr("198.51.100.2") {
		t.Errorf("first finding at %s measuring %.0f packets/s, summary %+v; want one within 3 minutes of the flood's start, of its traffic alone",
			f.LastSeen.Sub(t0), f.Measured, f.Summary.Externals)
	}
}

// TestLastSeenOfAFindingTriggeredByALateRecord: a host sends 70,000
// packets/s seen by an sFlow agent (1:1000, on time) and 40,000 packets/s
// exported by a router in NetFlow records of 60 s that reach the collector
// 30 s after they end. A late NetFlow record tips the window over the
// limit; the window measured ends at the newest sample, and so must the
// finding's last_seen: the headline's packets/300s are not those of a
// period that ended 30 s earlier.
func TestLastSeenOfAFindingTriggeredByALateRecord(t *testing.T) {
	type arrival struct {
		at time.Time
		r  flow.Record
	}
	var recs []arrival
	for i := 0; i < 900*70; i++ {
		ts := t0.Add(time.Duration(i) * time.Second / 70)
		recs = append(recs, arrival{ts, flow.Record{Start: ts, End: ts, Format: flow.FormatSFlow5, SamplingRate: 1000,
			SrcAddr: netip.MustParseAddr("203.0.113.9"), DstAddr: netip.MustParseAddr("198.51.100.1"), SrcPort: 123, DstPort: 80,
			Proto: flow.ProtoUDP, Packets: 1000, Bytes: 500000, SampledPackets: 1, SampledBytes: 500}})
	}
	for from := 0; from+60 <= 900; from += 60 {
		r := netflowRec(t0.Add(time.Duration(from)*time.Second), 60, "203.0.113.9", "198.51.100.2", 40000, 9000, 40000)
		recs = append(recs, arrival{r.End.Add(30 * time.Second), r})
	}
	slices.SortStableFunc(recs, func(a, b arrival) int { return a.at.Compare(b.at) })
	r := detectortest.NewRearming(15 * time.Minute)
	d := packetlimit.New(packetlimit.Defaults(), r.Env())
	var newest time.Time
	for i := range recs {
		r.Record(d, &recs[i].r)
		if recs[i].r.End.After(newest) {
			newest = recs[i].r.End
		}
		if len(r.Findings) > 0 {
			break
		}
	}
	if len(r.Findings) == 0 {
		t.Fatal("no finding for 110,000 packets/s")
	}
	f := r.Findings[0]
	if newest.Sub(f.LastSeen) >= time.Second || f.LastSeen.Sub(f.FirstSeen) < 299*time.Second {
		t.Errorf("finding %q: first_seen %s, last_seen %s; the newest record measured ended at %s",
			f.Detail, f.FirstSeen.Sub(t0), f.LastSeen.Sub(t0), newest.Sub(t0))
	}
}
