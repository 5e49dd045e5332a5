package attack_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/detect/attack"
	"padlock/internal/detect/detector/detectortest"
	"padlock/internal/flow"
)

var t0 = time.Date(2026, 11, 13, 18, 14, 27, 0, time.UTC)

var (
	server = netip.MustParseAddr("203.0.113.53")
	victim = netip.MustParseAddr("198.51.100.99")
)

func rec(at time.Duration, src netip.Addr, sp uint16, dst netip.Addr, dp uint16, proto, flags uint8, size, rate int) flow.Record {
	ts := t0.Add(at)
	return flow.Record{Start: ts, End: ts, Format: flow.FormatSFlow5, SamplingRate: uint32(rate), SrcAddr: src, DstAddr: dst,
		SrcPort: sp, DstPort: dp, Proto: proto, TCPFlags: flags, Packets: uint64(rate), Bytes: uint64(size * rate)}
}

// Reflection needs both the rate and the amplification: 2000 answers/s of
// answerBytes to 100-byte requests, sampled 1:10, for 70 s.
func TestReflectionRatio(t *testing.T) {
	for _, tt := range []struct {
		name        string
		port        uint16
		answerBytes int
		want        []string
	}{
		{"4x is an ordinary busy service", 53, 400, nil},
		{"10x is DNSSEC answering a resolver", 53, 1000, nil},
		{"30x is amplification (DNS ANY)", 53, 3000, []string{attack.RuleReflection}},
		{"memcached", 11211, 50000, []string{attack.RuleReflection}},
		{"a game server's query port (Steam A2S)", 27015, 3000, []string{attack.RuleReflection}},
		{"CoAP", 5683, 3000, []string{attack.RuleReflection}},
		// a service on a port not in the list, answering every request: a
		// conversation (a game or VoIP server looks the same), not a flood
		{"port not in the list", 8053, 3000, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conf := attack.Defaults()
			conf.MinPPS = 1500 // so that 2000 packets/s to one target is also a UDP flood
			var recs []flow.Record
			for i := 0; i < 70*200; i++ {
				at := time.Duration(i) * time.Second / 200
				recs = append(recs, rec(at, victim, 4444, server, tt.port, flow.ProtoUDP, 0, 100, 10),
					rec(at+time.Millisecond, server, tt.port, victim, 4444, flow.ProtoUDP, 0, tt.answerBytes, 10))
			}
			r := detectortest.NewRecorder()
			r.Feed(attack.New(conf, r.Env()), recs)
			got := r.Rules()

			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBruteForcePorts(t *testing.T) {
	for _, tt := range []struct {
		port uint16
		want []string
	}{{22, []string{attack.RuleBruteForce}}, {3389, []string{attack.RuleBruteForce}}, {443, nil}} {
		var recs []flow.Record
		for i := 0; i < 120; i++ { // 120 connections in 60 s, unsampled
			recs = append(recs, rec(time.Duration(i)*500*time.Millisecond, server, 50000+uint16(i), victim, tt.port, flow.ProtoTCP, flow.TCPSyn, 60, 1))
		}
		r := detectortest.NewRecorder()
		r.Feed(attack.New(attack.Defaults(), r.Env()), recs)
		if diff := cmp.Diff(tt.want, r.Rules()); diff != "" {
			t.Errorf("port %d: rules (-want +got):\n%s", tt.port, diff)
		}
		if len(r.Findings) == 1 {
			f := r.Findings[0]
			if f.Measured < 100 || f.Unit != "connections" || f.Remote != victim || f.Port != tt.port {
				t.Errorf("port %d: finding %+v", tt.port, f)
			}
		}
	}
}

// TestSingleFlowFloodInNetFlow: one 5-tuple at 200,000 packets/s to one
// target, exported unsampled in 60 s records (one a window): every packet
// is a sample, so min_samples is no obstacle.
func TestSingleFlowFloodInNetFlow(t *testing.T) {
	var recs []flow.Record
	for m := 0; m < 5; m++ {
		from := t0.Add(time.Duration(m) * time.Minute)
		n := uint64(200000 * 60)
		recs = append(recs, flow.Record{Start: from, End: from.Add(59 * time.Second), Format: flow.FormatNetFlow9, SamplingRate: 1,
			SrcAddr: server, DstAddr: victim, SrcPort: 40000, DstPort: 9000, Proto: flow.ProtoUDP,
			Packets: n, Bytes: n * 512, SampledPackets: n, SampledBytes: n * 512})
	}
	r := detectortest.NewRecorder()
	r.Feed(attack.New(attack.Defaults(), r.Env()), recs)
	if diff := cmp.Diff([]string{attack.RuleUDPFlood}, r.Rules()); diff != "" {
		t.Fatalf("rules (-want +got):\n%s", diff)
	}
	if f := r.Findings[0]; f.Samples < 10 || f.SamplingRate != 1 {
		t.Errorf("samples %d, sampling rate %d", f.Samples, f.SamplingRate)
	}
}

// TestLongRecordSamplesInWindow: one NetFlow record of 30 minutes at
// 60,000 packets/s sampled 1:1000 (108,000 sampled packets): the finding
// counts only the samples of the record's seconds within the 60 s window,
// about 3,600 — as it counts only those packets.
func TestLongRecordSamplesInWindow(t *testing.T) {
	n := uint64(60000 * 1800)
	recs := []flow.Record{{Start: t0, End: t0.Add(1799 * time.Second), Format: flow.FormatNetFlow9, SamplingRate: 1000,
		SrcAddr: server, DstAddr: victim, SrcPort: 40000, DstPort: 9000, Proto: flow.ProtoUDP,
		Packets: n, Bytes: n * 512, SampledPackets: n / 1000, SampledBytes: n / 1000 * 512}}
	r := detectortest.NewRecorder()
	r.Feed(attack.New(attack.Defaults(), r.Env()), recs)
	if diff := cmp.Diff([]string{attack.RuleUDPFlood}, r.Rules()); diff != "" {
		t.Fatalf("rules (-want +got):\n%s", diff)
	}
	if f := r.Findings[0]; f.Samples < 3000 || f.Samples > 3700 {
		t.Errorf("samples %d, want the window's share of 108,000 (about 3,600)", f.Samples)
	}
}

// TestLaterFindingShowsItsOwnTraffic: a UDP flood that goes on for 40
// minutes is reported again after each rearm period (15 minutes); every
// finding's traffic dump holds packets of its own 60 s window only.
func TestLaterFindingShowsItsOwnTraffic(t *testing.T) {
	var recs []flow.Record
	for i := 0; i < 2400*60; i++ { // 60,000 packets/s sampled 1:1000
		recs = append(recs, rec(time.Duration(i)*time.Second/60, server, 40000, victim, 9000, flow.ProtoUDP, 0, 512, 1000))
	}
	r := detectortest.NewRearming(15 * time.Minute)
	r.Feed(attack.New(attack.Defaults(), r.Env()), recs)
	if len(r.Findings) != 3 {
		t.Fatalf("%d findings in 40 minutes with a rearm period of 15, want 3", len(r.Findings))
	}
	for _, f := range r.Findings {
		if len(f.Packets) == 0 {
			t.Errorf("finding at %s: no packets", f.LastSeen.Sub(t0))
		}
		for _, p := range f.Packets {
			if p.End.Before(f.LastSeen.Add(-time.Minute)) {
				t.Errorf("finding at %s shows a packet of %s", f.LastSeen.Sub(t0), p.End.Sub(t0))
				break
			}
		}
	}
}

// A TCP flood's finding names the flags of its packets (60,000 packets/s
// sampled 1:1000 for 70 s, nothing answered).
func TestTCPFloodNamesItsFlags(t *testing.T) {
	for _, tt := range []struct {
		flags []uint8
		want  string
	}{
		{[]uint8{flow.TCPAck}, "TCP ACK flood of "},
		{[]uint8{flow.TCPPsh | flow.TCPAck}, "TCP PSH/ACK flood of "},
		{[]uint8{flow.TCPRst}, "TCP RST flood of "},
		{[]uint8{flow.TCPFin}, "TCP FIN flood of "},
		{[]uint8{0}, "TCP NULL flood of "},
		{[]uint8{flow.TCPSyn | flow.TCPFin}, "TCP FIN/SYN flood of "}, // no connection attempt
		{[]uint8{flow.TCPSyn | flow.TCPAck}, "TCP SYN/ACK flood of "},
		{[]uint8{flow.TCPAck, flow.TCPRst, flow.TCPUrg | flow.TCPFin}, "TCP FIN/RST/ACK/URG flood of "},
	} {
		var recs []flow.Record
		for i := 0; i < 70*60; i++ {
			recs = append(recs, rec(time.Duration(i)*time.Second/60, server, uint16(1024+i), victim, 80, flow.ProtoTCP, tt.flags[i%len(tt.flags)], 60, 1000))
		}
		r := detectortest.NewRecorder()
		r.Feed(attack.New(attack.Defaults(), r.Env()), recs)
		if diff := cmp.Diff([]string{attack.RuleTCPFlood}, r.Rules()); diff != "" {
			t.Errorf("flags %v: rules (-want +got):\n%s", tt.flags, diff)
			continue
		}
		if f := r.Findings[0]; !strings.HasPrefix(f.Detail, tt.want) || f.Unit != "packets/s" || f.Measured < 50000 {
			t.Errorf("flags %v: %q (%.0f %s), want %q...", tt.flags, f.Detail, f.Measured, f.Unit, tt.want)
		}
	}
}

// A web server sending 100,000 packets/s to thousands of clients gets no
// target table: the TCP gate's candidate never holds.
func TestTCPGateKeepsNoTableForAServer(t *testing.T) {
	var recs []flow.Record
	for i := 0; i < 120*100; i++ { // sFlow 1:1000
		client := netip.AddrFrom4([4]byte{198, 18, byte(i % 5000 >> 8), byte(i % 5000)})
		recs = append(recs, rec(time.Duration(i)*time.Second/100, server, 443, client, uint16(40000+i%20000), flow.ProtoTCP, flow.TCPPsh|flow.TCPAck, 1400, 1000))
	}
	r := detectortest.NewRecorder()
	d := attack.New(attack.Defaults(), r.Env())
	r.Feed(d, recs)
	if n := d.Suspicious(); n != 0 || len(r.Findings) != 0 {
		t.Errorf("%d hosts with a target table, findings %v; want none", n, r.Rules())
	}
}

// Where the target refuses more connections than it accepts, attempts
// count by twice the accepted share: 300 attempts a minute of which a
// quarter are accepted count as 150 (brute force); a tenth, as 60 (none).
func TestBruteForceAcceptedShare(t *testing.T) {
	for _, tt := range []struct {
		acceptEvery int
		want        []string
	}{{1, []string{attack.RuleBruteForce}}, {4, []string{attack.RuleBruteForce}}, {10, nil}} {
		var recs []flow.Record
		for i := 0; i < 180*5; i++ { // 5 attempts a second, captured
			at := time.Duration(i) * 200 * time.Millisecond
			sp := uint16(40000 + i)
			recs = append(recs, rec(at, server, sp, victim, 22, flow.ProtoTCP, flow.TCPSyn, 74, 1))
			answer := uint8(flow.TCPRst | flow.TCPAck)
			if i%tt.acceptEvery == 0 {
				answer = flow.TCPSyn | flow.TCPAck
			}
			recs = append(recs, rec(at+time.Millisecond, victim, 22, server, sp, flow.ProtoTCP, answer, 60, 1))
		}
		r := detectortest.NewRecorder()
		r.Feed(attack.New(attack.Defaults(), r.Env()), recs)
		if diff := cmp.Diff(tt.want, r.Rules()); diff != "" {
			t.Errorf("one in %d accepted: rules (-want +got):\n%s", tt.acceptEvery, diff)
		}
		if tt.acceptEvery == 4 && len(r.Findings) > 0 && !strings.Contains(r.Findings[0].Detail, "refused with a reset") {
			t.Errorf("finding %q does not say that refusals were not counted", r.Findings[0].Detail)
		}
	}
}
