package detect_test

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/detect/attack"
	"padlock/internal/flow"
)

// A backup server uploads to its backup target at 80,000 packets/s over
// NetFlow with a one-minute active timeout, the target acknowledging one
// segment in two, while the server also downloads from a mirror (2,000
// packets/s). The exporter sends each minute's records in its cache's
// order: the upload's answers, the download, then the upload itself and
// the download's ACKs. The upload's answers came first and are no less
// its answers for the download's record in between: no flood.
func TestNetFlowAnswersFirstAmongOtherRecords(t *testing.T) {
	for _, minutes := range []int{1, 4} {
		var c capture
		for m := range minutes {
			from, to := time.Duration(m)*time.Minute, time.Duration(m+1)*time.Minute-time.Second
			c.netflow(from, to, ext(120), 873, in(120), 45000, flow.ProtoTCP, ack, 40000*60, 40000*60*52)
			c.netflow(from, to, ext(121), 443, in(120), 46000, flow.ProtoTCP, pshAck, 2000*60, 2000*60*1500)
			c.netflow(from, to, in(120), 45000, ext(120), 873, flow.ProtoTCP, pshAck, 80000*60, 80000*60*1500)
			c.netflow(from, to, in(120), 46000, ext(121), 443, flow.ProtoTCP, ack, 1000*60, 1000*60*52)
			// the same without answers is a flood
			c.netflow(from, to, ext(123), 443, in(122), 46000, flow.ProtoTCP, pshAck, 2000*60, 2000*60*1500)
			c.netflow(from, to, in(122), 45000, ext(122), 873, flow.ProtoTCP, pshAck, 80000*60, 80000*60*1500)
		}
		// other hosts' records move event time on
		for at := time.Duration(minutes) * time.Minute; at < time.Duration(minutes+1)*time.Minute; at += 100 * ms {
			c.netflow(at-2*time.Second, at, in(74), 40000, ext(74), 443, flow.ProtoTCP, syn|pshAck|flow.TCPFin, 10, 4000)
		}
		fs := run(t, detect.Defaults(), nil, c.recs)
		if f := findingOf(fs, 120, attack.RuleTCPFlood); f != nil {
			t.Errorf("%d minutes: acknowledged upload reported: %s", minutes, f.Detail)
		}
		if !rulesOf(fs, 122)[attack.RuleTCPFlood] {
			t.Errorf("%d minutes: unanswered stream not reported: %v", minutes, verdicts(fs))
		}
	}
}

// An upload of five minutes through NetFlow (one-minute active timeout)
// whose receiver ends the connection with a reset (an application that
// closes its socket with data unread, a load balancer that closes with
// RST): the answers' last record is of ACKs and the final RST, flags
// ACK|RST. Its 2.4 million packets are acknowledgements, not the resets
// of a flood's victim (which are one per segment, in a record of RSTs
// alone when the flood's segments carry ACK).
func TestNetFlowUploadEndingInAReset(t *testing.T) {
	var c capture
	for m := range 5 {
		from, to := time.Duration(m)*time.Minute, time.Duration(m+1)*time.Minute-time.Second
		out, flags := uint8(pshAck), uint8(ack)
		switch m {
		case 0: // the connection's first records carry its SYNs
			out, flags = syn|pshAck, synAck
		case 4:
			out, flags = fin|pshAck, rstAck
		}
		c.netflow(from, to, in(124), 45000, ext(124), 443, flow.ProtoTCP, out, 80000*60, 80000*60*1500)
		c.netflow(from, to, ext(124), 443, in(124), 45000, flow.ProtoTCP, flags, 40000*60, 40000*60*52)
		// FIN and NULL floods from one port, whose victim answers every
		// segment (no ACK in it) with an RST/ACK: a record of resets alone
		c.netflow(from, to, in(125), 40000, ext(125), 80, flow.ProtoTCP, fin, 70000*60, 70000*60*40)
		c.netflow(from, to, ext(125), 80, in(125), 40000, flow.ProtoTCP, rstAck, 70000*60, 70000*60*40)
		c.netflow(from, to, in(126), 40000, ext(126), 80, flow.ProtoTCP, 0, 70000*60, 70000*60*40)
		c.netflow(from, to, ext(126), 80, in(126), 40000, flow.ProtoTCP, rstAck, 70000*60, 70000*60*40)
	}
	fs := run(t, detect.Defaults(), nil, c.recs)
	if f := findingOf(fs, 124, attack.RuleTCPFlood); f != nil {
		t.Errorf("upload whose receiver reset it at the end reported: %s", f.Detail)
	}
	for _, h := range []int{125, 126} {
		if !rulesOf(fs, h)[attack.RuleTCPFlood] {
			t.Errorf("%s: flood answered with resets not reported: %v", in(h), verdicts(fs))
		}
	}
}

// The answers of a one-minute upload exported before the upload's own
// record are kept for it also when they are the host's first record (a
// host padlock has not seen send TCP yet, whose index the TCP gates do
// not reach): the first records padlock receives, or a host new since
// the gates last grew.
func TestNetFlowAnswersFirstOfANewHost(t *testing.T) {
	var c capture
	from, to := time.Duration(0), time.Minute-time.Second
	c.netflow(from, to, ext(127), 22, in(127), 45000, flow.ProtoTCP, synAck, 40000*60, 40000*60*52)
	c.netflow(from, to, in(127), 45000, ext(127), 22, flow.ProtoTCP, syn|pshAck, 80000*60, 80000*60*1500)
	for at := time.Minute; at < 2*time.Minute; at += 100 * ms {
		c.netflow(at-2*time.Second, at, in(74), 40000, ext(74), 443, flow.ProtoTCP, syn|pshAck|flow.TCPFin, 10, 4000)
	}
	fs := run(t, detect.Defaults(), nil, c.recs)
	if f := findingOf(fs, 127, attack.RuleTCPFlood); f != nil {
		t.Errorf("acknowledged upload reported: %s", f.Detail)
	}
}

// A burst of 50 s at 80,000 packets/s on a connection that then idles (a
// database replication stream, a WireGuard tunnel), the two directions
// exported by two routers: each exports the flow's record when its
// inactive timeout (15 s) expires, router B's 3 s after router A's,
// while other flows' records keep event time current. The host's record
// ends 15 s before event time: its verdict still waits for the answers
// (it waited for none, and the burst was reported as a flood). The same
// bursts unanswered are floods.
func TestNetFlowInactiveTimeoutRecordWaitsForAnswers(t *testing.T) {
	const inactive, lag = 15 * time.Second, 3 * time.Second
	type arrival struct {
		at  time.Duration
		rec func(c *capture)
	}
	var arrivals []arrival
	from, to := 10*time.Second, 60*time.Second
	arrivals = append(arrivals,
		arrival{to + inactive, func(c *capture) {
			c.netflow(from, to, in(134), 45000, ext(134), 5432, flow.ProtoTCP, syn|pshAck, 80000*50, 80000*50*1500)
			c.netflow(from, to, in(135), 45000, ext(135), 5432, flow.ProtoTCP, syn|pshAck, 80000*50, 80000*50*1500)
			c.netflow(from, to, in(136), 51820, ext(136), 51820, flow.ProtoUDP, 0, 80000*50, 80000*50*1400)
			c.netflow(from, to, in(137), 51820, ext(137), 51820, flow.ProtoUDP, 0, 80000*50, 80000*50*1400)
		}},
		arrival{to + inactive + lag, func(c *capture) {
			c.netflow(from, to, ext(134), 5432, in(134), 45000, flow.ProtoTCP, synAck, 40000*50, 40000*50*52)
			c.netflow(from, to, ext(136), 51820, in(136), 51820, flow.ProtoUDP, 0, 40000*50, 40000*50*120)
		}})
	for at := time.Duration(0); at < 3*time.Minute; at += 100 * ms {
		arrivals = append(arrivals, arrival{at, func(c *capture) {
			c.netflow(at-2*time.Second, at, in(74), 40000, ext(74), 443, flow.ProtoTCP, syn|pshAck|flow.TCPFin, 10, 4000)
		}})
	}
	slices.SortStableFunc(arrivals, func(a, b arrival) int { return cmp.Compare(a.at, b.at) })
	var c capture
	for _, a := range arrivals {
		a.rec(&c)
	}
	fs := run(t, detect.Defaults(), nil, c.recs)
	for _, x := range []struct {
		host int
		rule string
	}{{134, attack.RuleTCPFlood}, {136, attack.RuleUDPFlood}} {
		if f := findingOf(fs, x.host, x.rule); f != nil {
			t.Errorf("%s: answered burst reported: %s", in(x.host), f.Detail)
		}
	}
	for _, x := range []struct {
		host int
		rule string
	}{{135, attack.RuleTCPFlood}, {137, attack.RuleUDPFlood}} {
		if !rulesOf(fs, x.host)[x.rule] {
			t.Errorf("%s: unanswered burst not reported: %v", in(x.host), verdicts(fs))
		}
	}
}

// An RDP brute force, 133 attempts a minute for three minutes, captured
// whole: each connection is accepted (SYN-ACK), the client sends its
// login, the server aborts the connection with an RST/ACK after the
// failure and answers the client's segment still in flight with a
// second reset. Two resets per accepted connection refuse nothing: the
// attempts are login attempts and the brute force is reported. (Only
// attempts the target did not accept can be refused: resets beyond
// them are accepted connections' own.)
func TestBruteForceResetsOfAcceptedConnections(t *testing.T) {
	var c capture
	for i := 0; i < 400; i++ {
		at := time.Duration(i) * 450 * ms
		sp := uint16(40000 + i)
		c.pkt(at, in(138), sp, ext(138), 3389, flow.ProtoTCP, syn, 66)
		c.pkt(at+ms, ext(138), 3389, in(138), sp, flow.ProtoTCP, synAck, 66)
		c.pkt(at+2*ms, in(138), sp, ext(138), 3389, flow.ProtoTCP, ack, 54)
		c.pkt(at+3*ms, in(138), sp, ext(138), 3389, flow.ProtoTCP, pshAck, 300)
		c.pkt(at+50*ms, ext(138), 3389, in(138), sp, flow.ProtoTCP, rstAck, 54)
		c.pkt(at+51*ms, in(138), sp, ext(138), 3389, flow.ProtoTCP, pshAck, 200)
		c.pkt(at+52*ms, ext(138), 3389, in(138), sp, flow.ProtoTCP, rst, 54)
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	if f := findingOf(fs, 138, attack.RuleBruteForce); f == nil {
		t.Errorf("RDP brute force whose connections end in two resets not reported: %v", verdicts(fs))
	}
}

// A bulk upload at 60,000 packets/s for an hour whose receiver
// acknowledges one segment in 80 (receive offload, ACK thinning), both
// directions sampled 1:1000 by sFlow at random: about 45 of the target's
// answers are sampled in a minute, which under the old rule of one answer
// in a hundred packets fell short often enough for a finding every
// quarter of an hour (the re-arm period). It is a conversation.
func TestSampledUploadWithThinnedACKs(t *testing.T) {
	rng := rand.New(rand.NewPCG(80, 1000))
	var c capture
	const secs = 3600
	poisson := func(perSec float64, add func(at time.Duration)) {
		for at := rng.ExpFloat64() / perSec; at < secs; at += rng.ExpFloat64() / perSec {
			add(time.Duration(at * float64(time.Second)))
		}
	}
	poisson(60, func(at time.Duration) { // 60,000 packets/s sampled 1:1000
		c.sflow(at, 1000, in(120), 51000, ext(120), 873, flow.ProtoTCP, ack, 1500)
	})
	poisson(0.75, func(at time.Duration) { // its 750 ACKs a second
		c.sflow(at, 1000, ext(120), 873, in(120), 51000, flow.ProtoTCP, ack, 66)
	})
	if fs := run(t, detect.Defaults(), nil, c.sorted()); len(fs) != 0 {
		t.Fatalf("an acknowledged upload reported: %v", verdicts(fs))
	}
}
