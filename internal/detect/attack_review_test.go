package detect_test

import (
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/detect/attack"
	"padlock/internal/flow"
)

// synAttempts adds, captured whole, connection attempts from host to
// target:port that nobody answers: each attempt's SYN and the kernel's
// retransmissions of it (Linux: 1, 3, 7 and 15 s later, the attempt
// given up after 20 s), one attempt every `every` from each of `workers`
// sockets, for `secs` seconds.
func synAttempts(c *capture, host int, target int, port uint16, workers int, every time.Duration, secs int) int {
	n := 0
	for w := range workers {
		for a := 0; time.Duration(a)*every < time.Duration(secs)*time.Second; a++ {
			at := time.Duration(a)*every + time.Duration(w)*100*ms
			sp := uint16(40000 + n)
			n++
			for _, r := range []time.Duration{0, 1, 3, 7, 15} {
				c.pkt(at+r*time.Second, in(host), sp, ext(target), port, flow.ProtoTCP, syn, 60)
			}
		}
	}
	return n
}

// A backup job with 10 workers retrying an SFTP server behind a firewall
// that drops them every 20 s makes 30 connection attempts a minute; the
// kernel sends each attempt's SYN five times. That is 30 new connections
// a minute, not the 100 that make brute force: retransmissions of one
// attempt (same source port, same target and port) are one connection.
// 150 attempts a minute, retransmitted as well, stay brute force.
func TestBruteForceCountsRetransmittedSYNOnce(t *testing.T) {
	var c capture
	synAttempts(&c, 70, 70, 22, 10, 20*time.Second, 180)
	synAttempts(&c, 71, 71, 22, 50, 20*time.Second, 180)
	fs := run(t, detect.Defaults(), nil, c.sorted())
	if r := rulesOf(fs, 70); r[attack.RuleBruteForce] {
		for _, f := range fs {
			if f.InternalIP == in(70) {
				t.Logf("%s: %s", f.Rule, f.Detail)
			}
		}
		t.Errorf("30 connection attempts a minute, each SYN retransmitted, reported as brute force")
	}
	if r := rulesOf(fs, 71); !r[attack.RuleBruteForce] {
		t.Errorf("150 connection attempts a minute not reported as brute force: %v", verdicts(fs))
	}
}

// Two routers export the two directions of a WireGuard backup at 80,000
// packets/s, acknowledged with one packet in two: router A the host's
// records (a minute each), router B the answers'. B's record of each
// minute reaches padlock `lag` after A's, while A's records of other
// flows (here: another host's short connections) move event time on.
// A lag of a few seconds between two exporters makes the tunnel no flood;
// the same stream unanswered still is one.
func TestNetFlowAnswersFromASecondExporter(t *testing.T) {
	for _, lag := range []time.Duration{3 * time.Second, 5 * time.Second, 8 * time.Second} {
		var a, b capture
		for m := range 5 {
			from, to := time.Duration(m)*time.Minute, time.Duration(m+1)*time.Minute-time.Second
			a.netflow(from, to, in(72), 51820, ext(72), 51820, flow.ProtoUDP, 0, 80000*60, 80000*60*1400)
			a.netflow(from, to, in(73), 51820, ext(73), 51820, flow.ProtoUDP, 0, 80000*60, 80000*60*1400)
			b.netflow(from, to, ext(72), 51820, in(72), 51820, flow.ProtoUDP, 0, 40000*60, 40000*60*120)
		}
		for at := time.Duration(0); at < 6*time.Minute; at += 100 * ms {
			a.netflow(at-2*time.Second, at, in(74), 40000, ext(74), 443, flow.ProtoTCP, syn|pshAck|flow.TCPFin, 10, 4000)
		}
		var recs []flow.Record // in the order padlock receives them
		late := b.sorted()
		for _, r := range a.sorted() {
			for len(late) > 0 && !r.End.Before(late[0].End.Add(lag)) {
				recs, late = append(recs, late[0]), late[1:]
			}
			recs = append(recs, r)
		}
		recs = append(recs, late...)
		fs := run(t, detect.Defaults(), nil, recs)
		if rulesOf(fs, 72)[attack.RuleUDPFlood] {
			t.Errorf("answers %s late: answered tunnel reported as a UDP flood", lag)
		}
		if !rulesOf(fs, 73)[attack.RuleUDPFlood] {
			t.Errorf("answers %s late: unanswered stream not reported: %v", lag, verdicts(fs))
		}
	}
}

// An ICMP flood need not be of echo requests: BlackNurse sends
// destination-unreachable (type 3 code 3) messages, which firewalls let
// through, at 50,000 and more a second; other tools flood with timestamp
// requests or ICMPv6 errors. A server's own ICMP errors are capped by its
// kernel (Linux: 1,000 a second in all), so such a stream at flood rates
// to one target is a flood. Replies are not (echo replies, the timestamp
// replies Linux sends to every timestamp request): a server answering an
// inbound ping flood is its victim.
func TestICMPFloodOfAnyType(t *testing.T) {
	var c capture
	for i := 0; i < 70*60; i++ { // 60,000 packets/s, sFlow 1:1000
		at := time.Duration(i) * time.Second / 60
		c.sflow(at, 1000, in(81), 0, ext(81), 3<<8|3, flow.ProtoICMP, 0, 70)        // BlackNurse
		c.sflow(at, 1000, in6(82), 0, ext6(82), 1<<8|4, flow.ProtoICMPv6, 0, 70)    // ICMPv6 port unreachable
		c.sflow(at, 1000, in(83), 0, ext(83), 13<<8, flow.ProtoICMP, 0, 54)         // timestamp requests
		c.sflow(at, 1000, ext(84), 0, in(84), 8<<8, flow.ProtoICMP, 0, 84)          // a ping flood against in(84)
		c.sflow(at+ms, 1000, in(84), 0, ext(84), 0, flow.ProtoICMP, 0, 84)          // and its echo replies
		c.sflow(at, 1000, ext(88), 0, in(88), 13<<8, flow.ProtoICMP, 0, 54)         // a timestamp flood against in(88)
		c.sflow(at+ms, 1000, in(88), 0, ext(88), 14<<8, flow.ProtoICMP, 0, 54)      // and its timestamp replies
		c.sflow(at, 1000, ext6(89), 0, in6(89), 128<<8, flow.ProtoICMPv6, 0, 84)    // an IPv6 ping flood against in6(89)
		c.sflow(at+ms, 1000, in6(89), 0, ext6(89), 129<<8, flow.ProtoICMPv6, 0, 84) // and its echo replies
		c.sflow(at, 1000, ext(85), 40000, in(85), uint16(i), flow.ProtoUDP, 0, 512) // a UDP flood against in(85)
	}
	for i := 0; i < 70*1000; i++ { // in(85)'s kernel answers with port unreachable, 1,000 a second
		c.pkt(time.Duration(i)*ms, in(85), 0, ext(85), 3<<8|3, flow.ProtoICMP, 0, 70)
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	for _, x := range []struct {
		host int
		six  bool
		what string
	}{{81, false, "BlackNurse"}, {82, true, "ICMPv6 errors"}, {83, false, "timestamp requests"}} {
		addr := in(x.host)
		if x.six {
			addr = in6(x.host)
		}
		found := false
		for _, f := range fs {
			found = found || f.InternalIP == addr && f.Rule == attack.RuleICMPFlood
		}
		if !found {
			t.Errorf("ICMP flood of %s at 60,000 packets/s not reported: %v", x.what, verdicts(fs))
		}
	}
	for _, f := range fs {
		if f.Rule == attack.RuleICMPFlood && (f.InternalIP == in(84) || f.InternalIP == in(85) || f.InternalIP == in(88) || f.InternalIP == in6(89)) {
			t.Errorf("%s: a victim's ICMP answers reported as an ICMP flood", f.InternalIP)
		}
	}
}

// A SIP flood (inviteflood, a REGISTER flood) of 60,000 requests a second
// to one VoIP server: the victim answers every request (100 Trying, 401),
// as a resolver answers a DNS query flood, and its answers make it no
// conversation. A PBX talking SIP to its trunk provider at a few hundred
// messages a second, and its RTP streams, are no flood.
func TestAnsweredSIPFlood(t *testing.T) {
	var c capture
	for i := 0; i < 120*60; i++ { // sFlow 1:1000
		at := time.Duration(i) * time.Second / 60
		sp := uint16(40000 + i%20000)
		c.sflow(at, 1000, in(86), sp, ext(86), 5060, flow.ProtoUDP, 0, 700)
		c.sflow(at+ms, 1000, ext(86), 5060, in(86), sp, flow.ProtoUDP, 0, 450)
	}
	for i := 0; i < 120*300; i++ { // a PBX: 300 SIP messages a second to its trunk, answered; captured
		at := time.Duration(i) * time.Second / 300
		c.pkt(at, in(87), 5060, ext(87), 5060, flow.ProtoUDP, 0, 700)
		c.pkt(at+ms, ext(87), 5060, in(87), 5060, flow.ProtoUDP, 0, 450)
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	if !rulesOf(fs, 86)[attack.RuleUDPFlood] {
		t.Errorf("answered SIP flood of 60,000 requests/s not reported: %v", verdicts(fs))
	}
	if r := rulesOf(fs, 87); len(r) != 0 {
		t.Errorf("PBX reported: %v", r)
	}
}
