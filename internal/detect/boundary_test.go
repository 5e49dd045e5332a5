package detect_test

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/detect"
	"padlock/internal/flow"
)

func rules(fs []detect.Finding) []string {
	var r []string
	for _, f := range fs {
		r = append(r, f.Rule)
	}
	return r
}

func TestPacketLimitBoundary(t *testing.T) {
	conf := detect.Defaults()
	conf.Attack.Enabled = false
	conf.PacketLimit.Window = detect.Duration(15 * time.Second)
	conf.PacketLimit.ThresholdPPS = 1000
	for _, tt := range []struct {
		name  string
		extra uint64
		want  []string
	}{
		{"exactly the limit", 0, nil},
		{"one packet over", 1, []string{"packet_limit.pps"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c capture
			for s := 0; s < 15; s++ { // 1000 packets in each of 15 seconds
				at := time.Duration(s) * time.Second
				p := uint64(1000)
				if s == 14 {
					p += tt.extra
				}
				c.netflow(at, at, in(50), 5000, ext(6), 80, flow.ProtoUDP, 0, p, p*100)
			}
			if diff := cmp.Diff(tt.want, rules(run(t, conf, nil, c.sorted()))); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

// A NetFlow record's packets are spread over its duration: 31M packets over
// 311 s put fewer than 30M in any 300 s window, so the 100k pps limit is not
// proven; dumped into the second the record ended, they would be.
func TestPacketLimitSpreadsLongRecords(t *testing.T) {
	conf := detect.Defaults()
	conf.Attack.Enabled = false
	conf.PacketLimit.MinSamples = 1
	var c capture
	c.netflow(0, 310*time.Second, in(50), 5000, ext(6), 80, flow.ProtoUDP, 0, 31_000_000, 31_000_000*100)
	if got := run(t, conf, nil, c.sorted()); len(got) != 0 {
		t.Errorf("spread record fired: %v", rules(got))
	}
	var d capture // the same packets in records of 10 s: the window proves the limit
	for s := 0; s < 310; s += 10 {
		d.netflow(time.Duration(s)*time.Second, time.Duration(s+9)*time.Second, in(50), 5000, ext(6), 80, flow.ProtoUDP, 0, 1_100_000, 1_100_000*100)
	}
	got := run(t, conf, nil, d.sorted())
	if diff := cmp.Diff([]string{"packet_limit.pps"}, rules(got)); diff != "" {
		t.Fatalf("rules (-want +got):\n%s", diff)
	}
	if f := got[0]; f.Measured <= 100000 || f.Measured > 110000 {
		t.Errorf("measured %v packets/s, want just over the limit when first proven", f.Measured)
	}
}

// The seed's summary: one dominant destination and two small ones, sorted by
// packets, flows as received, packets and bytes scaled by sampling.
func TestPacketLimitSummary(t *testing.T) {
	conf := detect.Defaults()
	conf.Attack.Enabled = false
	var c capture
	for s := 0; s < 320; s++ {
		at := time.Duration(s) * time.Second
		for k := 0; k < 136; k++ { // 136k pps to 10.0.0.6-like target, sFlow 1:1000
			c.sflow(at+time.Duration(k)*time.Second/136, 1000, in(50), 40000, ext(6), uint16(k), flow.ProtoUDP, 0, 156)
		}
		if s%60 == 0 {
			c.sflow(at, 1000, in(50), 40001, ext(7), 53, flow.ProtoUDP, 0, 80)
		}
		if s == 200 {
			c.sflow(at, 1000, in(50), 40002, ext(8), 123, flow.ProtoUDP, 0, 80)
		}
	}
	got := run(t, conf, nil, c.sorted())
	if diff := cmp.Diff([]string{"packet_limit.pps"}, rules(got)); diff != "" {
		t.Fatalf("rules (-want +got):\n%s", diff)
	}
	f := got[0]
	s := f.Summary
	if s == nil {
		t.Fatal("no summary")
	}
	var order []netip.Addr
	var sum detect.Counters
	for _, e := range s.Externals {
		order = append(order, e.Addr)
		sum.Packets += e.Packets
		sum.Flows += e.Flows
		sum.Bytes += e.Bytes
	}
	if diff := cmp.Diff([]netip.Addr{ext(6), ext(7), ext(8)}, order, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("externals (-want +got):\n%s", diff)
	}
	if sum != s.Sum {
		t.Errorf("Sum %+v is not the total of the externals %+v", s.Sum, sum)
	}
	if s.Sum.Packets != s.Sum.Flows*1000 || s.Sum.Bytes != s.Sum.Packets*156-uint64(countSmall(s))*76*1000 {
		t.Errorf("Sum %+v: packets and bytes must be the samples scaled by 1000", s.Sum)
	}
	if s.Window <= 0 || s.Window > 300*time.Second {
		t.Errorf("summary window %s, want within (0, 300s]", s.Window)
	}
	if pps := float64(s.Sum.Packets) / s.Window.Seconds(); pps < 120000 || pps > 140000 {
		t.Errorf("summary rate %.0f packets/s, want about 136,000", pps)
	}
	if s.Direction != detect.DirOut || s.Internal != in(50) || s.ThresholdPPS != 100000 {
		t.Errorf("summary header %s %s %d", s.Direction, s.Internal, s.ThresholdPPS)
	}
	if f.SamplingRate != 1000 || f.Samples < 10000 || f.Unit != "packets/s" || f.Threshold != 100000 {
		t.Errorf("finding sampling %d samples %d unit %q threshold %v", f.SamplingRate, f.Samples, f.Unit, f.Threshold)
	}
	if len(f.Packets) != 32 || f.PacketsOmitted == 0 {
		t.Errorf("traffic dump: %d records kept, %d omitted; want 32 and more omitted", len(f.Packets), f.PacketsOmitted)
	}
	if !f.FirstSeen.Before(f.LastSeen) || f.LastSeen.After(t0.Add(320*time.Second)) {
		t.Errorf("first/last seen %s %s", f.FirstSeen, f.LastSeen)
	}
}

func countSmall(s *detect.Summary) int {
	n := 0
	for _, e := range s.Externals[1:] {
		n += int(e.Flows)
	}
	return n
}

func TestNetscanBoundaries(t *testing.T) {
	scan := func(dsts, answered int) []flow.Record {
		var c capture
		for i := 0; i < dsts; i++ {
			at := time.Duration(i) * 10 * ms
			c.pkt(at, in(60), 41000, ext(i+256), 22, flow.ProtoTCP, syn, 60)
			if i < answered { // the handshake completes
				c.pkt(at+ms, ext(i+256), 22, in(60), 41000, flow.ProtoTCP, synAck, 60)
				c.pkt(at+2*ms, in(60), 41000, ext(i+256), 22, flow.ProtoTCP, ack, 54)
			}
		}
		return c.sorted()
	}
	ports := func(n int) []flow.Record {
		var c capture
		for p := 1; p <= n; p++ {
			c.pkt(time.Duration(p)*ms, in(61), 41000, ext(9), uint16(p), flow.ProtoTCP, syn, 60)
		}
		return c.sorted()
	}
	for _, tt := range []struct {
		name string
		recs []flow.Record
		want []string
	}{
		{"249 destinations", scan(249, 0), nil},
		{"250 destinations", scan(250, 0), []string{"netscan.horizontal"}},
		{"400 destinations, 20% answered", scan(400, 80), []string{"netscan.horizontal"}},
		{"400 destinations, 81 answered", scan(400, 81), nil},
		{"99 ports", ports(99), nil},
		{"100 ports", ports(100), []string{"netscan.vertical"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, rules(run(t, detect.Defaults(), nil, tt.recs))); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNetscanLog(t *testing.T) {
	conf := detect.Defaults()
	conf.Evidence.Probes = 100
	var c capture
	for i := 0; i < 300; i++ {
		c.pkt(time.Duration(i)*30*ms, in(60), 41000, ext(i+256), 22, flow.ProtoTCP, syn, 60)
		c.pkt(time.Duration(i)*30*ms+ms, ext(i+256), 22, in(60), 41000, flow.ProtoTCP, rstAck, 54) // closed: RST is no answer
	}
	got := run(t, conf, nil, c.sorted())
	if len(got) != 1 {
		t.Fatalf("findings %v, want one netscan", rules(got))
	}
	f := got[0]
	if f.Measured != 300 || f.Threshold != 250 || f.Unit != "destinations" || f.Port != 22 || f.Samples != 300 || f.SamplingRate != 1 {
		t.Errorf("finding measured=%v threshold=%v unit=%q port=%d samples=%d rate=%d", f.Measured, f.Threshold, f.Unit, f.Port, f.Samples, f.SamplingRate)
	}
	if len(f.Probes) != 100 || f.ProbesOmitted != 200 {
		t.Fatalf("probes %d omitted %d, want 100 and 200", len(f.Probes), f.ProbesOmitted)
	}
	want := detect.Probe{Time: t0.Truncate(time.Second), Src: in(60), Dst: ext(256), DstPort: 22, Proto: flow.ProtoTCP}
	if diff := cmp.Diff(want, f.Probes[0], cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("first probe (-want +got):\n%s", diff)
	}
	for i := 1; i < len(f.Probes); i++ {
		if f.Probes[i].Time.Before(f.Probes[i-1].Time) {
			t.Fatalf("probes not in time order at %d", i)
		}
	}
	if !strings.Contains(f.Detail, "port 22") || len(f.Packets) == 0 {
		t.Errorf("detail %q, %d packets", f.Detail, len(f.Packets))
	}
}

func TestAttackBoundary(t *testing.T) {
	conf := detect.Defaults()
	conf.Attack.MinPPS = 1000
	for _, tt := range []struct {
		name    string
		samples int // per second, each 1:100
		want    []string
	}{
		{"exactly min_pps", 10, nil},
		{"above min_pps", 11, []string{"attack.udp_flood"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c capture
			for s := 0; s < 80; s++ {
				for k := 0; k < tt.samples; k++ {
					c.sflow(time.Duration(s)*time.Second+time.Duration(k)*time.Second/time.Duration(tt.samples), 100, in(70), 40000, ext(70), 9999, flow.ProtoUDP, 0, 500)
				}
			}
			if diff := cmp.Diff(tt.want, rules(run(t, conf, nil, c.sorted()))); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSpamBoundary(t *testing.T) {
	for _, tt := range []struct {
		mx   int
		want []string
	}{{99, nil}, {100, []string{"spam.smtp_fanout"}}} {
		var c capture
		spamBot(&c, in(85), tt.mx)
		got := run(t, detect.Defaults(), nil, c.sorted())
		if diff := cmp.Diff(tt.want, rules(got)); diff != "" {
			t.Errorf("%d mail servers: rules (-want +got):\n%s", tt.mx, diff)
		}
		if len(got) == 1 && (len(got[0].Probes) != 100 || got[0].Measured != 100) {
			t.Errorf("spam finding lists %d mail servers, measured %v", len(got[0].Probes), got[0].Measured)
		}
	}
}

// A continuing flood is reported once per rearm period, not per record.
func TestRearm(t *testing.T) {
	var c capture
	udpFloodSampled(&c, in(20), ext(77), 60000, 1000, 30*60)
	got := run(t, detect.Defaults(), nil, c.sorted())
	if diff := cmp.Diff([]string{"attack.udp_flood", "attack.udp_flood"}, rules(got)); diff != "" {
		t.Fatalf("30 minutes of flood with rearm 15m (-want +got):\n%s", diff)
	}
	if d := got[1].LastSeen.Sub(got[0].LastSeen); d < 15*time.Minute || d > 16*time.Minute {
		t.Errorf("second finding %s after the first, want 15m", d)
	}
}

// A scanner that keeps scanning is reported once per rearm period; while
// its horizontal verdict is muted for the rearm period, a vertical scan by
// the same host is still reported.
func TestNetscanRearm(t *testing.T) {
	var c capture
	for i := 0; i < 30*60*2; i++ { // 30 minutes, two new destinations on port 22 a second
		c.pkt(time.Duration(i)*500*ms, in(62), 41000, ext(256+i), 22, flow.ProtoTCP, syn, 60)
	}
	for p := 1; p <= 150; p++ { // minute 5: 150 ports of one destination
		c.pkt(5*time.Minute+time.Duration(p)*10*ms, in(62), 41001, ext(9), uint16(1000+p), flow.ProtoTCP, syn, 60)
	}
	got := run(t, detect.Defaults(), nil, c.sorted())
	if diff := cmp.Diff([]string{"netscan.horizontal", "netscan.vertical", "netscan.horizontal"}, rules(got)); diff != "" {
		t.Fatalf("30 minutes of scanning with rearm 15m (-want +got):\n%s", diff)
	}
	if d := got[2].LastSeen.Sub(got[0].LastSeen); d < 15*time.Minute || d > 15*time.Minute+10*time.Second {
		t.Errorf("second horizontal finding %s after the first, want 15m", d)
	}
	if v := got[1]; v.Remote != ext(9) || v.Measured != 150 {
		t.Errorf("vertical finding: remote %s, %v ports, want %s, 150", v.Remote, v.Measured, ext(9))
	}
}

func TestForeignAddress(t *testing.T) {
	nets := detect.NewPrefixes([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/25"), netip.MustParsePrefix("203.0.113.128/25")})
	macA := flow.MAC{0x02, 0, 0, 0, 0, 0xa}
	nets.AddMAC(macA, "203.0.113.0/25")
	var c capture
	for i := 0; i < 20; i++ {
		c.pkt(time.Duration(i)*ms, in(10), 5000, ext(5), 80, flow.ProtoTCP, syn, 60)  // own address: fine
		c.pkt(time.Duration(i)*ms, in(200), 5000, ext(5), 80, flow.ProtoTCP, syn, 60) // the other customer's
	}
	for i := range c.recs {
		c.recs[i].SrcMAC = macA
	}
	got := run(t, detect.Defaults(), nets, c.sorted())
	if diff := cmp.Diff([]string{"incorrect_network_config.foreign_address"}, rules(got)); diff != "" {
		t.Fatalf("rules (-want +got):\n%s", diff)
	}
	if f := got[0]; f.InternalIP != in(200) || f.MAC != macA || f.Owner != "203.0.113.0/25" {
		t.Errorf("finding %s mac %s owner %q", f.InternalIP, f.MAC, f.Owner)
	}
}

func TestExpiry(t *testing.T) {
	var got []detect.Finding
	e, err := detect.New(detect.Defaults(), detect.Dependencies{Networks: detect.NewPrefixes(customers), OnFinding: func(f detect.Finding) { got = append(got, f) }})
	if err != nil {
		t.Fatal(err)
	}
	var c capture
	c.pkt(0, in(5), 443, ext(5), 5000, flow.ProtoTCP, pshAck, 1400)
	c.pkt(0, in(6), 443, ext(5), 5000, flow.ProtoTCP, pshAck, 1400)
	c.pkt(9*time.Minute, in(6), 443, ext(5), 5000, flow.ProtoTCP, pshAck, 1400)
	for i := range c.recs {
		e.Record(&c.recs[i])
	}
	if n := e.Stats().Hosts; n != 2 {
		t.Fatalf("hosts %d, want 2", n)
	}
	e.Expire(t0.Add(11 * time.Minute)) // in(5) idle 11m, in(6) 2m
	if n := e.Stats().Hosts; n != 1 {
		t.Errorf("after expiry hosts %d, want 1", n)
	}
}

// Sampled data only estimates a window's packets: a server sending at
// exactly its limit, sampled 1:1000 by sFlow (random, ten samples a
// second here), shows an estimate above the limit in about half of all
// windows. It must not be locked for that: packet_limit fires only when
// the estimate exceeds the limit by three standard deviations of the
// sampling error (12 % here, with 600 samples in the 60 s window; 1.7 %
// at the default limit and window). A flood at 1.4 times the limit is
// found every time, and its finding says how far the estimate can err.
func TestPacketLimitSampledNearTheLimit(t *testing.T) {
	conf := detect.Defaults()
	conf.Attack.Enabled = false
	conf.PacketLimit.Window = detect.Duration(60 * time.Second)
	conf.PacketLimit.ThresholdPPS = 10000
	const rate, trials = 1000, 200
	fired := func(pps float64, seed uint64) []detect.Finding {
		rng := rand.New(rand.NewPCG(seed, 7))
		var c capture
		lambda := pps / rate // samples a second: a Poisson process
		for at := rng.ExpFloat64() / lambda; at < 150; at += rng.ExpFloat64() / lambda {
			c.sflow(time.Duration(at*float64(time.Second)), rate, in(60), 40000, ext(7), 53, flow.ProtoUDP, 0, 512)
		}
		return run(t, conf, nil, c.recs)
	}
	atLimit, over := 0, 0
	for i := range uint64(trials) {
		if len(fired(10000, i)) > 0 {
			atLimit++
		}
		fs := fired(14000, i)
		if len(fs) == 0 {
			continue
		}
		over++
		if i == 0 && !strings.Contains(fs[0].Detail, "allowing for the sampling error, at least") {
			t.Errorf("detail %q does not give the estimate's lower bound", fs[0].Detail)
		}
	}
	if atLimit > 3 {
		t.Errorf("a server at exactly its limit was reported in %d of %d runs", atLimit, trials)
	}
	if over != trials {
		t.Errorf("a flood at 1.4 times the limit was reported in %d of %d runs, want all", over, trials)
	}
}
