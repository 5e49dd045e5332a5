package detect_test

import (
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/detect/netscan"
	"padlock/internal/flow"
)

// A client's bare ACK to a server it has no contact with (the connection's
// SYN is older than the window) may acknowledge the server's own segment:
// its FIN. The client then goes on — it sends its request into the
// connection the server is closing (the keep-alive race of every HTTP
// client whose idle timeout is longer than the server's), or closes the
// connection when its application gets round to it, after the server's
// FIN_WAIT_2 timed out — and the server answers RST. A Windows client (no
// TCP timestamps) does this to 400 servers on 443 within two minutes: no
// ACK scan, as the client sent more than the bare ACK into each
// connection; nmap's ACK and window probes are a bare ACK alone (and its
// retries, the same).
func TestACKThenConnectionIsNoACKProbe(t *testing.T) {
	var c capture
	for i := range 400 {
		at := time.Duration(i) * 300 * ms
		cp := uint16(50000 + i)
		srv := ext(256 + i)
		// the keep-alive race: FIN, ACK, the request, RST
		c.wire(at, 1, srv, 443, in(141), cp, seg{finAck, 12, 0, 501})
		c.wire(at+ms, 1, in(141), cp, srv, 443, seg{ack, 0, 0, 1026})
		c.wire(at+2*ms, 1, in(141), cp, srv, 443, seg{pshAck, 0, 500, 1026})
		c.wire(at+22*ms, 1, srv, 443, in(141), cp, rstReply)
		// a late close (CLOSE_WAIT): FIN, ACK, 20 s later the client's FIN, RST
		c.wire(at, 1, srv, 443, in(140), cp, seg{finAck, 12, 0, 501})
		c.wire(at+ms, 1, in(140), cp, srv, 443, seg{ack, 0, 0, 1026})
		c.wire(at+20*time.Second, 1, in(140), cp, srv, 443, seg{finAck, 0, 0, 1026})
		c.wire(at+20*time.Second+20*ms, 1, srv, 443, in(140), cp, rstReply)
		// the same in NetFlow: the client's ACK record, then its request's
		c.netflow(at, at, srv, 443, in(142), cp, flow.ProtoTCP, finAck, 1, 52)
		c.netflow(at+ms, at+ms, in(142), cp, srv, 443, flow.ProtoTCP, ack, 1, 40)
		c.netflow(at+2*ms, at+2*ms, in(142), cp, srv, 443, flow.ProtoTCP, pshAck, 1, 540)
		c.netflow(at+22*ms, at+22*ms, srv, 443, in(142), cp, flow.ProtoTCP, rstOnly, 1, 40)
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	silent(t, fs, map[int]string{
		141: "requests into connections the servers were closing (keep-alive race)",
		140: "late closes of connections the servers had closed",
		142: "the keep-alive race in NetFlow",
	})
}

// A RST that refuses a segment carrying ACK — nmap's Maimon, ACK and
// window probes — carries no ACK itself (RFC 9293: it takes its sequence
// number from the segment's acknowledgement; Linux, BSD and Windows stacks
// all answer so). A RST with ACK is a connection's abortive close (a
// server's SO_LINGER 0, an idle timeout of a load balancer), or in a flow
// record the remote's acknowledgements and its RST together. A Windows
// client (no TCP timestamps) whose connections to 400 servers on 443 are
// older than the window acknowledges each server's last response with a
// bare ACK, and 10 s later the servers drop the idle connections with
// RST+ACK; in NetFlow the same client closes such connections with one
// bare FIN+ACK each and each server's record holds its ACK and a RST
// (flags ACK|RST). Neither is a scan.
func TestRSTWithACKRefusesNoProbe(t *testing.T) {
	var c capture
	for i := range 400 {
		at := time.Duration(i) * 300 * ms
		cp := uint16(50000 + i)
		srv := ext(256 + i)
		c.wire(at, 1, srv, 443, in(143), cp, seg{pshAck, 0, 900, 501})
		c.wire(at+ms, 1, in(143), cp, srv, 443, seg{ack, 0, 0, 1026})
		c.wire(at+10*time.Second, 1, srv, 443, in(143), cp, rstAckRep)
		c.netflow(at, at, in(144), cp, srv, 443, flow.ProtoTCP, finAck, 1, 40)
		c.netflow(at+20*ms, at+30*ms, srv, 443, in(144), cp, flow.ProtoTCP, rstAck, 2, 80)
		// the same client's close in a capture, the server's RST+ACK alone
		c.wire(at, 1, in(145), cp, srv, 443, seg{finAck, 0, 0, 1026})
		c.wire(at+20*ms, 1, srv, 443, in(145), cp, rstAckRep)
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	silent(t, fs, map[int]string{
		143: "idle connections the servers dropped with RST+ACK after the client's last ACK",
		144: "closes in NetFlow whose servers' records hold ACK and RST",
		145: "closes the servers answered with RST+ACK",
	})
}

// A fast ACK scan (1,000 hosts in 5 s, 400 of them up) whose refusals'
// records come 20 s after its probes' (the remotes' RST flows exported
// later, or by another exporter): every probe's record comes before any
// refusal, so no new probe is left to ask for the verdict the refusals
// prove; the refusals ask themselves.
func TestACKScanRefusedAfterItsProbes(t *testing.T) {
	var c capture
	for i := range 1000 {
		at := time.Duration(i) * 5 * ms
		c.netflow(at, at, in(146), 41002, ext(256+i), 443, flow.ProtoTCP, ack, 1, 40)
		if i%5 < 2 {
			c.netflow(at+20*time.Second, at+20*time.Second, ext(256+i), 443, in(146), 41002, flow.ProtoTCP, rstOnly, 1, 40)
		}
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	if f := findingOf(fs, 146, netscan.RuleHorizontal); f == nil || f.Port != 443 || f.Measured != 400 {
		t.Fatalf("ACK scan of 1,000 hosts refused by 400 after its last probe: want a horizontal finding of 400 destinations on 443, got %v", verdicts(fs))
	} else if len(f.Packets) == 0 {
		t.Error("the finding carries no traffic dump")
	}
}
