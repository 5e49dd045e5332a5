package detect_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/detect/netscan"
	"padlock/internal/flow"
)

// A UDP service on a high port (a game server's 27015) that only replies,
// seen through sFlow: the sampled requests and the sampled replies are of
// different clients (random addresses and ports), so no reply finds its
// request, and thousands of replies read as contacts on thousands of
// ports. The requests coming in to 27015 as often as the replies go out
// make them replies. A scanner of memcached (11211) from one high source
// port, whose targets answer one time in twenty, stays a scanner.
func TestSampledHighPortServiceIsNoScanner(t *testing.T) {
	for _, rate := range []uint32{1000, 100} {
		var c capture
		rng := rand.New(rand.NewPCG(1, uint64(rate)))
		for s := range 400 {
			for k := range 20 { // samples per second each way
				at := time.Duration(s)*time.Second + time.Duration(k)*time.Second/20
				c.sflow(at, rate, ext(256+rng.IntN(130000)), uint16(1024+rng.IntN(64000)), in(90), 27015, flow.ProtoUDP, 0, 60)
				c.sflow(at+ms, rate, in(90), 27015, ext(256+rng.IntN(130000)), uint16(1024+rng.IntN(64000)), flow.ProtoUDP, 0, 200)
			}
		}
		for i := range 300 * 5 { // 5 sampled probes a second, one in twenty answered
			at := time.Duration(i) * 200 * ms
			dst := ext(256 + rng.IntN(130000))
			c.sflow(at, rate, in(91), 41000, dst, 11211, flow.ProtoUDP, 0, 60)
			if i%20 == 0 {
				c.sflow(at+ms, rate, ext(256+rng.IntN(130000)), 11211, in(91), 41000, flow.ProtoUDP, 0, 1400)
			}
		}
		got := run(t, detect.Defaults(), nil, c.sorted())
		if r := rulesOf(got, 90); len(r) != 0 {
			t.Errorf("1:%d: a UDP service on 27015 that only replies reported as %v", rate, r)
		}
		if r := rulesOf(got, 91); !r[netscan.RuleHorizontal] {
			t.Errorf("1:%d: memcached scan from port 41000 not reported: %v", rate, verdicts(got))
		}
	}
}

// sampledConnection adds the sFlow samples (each packet sampled once in
// rate) of one HTTPS connection from client:cp to server:443: handshake,
// request, segs data segments (PSH on the last), the client's ACKs, FIN.
func sampledConnection(c *capture, rng *rand.Rand, rate int, at time.Duration, client netip.Addr, cp uint16, server netip.Addr, segs int) {
	type p struct {
		out   bool
		flags uint8
		size  int
	}
	pk := []p{{true, syn, 60}, {false, synAck, 60}, {true, ack, 52}, {true, pshAck, 400}}
	for k := range segs {
		f := uint8(ack)
		if k == segs-1 {
			f = pshAck
		}
		pk = append(pk, p{false, f, 1400})
		if k%2 == 1 {
			pk = append(pk, p{true, ack, 52})
		}
	}
	pk = append(pk, p{false, flow.TCPFin | ack, 52}, p{true, flow.TCPFin | ack, 52})
	for j, x := range pk {
		if rng.IntN(rate) != 0 {
			continue
		}
		t := at + time.Duration(j)*2*ms
		if x.out {
			c.sflow(t, uint32(rate), client, cp, server, 443, flow.ProtoTCP, x.flags, x.size)
		} else {
			c.sflow(t, uint32(rate), server, 443, client, cp, flow.ProtoTCP, x.flags, x.size)
		}
	}
}

// A crawler fetching from 150 distinct sites a second (1,000 at 1:1000),
// one answered connection each, seen through sFlow: only the connections
// whose SYN was sampled open a contact, and their answers are sampled as
// rarely; the samples of other connections' data answer the port. A SYN
// scan of port 443 beside it, whose targets send no data, stays a scan.
func TestSampledCrawlerIsNoScanner(t *testing.T) {
	for _, tc := range []struct{ rate, perSec int }{{100, 150}, {1000, 1000}} {
		var c capture
		rng := rand.New(rand.NewPCG(2, uint64(tc.rate)))
		for i := range tc.perSec * 300 {
			at := time.Duration(i) * time.Second / time.Duration(tc.perSec)
			sampledConnection(&c, rng, tc.rate, at, in(81), uint16(32768+i%28000), ext(256+i%120000), 11)
		}
		for i := range 300 * 2 { // 2 sampled SYNs a second, no answers
			c.sflow(time.Duration(i)*500*ms, uint32(tc.rate), in(82), 40000, ext(256+rng.IntN(120000)), 443, flow.ProtoTCP, syn, 60)
		}
		got := run(t, detect.Defaults(), nil, c.sorted())
		if r := rulesOf(got, 81); len(r) != 0 {
			t.Errorf("1:%d: crawler of %d sites/s reported as %v", tc.rate, tc.perSec, r)
		}
		if r := rulesOf(got, 82); !r[netscan.RuleHorizontal] {
			t.Errorf("1:%d: SYN scan of port 443 not reported: %v", tc.rate, verdicts(got))
		}
	}
}

// A scanner that connects with the operating system's defaults: 400 hosts
// on port 22 at one to ten a second, one in ten refusing (RST), the silent
// rest sent the SYN and Linux's six retransmissions (at 1, 3, 7, 15, 31 and
// 63 s). Seven SYNs per silent contact are a scan's probes, not traffic.
func TestConnectScannerWithRetransmissions(t *testing.T) {
	for _, perSec := range []int{10, 2, 1} {
		var c capture
		for i := range 400 {
			at := time.Duration(i) * time.Second / time.Duration(perSec)
			sp := uint16(40000 + i)
			if i%10 == 0 {
				c.pkt(at, in(10), sp, ext(i+256), 22, flow.ProtoTCP, syn, 60)
				c.pkt(at+20*ms, ext(i+256), 22, in(10), sp, flow.ProtoTCP, rstAck, 54)
				continue
			}
			for _, r := range []time.Duration{0, 1, 3, 7, 15, 31, 63} {
				c.pkt(at+r*time.Second, in(10), sp, ext(i+256), 22, flow.ProtoTCP, syn, 60)
			}
		}
		if got := run(t, detect.Defaults(), nil, c.sorted()); !rulesOf(got, 10)[netscan.RuleHorizontal] {
			t.Errorf("connect() scan of 400 hosts on port 22 at %d a second: %v", perSec, verdicts(got))
		}
	}
}

// A masscan of 50 ports over 2,000 hosts, seen in NetFlow, from a host that
// also serves HTTPS on 8443 to 25 new clients a second: the answers its
// clients send are of connections they began, and do not answer the scan.
func TestMultiPortScanBesideAHighPortService(t *testing.T) {
	var c capture
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 6000 {
		x := rng.IntN(100000)
		at := time.Duration(i) * 20 * ms
		c.netflow(at, at, in(59), 61000, ext(x%2000+256), uint16(8000+x/2000), flow.ProtoTCP, syn, 1, 60)
	}
	for i := range 25 * 300 {
		at := time.Duration(i) * time.Second / 25
		cl, cp := ext(10000+i), uint16(32768+rng.IntN(28000))
		c.netflow(at, at+2*time.Second, cl, cp, in(59), 8443, flow.ProtoTCP, syn|pshAck|flow.TCPFin, 12, 2000)
		c.netflow(at, at+2*time.Second, in(59), 8443, cl, cp, flow.ProtoTCP, synAck|flow.TCPPsh|flow.TCPFin, 14, 14000)
	}
	if got := run(t, detect.Defaults(), nil, c.sorted()); !rulesOf(got, 59)[netscan.RuleHorizontal] {
		t.Errorf("multi-port scan beside a service on 8443 not reported: %v", verdicts(got))
	}
}

// A scan's finding shows its own probes' sampling rate and the time of its
// first probe: an hour of client traffic through an exporter sampling
// 1:1000 does not make a scan sampled 1:100 read as 1:1000, and NetFlow
// records of SYNs retransmitted over 15 s are first seen at their start.
func TestNetscanFindingTimesAndRate(t *testing.T) {
	var c capture
	for s := 0; s < 3600; s += 20 { // an hour of client traffic at 1:1000
		c.sflow(time.Duration(s)*time.Second, 1000, in(58), 40000, ext(5), 443, flow.ProtoTCP, syn, 60)
		c.sflow(time.Duration(s)*time.Second+ms, 1000, ext(5), 443, in(58), 40000, flow.ProtoTCP, pshAck, 1400)
	}
	for i := range 300 { // then a scan, sampled 1:100
		c.sflow(3600*time.Second+time.Duration(i)*500*ms, 100, in(58), 61000, ext(1000+i), 23, flow.ProtoTCP, syn, 60)
	}
	for i := range 300 {
		at := time.Duration(i) * 100 * ms
		c.netflow(at, at+15*time.Second, in(62), uint16(40000+i), ext(256+i), 22, flow.ProtoTCP, syn, 5, 300)
	}
	got := run(t, detect.Defaults(), nil, c.sorted())
	var n int
	for _, f := range got {
		switch f.InternalIP {
		case in(58):
			n++
			if f.SamplingRate != 100 {
				t.Errorf("scan sampled 1:100 reported with sampling rate %d", f.SamplingRate)
			}
		case in(62):
			n++
			if p := f.Probes[0]; !p.Time.Equal(t0) || !f.FirstSeen.Equal(t0) {
				t.Errorf("first probe at %s, first seen %s; want %s, the first record's start",
					p.Time.Sub(t0), f.FirstSeen.Sub(t0), t0)
			}
		}
	}
	if n != 2 {
		t.Errorf("want the two scans reported: %v", verdicts(got))
	}
}
