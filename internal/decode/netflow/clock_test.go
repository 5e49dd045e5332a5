package netflow

import (
	"net/netip"
	"testing"
	"time"

	"padlock/internal/flow"
)

// clockCase is one datagram kind whose header clock the tests set.
type clockCase struct {
	name string
	// datagrams returns what one exporter sends, its header at secs (and
	// v5 nanoseconds 0): the template (if any) and the data.
	datagrams func(secs uint32) [][]byte
}

var clockCases = []clockCase{
	{"v5", func(secs uint32) [][]byte {
		return [][]byte{newGen(41, ghdr{version: 5, uptime: 7_200_000, secs: secs}).v5(5)}
	}},
	{"v9 sysUptime", func(secs uint32) [][]byte {
		g := newGen(42, ghdr{version: 9, uptime: 7_200_000, secs: secs, domain: 1})
		return [][]byte{g.datagram(5, g.templateSet(softflowdV9), g.dataSet(softflowdV9, 5))}
	}},
	{"ipfix absolute ms", func(secs uint32) [][]byte {
		g := newGen(43, ghdr{version: 10, secs: secs, domain: 1})
		return [][]byte{g.datagram(0, g.templateSet(softflowdIPFIX), g.dataSet(softflowdIPFIX, 5))}
	}},
	{"ipfix deltas", func(secs uint32) [][]byte {
		tm := gtmpl{id: 300, fields: []gfield{{8, 4, 0}, {12, 4, 0}, {158, 4, 0}, {159, 4, 0}, {1, 4, 0}, {2, 4, 0}, {4, 1, 0}}}
		g := newGen(44, ghdr{version: 10, secs: secs, domain: 1})
		return [][]byte{g.datagram(0, g.templateSet(tm), g.dataSet(tm, 5))}
	}},
	{"ipfix no times", func(secs uint32) [][]byte {
		g := newGen(45, ghdr{version: 10, secs: secs, domain: 1})
		return [][]byte{g.datagram(0, g.templateSet(tmplBasic), g.dataSet(tmplBasic, 5))}
	}},
}

// checking returns a decoder that checks export header times as the
// collector's does (collect.max_clock_skew); *reports counts its reports.
func checking(maxSkew time.Duration, reports *[]time.Duration) *Decoder {
	d := New(Configuration{})
	d.CheckClock(maxSkew, func(_ netip.AddrPort, ahead time.Duration) { *reports = append(*reports, ahead) })
	return d
}

// decodeAt decodes the datagrams in order, all received at at.
func decodeAt(t *testing.T, d *Decoder, at time.Time, dgs [][]byte) []flow.Record {
	t.Helper()
	var out []flow.Record
	for _, p := range dgs {
		out = append(out, mustDecode(t, d, exA, at, p)...)
	}
	if len(out) != 5 {
		t.Fatalf("%d records, want 5", len(out))
	}
	return out
}

// An exporter whose clock is 10 minutes ahead (or behind) of the collector
// has its record times moved onto the collector's clock, each by the same
// offset, so durations and the order of records stay; the datagram is
// counted and reported. The reference is the same datagram with its header
// on time.
func TestClockSkewCorrected(t *testing.T) {
	received := t0
	for _, c := range clockCases {
		for _, off := range []time.Duration{600 * time.Second, -600 * time.Second} {
			t.Run(c.name+"/"+off.String(), func(t *testing.T) {
				want := decodeAt(t, New(Configuration{}), received, c.datagrams(uint32(received.Unix())))

				var reports []time.Duration
				d := New(Configuration{})
				d.CheckClock(10*time.Second, func(ex netip.AddrPort, ahead time.Duration) {
					if ex != exA {
						t.Errorf("reported exporter %v, want %v", ex, exA)
					}
					reports = append(reports, ahead)
				})
				dgs := c.datagrams(uint32(received.Add(off).Unix()))
				got := decodeAt(t, d, received, dgs)
				for i := range got {
					if !got[i].Start.Equal(want[i].Start) || !got[i].End.Equal(want[i].End) {
						t.Errorf("record %d: %v – %v, want %v – %v (header %v off)", i, got[i].Start, got[i].End, want[i].Start, want[i].End, off)
					}
					if got[i].End.After(received) {
						t.Errorf("record %d ends at %v, after it was received (%v)", i, got[i].End, received)
					}
				}
				if len(reports) != len(dgs) || reports[0] != off {
					t.Errorf("reports %v, want %d of %v", reports, len(dgs), off)
				}
			})
		}
	}
}

// Within the tolerance (export headers count whole seconds; datagrams take
// a moment to arrive) record times are the exporter's, untouched; and a
// decoder without the check (CheckClock never called, or with 0) leaves
// even 10 minutes alone.
func TestClockSkewWithinToleranceUntouched(t *testing.T) {
	received := t0.Add(300 * time.Millisecond)
	for _, c := range clockCases {
		ref := decodeAt(t, New(Configuration{}), received, c.datagrams(uint32(t0.Unix())+2))
		for _, tc := range []struct {
			name string
			skew time.Duration
			off  int64
		}{
			{"2s ahead", 10 * time.Second, 2},
			{"2s behind", 10 * time.Second, -2},
			{"600s ahead, check off", 0, 600},
			{"600s within a tolerance of 15m", 15 * time.Minute, 600},
		} {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				secs := uint32(t0.Unix() + tc.off)
				var reports []time.Duration
				d := checking(tc.skew, &reports)
				got := decodeAt(t, d, received, c.datagrams(secs))
				shift := time.Duration(tc.off-2) * time.Second // ref has its header at +2 s
				for i := range got {
					if !got[i].Start.Equal(ref[i].Start.Add(shift)) || !got[i].End.Equal(ref[i].End.Add(shift)) {
						t.Errorf("record %d: %v – %v moved; want the exporter's %v – %v", i, got[i].Start, got[i].End, ref[i].Start.Add(shift), ref[i].End.Add(shift))
					}
				}
				if len(reports) != 0 {
					t.Errorf("reports %v, want none", reports)
				}
			})
		}
	}
}

// Data that waited for its template keeps the offset of the datagram it
// came in, and CheckClock sets the tolerance the way the collector does.
func TestClockSkewHeldDataAndCheckClock(t *testing.T) {
	var reports []time.Duration
	d := checking(30*time.Second, &reports)

	gFast := newGen(46, ghdr{version: 9, uptime: 7_200_000, secs: uint32(t0.Unix()) + 600, domain: 1})
	gOnTime := newGen(46, ghdr{version: 9, uptime: 7_200_000, secs: uint32(t0.Unix()), domain: 1})
	ref := mustDecode(t, New(Configuration{}), exA, t0, gOnTime.datagram(3, gOnTime.templateSet(softflowdV9), gOnTime.dataSet(softflowdV9, 3)))

	if recs := mustDecode(t, d, exA, t0, gFast.datagram(3, gFast.dataSet(softflowdV9, 3))); len(recs) != 0 {
		t.Fatalf("data before its template: %d records", len(recs))
	}
	gOnTime = newGen(99, ghdr{version: 9, uptime: 7_201_000, secs: uint32(t0.Unix()) + 1, domain: 1})
	got := mustDecode(t, d, exA, t0.Add(time.Second), gOnTime.datagram(1, gOnTime.templateSet(softflowdV9)))
	if len(got) != 3 {
		t.Fatalf("replayed %d records, want 3", len(got))
	}
	for i := range got {
		if !got[i].Start.Equal(ref[i].Start) || !got[i].End.Equal(ref[i].End) {
			t.Errorf("held record %d: %v – %v, want %v – %v", i, got[i].Start, got[i].End, ref[i].Start, ref[i].End)
		}
	}
	if len(reports) != 1 {
		t.Errorf("reports %v, want one", reports)
	}

	// 20 s is within the 30 s CheckClock set; CheckClock(0) turns the check off.
	gOff := newGen(47, ghdr{version: 9, uptime: 7_200_000, secs: uint32(t0.Unix()) + 20, domain: 1})
	mustDecode(t, d, exA, t0, gOff.datagram(1, gOff.dataSet(softflowdV9, 1)))
	var offReports []time.Duration
	off := checking(0, &offReports)
	mustDecode(t, off, exA, t0, gFast.datagram(1, gFast.templateSet(softflowdV9), gFast.dataSet(softflowdV9, 1)))
	if len(reports) != 1 || len(offReports) != 0 {
		t.Errorf("reports %v and %v, want one and none", reports, offReports)
	}
}

// Real softflowd exports (v5, v9, IPFIX with seconds and milliseconds):
// replayed at their capture times (what padlock analyze does) they agree
// with their headers and nothing is moved; received 10 minutes later or
// earlier, every datagram is reported and every record moved onto the
// receive clock, by the offset to the second (headers count whole
// seconds).
func TestClockSkewRealCaptures(t *testing.T) {
	for _, name := range realCaptures {
		dgs := readDatagrams(t, name)
		var reports []time.Duration
		ref := decodeAll(t, checking(10*time.Second, &reports), dgs)
		if len(reports) != 0 {
			t.Errorf("%s at its capture times: %d datagrams reported, want none", name, len(reports))
		}
		for _, off := range []time.Duration{10 * time.Minute, -10 * time.Minute} {
			shifted := make([]datagram, len(dgs))
			for i, dg := range dgs {
				dg.at = dg.at.Add(off)
				shifted[i] = dg
			}
			reports = nil
			got := decodeAll(t, checking(10*time.Second, &reports), shifted)
			if len(reports) != len(dgs) {
				t.Errorf("%s received %v off: %d of %d datagrams reported", name, off, len(reports), len(dgs))
			}
			recs := 0
			for i := range got {
				for j := range got[i] {
					recs++
					if d := got[i][j].End.Sub(ref[i][j].End) - off; d < -time.Second || d > time.Second {
						t.Errorf("%s received %v off: datagram %d record %d moved by %v", name, off, i, j, d+off)
					}
				}
			}
			if recs == 0 {
				t.Errorf("%s: no records", name)
			}
		}
	}
}
