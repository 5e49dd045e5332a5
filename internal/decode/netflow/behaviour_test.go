package netflow

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

var (
	exA = netip.MustParseAddrPort("198.51.100.1:40000")
	exB = netip.MustParseAddrPort("198.51.100.2:40000")
	t0  = time.Unix(1_795_617_423, 0)
)

func decodeOne(t *testing.T, d *Decoder, ex netip.AddrPort, at time.Time, p []byte) ([]flow.Record, error) {
	t.Helper()
	var c collect
	n, err := d.Decode(ex, p, at, &c)
	if n != len(c.recs) {
		t.Fatalf("Decode returned %d, sink got %d", n, len(c.recs))
	}
	return c.recs, err
}

func mustDecode(t *testing.T, d *Decoder, ex netip.AddrPort, at time.Time, p []byte) []flow.Record {
	t.Helper()
	recs, err := decodeOne(t, d, ex, at, p)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestV5Fields(t *testing.T) {
	g := newGen(1, ghdr{version: 5, uptime: 100_000, secs: uint32(t0.Unix()), nsecs: 500_000_000, engine: 0x0203, sampling: 0x4000 | 10})
	p := g.v5(2)
	// record 0: fixed values to check every field by hand
	r := p[24:]
	copy(r, []byte{203, 0, 113, 5, 198, 51, 100, 7})
	be.PutUint16(r[12:], 3)
	be.PutUint16(r[14:], 4)
	be.PutUint32(r[16:], 5)    // packets
	be.PutUint32(r[20:], 1500) // bytes
	be.PutUint32(r[24:], 40_000)
	be.PutUint32(r[28:], 99_000)
	be.PutUint16(r[32:], 443)
	be.PutUint16(r[34:], 51000)
	r[37], r[38] = flow.TCPAck|flow.TCPPsh, flow.ProtoTCP
	recs := mustDecode(t, New(Configuration{}), exA, t0, p)
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	base := t0.Add(500 * time.Millisecond)
	want := flow.Record{
		Start: base.Add(-60 * time.Second).UTC(), End: base.Add(-time.Second).UTC(),
		Format: flow.FormatNetFlow5, Exporter: exA.Addr(), ObservationDomain: 0x0203, SamplingRate: 10,
		SrcAddr: netip.MustParseAddr("203.0.113.5"), DstAddr: netip.MustParseAddr("198.51.100.7"),
		SrcPort: 443, DstPort: 51000, Proto: flow.ProtoTCP, TCPFlags: flow.TCPAck | flow.TCPPsh,
		Packets: 50, Bytes: 15000, SampledPackets: 5, SampledBytes: 1500, InIf: 3, OutIf: 4,
	}
	if diff := cmp.Diff(want, recs[0], cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Error(diff)
	}
}

// v9 datagram helpers: template 256 of a few fields.
var tmplBasic = gtmpl{id: 256, fields: []gfield{{8, 4, 0}, {12, 4, 0}, {1, 4, 0}, {2, 4, 0}, {4, 1, 0}}}

func TestTemplateAfterDataIsHeldThenDecoded(t *testing.T) {
	d := New(Configuration{PendingTTL: 2 * time.Second})
	g := newGen(2, ghdr{version: 9, uptime: 1000, secs: uint32(t0.Unix()), domain: 1})
	data := g.datagram(5, g.dataSet(tmplBasic, 5))
	recs, err := decodeOne(t, d, exA, t0, data)
	if err != nil || len(recs) != 0 {
		t.Fatalf("data before template: %d records, err %v; want held (0, nil)", len(recs), err)
	}
	if s := d.Stats(); s.PendingHeld != 1 {
		t.Fatalf("held %d", s.PendingHeld)
	}
	recs = mustDecode(t, d, exA, t0.Add(time.Second), g.datagram(1, g.templateSet(tmplBasic)))
	if len(recs) != 5 {
		t.Fatalf("template datagram replayed %d records, want the 5 held", len(recs))
	}
	if s := d.Stats(); s.PendingReplayed != 1 || s.TemplateMisses != 0 || s.V9Records != 5 {
		t.Errorf("stats %+v", s)
	}

	// Data for an unknown template that never comes: expires after the TTL
	// and is counted as a template miss.
	other := gtmpl{id: 999, fields: tmplBasic.fields}
	mustDecode(t, d, exA, t0.Add(2*time.Second), g.datagram(1, g.dataSet(other, 1)))
	mustDecode(t, d, exA, t0.Add(5*time.Second), g.datagram(1, g.dataSet(tmplBasic, 1)))
	if s := d.Stats(); s.PendingExpired != 1 || s.TemplateMisses != 1 {
		t.Errorf("after TTL: expired %d misses %d, want 1 1", s.PendingExpired, s.TemplateMisses)
	}
	// ...and a template arriving after that replays nothing.
	if recs := mustDecode(t, d, exA, t0.Add(6*time.Second), g.datagram(1, g.templateSet(other))); len(recs) != 0 {
		t.Errorf("expired data replayed: %d records", len(recs))
	}
}

func TestDataAndTemplateInOneDatagramDataFirst(t *testing.T) {
	d := New(Configuration{})
	g := newGen(3, ghdr{version: 10, secs: uint32(t0.Unix()), domain: 9})
	recs := mustDecode(t, d, exA, t0, g.datagram(0, g.dataSet(tmplBasic, 3), g.templateSet(tmplBasic)))
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
}

func TestNoTemplateWithoutHolding(t *testing.T) {
	d := New(Configuration{PendingTTL: -1})
	g := newGen(4, ghdr{version: 9, secs: uint32(t0.Unix())})
	_, err := decodeOne(t, d, exA, t0, g.datagram(1, g.dataSet(tmplBasic, 1)))
	if !errors.Is(err, decode.ErrNoTemplate) {
		t.Fatalf("err %v, want ErrNoTemplate", err)
	}
	if decode.Cause(err) != "no_template" || d.Stats().TemplateMisses != 1 {
		t.Errorf("cause %q misses %d", decode.Cause(err), d.Stats().TemplateMisses)
	}
}

func TestIPFIXWithdrawal(t *testing.T) {
	d := New(Configuration{PendingTTL: -1})
	g := newGen(5, ghdr{version: 10, secs: uint32(t0.Unix()), domain: 3})
	t2 := gtmpl{id: 257, fields: tmplBasic.fields}
	mustDecode(t, d, exA, t0, g.datagram(0, g.templateSet(tmplBasic, t2)))
	if n := len(mustDecode(t, d, exA, t0, g.datagram(0, g.dataSet(tmplBasic, 2), g.dataSet(t2, 2)))); n != 4 {
		t.Fatalf("%d records", n)
	}
	mustDecode(t, d, exA, t0, g.datagram(0, g.withdrawSet(false, 256)))
	recs, err := decodeOne(t, d, exA, t0, g.datagram(0, g.dataSet(tmplBasic, 1), g.dataSet(t2, 1)))
	if !errors.Is(err, decode.ErrNoTemplate) || len(recs) != 1 {
		t.Fatalf("after withdrawing 256: %d records, err %v; want 257's record and ErrNoTemplate", len(recs), err)
	}
	// "all data templates" withdrawal (template ID 2)
	mustDecode(t, d, exA, t0, g.datagram(0, g.withdrawSet(false, 2)))
	if _, err := decodeOne(t, d, exA, t0, g.datagram(0, g.dataSet(t2, 1))); !errors.Is(err, decode.ErrNoTemplate) {
		t.Fatalf("after withdrawing all: err %v", err)
	}
	if s := d.Stats(); s.TemplatesWithdrawn != 2 {
		t.Errorf("withdrawn %d, want 2", s.TemplatesWithdrawn)
	}
}

func TestTemplateRedefinitionAndResend(t *testing.T) {
	d := New(Configuration{})
	g := newGen(6, ghdr{version: 9, secs: uint32(t0.Unix())})
	mustDecode(t, d, exA, t0, g.datagram(1, g.templateSet(tmplBasic)))
	mustDecode(t, d, exA, t0, g.datagram(1, g.templateSet(tmplBasic))) // resend
	v6 := gtmpl{id: 256, fields: []gfield{{27, 16, 0}, {28, 16, 0}, {2, 4, 0}}}
	mustDecode(t, d, exA, t0, g.datagram(1, g.templateSet(v6)))
	recs := mustDecode(t, d, exA, t0, g.datagram(2, g.dataSet(v6, 2)))
	if len(recs) != 2 || !recs[0].SrcAddr.Is6() {
		t.Fatalf("after redefinition: %d records, src %v", len(recs), recs[0].SrcAddr)
	}
	if s := d.Stats(); s.TemplatesLearned != 1 || s.TemplatesRedefined != 1 {
		t.Errorf("learned %d redefined %d, want 1 1", s.TemplatesLearned, s.TemplatesRedefined)
	}
}

func TestTemplateCacheKeys(t *testing.T) {
	// Same template ID, different definitions: per exporter port and per
	// source ID they must not mix.
	d := New(Configuration{})
	v4 := gtmpl{id: 256, fields: []gfield{{8, 4, 0}, {12, 4, 0}, {2, 4, 0}}}
	v6 := gtmpl{id: 256, fields: []gfield{{27, 16, 0}, {28, 16, 0}, {2, 4, 0}}}
	exA2 := netip.AddrPortFrom(exA.Addr(), exA.Port()+1)
	g1 := newGen(7, ghdr{version: 9, secs: uint32(t0.Unix()), domain: 1})
	g2 := newGen(7, ghdr{version: 9, secs: uint32(t0.Unix()), domain: 2})
	mustDecode(t, d, exA, t0, g1.datagram(1, g1.templateSet(v4)))
	mustDecode(t, d, exA, t0, g2.datagram(1, g2.templateSet(v6)))
	mustDecode(t, d, exA2, t0, g1.datagram(1, g1.templateSet(v6)))
	for _, c := range []struct {
		ex   netip.AddrPort
		g    *gen
		t    gtmpl
		want bool // v6
	}{{exA, g1, v4, false}, {exA, g2, v6, true}, {exA2, g1, v6, true}} {
		recs := mustDecode(t, d, c.ex, t0, c.g.datagram(1, c.g.dataSet(c.t, 1)))
		if len(recs) != 1 || recs[0].SrcAddr.Is6() != c.want || recs[0].ObservationDomain != c.g.h.domain {
			t.Errorf("%v domain %d: %+v", c.ex, c.g.h.domain, recs)
		}
	}
}

func TestTemplateLimit(t *testing.T) {
	d := New(Configuration{MaxTemplatesPerExporter: 3})
	g := newGen(8, ghdr{version: 10, secs: uint32(t0.Unix())})
	var ts []gtmpl
	for i := 0; i < 5; i++ {
		ts = append(ts, gtmpl{id: uint16(256 + i), fields: tmplBasic.fields})
	}
	_, err := decodeOne(t, d, exA, t0, g.datagram(0, g.templateSet(ts...)))
	if !errors.Is(err, decode.ErrTooManyTempls) {
		t.Fatalf("err %v, want ErrTooManyTempls", err)
	}
	if s := d.Stats(); s.TemplatesLearned != 3 || s.TemplatesRefused != 2 {
		t.Errorf("learned %d refused %d", s.TemplatesLearned, s.TemplatesRefused)
	}
	if recs := mustDecode(t, d, exA, t0, g.datagram(0, g.dataSet(ts[0], 2))); len(recs) != 2 {
		t.Errorf("known template: %d records", len(recs))
	}
	// a withdrawal frees room
	mustDecode(t, d, exA, t0, g.datagram(0, g.withdrawSet(false, 256)))
	mustDecode(t, d, exA, t0, g.datagram(0, g.templateSet(ts[4])))
}

func TestExporterLimitEvictsSilentLongest(t *testing.T) {
	d := New(Configuration{MaxExporters: 2})
	g := newGen(9, ghdr{version: 9, secs: uint32(t0.Unix())})
	tmpl := g.datagram(1, g.templateSet(tmplBasic))
	for i, ex := range []netip.AddrPort{exA, exB} {
		mustDecode(t, d, ex, t0.Add(time.Duration(i)*time.Second), tmpl)
	}
	exC := netip.MustParseAddrPort("198.51.100.3:40000")
	mustDecode(t, d, exC, t0.Add(2*time.Second), tmpl)
	if s := d.Stats(); s.Exporters != 2 || s.ExportersEvicted != 1 {
		t.Fatalf("exporters %d evicted %d", s.Exporters, s.ExportersEvicted)
	}
	// exA (silent longest) lost its templates, exB kept them
	dd := newGen(9, ghdr{version: 9, secs: uint32(t0.Unix())})
	data := dd.datagram(1, dd.dataSet(tmplBasic, 1))
	if recs := mustDecode(t, d, exB, t0.Add(3*time.Second), data); len(recs) != 1 {
		t.Errorf("exB: %d records", len(recs))
	}
	if recs := mustDecode(t, d, exA, t0.Add(3*time.Second), data); len(recs) != 0 {
		t.Errorf("exA: %d records, want its data held for want of a template", len(recs))
	}
}

func TestSampling(t *testing.T) {
	opts := gtmpl{id: 300, options: true, scope: 1, fields: []gfield{{1, 4, 0}, {34, 4, 0}}}
	g := newGen(10, ghdr{version: 9, secs: uint32(t0.Unix()), domain: 4})
	g.sampling = 512
	setup := g.datagram(2, g.templateSet(tmplBasic), g.templateSet(opts), g.dataSet(opts, 1))
	data := g.datagram(1, g.dataSet(tmplBasic, 1))

	d := New(Configuration{})
	// before the options data: rate 1
	if recs := mustDecode(t, d, exA, t0, g.datagram(1, g.templateSet(tmplBasic), g.dataSet(tmplBasic, 1))); recs[0].SamplingRate != 1 {
		t.Errorf("rate before options %d", recs[0].SamplingRate)
	}
	mustDecode(t, d, exA, t0, setup)
	r := mustDecode(t, d, exA, t0, data)[0]
	if r.SamplingRate != 512 || r.Packets != 512*r.SampledPackets || r.Bytes != 512*r.SampledBytes {
		t.Errorf("rate %d packets %d/%d bytes %d/%d", r.SamplingRate, r.Packets, r.SampledPackets, r.Bytes, r.SampledBytes)
	}
	// same exporter, another source ID: not sampled
	g2 := newGen(10, ghdr{version: 9, secs: uint32(t0.Unix()), domain: 5})
	if recs := mustDecode(t, d, exA, t0, g2.datagram(1, g2.templateSet(tmplBasic), g2.dataSet(tmplBasic, 1))); recs[0].SamplingRate != 1 {
		t.Errorf("other domain rate %d", recs[0].SamplingRate)
	}

	// the override wins over options data and the v5 header
	d = New(Configuration{SamplingOverride: map[netip.Addr]uint32{exA.Addr(): 2000}})
	mustDecode(t, d, exA, t0, setup)
	if r := mustDecode(t, d, exA, t0, data)[0]; r.SamplingRate != 2000 || r.Packets != 2000*r.SampledPackets {
		t.Errorf("override: rate %d", r.SamplingRate)
	}
	v5 := newGen(1, ghdr{version: 5, secs: uint32(t0.Unix()), sampling: 0x4000 | 64}).v5(1)
	if r := mustDecode(t, d, exA, t0, v5)[0]; r.SamplingRate != 2000 {
		t.Errorf("v5 override: rate %d", r.SamplingRate)
	}
	if r := mustDecode(t, d, exB, t0, v5)[0]; r.SamplingRate != 64 {
		t.Errorf("v5 header: rate %d, want 64", r.SamplingRate)
	}
	// IPv4-mapped exporter addresses match the override too
	mapped := netip.AddrPortFrom(netip.AddrFrom16(exA.Addr().As16()), exA.Port())
	if r := mustDecode(t, d, mapped, t0, v5)[0]; r.SamplingRate != 2000 || r.Exporter != exA.Addr() {
		t.Errorf("mapped exporter: rate %d exporter %v", r.SamplingRate, r.Exporter)
	}

	// IPFIX: 305 with 306 is RFC 5477 (interval+space)/interval; 50 alone.
	for _, c := range []struct {
		fields []gfield
		vals   []uint32
		want   uint32
	}{
		{[]gfield{{149, 4, 0}, {305, 4, 0}, {306, 4, 0}}, []uint32{1, 1, 99}, 100},
		{[]gfield{{149, 4, 0}, {305, 4, 0}}, []uint32{1, 300}, 300},
		{[]gfield{{149, 4, 0}, {50, 4, 0}}, []uint32{1, 1000}, 1000},
	} {
		gi := newGen(11, ghdr{version: 10, secs: uint32(t0.Unix())})
		o := gtmpl{id: 300, options: true, scope: 1, fields: c.fields}
		var body []byte
		for _, v := range c.vals {
			body = be.AppendUint32(body, v)
		}
		d := New(Configuration{})
		mustDecode(t, d, exA, t0, gi.datagram(0, gi.templateSet(tmplBasic), gi.templateSet(o), gi.set(300, body)))
		if r := mustDecode(t, d, exA, t0, gi.datagram(0, gi.dataSet(tmplBasic, 1)))[0]; r.SamplingRate != c.want {
			t.Errorf("%v = %v: rate %d, want %d", c.fields, c.vals, r.SamplingRate, c.want)
		}
	}
}

// rawRecord builds an IPFIX datagram with one template and one hand-made record.
func rawRecord(t *testing.T, fields []gfield, record []byte) []flow.Record {
	t.Helper()
	g := newGen(12, ghdr{version: 10, secs: uint32(t0.Unix()), domain: 1})
	tm := gtmpl{id: 256, fields: fields}
	return mustDecode(t, New(Configuration{}), exA, t0, g.datagram(0, g.templateSet(tm), g.set(256, record)))
}

func TestIPFIXFieldVariants(t *testing.T) {
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	u32 := func(v uint32) []byte { return be.AppendUint32(nil, v) }
	u64 := func(v uint64) []byte { return be.AppendUint64(nil, v) }
	initMs := uint64(t0.UnixMilli()) - 3_600_000 // exporter up one hour

	// totals (85/86) when deltas are absent; out counters (23/24) lose to them
	r := rawRecord(t, []gfield{{23, 4, 0}, {85, 8, 0}, {86, 4, 0}, {24, 4, 0}}, cat(u32(1), u64(5000), u32(7), u32(2)))[0]
	if r.SampledBytes != 5000 || r.SampledPackets != 7 {
		t.Errorf("totals: bytes %d packets %d", r.SampledBytes, r.SampledPackets)
	}
	r = rawRecord(t, []gfield{{23, 4, 0}, {24, 4, 0}}, cat(u32(900), u32(3)))[0]
	if r.SampledBytes != 900 || r.SampledPackets != 3 {
		t.Errorf("out counters: bytes %d packets %d", r.SampledBytes, r.SampledPackets)
	}
	// 21/22 relative to 160 in the record itself
	r = rawRecord(t, []gfield{{160, 8, 0}, {22, 4, 0}, {21, 4, 0}}, cat(u64(initMs), u32(1000), u32(61_000)))[0]
	if want := time.UnixMilli(int64(initMs) + 1000).UTC(); !r.Start.Equal(want) || !r.End.Equal(want.Add(time.Minute)) {
		t.Errorf("sysuptime times %v %v, want %v +1m", r.Start, r.End, want)
	}
	// ICMP type and code in separate fields, egress MACs when ingress absent
	r = rawRecord(t, []gfield{{4, 1, 0}, {176, 1, 0}, {177, 1, 0}, {81, 6, 0}, {57, 6, 0}, {58, 2, 0}},
		[]byte{1, 3, 3, 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0, 42})[0]
	if r.DstPort != 0x0303 || r.SrcMAC != (flow.MAC{2, 0, 0, 0, 0, 1}) || r.DstMAC != (flow.MAC{2, 0, 0, 0, 0, 2}) || r.VLAN != 42 {
		t.Errorf("icmp %#x macs %v %v vlan %d", r.DstPort, r.SrcMAC, r.DstMAC, r.VLAN)
	}
	// variable-length fields, short and long form, and enterprise fields
	long := make([]byte, 300)
	rec := cat([]byte{3, 'a', 'b', 'c'}, u32(0xcb007101), []byte{255, 1, 44}, long, u32(77), u32(0xc6336401))
	recs := rawRecord(t, []gfield{{82, 0xffff, 0}, {8, 4, 0}, {83, 0xffff, 0}, {1, 4, 9}, {12, 4, 0}}, cat(rec, rec))
	if len(recs) != 2 || recs[1].SrcAddr != netip.MustParseAddr("203.0.113.1") || recs[1].DstAddr != netip.MustParseAddr("198.51.100.1") || recs[1].SampledBytes != 0 {
		t.Errorf("varlen/enterprise: %+v", recs)
	}
	// no times at all: the export time
	r = rawRecord(t, []gfield{{8, 4, 0}}, u32(1))[0]
	if !r.Start.Equal(t0) || !r.End.Equal(t0) {
		t.Errorf("no times: %v %v", r.Start, r.End)
	}
}

func TestMalformedInput(t *testing.T) {
	g9 := newGen(13, ghdr{version: 9, secs: uint32(t0.Unix())})
	gi := newGen(13, ghdr{version: 10, secs: uint32(t0.Unix())})
	good9 := g9.datagram(1, g9.templateSet(tmplBasic))
	goodI := gi.datagram(0, gi.templateSet(tmplBasic))
	withLen := func(p []byte, off int, v uint16) []byte {
		q := append([]byte(nil), p...)
		be.PutUint16(q[off:], v)
		return q
	}
	zeroLen := gtmpl{id: 256, fields: []gfield{{8, 0, 0}}}
	for _, c := range []struct {
		name string
		p    []byte
		want error
	}{
		{"empty", nil, decode.ErrTruncated},
		{"version 7", []byte{0, 7, 0, 0}, decode.ErrVersion},
		{"v5 short header", newGen(1, ghdr{version: 5}).v5(1)[:20], decode.ErrTruncated},
		{"v5 count beyond data", newGen(1, ghdr{version: 5}).v5(2)[:24+48+10], decode.ErrTruncated},
		{"v9 short header", good9[:12], decode.ErrTruncated},
		{"v9 set length 2", withLen(good9, 22, 2), decode.ErrMalformed},
		{"v9 set length beyond datagram", withLen(good9, 22, 2000), decode.ErrTruncated},
		{"v9 template field count beyond set", withLen(good9, 26, 300), decode.ErrTruncated},
		{"v9 template ID 5", withLen(good9, 24, 5), decode.ErrMalformed},
		{"v9 zero-length template", g9.datagram(1, g9.templateSet(zeroLen)), decode.ErrMalformed},
		{"ipfix length below header", withLen(goodI, 2, 10), decode.ErrMalformed},
		{"ipfix length beyond datagram", withLen(goodI, 2, 5000), decode.ErrTruncated},
		{"ipfix set length beyond message", withLen(goodI, 18, 200), decode.ErrTruncated},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeOne(t, New(Configuration{}), exA, t0, c.p)
			if !errors.Is(err, c.want) {
				t.Errorf("err %v, want %v", err, c.want)
			}
		})
	}
	// a variable-length field running past the set
	d := New(Configuration{})
	vt := gtmpl{id: 256, fields: []gfield{{8, 4, 0}, {82, 0xffff, 0}}}
	mustDecode(t, d, exA, t0, gi.datagram(0, gi.templateSet(vt)))
	if _, err := decodeOne(t, d, exA, t0, gi.datagram(0, gi.set(256, []byte{1, 2, 3, 4, 200, 'x'}))); !errors.Is(err, decode.ErrTruncated) {
		t.Errorf("varlen past set: %v", err)
	}
}

func TestConcurrentExporters(t *testing.T) {
	d := New(Configuration{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ex := netip.AddrPortFrom(exA.Addr(), uint16(50000+w%2)) // two goroutines per exporter
			g := newGen(uint64(w), ghdr{version: 9, secs: uint32(t0.Unix())})
			var c countSink
			for i := 0; i < 200; i++ {
				p := g.datagram(4, g.templateSet(tmplBasic), g.dataSet(tmplBasic, 3))
				if n, err := d.Decode(ex, p, t0, &c); err != nil || n != 3 {
					t.Errorf("n=%d err=%v", n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if s := d.Stats(); s.V9Records != 4*200*3 {
		t.Errorf("records %d", s.V9Records)
	}
}

// TestStateStaysBounded floods one decoder with what a broken or hostile
// exporter could send: thousands of large templates over many domains,
// data for templates that never come, and many exporters.
func TestStateStaysBounded(t *testing.T) {
	d := New(Configuration{MaxExporters: 8})
	big := make([]gfield, 500)
	for i := range big {
		big[i] = gfield{typ: uint16(100 + i%50), len: 4}
	}
	for i := 0; i < 2000; i++ {
		g := newGen(uint64(i), ghdr{version: 10, secs: uint32(t0.Unix()), domain: uint32(i % 700)})
		tm := gtmpl{id: uint16(256 + i), fields: big[:100+i%400]}
		other := gtmpl{id: uint16(40000 + i), fields: tmplBasic.fields}
		// a template (maybe refused) and data nobody will define
		d.Decode(exA, g.datagram(0, g.templateSet(tm), g.dataSet(other, 30)), t0, &countSink{})
	}
	d.mu.RLock()
	e := d.exporters[exA]
	d.mu.RUnlock()
	e.mu.Lock()
	if e.ntemplates > DefaultMaxTemplatesPerExporter || e.templBytes > maxTemplateBytesPerExporter ||
		len(e.domains) > DefaultMaxTemplatesPerExporter || len(e.pending) > maxPendingPerExporter || e.pendingBytes > maxPendingBytesPerExporter {
		t.Errorf("templates %d (%d bytes), domains %d, pending %d (%d bytes)", e.ntemplates, e.templBytes, len(e.domains), len(e.pending), e.pendingBytes)
	}
	e.mu.Unlock()
	if s := d.Stats(); s.TemplatesRefused == 0 || s.PendingHeld > maxPendingPerExporter {
		t.Errorf("refused %d held %d", s.TemplatesRefused, s.PendingHeld)
	}
	for i := 0; i < 100; i++ {
		ex := netip.AddrPortFrom(exB.Addr(), uint16(i))
		g := newGen(1, ghdr{version: 9, secs: uint32(t0.Unix())})
		d.Decode(ex, g.datagram(1, g.dataSet(tmplBasic, 1)), t0.Add(time.Duration(i)*time.Millisecond), &countSink{})
	}
	if s := d.Stats(); s.Exporters != 8 || d.c.pendingBytesTotal.Load() > 8*maxPendingBytesPerExporter {
		t.Errorf("exporters %d, pending bytes %d", s.Exporters, d.c.pendingBytesTotal.Load())
	}
}
