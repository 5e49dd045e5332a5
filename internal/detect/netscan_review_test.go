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
