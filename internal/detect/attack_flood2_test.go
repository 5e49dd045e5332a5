package detect_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/detect/attack"
	"padlock/internal/flow"
)

const (
	fin = flow.TCPFin
	psh = flow.TCPPsh
	urg = flow.TCPUrg
)

// TCP floods without SYN, 60,000 packets/s from one host to one target for
// 90 s, sampled by sFlow at 1:1000 (60 samples a second). The victim
// answers what its kernel answers: an ACK or PSH/ACK segment of a
// connection it does not know with an RST, a FIN or NULL segment with an
// RST/ACK, an RST with nothing. Its RSTs make no conversation: every one
// of these is a flood, and its finding names the flags.
func TestTCPFloodsWithoutSYN(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	floods := []struct {
		host  int
		flags func() uint8
		reply uint8 // the victim's answer; 0: none
		name  string
	}{
		{90, func() uint8 { return ack }, rst, "TCP ACK flood"},
		{91, func() uint8 { return pshAck }, rst, "TCP PSH/ACK flood"},
		{92, func() uint8 { return fin }, rstAck, "TCP FIN flood"},
		{93, func() uint8 { return rst }, 0, "TCP RST flood"},
		{94, func() uint8 { return 0 }, rstAck, "TCP NULL flood"},
		// flag soup: random flags in every packet (but those of a connection
		// attempt, which are a SYN flood's)
		{95, func() uint8 {
			for {
				if f := uint8(rng.IntN(64)); f&(syn|ack|rst|fin) != syn {
					return f
				}
			}
		}, rst, "TCP FIN/SYN/RST/PSH/ACK/URG flood"},
	}
	var c capture
	for i := 0; i < 90*60; i++ {
		at := time.Duration(i) * time.Second / 60
		for _, f := range floods {
			sp, dp := uint16(1024+rng.IntN(60000)), uint16(80)
			c.sflow(at, 1000, in(f.host), sp, ext(f.host), dp, flow.ProtoTCP, f.flags(), 60)
			if f.reply != 0 {
				c.sflow(at+ms, 1000, ext(f.host), dp, in(f.host), sp, flow.ProtoTCP, f.reply, 54)
			}
		}
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	for _, x := range floods {
		f := findingOf(fs, x.host, attack.RuleTCPFlood)
		if f == nil {
			t.Errorf("%s: %s of 60,000 packets/s not reported: %v", in(x.host), x.name, verdicts(fs))
			continue
		}
		if !strings.HasPrefix(f.Detail, x.name+" of ") || f.Remote != ext(x.host) || f.Measured < 50000 || f.Measured > 61000 {
			t.Errorf("%s: finding %q to %s, %.0f %s; want %q to %s at about 60,000 packets/s",
				in(x.host), f.Detail, f.Remote, f.Measured, f.Unit, x.name, ext(x.host))
		}
		if r := rulesOf(fs, x.host); len(r) != 1 {
			t.Errorf("%s: rules %v, want the TCP flood alone", in(x.host), r)
		}
	}
}

// An ACK flood seen through unsampled NetFlow: the flood tool sends from
// one port, so the exporter has one record of ACKs alone a minute, with
// millions of packets and no record of the other direction (the victim's
// firewall drops the segments) — or with one of the victim's RSTs. Either
// is a flood; it is reported once the wait for answers is over — also
// when one record of one minute is all there is.
func TestTCPFloodInNetFlow(t *testing.T) {
	var c capture
	for m := range 4 {
		from, to := time.Duration(m)*time.Minute, time.Duration(m+1)*time.Minute-time.Second
		c.netflow(from, to, in(96), 40000, ext(96), 443, flow.ProtoTCP, ack, 70000*60, 70000*60*40)
		c.netflow(from, to, in(97), 40000, ext(97), 443, flow.ProtoTCP, pshAck, 70000*60, 70000*60*140)
		c.netflow(from, to, ext(97), 443, in(97), 40000, flow.ProtoTCP, rst, 70000*60, 70000*60*40)
	}
	// a flood of one minute: the exporter's one record of it
	c.netflow(0, time.Minute-time.Second, in(98), 40000, ext(98), 80, flow.ProtoTCP, ack, 70000*60, 70000*60*40)
	fs := run(t, detect.Defaults(), nil, c.recs)
	for _, x := range []struct {
		host int
		name string
	}{{96, "TCP ACK flood"}, {97, "TCP PSH/ACK flood"}, {98, "TCP ACK flood"}} {
		f := findingOf(fs, x.host, attack.RuleTCPFlood)
		if f == nil {
			t.Errorf("%s: %s in NetFlow not reported: %v", in(x.host), x.name, verdicts(fs))
			continue
		}
		if !strings.HasPrefix(f.Detail, x.name) || f.Measured < 60000 {
			t.Errorf("%s: %q, %.0f packets/s", in(x.host), f.Detail, f.Measured)
		}
	}
}

// Legitimate TCP at flood rates towards one target is a conversation: the
// other end answers with ACKs or data. None of these is reported.
func TestTCPConversationsAreNoFlood(t *testing.T) {
	var c capture
	for i := 0; i < 120*100; i++ { // sFlow 1:1000: 100 samples a second of 100,000 packets/s
		at := time.Duration(i) * time.Second / 100
		// iperf3 upload at 100,000 packets/s, acknowledged every second segment
		c.sflow(at, 1000, in(100), 45000, ext(100), 5201, flow.ProtoTCP, ack, 1500)
		if i%2 == 0 {
			c.sflow(at+ms, 1000, ext(100), 5201, in(100), 45000, flow.ProtoTCP, ack, 52)
		}
		// a 10 Gbit/s-class backup whose receiver acknowledges one segment
		// in 40 (receive offload)
		c.sflow(at, 1000, in(101), 45000, ext(101), 873, flow.ProtoTCP, pshAck, 1500)
		if i%40 == 0 {
			c.sflow(at+ms, 1000, ext(101), 873, in(101), 45000, flow.ProtoTCP, ack, 52)
		}
		// an HTTP server sending a download to one client (a mirror
		// fetching an ISO over 16 connections)
		c.sflow(at, 1000, in(104), 443, ext(104), uint16(50000+i%16), flow.ProtoTCP, pshAck, 1500)
		if i%2 == 0 {
			c.sflow(at+ms, 1000, ext(104), uint16(50000+i%16), in(104), 443, flow.ProtoTCP, ack, 52)
		}
		// a busy proxy: thousands of connections to one upstream, requests
		// out and answers in
		cp := uint16(32768 + i%20000)
		c.sflow(at, 1000, in(105), cp, ext(105), 8080, flow.ProtoTCP, pshAck, 600)
		c.sflow(at+ms, 1000, ext(105), 8080, in(105), cp, flow.ProtoTCP, pshAck, 1400)
		if i%10 == 0 {
			c.sflow(at+2*ms, 1000, in(105), cp, ext(105), 8080, flow.ProtoTCP, finAck, 52)
			c.sflow(at+3*ms, 1000, ext(105), 8080, in(105), cp, flow.ProtoTCP, rstAck, 40)
		}
		// the victim of an ACK flood from one address: its kernel answers
		// every segment with an RST, at the flood's rate
		c.sflow(at, 1000, ext(106), uint16(1024+i), in(106), 80, flow.ProtoTCP, ack, 60)
		c.sflow(at+ms, 1000, in(106), 80, ext(106), uint16(1024+i), flow.ProtoTCP, rst, 40)
		// the victim of a SYN flood from one address: SYN-ACKs
		c.sflow(at, 1000, ext(107), uint16(1024+i), in(107), 443, flow.ProtoTCP, syn, 60)
		c.sflow(at+ms, 1000, in(107), 443, ext(107), uint16(1024+i), flow.ProtoTCP, synAck, 60)
		// a download at 100,000 packets/s: the host's ACKs, 50,000 a second
		c.sflow(at, 1000, ext(108), 443, in(108), 45000, flow.ProtoTCP, pshAck, 1500)
		if i%2 == 0 {
			c.sflow(at+ms, 1000, in(108), 45000, ext(108), 443, flow.ProtoTCP, ack, 52)
		}
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	for _, h := range []int{100, 101, 104, 105, 106, 107, 108} {
		if r := rulesOf(fs, h); len(r) != 0 {
			t.Errorf("%s: conversation reported: %v", in(h), r)
		}
	}
}

// NetFlow exports the two directions of a bulk upload as two records in
// either order: an rsync of 80,000 packets/s acknowledged with one packet
// in two is no flood whichever comes first; the same records without the
// answers are one.
func TestNetFlowUploadIsAConversation(t *testing.T) {
	for _, answersFirst := range []bool{true, false} {
		var c capture
		for m := range 5 {
			from, to := time.Duration(m)*time.Minute, time.Duration(m+1)*time.Minute-time.Second
			out := func() {
				c.netflow(from, to, in(102), 45000, ext(102), 22, flow.ProtoTCP, pshAck, 80000*60, 80000*60*1500)
				c.netflow(from, to, in(103), 45000, ext(103), 22, flow.ProtoTCP, pshAck, 80000*60, 80000*60*1500)
			}
			back := func() {
				c.netflow(from, to, ext(102), 22, in(102), 45000, flow.ProtoTCP, ack, 40000*60, 40000*60*52)
			}
			exportOrder(answersFirst, out, back)
		}
		// a backup of one minute, its two records alone, then other
		// hosts' records for a minute
		from, to := 5*time.Minute, 6*time.Minute-time.Second
		if answersFirst {
			c.netflow(from, to, ext(119), 22, in(119), 45000, flow.ProtoTCP, ack, 40000*60, 40000*60*52)
		}
		c.netflow(from, to, in(119), 45000, ext(119), 22, flow.ProtoTCP, pshAck, 80000*60, 80000*60*1500)
		if !answersFirst {
			c.netflow(from, to, ext(119), 22, in(119), 45000, flow.ProtoTCP, ack, 40000*60, 40000*60*52)
		}
		for at := 6 * time.Minute; at < 7*time.Minute; at += 100 * ms {
			c.netflow(at-2*time.Second, at, in(74), 40000, ext(74), 443, flow.ProtoTCP, syn|pshAck|flow.TCPFin, 10, 4000)
		}
		fs := run(t, detect.Defaults(), nil, c.recs)
		if r := rulesOf(fs, 119); len(r) != 0 {
			t.Errorf("answers first %v: acknowledged upload of a minute reported: %v", answersFirst, r)
		}
		if r := rulesOf(fs, 102); len(r) != 0 {
			t.Errorf("answers first %v: acknowledged upload reported: %v", answersFirst, r)
		}
		if !rulesOf(fs, 103)[attack.RuleTCPFlood] {
			t.Errorf("answers first %v: unanswered stream not reported: %v", answersFirst, verdicts(fs))
		}
	}
}

// A web server's own TCP goes to many clients: the TCP gate keeps no
// target table for it, and a flood it sends to one target among that
// traffic is still found (the flood must be a third of the host's TCP
// packets or more: a server sending 40,000 packets/s of its own).
func TestTCPFloodAmongAServersTraffic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var c capture
	for i := 0; i < 90*100; i++ { // sFlow 1:1000
		at := time.Duration(i) * time.Second / 100
		if i%5 < 2 { // 40,000 packets/s of web serving, answered
			x := ext(256 + rng.IntN(50000))
			c.sflow(at, 1000, in(109), 443, x, 40000, flow.ProtoTCP, pshAck, 1400)
			c.sflow(at, 1000, x, 40000, in(109), 443, flow.ProtoTCP, ack, 52)
		}
		if i%3 != 0 { // and a PSH/ACK flood of about 66,000 packets/s to one target
			c.sflow(at, 1000, in(109), uint16(1024+i), ext(109), 80, flow.ProtoTCP, pshAck, 1000)
		}
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	f := findingOf(fs, 109, attack.RuleTCPFlood)
	if f == nil || f.Remote != ext(109) {
		t.Fatalf("flood among a web server's traffic not reported against %s: %v", ext(109), verdicts(fs))
	}
}

// Connection attempts to a login port, one every 200 ms for 3 minutes
// from a new port each (300 a minute), captured whole: the target's answer
// decides whether they are login attempts. A client in a restart loop
// against a closed port 22 is refused every time (RST/ACK): no brute
// force. Accepted connections (SYN-ACK) are, also when each ends in the
// server's reset; so are attempts nobody answers (a firewall dropping
// them: a brute force towards a filtered port cannot be told apart).
func TestBruteForceRefusedConnections(t *testing.T) {
	var c capture
	for i := 0; i < 900; i++ {
		at := time.Duration(i) * 200 * ms
		sp := uint16(40000 + i)
		// restart loop against a closed port
		c.pkt(at, in(110), sp, ext(110), 22, flow.ProtoTCP, syn, 74)
		c.pkt(at+ms, ext(110), 22, in(110), sp, flow.ProtoTCP, rstAck, 54)
		// SSH brute force: accepted, a login attempt, closed
		c.tcpSession(at, in(111), sp, ext(111), 22)
		// brute force against a server that resets each connection after
		// the failed login
		c.pkt(at, in(112), sp, ext(112), 22, flow.ProtoTCP, syn, 74)
		c.pkt(at+ms, ext(112), 22, in(112), sp, flow.ProtoTCP, synAck, 74)
		c.pkt(at+2*ms, in(112), sp, ext(112), 22, flow.ProtoTCP, ack, 66)
		c.pkt(at+3*ms, in(112), sp, ext(112), 22, flow.ProtoTCP, pshAck, 300)
		c.pkt(at+5*ms, ext(112), 22, in(112), sp, flow.ProtoTCP, rstAck, 54)
		// attempts a firewall drops (each retransmission is the same one)
		c.pkt(at, in(117), sp, ext(117), 3389, flow.ProtoTCP, syn, 74)
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	if r := rulesOf(fs, 110); r[attack.RuleBruteForce] {
		f := findingOf(fs, 110, attack.RuleBruteForce)
		t.Errorf("restart loop against a closed port reported as brute force: %s", f.Detail)
	}
	for _, h := range []int{111, 112, 117} {
		f := findingOf(fs, h, attack.RuleBruteForce)
		if f == nil {
			t.Errorf("%s: brute force not reported: %v", in(h), verdicts(fs))
			continue
		}
		if f.Measured < 100 || f.Measured > 300 || !strings.Contains(f.Detail, "new connections to "+ext(h).String()) {
			t.Errorf("%s: %.0f connections (%s), want 100-300 to %s", in(h), f.Measured, f.Detail, ext(h))
		}
	}
}

// The same under sFlow at 1:100 and through unsampled NetFlow with both
// directions exported: attempts and refusals are sampled alike, so a
// restart loop of 1,000 attempts a second stays no brute force, and a
// brute force that the target accepts is still one. Where only the
// host's direction is exported, refusals are not seen and attempts count.
func TestBruteForceRefusedSampledAndNetFlow(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var c capture
	for i := 0; i < 120*1000; i++ { // 1,000 attempts a second, sFlow 1:100
		at := time.Duration(i) * time.Second / 1000
		sp := uint16(32768 + i%28000)
		if rng.IntN(100) == 0 {
			c.sflow(at, 100, in(113), sp, ext(113), 22, flow.ProtoTCP, syn, 74)
			c.sflow(at, 100, in(114), sp, ext(114), 22, flow.ProtoTCP, syn, 74)
		}
		if rng.IntN(100) == 0 {
			c.sflow(at+ms, 100, ext(113), 22, in(113), sp, flow.ProtoTCP, rstAck, 54)
		}
		if rng.IntN(100) == 0 {
			c.sflow(at+ms, 100, ext(114), 22, in(114), sp, flow.ProtoTCP, synAck, 74)
		}
	}
	for i := 0; i < 600; i++ { // 5 attempts a second, NetFlow
		at := time.Duration(i) * 200 * ms
		sp := uint16(40000 + i)
		c.netflow(at, at, in(115), sp, ext(115), 22, flow.ProtoTCP, syn, 1, 60)
		c.netflow(at+ms, at+ms, ext(115), 22, in(115), sp, flow.ProtoTCP, rstAck, 1, 40)
		c.netflow(at, at+2*time.Second, in(116), sp, ext(116), 22, flow.ProtoTCP, synAck|psh|fin, 20, 3000)
		c.netflow(at, at+2*time.Second, ext(116), 22, in(116), sp, flow.ProtoTCP, synAck|psh|fin, 18, 4000)
		c.netflow(at, at, in(118), sp, ext(118), 22, flow.ProtoTCP, syn, 1, 60) // the answers' direction not exported
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	for _, h := range []int{113, 115} {
		if f := findingOf(fs, h, attack.RuleBruteForce); f != nil {
			t.Errorf("%s: refused attempts reported as brute force: %s", in(h), f.Detail)
		}
	}
	for _, h := range []int{114, 116, 118} {
		if !rulesOf(fs, h)[attack.RuleBruteForce] {
			t.Errorf("%s: brute force not reported: %v", in(h), verdicts(fs))
		}
	}
}
