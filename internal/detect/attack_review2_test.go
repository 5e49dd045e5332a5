package detect_test

import (
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/detect/attack"
	"padlock/internal/flow"
)

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
