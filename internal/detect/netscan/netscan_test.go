package netscan_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/detect/detector"
	"padlock/internal/detect/detector/detectortest"
	"padlock/internal/detect/netscan"
	"padlock/internal/flow"
)

var t0 = time.Date(2026, 11, 13, 18, 14, 27, 0, time.UTC)

func pkt(at time.Duration, src string, sp uint16, dst string, dp uint16, proto, flags uint8) flow.Record {
	ts := t0.Add(at)
	return flow.Record{Start: ts, End: ts, Format: flow.FormatPcap, SamplingRate: 1, SrcAddr: netip.MustParseAddr(src),
		DstAddr: netip.MustParseAddr(dst), SrcPort: sp, DstPort: dp, Proto: proto, TCPFlags: flags, Packets: 1, Bytes: 60}
}

func dst(i int) string { return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}).String() }

// Which records are probes: 300 records of one kind to 300 destinations on
// one port, from or to the internal 203.0.113.5.
func TestProbeClassification(t *testing.T) {
	const me = "203.0.113.5"
	for _, tt := range []struct {
		name string
		rec  func(i int) []flow.Record
		want []string
	}{
		{"SYN", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, me, 40000, dst(i), 22, flow.ProtoTCP, flow.TCPSyn)}
		}, []string{netscan.RuleHorizontal}},
		{"SYN answered by RST stays a probe", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, me, 40000, dst(i), 22, flow.ProtoTCP, flow.TCPSyn),
				pkt(time.Duration(i)*ms+1, dst(i), 22, me, 40000, flow.ProtoTCP, flow.TCPRst|flow.TCPAck)}
		}, []string{netscan.RuleHorizontal}},
		{"SYN-ACK sent (a server answering) is no probe", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, me, 22, dst(i), 40000, flow.ProtoTCP, flow.TCPSyn|flow.TCPAck)}
		}, nil},
		{"RST sent is no probe", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, me, 22, dst(i), 40000, flow.ProtoTCP, flow.TCPRst)}
		}, nil},
		{"ICMP port unreachable sent is no probe", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, me, 0, dst(i), 3<<8|3, flow.ProtoICMP, 0)}
		}, nil},
		{"echo reply sent is no probe", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, me, 0, dst(i), 0, flow.ProtoICMP, 0)}
		}, nil},
		{"UDP answer of a local service is no probe", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, me, 53, dst(i), 40000, flow.ProtoUDP, 0)}
		}, nil},
		{"UDP probe", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, me, 40000, dst(i), 161, flow.ProtoUDP, 0)}
		}, []string{netscan.RuleHorizontal}},
		{"UDP answered", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, me, 40000, dst(i), 161, flow.ProtoUDP, 0),
				pkt(time.Duration(i)*ms+1, dst(i), 161, me, 40000, flow.ProtoUDP, 0)}
		}, nil},
		{"NetFlow record of a whole client connection is answered", func(i int) []flow.Record {
			r := pkt(time.Duration(i)*ms, me, 40000+uint16(i), dst(i), 443, flow.ProtoTCP, flow.TCPSyn|flow.TCPAck|flow.TCPPsh|flow.TCPFin)
			r.Format = flow.FormatNetFlow9
			return []flow.Record{r}
		}, nil},
		{"NetFlow record of an unanswered attempt is a probe", func(i int) []flow.Record {
			r := pkt(time.Duration(i)*ms, me, 40000+uint16(i), dst(i), 445, flow.ProtoTCP, flow.TCPSyn)
			r.Format = flow.FormatIPFIX
			return []flow.Record{r}
		}, []string{netscan.RuleHorizontal}},
		{"TCP answered (handshake completed, data back)", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, me, 40000, dst(i), 8080, flow.ProtoTCP, flow.TCPSyn),
				pkt(time.Duration(i)*ms+1, me, 40000, dst(i), 8080, flow.ProtoTCP, flow.TCPAck),
				pkt(time.Duration(i)*ms+2, dst(i), 8080, me, 40000, flow.ProtoTCP, flow.TCPAck|flow.TCPPsh)}
		}, nil},
		{"from a service port (nmap -g 80) unanswered: a scan", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, me, 80, dst(i), 8080, flow.ProtoTCP, flow.TCPSyn),
				pkt(time.Duration(i)*ms+1, dst(i), 8080, me, 80, flow.ProtoTCP, flow.TCPRst|flow.TCPAck)}
		}, []string{netscan.RuleHorizontal}},
		{"from a service port answered (active FTP data to one client): no scan", func(i int) []flow.Record {
			// traffic between a local service port and a remote ephemeral
			// port answers contacts once the host probes from service ports
			client := "198.51.100.7"
			return []flow.Record{pkt(time.Duration(i)*ms, me, 20, client, 40000+uint16(i), flow.ProtoTCP, flow.TCPSyn),
				pkt(time.Duration(i)*ms+1, me, 20, client, 40000+uint16(i), flow.ProtoTCP, flow.TCPAck),
				pkt(time.Duration(i)*ms+2, client, 40000+uint16(i), me, 20, flow.ProtoTCP, flow.TCPAck|flow.TCPPsh)}
		}, nil},
		{"inbound SYNs (being scanned) are no probes", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, dst(i), 40000, me, 22, flow.ProtoTCP, flow.TCPSyn)}
		}, nil},
		{"private destinations are left to incorrect_network_config", func(i int) []flow.Record {
			return []flow.Record{pkt(time.Duration(i)*ms, me, 40000, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String(), 22, flow.ProtoTCP, flow.TCPSyn)}
		}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var recs []flow.Record
			for i := 0; i < 300; i++ {
				recs = append(recs, tt.rec(i)...)
			}
			r := detectortest.NewRecorder()
			r.Feed(netscan.New(netscan.Defaults(), r.Env()), recs)
			if diff := cmp.Diff(tt.want, r.Rules()); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

const ms = time.Millisecond

// Contacts older than the window do not count: 200 probes, a pause longer
// than the window, 200 more never make 250 within one window.
func TestWindow(t *testing.T) {
	var recs []flow.Record
	for i := 0; i < 400; i++ {
		at := time.Duration(i) * 10 * ms
		if i >= 200 {
			at += 6 * time.Minute
		}
		recs = append(recs, pkt(at, "203.0.113.5", 40000, dst(i), 22, flow.ProtoTCP, flow.TCPSyn))
	}
	r := detectortest.NewRecorder()
	r.Feed(netscan.New(netscan.Defaults(), r.Env()), recs)
	if len(r.Findings) != 0 {
		t.Errorf("findings %v across two windows", r.Rules())
	}
}

// TestFlushEvaluatesSkippedContacts: with thresholds of 128 and more the
// detector evaluates every few new contacts only; a scan whose threshold
// is crossed on a skipped contact at the very end of a capture must still
// be found when the input ends.
func TestFlushEvaluatesSkippedContacts(t *testing.T) {
	conf := netscan.Defaults()
	conf.MinDestinations, conf.MinPorts = 300, 300
	var recs []flow.Record
	for i := 0; i < 302; i++ { // crosses 300 two contacts before the end
		recs = append(recs, pkt(time.Duration(i)*ms, "203.0.113.5", 40000, dst(i), 22, flow.ProtoTCP, flow.TCPSyn))
	}
	r := detectortest.NewRecorder()
	r.Feed(netscan.New(conf, r.Env()), recs)
	if diff := cmp.Diff([]string{netscan.RuleHorizontal}, r.Rules()); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if len(r.Findings) > 0 && r.Findings[0].Measured != 302 {
		t.Errorf("measured %v destinations, want 302", r.Findings[0].Measured)
	}
}

// TestProbeTimesWithinWindow: a destination the host has been probing
// every 10 s for 15 minutes (a monitoring check nobody answers) counts in
// a later scan of its port once, and its line in the netscan log, like the
// finding's first-seen, lies within the finding's window.
func TestProbeTimesWithinWindow(t *testing.T) {
	const me = "203.0.113.5"
	var recs []flow.Record
	for at := time.Duration(0); at <= 15*time.Minute; at += 10 * time.Second {
		recs = append(recs, pkt(at, me, 40000, "198.51.100.9", 22, flow.ProtoTCP, flow.TCPSyn))
	}
	for i := 0; i < 300; i++ {
		recs = append(recs, pkt(14*time.Minute+time.Duration(i)*100*ms, me, 40001, dst(i), 22, flow.ProtoTCP, flow.TCPSyn))
	}
	detectortest.FirstWithinWindow(t, func(env detector.Env) detector.Detector { return netscan.New(netscan.Defaults(), env) },
		merge(recs), netscan.Defaults().Window.D())
}
