package netflow

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	flowpb "github.com/netsampler/goflow2/v2/pb"

	"padlock/internal/flow"
)

// The differential tests decode the same datagrams with this decoder and
// with goflow2 v2.2.6 (decoders + protobuf producer) and compare every field
// both produce. Where goflow2 is knowingly different (listed in
// knownDeviation), the test asserts the exact difference instead of skipping.

// deviation flags a documented difference for a whole capture.
type deviation struct {
	// v9 FIRST/LAST_SWITCHED after the header's sysUptime (softflowd
	// reading a capture stamps flows from before its own start): goflow2
	// subtracts in uint64 and lands 2^32 ms (49.7 days) in the future; we
	// take the 32-bit difference as signed.
	v9UptimeWrap bool
	// IPFIX flowStart/EndSysUpTime (22/21) with systemInitTimeMilliseconds
	// (160) in options data: goflow2 ignores them and uses the export
	// time; we resolve them (checked against the source capture in
	// TestRealExportersMatchTshark).
	ipfixSysUpTime bool
	// samplingPacketInterval (305) with samplingPacketSpace (306):
	// goflow2 takes 305 as the rate; RFC 5477 makes it (305+306)/305.
	packetSpace bool
}

var knownDeviation = map[string]deviation{
	"softflowd-v9.pcap":          {v9UptimeWrap: true},
	"softflowd-v9-sampled.pcap":  {v9UptimeWrap: true},
	"softflowd-ipfix.pcap":       {ipfixSysUpTime: true},
	"softflowd-ipfix-milli.pcap": {packetSpace: true},
}

// compareOracle compares one record with goflow2's message for it.
func compareOracle(t *testing.T, where string, got flow.Record, want *flowpb.FlowMessage, dev deviation, exportNs int64) {
	t.Helper()
	var errs []string
	check := func(name string, g, w any) {
		if g != w {
			errs = append(errs, fmt.Sprintf("%s: got %v, goflow2 %v", name, g, w))
		}
	}
	addr := func(b []byte) netip.Addr { a, _ := netip.AddrFromSlice(b); return a }
	check("src", got.SrcAddr, addr(want.SrcAddr))
	check("dst", got.DstAddr, addr(want.DstAddr))
	check("src port", uint32(got.SrcPort), want.SrcPort)
	wantDst := want.DstPort
	if wantDst == 0 && (want.Proto == flow.ProtoICMP || want.Proto == flow.ProtoICMPv6) {
		wantDst = want.IcmpType<<8 | want.IcmpCode // NetFlow's ICMP convention
	}
	check("dst port", uint32(got.DstPort), wantDst)
	check("proto", uint32(got.Proto), want.Proto)
	check("tcp flags", uint32(got.TCPFlags), want.TcpFlags)
	check("sampled packets", got.SampledPackets, want.Packets)
	check("sampled bytes", got.SampledBytes, want.Bytes)
	wantRate := uint32(want.SamplingRate)
	if wantRate == 0 {
		wantRate = 1 // goflow2's "unknown" is our 1
	}
	if dev.packetSpace {
		if wantRate != 1 || got.SamplingRate != 2 {
			errs = append(errs, fmt.Sprintf("305+306 sampling: got %d, goflow2 %d; want 2 and 1", got.SamplingRate, wantRate))
		}
	} else {
		check("sampling rate", got.SamplingRate, wantRate)
	}
	check("packets", got.Packets, got.SampledPackets*uint64(got.SamplingRate))
	check("bytes", got.Bytes, got.SampledBytes*uint64(got.SamplingRate))
	check("in if", got.InIf, want.InIf)
	check("out if", got.OutIf, want.OutIf)
	check("vlan", uint32(got.VLAN), want.VlanId)
	mac := func(m flow.MAC) uint64 { var b [8]byte; copy(b[2:], m[:]); return binary.BigEndian.Uint64(b[:]) }
	check("src mac", mac(got.SrcMAC), want.SrcMac)
	check("dst mac", mac(got.DstMAC), want.DstMac)
	switch want.Type {
	case flowpb.FlowMessage_NETFLOW_V5:
		check("format", got.Format, flow.FormatNetFlow5)
	case flowpb.FlowMessage_NETFLOW_V9:
		check("format", got.Format, flow.FormatNetFlow9)
		check("domain", got.ObservationDomain, want.ObservationDomainId)
	case flowpb.FlowMessage_IPFIX:
		check("format", got.Format, flow.FormatIPFIX)
		check("domain", got.ObservationDomain, want.ObservationDomainId)
	}
	const wrap = int64(1<<32) * int64(time.Millisecond)
	for _, tm := range []struct {
		name string
		g    time.Time
		w    uint64
	}{{"start", got.Start, want.TimeFlowStartNs}, {"end", got.End, want.TimeFlowEndNs}} {
		diff := int64(tm.w) - tm.g.UnixNano()
		switch {
		case diff >= -1 && diff <= 1: // NTP fractions: goflow2 converts through float64
		case dev.v9UptimeWrap && diff == wrap:
		case dev.ipfixSysUpTime && int64(tm.w) == exportNs:
		default:
			errs = append(errs, fmt.Sprintf("%s: got %v, goflow2 %v", tm.name, tm.g, time.Unix(0, int64(tm.w)).UTC()))
		}
	}
	for _, e := range errs {
		t.Errorf("%s: %s", where, e)
	}
}

// exportNs returns a v5/v9/IPFIX datagram's export time in ns.
func exportNs(p []byte) int64 {
	switch binary.BigEndian.Uint16(p) {
	case 5:
		return int64(binary.BigEndian.Uint32(p[8:]))*1e9 + int64(binary.BigEndian.Uint32(p[12:]))
	case 9:
		return int64(binary.BigEndian.Uint32(p[8:])) * 1e9
	}
	return int64(binary.BigEndian.Uint32(p[4:])) * 1e9
}

// diffStream decodes dgs with both decoders and compares them.
func diffStream(t *testing.T, name string, dgs []datagram, dev deviation) int {
	t.Helper()
	d := New(Configuration{})
	o := newOracle(t)
	total := 0
	for i, dg := range dgs {
		want, err := o.decode(dg)
		if err != nil {
			t.Fatalf("%s datagram %d: goflow2: %v", name, i, err)
		}
		var c collect
		if _, err := d.Decode(dg.src, dg.payload, dg.at, &c); err != nil {
			t.Fatalf("%s datagram %d: %v", name, i, err)
		}
		if len(c.recs) != len(want) {
			t.Fatalf("%s datagram %d: %d records, goflow2 %d", name, i, len(c.recs), len(want))
		}
		for j := range want {
			compareOracle(t, fmt.Sprintf("%s datagram %d record %d", name, i, j), c.recs[j], &want[j], dev, exportNs(dg.payload))
		}
		total += len(want)
	}
	return total
}

func TestDifferentialRealCaptures(t *testing.T) {
	for _, name := range realCaptures {
		t.Run(name, func(t *testing.T) {
			n := diffStream(t, name, readDatagrams(t, name), knownDeviation[name])
			if n == 0 {
				t.Fatal("no records")
			}
		})
	}
}

// randomTemplate draws a template goflow2 and we must read alike: a random
// choice of the fields padlock uses, in random order and sizes, mixed with
// fields neither maps, enterprise fields and (IPFIX) variable-length fields.
func randomTemplate(r *rand.Rand, version uint16, id uint16) gtmpl {
	var fs []gfield
	add := func(typ, l uint16) { fs = append(fs, gfield{typ: typ, len: l}) }
	size := func(s ...uint16) uint16 { return s[r.IntN(len(s))] }
	switch r.IntN(4) {
	case 0:
		add(8, 4)
		add(12, 4)
	case 1:
		add(27, 16)
		add(28, 16)
	case 2:
		add(8, 4)
		add(12, 4)
		add(27, 16)
		add(28, 16)
	}
	if r.IntN(4) != 0 {
		add(7, 2)
		add(11, 2)
	}
	if r.IntN(5) != 0 {
		add(4, 1)
	}
	if r.IntN(2) == 0 {
		add(6, size(1, 2))
	}
	if r.IntN(3) == 0 {
		add(23, size(4, 8))
		add(24, size(4, 8))
	} else {
		add(1, size(2, 4, 8))
		add(2, size(2, 4, 8))
	}
	if r.IntN(2) == 0 {
		add(10, size(2, 4))
		add(14, size(2, 4))
	}
	if r.IntN(3) == 0 {
		add(58, 2)
	}
	if r.IntN(3) == 0 {
		add([]uint16{56, 81}[r.IntN(2)], 6)
		add([]uint16{80, 57}[r.IntN(2)], 6)
	}
	if r.IntN(3) == 0 {
		if version == 10 && r.IntN(2) == 0 {
			add(139, 2)
		} else {
			add(32, 2)
		}
	}
	if version == 9 {
		if r.IntN(4) != 0 {
			add(22, 4)
			add(21, 4)
		}
	} else {
		switch r.IntN(7) {
		case 0:
			add(150, 4)
			add(151, 4)
		case 1:
			add(152, 8)
			add(153, 8)
		case 2:
			add(154, 8)
			add(155, 8)
		case 3:
			add(156, 8)
			add(157, 8)
		case 4:
			add(158, 4)
			add(159, 4)
		case 5: // uptime-relative without systemInitTime: both use export time
			add(22, 4)
			add(21, 4)
		}
	}
	fillers := [][2]uint16{{5, 1}, {61, 1}, {136, 1}, {60, 1}, {9, 1}, {13, 1}, {16, 4}, {17, 4}, {15, 4}, {5, 2}, {88, 2}, {89, 1}, {95, 4}, {225, 4}, {227, 2}}
	for n := r.IntN(4); n > 0; n-- {
		f := fillers[r.IntN(len(fillers))]
		add(f[0], f[1])
	}
	if version == 10 {
		for n := r.IntN(3); n > 0; n-- {
			// enterprise fields numbered like standard ones must be ignored
			fs = append(fs, gfield{typ: []uint16{1, 2, 8, 12, 7}[r.IntN(5)], len: size(2, 4, 0xffff), pen: 29305})
		}
		if r.IntN(2) == 0 {
			add(82, 0xffff) // interfaceName
		}
	}
	r.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
	return gtmpl{id: id, fields: fs}
}

// TestDifferentialGenerated compares the decoders on random templates and
// records, with sampling options (34, 50 or 305), for v9 and IPFIX, and on
// random v5 datagrams.
func TestDifferentialGenerated(t *testing.T) {
	src := netip.MustParseAddrPort("198.51.100.9:2055")
	at := time.Unix(1_795_617_423, 0)
	total := 0
	defer func() { t.Logf("%d v9/IPFIX records compared", total) }()
	for seed := uint64(1); seed <= 40; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		for _, version := range []uint16{9, 10} {
			g := newGen(seed, ghdr{version: version, uptime: 90_000_000 + uint32(r.IntN(1<<30)), secs: uint32(at.Unix()), domain: r.Uint32N(1000)})
			g.samplingIE = []uint16{34, 50, 305}[r.IntN(3)]
			g.sampling = 1 + r.Uint32N(4096)
			var ts []gtmpl
			for i := 0; i < 4; i++ {
				ts = append(ts, randomTemplate(r, version, uint16(256+i)))
			}
			opts := gtmpl{id: 300, options: true, scope: 1, fields: []gfield{{1, 4, 0}, {g.samplingIE, 4, 0}, {35, 1, 0}}}
			if version == 10 {
				opts.fields[0] = gfield{149, 4, 0}
			}
			dg := func(p []byte) datagram { return datagram{src: src, at: at, payload: p} }
			dgs := []datagram{dg(g.datagram(6, g.templateSet(ts...), g.templateSet(opts), g.dataSet(opts, 1)))}
			for i := 0; i < 12; i++ {
				var sets [][]byte
				count := 0
				for k := 1 + r.IntN(3); k > 0; k-- {
					n := 1 + r.IntN(12)
					sets = append(sets, g.dataSet(ts[r.IntN(len(ts))], n))
					count += n
				}
				dgs = append(dgs, dg(g.datagram(count, sets...)))
			}
			n := diffStream(t, fmt.Sprintf("seed %d v%d", seed, version), dgs, deviation{})
			if n == 0 {
				t.Fatal("no records")
			}
			total += n
		}
		// NetFlow v5: random header sampling (with mode bits) and engine.
		g := newGen(seed, ghdr{version: 5, uptime: 90_000_000 + uint32(r.IntN(1<<30)), secs: uint32(at.Unix()), nsecs: r.Uint32N(1e9),
			engine: uint16(r.Uint32()), sampling: uint16(r.Uint32())})
		var dgs []datagram
		for i := 0; i < 8; i++ {
			dgs = append(dgs, datagram{src: src, at: at, payload: g.v5(1 + r.IntN(30))})
		}
		diffStream(t, fmt.Sprintf("seed %d v5", seed), dgs, deviation{})
		d := New(Configuration{})
		var c collect
		if _, err := d.Decode(src, dgs[0].payload, at, &c); err != nil {
			t.Fatal(err)
		}
		if got := c.recs[0].ObservationDomain; got != uint32(g.h.engine) {
			t.Errorf("v5 domain %#x, want engine type<<8|id %#x", got, g.h.engine)
		}
	}
}
