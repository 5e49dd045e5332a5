package netscan_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"padlock/internal/detect/detector"
	"padlock/internal/detect/detector/detectortest"
	"padlock/internal/detect/netscan"
	"padlock/internal/flow"
)

// The tests below are of hosts with more live contacts in a window than
// max_contacts (4,096): the table fills, and answered contacts are dropped
// first to keep a scan's evidence. What is dropped must still weigh in the
// answered share, or a busy peer-to-peer node reads as a scanner.

// p2pTraffic is unsampled traffic of a node contacting `per` new peers a
// second for dur, each on port (0: a random high port per peer), of which
// the share answered reply within 50 ms. Peers are addresses of
// 198.18.0.0/15 and public /8s, never contacted twice.
func p2pTraffic(rng *rand.Rand, dur time.Duration, per int, port uint16, answered float64) []flow.Record {
	var recs []flow.Record
	n := 0
	for at := time.Duration(0); at < dur; at += time.Second / time.Duration(per) {
		n++
		tgt := netip.AddrFrom4([4]byte{byte(11 + n>>16%80), byte(n >> 8), byte(n), byte(1 + rng.IntN(254))})
		p := port
		if p == 0 {
			p = uint16(1025 + rng.IntN(60000))
		}
		recs = append(recs, pkt(at, me.String(), 51413, tgt.String(), p, flow.ProtoUDP, 0))
		if rng.Float64() < answered {
			recs = append(recs, pkt(at+50*ms, tgt.String(), p, me.String(), 51413, flow.ProtoUDP, 0))
		}
	}
	return merge(recs)
}

// A BitTorrent seedbox's DHT node: 40 new peers a second (12,000 in a
// window, three times max_contacts), 60 % of which answer. Peers listen on
// 51413 (Transmission's default) or on random ports. No netscan.
func TestBusyPeerToPeerNodeIsNoScanner(t *testing.T) {
	for _, port := range []uint16{51413, 0} {
		recs := p2pTraffic(rand.New(rand.NewPCG(7, uint64(port))), 10*time.Minute, 40, port, 0.6)
		if r := feed(recs); len(r.Findings) != 0 {
			f := r.Findings[0]
			t.Errorf("peer port %d: %s (%v destinations, port %d: %s) for a node whose peers answer 60 %%", port, f.Rule, f.Measured, f.Port, f.Detail)
		}
	}
}

// A scan with as many contacts, of which 5 % answer, fills the table just
// the same and is still a scan: on one port and across random ports.
func TestScanPastFullTable(t *testing.T) {
	for _, port := range []uint16{22, 0} {
		recs := p2pTraffic(rand.New(rand.NewPCG(8, uint64(port))), 10*time.Minute, 40, port, 0.05)
		r := feed(recs)
		if len(r.Findings) == 0 {
			t.Fatalf("port %d: no finding for a scan of 24,000 targets", port)
		}
		if f := r.Findings[0]; f.Rule != netscan.RuleHorizontal || f.Port != port {
			t.Errorf("port %d: finding %s on port %d, want %s on port %d", port, f.Rule, f.Port, netscan.RuleHorizontal, port)
		}
	}
}

// contacts is unsampled traffic of the host reaching per new remotes a
// second from start for dur, on port (0: a random high port each) over
// proto, of which the share answered reply within 50 ms (a TCP answer is
// the handshake's ACK and data back). base keeps the remotes of several
// streams apart.
func contacts(seed uint64, start, dur time.Duration, per int, proto uint8, port uint16, answered float64, base int) []flow.Record {
	rng := rand.New(rand.NewPCG(seed, uint64(port)))
	var recs []flow.Record
	n := base
	for at := start; at < start+dur; at += time.Second / time.Duration(per) {
		n++
		tgt := netip.AddrFrom4([4]byte{byte(11 + n>>16%80), byte(n >> 8), byte(n), byte(1 + rng.IntN(254))}).String()
		p := port
		if p == 0 {
			p = uint16(1025 + rng.IntN(60000))
		}
		if proto == flow.ProtoUDP {
			recs = append(recs, pkt(at, me.String(), 51413, tgt, p, proto, 0))
			if rng.Float64() < answered {
				recs = append(recs, pkt(at+50*ms, tgt, p, me.String(), 51413, proto, 0))
			}
			continue
		}
		sp := uint16(40000 + rng.IntN(20000))
		recs = append(recs, pkt(at, me.String(), sp, tgt, p, proto, flow.TCPSyn))
		if rng.Float64() < answered {
			recs = append(recs, pkt(at+25*ms, me.String(), sp, tgt, p, proto, flow.TCPAck),
				pkt(at+50*ms, tgt, p, me.String(), sp, proto, flow.TCPAck|flow.TCPPsh))
		}
	}
	return recs
}

// fleet is the host connecting to the same servers on port every
// `every`, each connection answered (monitoring, API polling).
func fleet(servers int, port uint16, every, dur time.Duration, base int) []flow.Record {
	var recs []flow.Record
	for i, at := 0, time.Duration(0); at < dur; i, at = i+1, at+every/time.Duration(servers) {
		n := base + i%servers
		tgt := netip.AddrFrom4([4]byte{byte(11 + n>>16%80), byte(n >> 8), byte(n), 7}).String()
		sp := uint16(30000 + i%20000)
		recs = append(recs, pkt(at, me.String(), sp, tgt, port, flow.ProtoTCP, flow.TCPSyn),
			pkt(at+20*ms, me.String(), sp, tgt, port, flow.ProtoTCP, flow.TCPAck),
			pkt(at+40*ms, tgt, port, me.String(), sp, flow.ProtoTCP, flow.TCPAck|flow.TCPPsh))
	}
	return recs
}

// scanOn returns the first finding on port, nil if none.
func scanOn(r *detectortest.Recorder, port uint16) *detector.Finding {
	for i := range r.Findings {
		if r.Findings[i].Port == port {
			return &r.Findings[i]
		}
	}
	return nil
}

// A crawler (40 new web servers a second, 90 % answered: its table is
// full) that polls 500 SSH servers every 30 s starts an SSH scan of random
// targets (3 % answered) at 6 minutes. The polled servers, dropped
// answered and made again every 30 s, count once each in the window: the
// scan is found. (Counted once per drop, they hid it.)
func TestScanBesideRecontactedServers(t *testing.T) {
	recs := merge(contacts(3, 0, 15*time.Minute, 40, flow.ProtoTCP, 443, 0.9, 1<<21),
		fleet(500, 22, 30*time.Second, 15*time.Minute, 1<<22),
		contacts(9, 6*time.Minute, 9*time.Minute, 40, flow.ProtoTCP, 22, 0.03, 1<<20))
	if f := scanOn(feed(recs), 22); f == nil {
		t.Error("no finding for the SSH scan")
	} else if f.Rule != netscan.RuleHorizontal {
		t.Errorf("finding %s on port 22, want %s", f.Rule, netscan.RuleHorizontal)
	}
}

// A DHT node whose peers answer 60 % starts an SSH scan once its table is
// full: the scan is found (a full table refusing contacts put off making
// room with every contact it refused, and never saw it).
func TestScanFromFullTable(t *testing.T) {
	recs := merge(contacts(7, 0, 15*time.Minute, 40, flow.ProtoUDP, 0, 0.6, 0),
		contacts(9, 6*time.Minute, 9*time.Minute, 40, flow.ProtoTCP, 22, 0.03, 1<<20))
	if scanOn(feed(recs), 22) == nil {
		t.Error("no finding for the SSH scan")
	}
}

// A node whose peers on six ports answer 60 % (48 new peers a second in
// all) is no scanner: each busy port's drops are kept.
func TestBusyPortsEachKeepTheirDrops(t *testing.T) {
	var parts [][]flow.Record
	for i := range 6 {
		parts = append(parts, contacts(uint64(10+i), 0, 12*time.Minute, 8, flow.ProtoUDP, uint16(6881+i), 0.6, i<<18))
	}
	if r := feed(merge(parts...)); len(r.Findings) != 0 {
		t.Errorf("%s on port %d: %s", r.Findings[0].Rule, r.Findings[0].Port, r.Findings[0].Detail)
	}
}
