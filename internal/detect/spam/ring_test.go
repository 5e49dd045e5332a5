package spam

import (
	"net/netip"
	"testing"
	"time"

	"padlock/internal/detect/detector"
	"padlock/internal/flow"
)

type ringReporter struct{ findings []detector.Finding }

func (r *ringReporter) Armed(netip.Addr, string, detector.Direction, int64) bool { return true }
func (r *ringReporter) ArmedMAC(netip.Addr, flow.MAC, string, detector.Direction, int64) bool {
	return true
}
func (r *ringReporter) Rearmed(netip.Addr, string, detector.Direction) int64 { return 0 }
func (r *ringReporter) Report(f detector.Finding)                            { r.findings = append(r.findings, f) }
func (r *ringReporter) Addr(uint32) netip.Addr                               { return netip.MustParseAddr("203.0.113.25") }

// TestSlowSpammerWhileTheLogTurnsOver: 600,000 other hosts each mail one
// relay once a minute, more hosts below their gate than the shared log
// holds, so it turns over every few seconds; a spammer reaching 150 mail
// servers a window (one every 2 s, never 6 within one turnover) must still
// get its table and its finding, and the relay's senders no table.
func TestSlowSpammerWhileTheLogTurnsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("6 million contacts")
	}
	const background = 600_000
	r := &ringReporter{}
	d := New(Defaults(), detector.Env{Reporter: r, EvidencePackets: 8, EvidenceProbes: 10})
	relay := netip.MustParseAddr("198.51.100.1")
	t0 := int64(1_700_000_000) * 1e9
	var rec flow.Record
	var o detector.Orientation
	contact := func(h uint32, dst netip.Addr, now int64) {
		ts := time.Unix(0, now)
		rec = flow.Record{Start: ts, End: ts, SrcPort: 40000, DstAddr: dst, DstPort: 25,
			Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn, Packets: 1, SamplingRate: 1, Format: flow.FormatPcap}
		o = detector.Orientation{Dir: detector.Out, Host: h, Remote: dst, LocalPort: 40000, RemotePort: 25, Start: now, End: now}
		d.Observe(&rec, &o)
	}
	const spammer = background
	mx := 0
	for ms := int64(0); ms < 600_000; ms++ {
		now := t0 + ms*1e6
		if ms%1000 == 0 {
			d.Tick(now)
		}
		per := int64(background / 60_000) // each host once a minute
		for k := int64(0); k < per; k++ {
			contact(uint32((ms%60_000)*per+k), relay, now)
		}
		if ms%2000 == 0 {
			contact(spammer, netip.AddrFrom4([4]byte{198, 18, byte(mx >> 8), byte(mx)}), now)
			mx++
		}
	}
	if len(d.log) < logMax {
		t.Fatalf("the log holds %d entries: the test needs it full", len(d.log))
	}
	if len(r.findings) == 0 {
		t.Fatalf("no finding for a host mailing %d servers in 10 minutes", mx)
	}
	if f := r.findings[0]; f.Measured < 100 || f.Measured > float64(mx) {
		t.Errorf("finding measured %v mail servers", f.Measured)
	}
	if n := d.Tables(); n > 1 {
		t.Errorf("%d hosts with a table; only the spammer should have one", n)
	}
}
