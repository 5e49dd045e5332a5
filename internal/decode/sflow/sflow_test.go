package sflow

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket/pcapgo"

	"padlock/internal/decode"
	"padlock/internal/decode/packet"
	"padlock/internal/decode/packet/tsharktest"
	"padlock/internal/flow"
)

const realCapture = "testdata/pmacct-sfprobe.pcap"

// datagram is one UDP payload of a capture with its source and time.
type datagram struct {
	from    netip.AddrPort
	payload []byte
	at      time.Time
}

// readDatagrams returns the UDP payloads of a capture of sFlow exports.
func readDatagrams(t testing.TB, file string) []datagram {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []datagram
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		var rec flow.Record
		payload, err := packet.ParsePayload(uint32(r.LinkType()), data, &rec)
		if err != nil || rec.Proto != flow.ProtoUDP {
			t.Fatalf("packet %d is not UDP: %v", len(out)+1, err)
		}
		out = append(out, datagram{netip.AddrPortFrom(rec.SrcAddr, rec.SrcPort), payload, ci.Timestamp})
	}
	if len(out) == 0 {
		t.Fatalf("%s: no packets", file)
	}
	return out
}

// collect decodes datagrams and returns copies of all records per datagram.
func collect(t testing.TB, d *Decoder, dgs []datagram) [][]flow.Record {
	t.Helper()
	out := make([][]flow.Record, len(dgs))
	for i, dg := range dgs {
		n, err := d.Decode(dg.from, dg.payload, dg.at, flow.SinkFunc(func(r *flow.Record) { out[i] = append(out[i], *r) }))
		if err != nil {
			t.Fatalf("datagram %d: %v", i+1, err)
		}
		if n != len(out[i]) {
			t.Fatalf("datagram %d: returned %d, delivered %d", i+1, n, len(out[i]))
		}
	}
	return out
}

// TestDecodeMatchesTshark decodes the datagrams pmacct's sFlow probe sent
// and checks every flow sample against tshark's dissection of the same file.
func TestDecodeMatchesTshark(t *testing.T) {
	dgs := readDatagrams(t, realCapture)
	frames := tsharktest.Frames(t, realCapture, "-d", "udp.port==6343,sflow")
	if len(frames) != len(dgs) {
		t.Fatalf("tshark saw %d frames, we read %d", len(frames), len(dgs))
	}
	d := New(Configuration{})
	got := collect(t, d, dgs)
	var flows, counters int
	for i, fr := range frames {
		sf := fr.Sub("sflow")
		if sf == nil {
			t.Fatalf("frame %d: tshark found no sflow", i+1)
		}
		samples := sortedSamples(sf)
		counters += len(sf.Children("Counters sample")) + len(sf.Children("Expanded counter sample"))
		if len(samples) != len(got[i]) {
			t.Fatalf("frame %d: tshark has %d flow samples, we decoded %d", i+1, len(samples), len(got[i]))
		}
		for j, s := range samples {
			flows++
			r := got[i][j]
			rate := uint32(s.Uint("sflow.flow_sample.sampling_rate"))
			raw := s.Find("sflow_245.header_protocol")
			frameLen := uint32(raw.Uint("sflow_245.header.frame_length"))
			hdr, _ := hex.DecodeString(strings.ReplaceAll(raw.Str("sflow_245.header"), ":", ""))
			// tshark shows the XDR padding too: cut to sampled_header_length.
			hdr = hdr[:min(len(hdr), int(raw.Uint("sflow_245.header.sampled_header_length")), flow.MaxHeader)]
			want := tsharktest.Expect(raw.Sub("sflow_245.header_tree"))
			if want.VLAN == 0 {
				if sw := s.Find("sflow_245.vlan.in"); sw != nil {
					want.VLAN = uint16(sw.Uint("sflow_245.vlan.in"))
				}
			}
			if diff := cmp.Diff(want, tsharktest.Of(&r), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("frame %d sample %d (-tshark +padlock):\n%s", i+1, j+1, diff)
			}
			checks := []struct {
				name      string
				got, want uint64
			}{
				{"SamplingRate", uint64(r.SamplingRate), uint64(rate)},
				{"FrameLength", uint64(r.FrameLength), uint64(frameLen)},
				{"Packets", r.Packets, uint64(rate)},
				{"Bytes", r.Bytes, uint64(frameLen) * uint64(rate)},
				{"SampledPackets", r.SampledPackets, 1},
				{"SampledBytes", r.SampledBytes, uint64(frameLen)},
				{"ObservationDomain", uint64(r.ObservationDomain), sf.Uint("sflow_245.sub_agent_id")},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("frame %d sample %d: %s = %d, tshark says %d", i+1, j+1, c.name, c.got, c.want)
				}
			}
			if !bytes.Equal(r.HeaderBytes(), hdr) {
				t.Errorf("frame %d sample %d: header bytes differ:\n%x\n%x", i+1, j+1, r.HeaderBytes(), hdr)
			}
			if r.Format != flow.FormatSFlow5 || r.Exporter != dgs[i].from.Addr() || !r.Start.Equal(dgs[i].at) || !r.End.Equal(dgs[i].at) {
				t.Errorf("frame %d sample %d: format/exporter/time = %v %v %v %v", i+1, j+1, r.Format, r.Exporter, r.Start, r.End)
			}
		}
	}
	st := d.Stats()
	if st.FlowSamples != uint64(flows) || st.CounterSamples != uint64(counters) || st.Datagrams != uint64(len(dgs)) || st.Errors != 0 {
		t.Errorf("stats %+v, want %d flow samples, %d counter samples, %d datagrams", st, flows, counters, len(dgs))
	}
	if flows < 20 {
		t.Errorf("only %d flow samples in the real capture", flows)
	}
	t.Logf("%d datagrams, %d flow samples, %d counter samples checked against tshark", len(dgs), flows, counters)
}

// sortedSamples returns the flow samples of a datagram in sequence order.
func sortedSamples(sf tsharktest.Tree) []tsharktest.Tree {
	var out []tsharktest.Tree
	for _, prefix := range []string{"Flow sample", "Expanded flow sample"} {
		for _, s := range sf.Children(prefix) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Uint("sflow.flow_sample.sequence_number") < out[j].Uint("sflow.flow_sample.sequence_number")
	})
	return out
}

// enc builds sFlow datagrams for tests.
type enc struct{ b []byte }

func (e *enc) u32(vs ...uint32) *enc {
	for _, v := range vs {
		e.b = binary.BigEndian.AppendUint32(e.b, v)
	}
	return e
}

func (e *enc) raw(b []byte) *enc { e.b = append(e.b, b...); return e }

// opaque appends b padded to 4 bytes.
func (e *enc) opaque(b []byte) *enc {
	e.b = append(e.b, b...)
	for len(e.b)%4 != 0 {
		e.b = append(e.b, 0)
	}
	return e
}

// tlv appends format, length, body.
func (e *enc) tlv(format uint32, body []byte) *enc { return e.u32(format, uint32(len(body))).raw(body) }

func header(agent4 bool, samples ...[]byte) []byte {
	e := &enc{}
	e.u32(5)
	if agent4 {
		e.u32(1).raw([]byte{198, 51, 100, 7})
	} else {
		e.u32(2).raw(netip.MustParseAddr("2001:db8::7").AsSlice())
	}
	e.u32(42, 1000, 123456, uint32(len(samples)))
	for _, s := range samples {
		e.raw(s)
	}
	return e.b
}

func rawHeaderRecord(proto, frameLen uint32, hdr []byte) []byte {
	return (&enc{}).u32(proto, frameLen, 4, uint32(len(hdr))).opaque(hdr).b
}

func flowSample(rate, in, out uint32, records ...[]byte) []byte {
	e := (&enc{}).u32(sampleFlow, 0) // length patched below
	e.u32(9, 3, rate, 1000, 0, in, out, uint32(len(records)/2))
	for i := 0; i+1 < len(records); i += 2 {
		e.tlv(binary.BigEndian.Uint32(records[i]), records[i+1])
	}
	binary.BigEndian.PutUint32(e.b[4:], uint32(len(e.b)-8))
	return e.b
}

func expandedSample(rate, in, out uint32, records ...[]byte) []byte {
	e := (&enc{}).u32(sampleExpandedFlow, 0)
	e.u32(9, 0, 3, rate, 1000, 0, 0, in, 0, out, uint32(len(records)/2))
	for i := 0; i+1 < len(records); i += 2 {
		e.tlv(binary.BigEndian.Uint32(records[i]), records[i+1])
	}
	binary.BigEndian.PutUint32(e.b[4:], uint32(len(e.b)-8))
	return e.b
}

func fmtID(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// synthetic datagrams covering what pmacct does not send: expanded samples,
// sampled IPv4/IPv6/Ethernet structures, VLANs, IPv6 agents, counter and
// unknown samples.
func synthetic(t testing.TB) map[string][]byte {
	dgs := readDatagrams(t, realCapture)
	// Take real raw headers out of the pmacct capture.
	var hdrs [][]byte
	d := New(Configuration{})
	for _, dg := range dgs {
		_, _ = d.Decode(dg.from, dg.payload, dg.at, flow.SinkFunc(func(r *flow.Record) {
			hdrs = append(hdrs, append([]byte(nil), r.HeaderBytes()...))
		}))
	}
	vlanFrame, _ := hex.DecodeString("02000000000b02000000000a8100a0640800450000210001000040110000cb007101cb0071029c41003500" + "0d0000766c616e21")
	ipv4 := (&enc{}).u32(1500, 6).raw([]byte{203, 0, 113, 5, 198, 51, 100, 9}).u32(443, 51000, 0x12, 0).b
	ipv6 := (&enc{}).u32(80, 17).raw(netip.MustParseAddr("2001:db8::5").AsSlice()).raw(netip.MustParseAddr("2001:db8:1::9").AsSlice()).u32(53, 40000, 0, 0).b
	ether := (&enc{}).u32(1514).opaque([]byte{2, 0, 0, 0, 0, 1}).opaque([]byte{2, 0, 0, 0, 0, 2}).u32(0x0800).b
	sw := (&enc{}).u32(200, 0, 300, 0).b
	counter := (&enc{}).u32(sampleCounter, 12).u32(1, 0x0100000a, 0).b
	unknown := (&enc{}).u32(4<<12|1, 4).u32(0).b
	return map[string][]byte{
		"flow sample raw header":      header(true, flowSample(512, 3, 4, fmtID(recordRawHeader), rawHeaderRecord(headerEthernet, 1518, hdrs[len(hdrs)/2]))),
		"expanded sample ipv6 agent":  header(false, expandedSample(2048, 7, 8, fmtID(recordRawHeader), rawHeaderRecord(headerEthernet, 90, hdrs[3]))),
		"vlan tagged header":          header(true, flowSample(1, 1, 2, fmtID(recordRawHeader), rawHeaderRecord(headerEthernet, 64, vlanFrame))),
		"ext switch without tag":      header(true, flowSample(100, 1, 2, fmtID(recordExtSwitch), sw, fmtID(recordRawHeader), rawHeaderRecord(headerEthernet, 1000, hdrs[5]))),
		"sampled ipv4 and ethernet":   header(true, flowSample(64, 1, 2, fmtID(recordEthernet), ether, fmtID(recordIPv4), ipv4)),
		"sampled ipv6":                header(true, expandedSample(10, 1, 2, fmtID(recordIPv6), ipv6)),
		"counter and unknown samples": header(true, counter, unknown, flowSample(8, 1, 2, fmtID(recordRawHeader), rawHeaderRecord(headerEthernet, 300, hdrs[0]))),
		"raw ipv4 header protocol":    header(true, flowSample(4, 1, 2, fmtID(recordRawHeader), rawHeaderRecord(headerIPv4, 300, vlanFrame[18:]))),
		"discarded output interface":  header(true, flowSample(4, 5, 1<<30, fmtID(recordRawHeader), rawHeaderRecord(headerEthernet, 300, hdrs[1]))),
		"unknown record skipped":      header(true, flowSample(4, 5, 6, fmtID(2000), []byte{1, 2, 3, 4}, fmtID(recordRawHeader), rawHeaderRecord(headerEthernet, 300, hdrs[2]))),
	}
}

func TestSyntheticDatagrams(t *testing.T) {
	dgs := synthetic(t)
	from := netip.MustParseAddrPort("198.51.100.7:6343")
	at := time.Unix(1700000000, 0)
	cases := map[string]func(t *testing.T, r flow.Record){
		"vlan tagged header": func(t *testing.T, r flow.Record) {
			if r.VLAN != 100 || r.SrcAddr != netip.MustParseAddr("203.0.113.1") || r.DstPort != 53 {
				t.Errorf("got %+v", tsharktest.Of(&r))
			}
		},
		"ext switch without tag": func(t *testing.T, r flow.Record) {
			if r.VLAN != 200 {
				t.Errorf("VLAN = %d, want 200 from extended switch", r.VLAN)
			}
		},
		"sampled ipv4 and ethernet": func(t *testing.T, r flow.Record) {
			want := flow.Record{Format: flow.FormatSFlow5, Exporter: from.Addr(), ObservationDomain: 42, SamplingRate: 64, Start: at, End: at,
				SrcAddr: netip.MustParseAddr("203.0.113.5"), DstAddr: netip.MustParseAddr("198.51.100.9"), SrcPort: 443, DstPort: 51000, Proto: 6, TCPFlags: 0x12,
				Packets: 64, Bytes: 1500 * 64, SampledPackets: 1, SampledBytes: 1500, FrameLength: 1500, InIf: 1, OutIf: 2,
				SrcMAC: flow.MAC{2, 0, 0, 0, 0, 1}, DstMAC: flow.MAC{2, 0, 0, 0, 0, 2}}
			if diff := cmp.Diff(want, r, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Error(diff)
			}
		},
		"sampled ipv6": func(t *testing.T, r flow.Record) {
			if r.SrcAddr != netip.MustParseAddr("2001:db8::5") || r.Proto != 17 || r.DstPort != 40000 || r.Bytes != 800 {
				t.Errorf("got %+v", r)
			}
		},
		"raw ipv4 header protocol": func(t *testing.T, r flow.Record) {
			h := r.HeaderBytes()
			if r.SrcAddr != netip.MustParseAddr("203.0.113.1") || len(h) < 14 || binary.BigEndian.Uint16(h[12:]) != 0x0800 {
				t.Errorf("got %+v header %x", tsharktest.Of(&r), h)
			}
		},
		"discarded output interface": func(t *testing.T, r flow.Record) {
			if r.InIf != 5 || r.OutIf != 0 {
				t.Errorf("InIf, OutIf = %d, %d; want 5, 0", r.InIf, r.OutIf)
			}
		},
		"expanded sample ipv6 agent": func(t *testing.T, r flow.Record) {
			if r.InIf != 7 || r.OutIf != 8 || r.SamplingRate != 2048 || r.Bytes != 90*2048 {
				t.Errorf("got %+v", r)
			}
		},
	}
	for name, dg := range dgs {
		t.Run(name, func(t *testing.T) {
			d := New(Configuration{})
			var recs []flow.Record
			n, err := d.Decode(from, dg, at, flow.SinkFunc(func(r *flow.Record) { recs = append(recs, *r) }))
			if err != nil || n != 1 || len(recs) != 1 {
				t.Fatalf("n=%d records=%d err=%v", n, len(recs), err)
			}
			if c := cases[name]; c != nil {
				c(t, recs[0])
			}
			if name == "counter and unknown samples" {
				if st := d.Stats(); st.CounterSamples != 1 || st.OtherSamples != 1 || st.FlowSamples != 1 {
					t.Errorf("stats %+v", st)
				}
			}
		})
	}
}

func TestSamplingOverride(t *testing.T) {
	dg := readDatagrams(t, realCapture)[0]
	d := New(Configuration{SamplingOverride: map[netip.Addr]uint32{dg.from.Addr(): 1000}})
	n, err := d.Decode(dg.from, dg.payload, dg.at, flow.SinkFunc(func(r *flow.Record) {
		if r.SamplingRate != 1000 || r.Packets != 1000 || r.Bytes != uint64(r.FrameLength)*1000 {
			t.Errorf("override not applied: %+v", r)
		}
	}))
	if err != nil || n == 0 {
		t.Fatal(n, err)
	}
}

// TestMalformed cuts and corrupts real datagrams: the decoder must return
// an error wrapping a sentinel, deliver only whole samples and never panic.
func TestMalformed(t *testing.T) {
	dg := readDatagrams(t, realCapture)[0]
	d := New(Configuration{})
	full, err := d.Decode(dg.from, dg.payload, dg.at, flow.SinkFunc(func(*flow.Record) {}))
	if err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < len(dg.payload); cut++ {
		n, err := d.Decode(dg.from, dg.payload[:cut], dg.at, flow.SinkFunc(func(*flow.Record) {}))
		if err == nil {
			t.Fatalf("cut at %d: no error", cut)
		}
		if !errors.Is(err, decode.ErrTruncated) && !errors.Is(err, decode.ErrMalformed) {
			t.Fatalf("cut at %d: %v wraps no sentinel", cut, err)
		}
		if n >= full {
			t.Fatalf("cut at %d: %d records from a partial datagram of %d", cut, n, full)
		}
	}
	bad := append([]byte(nil), dg.payload...)
	bad[3] = 4
	if _, err := d.Decode(dg.from, bad, dg.at, flow.SinkFunc(func(*flow.Record) {})); !errors.Is(err, decode.ErrVersion) {
		t.Fatalf("version 4: %v", err)
	}
	if st := d.Stats(); st.Errors != uint64(len(dg.payload))+1 {
		t.Errorf("Errors = %d, want %d", st.Errors, len(dg.payload)+1)
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	dgs := readDatagrams(t, realCapture)
	d := New(Configuration{})
	var sink countSink
	n := testing.AllocsPerRun(200, func() {
		for _, dg := range dgs {
			_, _ = d.Decode(dg.from, dg.payload, dg.at, &sink)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per pass over %d datagrams", n, len(dgs))
	}
}

type countSink struct{ n, bytes uint64 }

func (s *countSink) Record(r *flow.Record) { s.n++; s.bytes += r.Bytes }

// benchDatagrams repeats the real datagrams to a steady-state workload.
func BenchmarkDecode(b *testing.B) {
	dgs := readDatagrams(b, realCapture)
	d := New(Configuration{})
	var sink countSink
	var samples int
	for _, dg := range dgs {
		n, _ := d.Decode(dg.from, dg.payload, dg.at, &sink)
		samples += n
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, dg := range dgs {
			_, _ = d.Decode(dg.from, dg.payload, dg.at, &sink)
		}
	}
	b.ReportMetric(float64(samples)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples*b.N), "ns/sample")
}

// TestConcurrentDecode: one Decoder shared by several listener goroutines
// (run with -race).
func TestConcurrentDecode(t *testing.T) {
	dgs := readDatagrams(t, realCapture)
	d := New(Configuration{})
	done := make(chan uint64)
	for range 4 {
		go func() {
			var s countSink
			for range 50 {
				for _, dg := range dgs {
					_, _ = d.Decode(dg.from, dg.payload, dg.at, &s)
				}
			}
			done <- s.n
		}()
	}
	var total uint64
	for range 4 {
		total += <-done
	}
	if st := d.Stats(); st.FlowSamples != total || st.Datagrams != uint64(4*50*len(dgs)) {
		t.Fatalf("stats %+v, sinks saw %d records", st, total)
	}
}
