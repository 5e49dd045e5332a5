package netscan_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

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
