package netscan_test

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"padlock/internal/detect/detector/detectortest"
	"padlock/internal/detect/netscan"
	"padlock/internal/flow"
)

// The tests below feed sFlow samples at 1:1000, as an exporter would send
// them: each packet of the host's traffic is sampled with probability
// 1/1000, so the sample of a query and the sample of its answer are
// independent draws, and the answers sampled are mostly to queries that
// were not.

const rate = 1000

// sampled is one sFlow sample of one packet at t0+at.
func sampled(at time.Duration, src netip.Addr, sp uint16, dst netip.Addr, dp uint16, proto uint8) flow.Record {
	ts := t0.Add(at)
	return flow.Record{Start: ts, End: ts, Format: flow.FormatSFlow5, SamplingRate: rate, SrcAddr: src, DstAddr: dst,
		SrcPort: sp, DstPort: dp, Proto: proto, Packets: rate, Bytes: 100 * rate}
}

var me = netip.MustParseAddr("203.0.113.5")

// peer returns the i-th of the remote servers (198.18.0.0/15, 131,072).
func peer(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)})
}

// echo types as the flow decoders put them in DstPort (type<<8 | code).
const (
	echoRequest = 8 << 8
	echoReply   = 0
)

// clientSamples is the sampled traffic of a client of many servers: every
// interval one sampled request to a random one of servers distinct
// remotes, and, with probability answered, one sampled answer from another
// random one (the answer to some other, unsampled request), for dur.
// UDP requests go from an ephemeral port to port; with proto ICMP they are
// echo requests and the answers echo replies.
func clientSamples(rng *rand.Rand, dur, interval time.Duration, servers int, proto uint8, port uint16, answered float64) []flow.Record {
	var recs []flow.Record
	for at := time.Duration(0); at < dur; at += interval {
		q, a := peer(rng.IntN(servers)), peer(rng.IntN(servers))
		cp := uint16(32768 + rng.IntN(28000))
		if proto == flow.ProtoICMP {
			recs = append(recs, sampled(at, me, 0, q, echoRequest, proto))
		} else {
			recs = append(recs, sampled(at, me, cp, q, port, proto))
		}
		if rng.Float64() < answered {
			at := at + interval/2
			if proto == flow.ProtoICMP {
				recs = append(recs, sampled(at, a, 0, me, echoReply, proto))
			} else {
				recs = append(recs, sampled(at, a, port, me, uint16(32768+rng.IntN(28000)), proto))
			}
		}
	}
	return recs
}

func merge(parts ...[]flow.Record) []flow.Record {
	recs := slices.Concat(parts...)
	slices.SortStableFunc(recs, func(x, y flow.Record) int { return x.End.Compare(y.End) })
	return recs
}

func feed(recs []flow.Record) *detectortest.Recorder {
	r := detectortest.NewRecorder()
	r.Feed(netscan.New(netscan.Defaults(), r.Env()), recs)
	return r
}

// A busy resolver seen through sFlow: ~10,000 queries a second to 50,000
// authoritative servers on UDP port 53, each answered. Within the window
// some 3,000 queries are sampled, almost all to different servers, and as
// many answers, almost all from servers whose query was not sampled: the
// contact table alone sees thousands of unanswered destinations on port
// 53. The answers the host receives from port 53 show that its peers
// answer: no netscan.
func TestSampledBusyResolver(t *testing.T) {
	for _, tt := range []struct {
		name     string
		interval time.Duration // between sampled queries
	}{
		{"10k queries/s", 100 * ms},
		// 30 samples a second are more contacts within the window than
		// the table holds (4,096): it fills up and must make room
		{"30k queries/s, more contacts than the table holds", 33 * ms},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 53))
			r := feed(clientSamples(rng, 10*time.Minute, tt.interval, 50000, flow.ProtoUDP, 53, 1))
			if len(r.Findings) != 0 {
				t.Errorf("findings %v for a resolver, first: %s", r.Rules(), r.Findings[0].Detail)
			}
		})
	}
}

// An NTP client of a large pool (a monitoring host polling 20,000 servers
// from ephemeral ports), sampled: no netscan.
func TestSampledNTPClients(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 123))
	r := feed(clientSamples(rng, 10*time.Minute, 100*ms, 20000, flow.ProtoUDP, 123, 1))
	if len(r.Findings) != 0 {
		t.Errorf("findings %v for an NTP client, first: %s", r.Rules(), r.Findings[0].Detail)
	}
}

// scanSamples is a sampled UDP (or ICMP echo) scan of random targets, one
// probe each, of which answered answer: every interval a sampled probe to
// a fresh target and, with probability answered, a sampled answer from
// another target.
func scanSamples(rng *rand.Rand, dur, interval time.Duration, proto uint8, port uint16, answered float64) []flow.Record {
	var recs []flow.Record
	tgt := func() netip.Addr { // 100.64.0.0/10 would be CGNAT: public /8s instead
		return netip.AddrFrom4([4]byte{byte(11 + rng.IntN(80)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
	}
	for at := time.Duration(0); at < dur; at += interval {
		if proto == flow.ProtoICMP {
			recs = append(recs, sampled(at, me, 0, tgt(), echoRequest, proto))
		} else {
			recs = append(recs, sampled(at, me, uint16(32768+rng.IntN(28000)), tgt(), port, proto))
		}
		if rng.Float64() < answered {
			if proto == flow.ProtoICMP {
				recs = append(recs, sampled(at+interval/2, tgt(), 0, me, echoReply, proto))
			} else {
				recs = append(recs, sampled(at+interval/2, tgt(), port, me, uint16(32768+rng.IntN(28000)), proto))
			}
		}
	}
	return recs
}

// checkScan wants exactly one horizontal finding on port with the
// sampling rate of the data and the sampled probes of its contacts.
func checkScan(t *testing.T, r *detectortest.Recorder, port uint16) {
	t.Helper()
	if len(r.Findings) == 0 {
		t.Fatal("no finding for a scan")
	}
	f := r.Findings[0]
	if f.Rule != netscan.RuleHorizontal || f.Port != port || f.InternalIP != me {
		t.Errorf("finding %s on port %d for %s, want %s on port %d for %s", f.Rule, f.Port, f.InternalIP, netscan.RuleHorizontal, port, me)
	}
	if f.SamplingRate != rate {
		t.Errorf("sampling rate %d, want %d", f.SamplingRate, rate)
	}
	// one sampled probe per target: the samples are the destinations
	if f.Measured < float64(netscan.Defaults().MinDestinations) || f.Samples != uint64(f.Measured) {
		t.Errorf("measured %v destinations with %d samples, want at least %d and one sample each", f.Measured, f.Samples, netscan.Defaults().MinDestinations)
	}
}

// A UDP scan seen through sFlow: SNMP or DNS probes to random addresses,
// ~2% of which answer. The sampled answers are few against the sampled
// probes: a netscan, with the sampling rate and the sample count.
func TestSampledUDPScan(t *testing.T) {
	for _, port := range []uint16{161, 53} {
		rng := rand.New(rand.NewPCG(3, uint64(port)))
		recs := scanSamples(rng, 5*time.Minute, 100*ms, flow.ProtoUDP, port, 0.02)
		checkScan(t, feed(recs), port)
	}
}

// A resolver that also scans port 161 from the same address: port 53 is
// answered, port 161 is not.
func TestSampledUDPScanBesideResolver(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	scan := scanSamples(rng, 5*time.Minute, 100*ms, flow.ProtoUDP, 161, 0.02)
	r := feed(merge(clientSamples(rng, 5*time.Minute, 50*ms, 50000, flow.ProtoUDP, 53, 1), scan))
	checkScan(t, r, 161)
	for _, f := range r.Findings {
		if f.Port != 161 {
			t.Errorf("finding %s on port %d: %s", f.Rule, f.Port, f.Detail)
		}
	}
}

// A DNS scan from a host whose own lookups go to one resolver, sampled as
// often as the scan's probes: the resolver answering every lookup makes
// one answered contact (or, at a private address, none), not the scan's
// port answered.
func TestSampledUDPScanBesideBusyPeer(t *testing.T) {
	for _, resolver := range []netip.Addr{peer(0), netip.MustParseAddr("10.0.0.2")} {
		t.Run(resolver.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 5))
			lookups := clientSamples(rng, 5*time.Minute, 100*ms, 1, flow.ProtoUDP, 53, 1)
			for i := range lookups {
				if r := &lookups[i]; r.SrcAddr == me {
					r.DstAddr = resolver
				} else {
					r.SrcAddr = resolver
				}
			}
			checkScan(t, feed(merge(lookups, scanSamples(rng, 5*time.Minute, 100*ms, flow.ProtoUDP, 53, 0.02))), 53)
		})
	}
}

// Monitoring by ping, sampled: echo requests to 50,000 servers, every one
// answered, requests and replies sampled independently: no netscan. A
// ping sweep of random addresses, 2% of which reply: a netscan.
func TestSampledEcho(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	r := feed(clientSamples(rng, 10*time.Minute, 100*ms, 50000, flow.ProtoICMP, 0, 1))
	if len(r.Findings) != 0 {
		t.Errorf("findings %v for ping monitoring, first: %s", r.Rules(), r.Findings[0].Detail)
	}

	recs := scanSamples(rng, 5*time.Minute, 100*ms, flow.ProtoICMP, 0, 0.02)
	r = feed(recs)
	checkScan(t, r, 0)
	if len(r.Findings) > 0 && r.Findings[0].Probes[0].Proto != flow.ProtoICMP {
		t.Errorf("probes %v, want ICMP", r.Findings[0].Probes[0])
	}
}

// The same resolver's traffic unsampled (pcap, each query followed by its
// answer) was never a scan; and a pcap UDP scan whose answers come from
// other addresses than its probes' is still one: only sampled data is
// weighed by port.
func TestUnsampledUnchanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var recs []flow.Record
	for i := range 2000 {
		at := time.Duration(i) * ms
		q := peer(rng.IntN(50000))
		recs = append(recs, pkt(at, me.String(), 40000, q.String(), 53, flow.ProtoUDP, 0),
			pkt(at+ms/2, q.String(), 53, me.String(), 40000, flow.ProtoUDP, 0))
	}
	if r := feed(recs); len(r.Findings) != 0 {
		t.Errorf("findings %v for an unsampled resolver", r.Rules())
	}
	scan := scanSamples(rng, time.Minute, 100*ms, flow.ProtoUDP, 161, 1) // every probe "answered" by a stranger
	for i := range scan {
		scan[i].SamplingRate, scan[i].Format, scan[i].Packets, scan[i].Bytes = 1, flow.FormatPcap, 1, 100
	}
	checkScan1 := func(r *detectortest.Recorder) {
		t.Helper()
		if len(r.Findings) == 0 || r.Findings[0].Port != 161 || r.Findings[0].SamplingRate != 1 {
			t.Fatalf("findings %v, want one on port 161 unsampled", r.Findings)
		}
	}
	checkScan1(feed(scan))
}

// A resolver that also scans UDP ports 100 to 999 of random targets, too
// fast and too spread for any one port: the contact table fills and the
// verdict across ports finds the scan, without the resolver's lookups.
func TestSampledMultiPortScanBesideResolver(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	var scan []flow.Record
	for at := time.Duration(0); at < 5*time.Minute; at += 25 * ms {
		tgt := netip.AddrFrom4([4]byte{byte(11 + rng.IntN(80)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
		scan = append(scan, sampled(at, me, uint16(32768+rng.IntN(28000)), tgt, uint16(100+rng.IntN(900)), flow.ProtoUDP))
	}
	r := detectortest.NewRecorder()
	env := r.Env()
	env.EvidenceProbes = 1 << 20 // every probe of the finding
	r.Feed(netscan.New(netscan.Defaults(), env), merge(clientSamples(rng, 5*time.Minute, 50*ms, 50000, flow.ProtoUDP, 53, 1), scan))
	if len(r.Findings) == 0 {
		t.Fatal("no finding for a scan across ports")
	}
	for _, f := range r.Findings {
		if f.Rule != netscan.RuleHorizontal || f.Port != 0 || f.Measured < float64(netscan.Defaults().MinDestinations) {
			t.Errorf("finding %s on port %d, %v destinations: %s", f.Rule, f.Port, f.Measured, f.Detail)
		}
		for _, p := range f.Probes {
			if p.DstPort == 53 {
				t.Fatalf("finding %q lists the resolver's lookup %v", f.Detail, p)
			}
		}
	}
}
