package detect_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/flow"
)

// t0 is the start of every synthetic capture.
var t0 = time.Date(2026, 11, 13, 18, 14, 27, 0, time.UTC)

var customers = []netip.Prefix{
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8:1::/48"),
}

// in returns internal address i (203.0.113.i).
func in(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}) }

// in6 returns internal IPv6 address i.
func in6(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8:1::%x", i)) }

// ext returns external address i (198.51.100.i for i < 256, then 198.18.0.0/15).
func ext(i int) netip.Addr {
	if i < 256 {
		return netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
	}
	i -= 256
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)})
}

// ext6 returns external IPv6 address i.
func ext6(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8:ff::%x", i+1)) }

const (
	syn    = flow.TCPSyn
	synAck = flow.TCPSyn | flow.TCPAck
	ack    = flow.TCPAck
	pshAck = flow.TCPPsh | flow.TCPAck
	rst    = flow.TCPRst
	rstAck = flow.TCPRst | flow.TCPAck
)

// capture collects records as a capture would deliver them.
type capture struct{ recs []flow.Record }

// pkt adds one captured packet (pcap).
func (c *capture) pkt(at time.Duration, src netip.Addr, sp uint16, dst netip.Addr, dp uint16, proto, flags uint8, size int) {
	ts := t0.Add(at)
	c.recs = append(c.recs, flow.Record{Start: ts, End: ts, Format: flow.FormatPcap, SamplingRate: 1,
		SrcAddr: src, DstAddr: dst, SrcPort: sp, DstPort: dp, Proto: proto, TCPFlags: flags,
		Packets: 1, Bytes: uint64(size), SampledPackets: 1, SampledBytes: uint64(size), FrameLength: uint32(size)})
}

// icmp adds one ICMP packet of the given type.
func (c *capture) icmp(at time.Duration, src, dst netip.Addr, typ uint8, size int) {
	proto := uint8(flow.ProtoICMP)
	if src.Is6() {
		proto = flow.ProtoICMPv6
	}
	c.pkt(at, src, 0, dst, uint16(typ)<<8, proto, 0, size)
}

// sflow adds one flow sample taken at 1:rate.
func (c *capture) sflow(at time.Duration, rate uint32, src netip.Addr, sp uint16, dst netip.Addr, dp uint16, proto, flags uint8, size int) {
	ts := t0.Add(at)
	c.recs = append(c.recs, flow.Record{Start: ts, End: ts, Format: flow.FormatSFlow5, SamplingRate: rate,
		SrcAddr: src, DstAddr: dst, SrcPort: sp, DstPort: dp, Proto: proto, TCPFlags: flags,
		Packets: uint64(rate), Bytes: uint64(size) * uint64(rate), SampledPackets: 1, SampledBytes: uint64(size)})
}

// netflow adds one NetFlow v9 record covering [from, to).
func (c *capture) netflow(from, to time.Duration, src netip.Addr, sp uint16, dst netip.Addr, dp uint16, proto, flags uint8, packets, bytes uint64) {
	c.recs = append(c.recs, flow.Record{Start: t0.Add(from), End: t0.Add(to), Format: flow.FormatNetFlow9, SamplingRate: 1,
		SrcAddr: src, DstAddr: dst, SrcPort: sp, DstPort: dp, Proto: proto, TCPFlags: flags,
		Packets: packets, Bytes: bytes, SampledPackets: packets, SampledBytes: bytes})
}

// tcpSession adds a complete, answered TCP connection (pcap): handshake,
// one request, one answer, close.
func (c *capture) tcpSession(at time.Duration, client netip.Addr, cp uint16, server netip.Addr, sp uint16) {
	ms := time.Millisecond
	c.pkt(at, client, cp, server, sp, flow.ProtoTCP, syn, 74)
	c.pkt(at+1*ms, server, sp, client, cp, flow.ProtoTCP, synAck, 74)
	c.pkt(at+2*ms, client, cp, server, sp, flow.ProtoTCP, ack, 66)
	c.pkt(at+3*ms, client, cp, server, sp, flow.ProtoTCP, pshAck, 300)
	c.pkt(at+5*ms, server, sp, client, cp, flow.ProtoTCP, pshAck, 1400)
	c.pkt(at+6*ms, client, cp, server, sp, flow.ProtoTCP, flow.TCPFin|ack, 66)
	c.pkt(at+7*ms, server, sp, client, cp, flow.ProtoTCP, flow.TCPFin|ack, 66)
}

// sorted returns the records ordered by end time, as a capture has them.
func (c *capture) sorted() []flow.Record {
	// sort indexes, not the 250-byte records: the same stable order, and
	// the benchmarks' million-record mixes build in a fraction of the time
	idx := make([]int32, len(c.recs))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return c.recs[a].End.Compare(c.recs[b].End) })
	r := make([]flow.Record, len(idx))
	for i, j := range idx {
		r[i] = c.recs[j]
	}
	return r
}

// run feeds the records to an engine and returns its findings.
func run(t testing.TB, conf detect.Configuration, nets detect.Networks, recs []flow.Record) []detect.Finding {
	t.Helper()
	var got []detect.Finding
	if nets == nil {
		nets = detect.NewPrefixes(customers)
	}
	e, err := detect.New(conf, detect.Dependencies{Networks: nets, OnFinding: func(f detect.Finding) { got = append(got, f) },
		Protected: []netip.Prefix{netip.MustParsePrefix("203.0.113.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		e.Record(&recs[i])
	}
	e.Flush()
	return got
}

// verdict is what a user notices first about a finding.
type verdict struct {
	Rule      string
	Dir       detect.Direction
	Internal  string
	Remote    string `json:",omitempty"`
	Port      uint16
	Source    string
	Protected bool
}

func verdicts(fs []detect.Finding) []verdict {
	var v []verdict
	for _, f := range fs {
		x := verdict{Rule: f.Rule, Dir: f.Direction, Port: f.Port, Protected: f.Protected}
		if f.InternalIP.IsValid() {
			x.Internal = f.InternalIP.String()
		}
		if f.Remote.IsValid() {
			x.Remote = f.Remote.String()
		}
		if f.Source.IsValid() {
			x.Source = f.Source.String()
		}
		v = append(v, x)
	}
	return v
}
