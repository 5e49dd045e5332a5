package detect_test

import (
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/detect/netscan"
	"padlock/internal/flow"
)

// nmap's stealth scans (-sF FIN, -sX FIN+PSH+URG) initiate contact with
// segments no connection ever sends: every segment of a connection after
// its SYN carries ACK. Closed ports answer RST, open and filtered ones
// nothing. They are probes as a SYN is: over 400 hosts on port 22 a
// horizontal scan, over 1,000 ports of one host a vertical one. Records
// without TCP flags — a NetFlow exporter that sends none, packets
// captured with a snap length that cuts the TCP header short — make no
// connection a probe.
func TestStealthScansAreProbes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags uint8
	}{
		{"FIN scan", flow.TCPFin},
		{"Xmas scan", flow.TCPFin | flow.TCPPsh | flow.TCPUrg},
	} {
		var c capture
		for i := range 400 {
			at := time.Duration(i) * 20 * ms
			c.pkt(at, in(75), 45000, ext(256+i), 22, flow.ProtoTCP, tc.flags, 54)
			if i%4 == 0 { // closed
				c.pkt(at+3*ms, ext(256+i), 22, in(75), 45000, flow.ProtoTCP, rstAck, 54)
			}
		}
		for p := 1; p <= 1000; p++ {
			at := time.Duration(p) * 2 * ms
			c.pkt(at, in(76), 45001, ext(76), uint16(p), flow.ProtoTCP, tc.flags, 54)
			c.pkt(at+ms, ext(76), uint16(p), in(76), 45001, flow.ProtoTCP, rstAck, 54)
		}
		for i := range 1200 { // a crawler through an exporter without TCP flags
			at := time.Duration(i) * 200 * ms
			c.netflow(at, at+time.Second, in(77), uint16(35000+i), ext(256+i), 443, flow.ProtoTCP, 0, 12, 2000)
			c.netflow(at, at+time.Second, ext(256+i), 443, in(77), uint16(35000+i), flow.ProtoTCP, 0, 14, 14000)
			c.pkt(at, in(80), uint16(35000+i), ext(256+i), 443, flow.ProtoTCP, 0, 64) // the TCP header cut short: ports, no flags
		}
		fs := run(t, detect.Defaults(), nil, c.sorted())
		if !rulesOf(fs, 75)[netscan.RuleHorizontal] {
			t.Errorf("%s of port 22 over 400 hosts not reported: %v", tc.name, verdicts(fs))
		}
		if !rulesOf(fs, 76)[netscan.RuleVertical] {
			t.Errorf("%s of 1,000 ports of one host not reported: %v", tc.name, verdicts(fs))
		}
		if r := rulesOf(fs, 77); len(r) != 0 {
			t.Errorf("crawler in NetFlow without TCP flags reported: %v", r)
		}
		if r := rulesOf(fs, 80); len(r) != 0 {
			t.Errorf("crawler captured with its TCP headers cut short reported: %v", r)
		}
	}
}

// A ping monitor (smokeping, blackbox ICMP probes) pings 400 hosts every
// minute, each answering in 20 ms. Its requests and the echo replies are
// captured at two taps (or exported by two agents) whose clocks differ
// by `lead`: the replies' records carry earlier times than the requests
// they answer, so they come first. A reply before its request still
// answers it (as a UDP answer before its query does), over IPv4 and IPv6;
// a ping sweep whose few answers come first is still a sweep.
func TestEchoRepliesBeforeTheirRequests(t *testing.T) {
	for _, lead := range []time.Duration{500 * ms, 2 * time.Second} {
		var c capture
		for m := range 6 {
			for i := range 400 {
				at := 3*time.Second + time.Duration(m)*time.Minute + time.Duration(i)*20*ms
				c.icmp(at, in(78), ext(256+i), 8, 84)
				c.icmp(at+20*ms-lead, ext(256+i), in(78), 0, 84)
				c.icmp(at, in6(78), ext6(i), 128, 84)
				c.icmp(at+20*ms-lead, ext6(i), in6(78), 129, 84)
			}
		}
		for i := range 1000 { // a sweep: one target in ten answers
			at := 3*time.Second + time.Duration(i)*50*ms
			c.icmp(at, in(79), ext(2000+i), 8, 84)
			if i%10 == 0 {
				c.icmp(at+20*ms-lead, ext(2000+i), in(79), 0, 84)
			}
		}
		fs := run(t, detect.Defaults(), nil, c.sorted())
		for _, f := range fs {
			if f.InternalIP == in(78) || f.InternalIP == in6(78) {
				t.Errorf("replies %s ahead: ping monitor of 400 answering hosts reported: %s %s: %s", lead, f.InternalIP, f.Rule, f.Detail)
			}
		}
		if !rulesOf(fs, 79)[netscan.RuleHorizontal] {
			t.Errorf("replies %s ahead: ping sweep of 1,000 hosts, one in ten answering, not reported: %v", lead, verdicts(fs))
		}
	}
}
