package netscan

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/detect/detector"
	"padlock/internal/detect/detector/detectortest"
	"padlock/internal/flow"
)

// boundsTraffic is a few hosts' random mix of probes (many on two ports,
// some to one destination on many ports), answers, repeated contacts,
// client connections and pauses longer than the window, with a small
// contact cap so that tables grow, go stale and fill up.
func boundsTraffic(seed uint64) []flow.Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	at := time.Duration(0)
	var recs []flow.Record
	add := func(src netip.Addr, sp uint16, dst netip.Addr, dp uint16, proto, flags uint8) {
		ts := t0.Add(at)
		recs = append(recs, flow.Record{Start: ts, End: ts, Format: flow.FormatPcap, SamplingRate: 1, SrcAddr: src, DstAddr: dst,
			SrcPort: sp, DstPort: dp, Proto: proto, TCPFlags: flags, Packets: 1, Bytes: 60})
	}
	for range 20000 {
		at += time.Duration(rng.IntN(40)) * time.Millisecond
		if rng.IntN(5000) == 0 {
			at += 2 * time.Minute
		}
		me := netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + rng.IntN(3))})
		remote := netip.AddrFrom4([4]byte{198, 18, byte(rng.IntN(2)), byte(rng.IntN(256))})
		cp := uint16(40000 + rng.IntN(2000))
		port := []uint16{22, 23, 443, 3389}[rng.IntN(4)]
		switch rng.IntN(10) {
		case 0, 1, 2: // probe
			add(me, cp, remote, port, flow.ProtoTCP, flow.TCPSyn)
		case 3: // vertical: one destination, many ports
			add(me, cp, netip.AddrFrom4([4]byte{198, 51, 100, 9}), uint16(1+rng.IntN(400)), flow.ProtoTCP, flow.TCPSyn)
		case 4: // the remote answers with data
			add(remote, port, me, cp, flow.ProtoTCP, flow.TCPAck|flow.TCPPsh)
		case 5: // the handshake completes
			add(me, cp, remote, port, flow.ProtoTCP, flow.TCPAck)
		case 6: // UDP probe and, sometimes, its answer
			add(me, cp, remote, 161, flow.ProtoUDP, 0)
			if rng.IntN(2) == 0 {
				add(remote, 161, me, cp, flow.ProtoUDP, 0)
			}
		case 7: // ping
			add(me, 0, remote, 8<<8, flow.ProtoICMP, 0)
		case 8: // a whole client connection in one NetFlow record
			add(me, cp, remote, 443, flow.ProtoTCP, flow.TCPSyn|flow.TCPAck|flow.TCPFin)
			recs[len(recs)-1].Format = flow.FormatNetFlow9
		default: // RST back: a reply, no answer
			add(remote, port, me, cp, flow.ProtoTCP, flow.TCPRst|flow.TCPAck)
		}
	}
	return recs
}

func boundsConf() Configuration {
	c := Defaults()
	c.MinDestinations, c.MinPorts, c.MinSamples, c.MaxContacts = 30, 20, 10, 128
	c.Window = 30 * 1e9
	return c
}

// TestBoundsCountUnanswered: after every record, each host's bounds hold
// exactly its unanswered contacts per bucket, as counting the table again
// gives, and open their total.
func TestBoundsCountUnanswered(t *testing.T) {
	for seed := range uint64(5) {
		r := detectortest.NewRecorder()
		d := New(boundsConf(), r.Env())
		recs := boundsTraffic(seed)
		checked := 0
		for i := range recs {
			r.Record(d, &recs[i])
			for h := range d.hosts {
				s := &d.hosts[h]
				if !s.used {
					continue
				}
				open := 0
				for k := range s.tab {
					if s.tab[k].flags&(fUsed|fAnswered) == fUsed {
						open++
					}
				}
				if int(s.open) != open {
					t.Fatalf("seed %d record %d host %d: open %d, table holds %d unanswered", seed, i, h, s.open, open)
				}
				if s.bound == nil {
					continue
				}
				checked++
				if want := d.newBounds(s); !slices.Equal(s.bound.c, want.c) {
					t.Fatalf("seed %d record %d host %d: bounds %v, table gives %v", seed, i, h, s.bound.c, want.c)
				}
			}
		}
		if checked == 0 {
			t.Fatalf("seed %d: no host reached the trigger; the traffic tests nothing", seed)
		}
	}
}

// TestBoundsNeverHideAScan: skipping evaluate when the bounds rule a
// verdict out gives the same findings as evaluating every time.
func TestBoundsNeverHideAScan(t *testing.T) {
	total := 0
	for seed := range uint64(5) {
		run := func(noBounds bool) []string {
			r := detectortest.NewRecorder()
			d := New(boundsConf(), r.Env())
			d.noBounds = noBounds
			r.Feed(d, boundsTraffic(seed))
			var got []string
			for _, f := range r.Findings {
				got = append(got, f.InternalIP.String()+" "+f.Rule+" "+f.FirstSeen.String()+" "+f.Detail)
			}
			return got
		}
		want := run(true)
		total += len(want)
		if diff := cmp.Diff(want, run(false)); diff != "" {
			t.Errorf("seed %d: findings with bounds (-every evaluation +bounds):\n%s", seed, diff)
		}
	}
	if total == 0 {
		t.Fatal("no findings at all: the traffic proves nothing")
	}
	t.Logf("%d findings agree", total)
}

// TestReportedScanNotWalkedAgain: a scanner that keeps scanning after its
// finding is not evaluated (its table walked) again until the rule re-arms:
// 30 minutes of two new destinations a second, rearm 15 minutes, give two
// findings and a handful of walks, not one walk every second or two.
func TestReportedScanNotWalkedAgain(t *testing.T) {
	r := detectortest.NewRearming(15 * time.Minute)
	d := New(Defaults(), r.Env())
	t0 := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	me := netip.MustParseAddr("203.0.113.5")
	var recs []flow.Record
	for i := range 30 * 60 * 2 {
		ts := t0.Add(time.Duration(i) * 500 * time.Millisecond)
		recs = append(recs, flow.Record{Start: ts, End: ts, Format: flow.FormatPcap, SamplingRate: 1, SrcAddr: me,
			DstAddr: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), SrcPort: 40000, DstPort: 22,
			Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn, Packets: 1, Bytes: 60})
	}
	r.Feed(d, recs)
	if diff := cmp.Diff([]string{RuleHorizontal, RuleHorizontal}, rules(r.Findings)); diff != "" {
		t.Fatalf("findings (-want +got):\n%s", diff)
	}
	if d.walks > 20 {
		t.Errorf("%d table walks for 3,600 probes and two findings, want a handful", d.walks)
	}
}

func rules(fs []detector.Finding) []string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Rule)
	}
	return s
}
