package spam_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/detect/detector"
	"padlock/internal/detect/detector/detectortest"
	"padlock/internal/detect/spam"
	"padlock/internal/flow"
)

var t0 = time.Date(2026, 11, 13, 18, 14, 27, 0, time.UTC)

func TestWhatCounts(t *testing.T) {
	me := netip.MustParseAddr("203.0.113.25")
	mx := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}) }
	for _, tt := range []struct {
		name string
		rec  func(i int) flow.Record
		want []string
	}{
		{"SYN to port 25", func(i int) flow.Record {
			return flow.Record{SrcAddr: me, SrcPort: 40000, DstAddr: mx(i), DstPort: 25, Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn, Format: flow.FormatPcap}
		}, []string{spam.Rule}},
		{"NetFlow client connections to port 25", func(i int) flow.Record {
			return flow.Record{SrcAddr: me, SrcPort: 40000 + uint16(i), DstAddr: mx(i), DstPort: 25, Proto: flow.ProtoTCP,
				TCPFlags: flow.TCPSyn | flow.TCPAck | flow.TCPPsh | flow.TCPFin, Format: flow.FormatNetFlow9}
		}, []string{spam.Rule}},
		{"answers of our mail server", func(i int) flow.Record {
			return flow.Record{SrcAddr: me, SrcPort: 25, DstAddr: mx(i), DstPort: 40000, Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn | flow.TCPAck, Format: flow.FormatPcap}
		}, nil},
		{"mail received", func(i int) flow.Record {
			return flow.Record{SrcAddr: mx(i), SrcPort: 40000, DstAddr: me, DstPort: 25, Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn, Format: flow.FormatPcap}
		}, nil},
		{"submission port is not watched by default", func(i int) flow.Record {
			return flow.Record{SrcAddr: me, SrcPort: 40000, DstAddr: mx(i), DstPort: 587, Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn, Format: flow.FormatPcap}
		}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var recs []flow.Record
			for i := 0; i < 120; i++ {
				r := tt.rec(i)
				r.Start, r.End = t0.Add(time.Duration(i)*time.Second), t0.Add(time.Duration(i)*time.Second)
				r.Packets, r.Bytes, r.SamplingRate = 1, 60, 1
				recs = append(recs, r)
			}
			r := detectortest.NewRecorder()
			r.Feed(spam.New(spam.Defaults(), r.Env()), recs)
			if diff := cmp.Diff(tt.want, r.Rules()); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

// TestProbePorts: with several SMTP ports watched, each line of the
// connection log carries the port used to that server, not the last port
// the host used to any.
func TestProbePorts(t *testing.T) {
	conf := spam.Defaults()
	conf.Ports = []uint16{25, 587}
	me := netip.MustParseAddr("203.0.113.25")
	var recs []flow.Record
	for i := 0; i < 120; i++ {
		port := uint16(25)
		if i%2 == 1 {
			port = 587
		}
		ts := t0.Add(time.Duration(i) * time.Second)
		recs = append(recs, flow.Record{Start: ts, End: ts, SrcAddr: me, SrcPort: 40000, DstAddr: netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}),
			DstPort: port, Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn, Format: flow.FormatPcap, Packets: 1, Bytes: 60, SamplingRate: 1})
	}
	r := detectortest.NewRecorder()
	r.Feed(spam.New(conf, r.Env()), recs)
	if len(r.Findings) == 0 {
		t.Fatal("no finding")
	}
	for _, p := range r.Findings[0].Probes {
		want := uint16(25)
		if p.Dst.As4()[3]%2 == 1 {
			want = 587
		}
		if p.DstPort != want {
			t.Fatalf("probe to %s on port %d, want %d", p.Dst, p.DstPort, want)
		}
	}
}

// TestFirstSeenWithinWindow: a mail server the host has been reaching
// every 10 s for 15 minutes counts in a fan-out as one server, and its
// line in the connection log, like the finding's first-seen, lies within
// the finding's window, not at the first contact 15 minutes back.
func TestFirstSeenWithinWindow(t *testing.T) {
	me := netip.MustParseAddr("203.0.113.25")
	relay := netip.MustParseAddr("198.51.100.9")
	syn := func(at time.Duration, dst netip.Addr) flow.Record {
		ts := t0.Add(at)
		return flow.Record{Start: ts, End: ts, SrcAddr: me, SrcPort: 40000, DstAddr: dst, DstPort: 25, Proto: flow.ProtoTCP,
			TCPFlags: flow.TCPSyn, Format: flow.FormatPcap, Packets: 1, Bytes: 60, SamplingRate: 1}
	}
	var recs []flow.Record
	for at := time.Duration(0); at <= 15*time.Minute; at += 10 * time.Second {
		recs = append(recs, syn(at, relay))
		if at >= 14*time.Minute && at < 15*time.Minute {
			for i := range 20 {
				recs = append(recs, syn(at+time.Duration(i)*time.Millisecond, netip.AddrFrom4([4]byte{198, 18, byte(at / time.Second), byte(i)})))
			}
		}
	}
	detectortest.FirstWithinWindow(t, func(env detector.Env) detector.Detector { return spam.New(spam.Defaults(), env) },
		recs, spam.Defaults().Window.D())
}
