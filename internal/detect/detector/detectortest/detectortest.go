// Package detectortest drives one detector without the engine, for the
// detectors' unit tests: it orients records (internal = 203.0.113.0/24 and
// 2001:db8:1::/48, as the tests' captures use), hands out host indexes and
// collects findings (every finding is reported: no re-arm). It imports
// only internal/flow and internal/detect/detector.
package detectortest

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"padlock/internal/detect/detector"
	"padlock/internal/flow"
)

// Internal is the internal range of the tests.
var Internal = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}

// Recorder implements detector.Reporter and collects findings.
type Recorder struct {
	Findings []detector.Finding
	hosts    map[netip.Addr]uint32
	addrs    []netip.Addr
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{hosts: map[netip.Addr]uint32{}} }

// Env returns an Env reporting to r with the engine's default evidence bounds.
func (r *Recorder) Env() detector.Env {
	return detector.Env{Reporter: r, EvidencePackets: 32, EvidenceProbes: 1000, Private: func(a netip.Addr) bool { return a.IsPrivate() }}
}

// Armed implements detector.Reporter: always armed.
func (r *Recorder) Armed(netip.Addr, string, detector.Direction, int64) bool { return true }

// ArmedMAC implements detector.Reporter: always armed.
func (r *Recorder) ArmedMAC(netip.Addr, flow.MAC, string, detector.Direction, int64) bool {
	return true
}

// Rearmed implements detector.Reporter: never muted.
func (r *Recorder) Rearmed(netip.Addr, string, detector.Direction) int64 { return 0 }

// Report implements detector.Reporter.
func (r *Recorder) Report(f detector.Finding) { r.Findings = append(r.Findings, f) }

// Addr implements detector.Reporter.
func (r *Recorder) Addr(h uint32) netip.Addr { return r.addrs[h] }

func (r *Recorder) host(a netip.Addr) uint32 {
	if h, ok := r.hosts[a]; ok {
		return h
	}
	h := uint32(len(r.addrs))
	r.hosts[a] = h
	r.addrs = append(r.addrs, a)
	return h
}

func internal(a netip.Addr) bool {
	for _, p := range Internal {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Feed orients each record as the engine does and passes it to d, then
// flushes d.
func (r *Recorder) Feed(d detector.Detector, recs []flow.Record) {
	for i := range recs {
		r.Record(d, &recs[i])
	}
	d.Flush()
}

// Record orients one record as the engine does and passes it to d.
func (r *Recorder) Record(d detector.Detector, rec *flow.Record) {
	start, end := rec.Start.UnixNano(), rec.End.UnixNano()
	if internal(rec.SrcAddr) {
		d.Observe(rec, &detector.Orientation{Dir: detector.Out, Host: r.host(rec.SrcAddr), Addr: rec.SrcAddr, Remote: rec.DstAddr,
			LocalPort: rec.SrcPort, RemotePort: rec.DstPort, RemoteInternal: internal(rec.DstAddr), Start: start, End: end})
	}
	if internal(rec.DstAddr) {
		d.Observe(rec, &detector.Orientation{Dir: detector.In, Host: r.host(rec.DstAddr), Addr: rec.DstAddr, Remote: rec.SrcAddr,
			LocalPort: rec.DstPort, RemotePort: rec.SrcPort, RemoteInternal: internal(rec.SrcAddr), Start: start, End: end})
	}
	if !internal(rec.SrcAddr) && !internal(rec.DstAddr) {
		if f, ok := d.(detector.ForeignObserver); ok {
			f.ObserveForeign(rec, start, end)
		}
	}
}

// Rules returns the distinct rules of the collected findings in the order
// they first fired (without the engine's re-arm a continuing abuse fires
// again every second of event time).
func (r *Recorder) Rules() []string {
	var s []string
	seen := map[string]bool{}
	for _, f := range r.Findings {
		if !seen[f.Rule] {
			seen[f.Rule] = true
			s = append(s, f.Rule)
		}
	}
	return s
}

// FirstWithinWindow feeds recs to the detector newDet makes (with a
// Recorder's Env) and fails t unless it reports a finding, the first of
// which lies within its window of length w (see OutsideWindow).
func FirstWithinWindow(t testing.TB, newDet func(detector.Env) detector.Detector, recs []flow.Record, w time.Duration) {
	t.Helper()
	r := NewRecorder()
	r.Feed(newDet(r.Env()), recs)
	if len(r.Findings) == 0 {
		t.Fatal("no finding")
	}
	for _, e := range OutsideWindow(r.Findings[0], w) {
		t.Error(e)
	}
}

// OutsideWindow describes what of f lies outside its window of length w
// ending at f.LastSeen: its first-seen, and the log lines (probes) outside
// first-seen to last-seen. None: nil.
func OutsideWindow(f detector.Finding, w time.Duration) []string {
	var out []string
	if from := f.LastSeen.Add(-w + time.Second); f.FirstSeen.Before(from) {
		out = append(out, fmt.Sprintf("first seen %s, before the window from %s to %s", f.FirstSeen, from, f.LastSeen))
	}
	for _, p := range f.Probes {
		if p.Time.Before(f.FirstSeen) || p.Time.After(f.LastSeen) {
			out = append(out, fmt.Sprintf("log line at %s for %s, outside %s to %s", p.Time, p.Dst, f.FirstSeen, f.LastSeen))
		}
	}
	return out
}

// Rearming is a Recorder that reports like the engine with a rearm period:
// a finding for an address, rule and direction is reported again only
// Rearm after the last one, and detectors learn when (Rearmed). Now is the
// event time (ns) fed so far; Feed and Record keep it.
type Rearming struct {
	*Recorder
	Rearm time.Duration
	Now   int64 // ns
	last  map[rearmKey]int64
}

type rearmKey struct {
	addr netip.Addr
	mac  flow.MAC
	rule string
	dir  detector.Direction
}

// NewRearming returns a Rearming reporter with the given rearm period.
func NewRearming(rearm time.Duration) *Rearming {
	return &Rearming{Recorder: NewRecorder(), Rearm: rearm, last: map[rearmKey]int64{}}
}

// Env returns an Env reporting to r (see Recorder.Env).
func (r *Rearming) Env() detector.Env {
	env := r.Recorder.Env()
	env.Reporter = r
	return env
}

// Armed implements detector.Reporter.
func (r *Rearming) Armed(a netip.Addr, rule string, dir detector.Direction, t int64) bool {
	return r.ArmedMAC(a, flow.MAC{}, rule, dir, t)
}

// ArmedMAC implements detector.Reporter.
func (r *Rearming) ArmedMAC(a netip.Addr, mac flow.MAC, rule string, dir detector.Direction, t int64) bool {
	return max(t, r.Now) >= r.rearmed(rearmKey{a, mac, rule, dir})
}

// Rearmed implements detector.Reporter.
func (r *Rearming) Rearmed(a netip.Addr, rule string, dir detector.Direction) int64 {
	return r.rearmed(rearmKey{addr: a, rule: rule, dir: dir})
}

func (r *Rearming) rearmed(k rearmKey) int64 {
	if last, ok := r.last[k]; ok {
		return last + r.Rearm.Nanoseconds()
	}
	return 0
}

// Report implements detector.Reporter: reports f unless its rule is not
// armed for its address (its source when it has no internal address),
// MAC and direction.
func (r *Rearming) Report(f detector.Finding) {
	a := f.InternalIP
	if !a.IsValid() {
		a = f.Source
	}
	k := rearmKey{a, f.MAC, f.Rule, f.Direction}
	if r.Now < r.rearmed(k) {
		return
	}
	r.last[k] = r.Now
	r.Recorder.Report(f)
}

// Feed passes the records to d as Recorder.Feed does, ticking d with each
// record's end as the engine does, then flushes d.
func (r *Rearming) Feed(d detector.Detector, recs []flow.Record) {
	for i := range recs {
		r.Record(d, &recs[i])
	}
	d.Flush()
}

// Record moves event time to the record's end, ticking d once a second
// as the engine does, and passes the record on.
func (r *Rearming) Record(d detector.Detector, rec *flow.Record) {
	if end := rec.End.UnixNano(); end > r.Now {
		if end/1e9 > r.Now/1e9 {
			d.Tick(end)
		}
		r.Now = end
	}
	r.Recorder.Record(d, rec)
}
