package detect_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/detect/attack"
	"padlock/internal/flow"
)

// rules returns the rules of fs that concern addr.
func rulesOf(fs []detect.Finding, i int) map[string]bool {
	m := map[string]bool{}
	for _, f := range fs {
		if f.InternalIP == in(i) {
			m[f.Rule] = true
		}
	}
	return m
}

// exportOrder adds a stream's record (out) and its answers' (back) in
// the order an exporter sends them: the answers first or last.
func exportOrder(answersFirst bool, out, back func()) {
	if answersFirst {
		back()
		out()
		return
	}
	out()
	back()
}

// silent fails the test for every host of traps (host number: what it
// does) that has a finding: benign traffic that must not be reported.
func silent(t *testing.T, fs []detect.Finding, traps map[int]string) {
	t.Helper()
	for i, what := range traps {
		if r := rulesOf(fs, i); len(r) != 0 {
			t.Errorf("%s reported as %v", what, r)
		}
	}
}

// A QUIC upload from a client socket whose ephemeral port is 37810 (a
// DVR's reflection port, inside Linux's 32768-60999) is no reflection; a
// DVR on 37810 answering a spoofed victim's high port still is.
func TestReflectionPortOfAClientSocket(t *testing.T) {
	var c capture
	for i := 0; i < 120*200; i++ { // 2000 packets/s at sFlow 1:10, acknowledged every fourth
		at := time.Duration(i) * time.Second / 200
		c.sflow(at, 10, in(40), 37810, ext(40), 443, flow.ProtoUDP, 0, 1250)
		if i%4 == 0 {
			c.sflow(at+ms, 10, ext(40), 443, in(40), 37810, flow.ProtoUDP, 0, 60)
		}
	}
	for i := 0; i < 60*300; i++ { // a DVR answering 3,000 spoofed requests/s, sFlow 1:10
		at := time.Duration(i) * time.Second / 300
		c.sflow(at, 10, ext(41), 40123, in(41), 37810, flow.ProtoUDP, 0, 60)
		c.sflow(at+ms, 10, in(41), 37810, ext(41), 40123, flow.ProtoUDP, 0, 1400)
	}
	for i := 0; i < 120*600; i++ { // the same at 60,000 packets/s (sFlow 1:100): its answers make it no flood
		at := time.Duration(i) * time.Second / 600
		c.sflow(at, 100, in(39), 37810, ext(39), 443, flow.ProtoUDP, 0, 1250)
		if i%4 == 0 {
			c.sflow(at+ms, 100, ext(39), 443, in(39), 37810, flow.ProtoUDP, 0, 60)
		}
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	if got := rulesOf(fs, 40); len(got) != 0 {
		t.Errorf("QUIC upload from port 37810 reported: %v", got)
	}
	if got := rulesOf(fs, 39); got[attack.RuleUDPFlood] {
		t.Errorf("answered QUIC upload of 60,000 packets/s from port 37810 reported: %v", got)
	}
	if !rulesOf(fs, 41)[attack.RuleReflection] {
		t.Errorf("DVR reflection from port 37810 not reported: %v", verdicts(fs))
	}
}

// NetFlow exports the two directions of a UDP tunnel as two records, in
// either order: a backup over WireGuard at 80,000 packets/s, acknowledged
// with one packet in two, is a conversation, not a flood; the same
// stream unanswered is a flood.
func TestNetFlowTunnelIsAConversation(t *testing.T) {
	for _, answersFirst := range []bool{true, false} {
		var c capture
		for m := range 5 { // 60 s active timeout: a record per direction a minute
			from, to := time.Duration(m)*time.Minute, time.Duration(m+1)*time.Minute-time.Second
			out := func() {
				c.netflow(from, to, in(42), 51820, ext(42), 51820, flow.ProtoUDP, 0, 80000*60, 80000*60*1400)
				c.netflow(from, to, in(43), 51820, ext(43), 51820, flow.ProtoUDP, 0, 80000*60, 80000*60*1400)
			}
			back := func() {
				c.netflow(from, to, ext(42), 51820, in(42), 51820, flow.ProtoUDP, 0, 40000*60, 40000*60*120)
			}
			exportOrder(answersFirst, out, back)
		}
		// the answers' record of the last minute a few seconds apart (the
		// exporter sweeps its cache entries separately)
		c.netflow(5*time.Minute, 6*time.Minute, in(42), 51820, ext(42), 51820, flow.ProtoUDP, 0, 80000*60, 80000*60*1400)
		c.netflow(5*time.Minute+3*time.Second, 6*time.Minute+3*time.Second, ext(42), 51820, in(42), 51820, flow.ProtoUDP, 0, 40000*60, 40000*60*120)
		fs := run(t, detect.Defaults(), nil, c.recs) // in export order
		if got := rulesOf(fs, 42); got[attack.RuleUDPFlood] {
			t.Errorf("answers first %v: answered tunnel reported as a UDP flood", answersFirst)
		}
		if !rulesOf(fs, 43)[attack.RuleUDPFlood] {
			t.Errorf("answers first %v: unanswered stream not reported: %v", answersFirst, verdicts(fs))
		}
	}
}

// An amplified answer larger than one packet is fragmented, and only its
// first fragment carries the service's port: the later fragments count
// towards the reflection (DNS ANY answers of 4 KB in three packets against
// 78-byte queries, 52 times, of which the first fragment alone is only
// 19), and the spoofed queries are no answers that make the fragments a
// conversation.
func TestFragmentedAmplification(t *testing.T) {
	var c capture
	for i := 0; i < 90*200; i++ { // 20,000 answers/s, sFlow 1:100
		at := time.Duration(i) * time.Second / 200
		c.sflow(at, 100, ext(44), 4444, in(44), 53, flow.ProtoUDP, 0, 78)
		c.sflow(at+ms, 100, in(44), 53, ext(44), 4444, flow.ProtoUDP, 0, 1514)
		c.sflow(at+ms, 100, in(44), 0, ext(44), 0, flow.ProtoUDP, 0, 1514)
		c.sflow(at+ms, 100, in(44), 0, ext(44), 0, flow.ProtoUDP, 0, 1042)
	}
	for i := 0; i < 30*2000; i++ { // CLDAP: 3 KB answers to 94-byte requests, captured whole
		at := time.Duration(i) * time.Second / 2000
		c.pkt(at, ext(45), 4444, in(45), 389, flow.ProtoUDP, 0, 94)
		c.pkt(at+ms, in(45), 389, ext(45), 4444, flow.ProtoUDP, 0, 1514)
		c.pkt(at+ms, in(45), 0, ext(45), 0, flow.ProtoUDP, 0, 1514)
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	for _, i := range []int{44, 45} {
		if !rulesOf(fs, i)[attack.RuleReflection] {
			t.Errorf("%s: fragmented amplification not reported: %v", in(i), verdicts(fs))
		}
	}
}

// Brute force seen through packet-sampled NetFlow (1:100): a connection's
// record carries SYN when its SYN was sampled and then stands for 100
// connections, as an sFlow sample of a SYN does.
func TestBruteForceThroughSampledNetFlow(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var c capture
	for i := range 20 * 120 { // 20 SSH attempts/s of 20 packets each
		at := time.Duration(i) * 50 * ms
		var flags uint8
		n := 0
		for k := range 20 {
			if rng.IntN(100) == 0 {
				n++
				if k == 0 {
					flags |= syn
				} else {
					flags |= pshAck
				}
			}
		}
		if n == 0 {
			continue // no packet sampled: no record
		}
		c.recs = append(c.recs, flow.Record{Start: t0.Add(at), End: t0.Add(at + time.Second), Format: flow.FormatNetFlow9,
			SamplingRate: 100, SrcAddr: in(46), DstAddr: ext(46), SrcPort: uint16(40000 + i), DstPort: 22,
			Proto: flow.ProtoTCP, TCPFlags: flags, Packets: uint64(100 * n), Bytes: uint64(100 * n * 200),
			SampledPackets: uint64(n), SampledBytes: uint64(200 * n)})
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	if !rulesOf(fs, 46)[attack.RuleBruteForce] {
		t.Errorf("brute force through sampled NetFlow not reported: %v", verdicts(fs))
	}
}

// A window that is no multiple of 6 s is rounded down to one, and the
// threshold is taken over that: a flood just over min_pps is found.
func TestAttackWindowOfAnyLength(t *testing.T) {
	conf := detect.Defaults()
	conf.Attack.Window = detect.Duration(100 * time.Second)
	var c capture
	for i := range 300 * 51 { // 51,000 packets/s against min_pps 50,000, sFlow 1:1000
		c.sflow(time.Duration(i)*time.Second/51, 1000, in(47), 40000, ext(47), 9000, flow.ProtoUDP, 0, 512)
	}
	fs := run(t, conf, nil, c.sorted())
	if len(fs) != 1 || fs[0].Rule != attack.RuleUDPFlood {
		t.Fatalf("findings %v, want one UDP flood", verdicts(fs))
	}
	if f := fs[0]; f.Measured < 50000 || f.Measured > 51000 || f.LastSeen.Sub(f.FirstSeen) > 96*time.Second {
		t.Errorf("measured %.0f packets/s from %s to %s; want 50,000-51,000 within the 96 s window",
			f.Measured, f.FirstSeen.Sub(t0), f.LastSeen.Sub(t0))
	}
}

// A long flow record that arrives after a short one of the same flood
// moves the finding's first_seen back to where its packets in the window
// begin.
func TestAttackFirstSeenOfALaterLongRecord(t *testing.T) {
	var c capture
	c.netflow(250*time.Second, 260*time.Second, in(48), 40001, ext(48), 9000, flow.ProtoUDP, 0, 10*30000, 10*30000*500)
	c.netflow(0, 300*time.Second, in(48), 40000, ext(48), 9000, flow.ProtoUDP, 0, 300*100000, 300*100000*500)
	var found bool
	for _, f := range run(t, detect.Defaults(), nil, c.recs) {
		if f.Rule != attack.RuleUDPFlood {
			continue
		}
		found = true
		// the long record fills the whole window up to the finding; the
		// short one began 250 s in
		if got := f.FirstSeen.Sub(t0); got >= 250*time.Second {
			t.Errorf("first_seen %s, want before the short record's start (250 s)", got)
		}
	}
	if !found {
		t.Fatal("UDP flood not reported")
	}
}
