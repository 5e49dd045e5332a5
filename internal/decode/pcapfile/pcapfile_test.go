package pcapfile

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/decode"
	"padlock/internal/decode/netflow"
	"padlock/internal/decode/packet/tsharktest"
	"padlock/internal/decode/sflow"
	"padlock/internal/flow"
)

func deps() Dependencies {
	return Dependencies{NetFlow: netflow.New(netflow.Configuration{}), SFlow: sflow.New(sflow.Configuration{})}
}

// readAll runs a Reader over file and returns copies of the records.
func readAll(t testing.TB, file string, conf Configuration) ([]flow.Record, Stats, error) {
	t.Helper()
	rd, err := Open(file, conf, deps())
	if err != nil {
		t.Fatalf("open %s: %v", file, err)
	}
	defer rd.Close()
	var recs []flow.Record
	st, err := rd.Run(context.Background(), flow.SinkFunc(func(r *flow.Record) { recs = append(recs, *r) }))
	return recs, st, err
}

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

// TestRawPacketsMatchTshark reads the raw-packet captures of every link type
// and container (pcap, pcapng, gzip'd) and compares each record with
// tshark's dissection of the same file, field by field.
func TestRawPacketsMatchTshark(t *testing.T) {
	files := []struct {
		name string
		link uint32
	}{
		{"eth.pcap", 1}, {"eth.pcapng", 1}, {"eth-gzip.pcap", 1}, {"eth.pcapng.gz", 1},
		{"sll.pcap", 113}, {"sll2.pcap", 276}, {"raw.pcap", 101}, {"ipv4.pcap", 228}, {"ipv6.pcap", 229}, {"null.pcap", 0},
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", f.name)
			recs, st, err := readAll(t, path, Configuration{})
			if err != nil {
				t.Fatal(err)
			}
			frames := tsharktest.Frames(t, path)
			if len(frames) != len(recs) || st.Packets != uint64(len(frames)) || st.ByFormat[flow.FormatPcap] != uint64(len(recs)) {
				t.Fatalf("tshark: %d frames; padlock: %d records, stats %+v", len(frames), len(recs), st)
			}
			var l4 int
			for i, fr := range frames {
				r := recs[i]
				frame := fr.Sub("frame")
				if got := uint64(frame.Uint("frame.encap_type")); f.link != 1 && got == 1 {
					t.Fatalf("tshark reads %s as Ethernet", f.name)
				}
				want := tsharktest.Expect(fr)
				if diff := cmp.Diff(want, tsharktest.Of(&r), addrCmp); diff != "" {
					t.Errorf("frame %d (-tshark +padlock):\n%s", i+1, diff)
				}
				if want.SrcPort != 0 || want.DstPort != 0 {
					l4++
				}
				sec, frac, _ := strings.Cut(frame.Str("frame.time_epoch"), ".")
				s, _ := strconv.ParseInt(sec, 10, 64)
				ns, _ := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
				flen := frame.Uint("frame.len")
				caplen := int(frame.Uint("frame.cap_len"))
				wantHdr := min(caplen, flow.MaxHeader)
				switch f.link {
				case 113:
					wantHdr = min(caplen-16+14, flow.MaxHeader)
				case 276:
					wantHdr = min(caplen-20+14, flow.MaxHeader)
				case 101, 228, 229:
					wantHdr = min(caplen+14, flow.MaxHeader)
				case 0:
					wantHdr = min(caplen-4+14, flow.MaxHeader)
				}
				if !r.Start.Equal(time.Unix(s, ns)) || !r.End.Equal(r.Start) || uint64(r.FrameLength) != flen || r.Bytes != flen ||
					r.Packets != 1 || r.SamplingRate != 1 || r.Format != flow.FormatPcap || r.Exporter.IsValid() || int(r.HeaderLength) != wantHdr {
					t.Errorf("frame %d: start %v (tshark %v), frame length %d bytes %d (tshark %d), header %d (want %d), rate %d, format %v, exporter %v",
						i+1, r.Start, time.Unix(s, ns), r.FrameLength, r.Bytes, flen, r.HeaderLength, wantHdr, r.SamplingRate, r.Format, r.Exporter)
				}
			}
			if l4 < 10 {
				t.Errorf("only %d frames with ports", l4)
			}
		})
	}
}

// TestSFlowExportCapture: a capture of pmacct's sFlow datagrams is decoded
// as sFlow, not as packets, and matches tshark's count of flow samples.
func TestSFlowExportCapture(t *testing.T) {
	for _, name := range []string{"sflow-export.pcap", "sflow-export.pcapng"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			recs, st, err := readAll(t, path, Configuration{})
			if err != nil {
				t.Fatal(err)
			}
			var samples int
			for _, fr := range tsharktest.Frames(t, path, "-d", "udp.port==6343,sflow") {
				samples += len(fr.Sub("sflow").Children("Flow sample")) + len(fr.Sub("sflow").Children("Expanded flow sample"))
			}
			exporter := netip.MustParseAddr("127.0.0.1")
			if len(recs) != samples || st.ByFormat[flow.FormatSFlow5] != uint64(samples) || st.ByExporter[exporter] != uint64(samples) ||
				st.ExportDatagrams != st.Packets || len(st.Errors) != 0 {
				t.Fatalf("%d records, tshark %d flow samples; stats %+v", len(recs), samples, st)
			}
			for _, r := range recs {
				if r.Format != flow.FormatSFlow5 || r.Exporter != exporter || r.SamplingRate != 10 {
					t.Fatalf("record %+v", r)
				}
			}
		})
	}
}

type nfKey struct {
	Format           flow.Format
	Src, Dst         string
	Proto            uint8
	SrcPort, DstPort uint16
	Packets, Bytes   uint64
}

// TestNetFlowExportCapture: softflowd's NetFlow v5, v9 and IPFIX datagrams
// are decoded by the injected decoder; the flows match tshark's.
func TestNetFlowExportCapture(t *testing.T) {
	path := filepath.Join("testdata", "netflow-export.pcap")
	recs, st, err := readAll(t, path, Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	if st.ExportDatagrams != st.Packets || st.ByFormat[flow.FormatPcap] != 0 {
		t.Fatalf("not every datagram decoded as export: %+v", st)
	}
	var got []nfKey
	for _, r := range recs {
		got = append(got, nfKey{r.Format, r.SrcAddr.String(), r.DstAddr.String(), r.Proto, r.SrcPort, r.DstPort, r.SampledPackets, r.SampledBytes})
	}
	var want []nfKey
	for _, fr := range tsharktest.Frames(t, path, "-d", "udp.port==2055,cflow", "-d", "udp.port==9995,cflow", "-d", "udp.port==4739,cflow") {
		cf := fr.Sub("cflow")
		format := map[uint64]flow.Format{5: flow.FormatNetFlow5, 9: flow.FormatNetFlow9, 10: flow.FormatIPFIX}[cf.Uint("cflow.version")]
		var walk func(tr tsharktest.Tree)
		walk = func(tr tsharktest.Tree) {
			for _, v := range tr {
				var subs []any
				switch v := v.(type) {
				case map[string]any:
					subs = []any{v}
				case []any:
					subs = v
				}
				for _, sv := range subs {
					sub, ok := sv.(map[string]any)
					if !ok {
						continue
					}
					st := tsharktest.Tree(sub)
					if st.Has("cflow.srcaddr") || st.Has("cflow.srcaddrv6") { // one flow record ("Flow N", "pdu N/M")
						src, dst := st.Str("cflow.srcaddr"), st.Str("cflow.dstaddr")
						if src == "" {
							src, dst = st.Str("cflow.srcaddrv6"), st.Str("cflow.dstaddrv6")
						}
						pk := st.Uint("cflow.packets")
						if pk == 0 {
							pk = st.Uint("cflow.packets64")
						}
						by := st.Uint("cflow.octets")
						if by == 0 {
							by = st.Uint("cflow.octets64")
						}
						dport := uint16(st.Uint("cflow.dstport"))
						if st.Has("cflow.icmp_type_code_ipv4") {
							dport = uint16(st.Uint("cflow.icmp_type_code_ipv4"))
						}
						if st.Has("cflow.icmp_ipv6_type") {
							dport = uint16(st.Uint("cflow.icmp_ipv6_type")<<8 | st.Uint("cflow.icmp_ipv6_code"))
						}
						want = append(want, nfKey{format, src, dst, uint8(st.Uint("cflow.protocol")), uint16(st.Uint("cflow.srcport")), dport, pk, by})
						continue
					}
					walk(st)
				}
			}
		}
		walk(cf)
	}
	less := func(s []nfKey) func(i, j int) bool {
		return func(i, j int) bool { return fmt.Sprint(s[i]) < fmt.Sprint(s[j]) }
	}
	sort.Slice(got, less(got))
	sort.Slice(want, less(want))
	if len(want) < 10 {
		t.Fatalf("tshark found only %d flows", len(want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flows (-tshark +padlock):\n%s", diff)
	}
	for _, f := range []flow.Format{flow.FormatNetFlow5, flow.FormatNetFlow9, flow.FormatIPFIX} {
		if st.ByFormat[f] == 0 {
			t.Errorf("no %v records", f)
		}
	}
}

// TestExportPortsConfigurable: sFlow on a port that is not a default is read
// as packets until the port is configured.
func TestExportPortsConfigurable(t *testing.T) {
	// Rewrite the sFlow capture's UDP destination port 6343 -> 16343.
	b, err := os.ReadFile("testdata/sflow-export.pcap")
	if err != nil {
		t.Fatal(err)
	}
	off := 24
	for off+16 <= len(b) {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		udp := b[off+16+14+20:]
		binary.BigEndian.PutUint16(udp[2:], 16343)
		off += 16 + n
	}
	path := filepath.Join(t.TempDir(), "moved.pcap")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, st, err := readAll(t, path, Configuration{})
	if err != nil || st.ByFormat[flow.FormatSFlow5] != 0 || st.ByFormat[flow.FormatPcap] != st.Packets {
		t.Fatalf("default ports: %+v %v", st, err)
	}
	_, st, err = readAll(t, path, Configuration{ExportPorts: []uint16{16343}})
	if err != nil || st.ByFormat[flow.FormatSFlow5] == 0 || st.ByFormat[flow.FormatPcap] != 0 {
		t.Fatalf("configured port: %+v %v", st, err)
	}
}

// TestTruncatedFile: the error names the file and the offset of the cut
// record, after all records before it were delivered.
func TestTruncatedFile(t *testing.T) {
	b, err := os.ReadFile("testdata/truncated.pcap")
	if err != nil {
		t.Fatal(err)
	}
	off, whole := 24, 0
	for off+16 <= len(b) && off+16+int(binary.LittleEndian.Uint32(b[off+8:])) <= len(b) {
		off += 16 + int(binary.LittleEndian.Uint32(b[off+8:]))
		whole++
	}
	recs, st, err := readAll(t, "testdata/truncated.pcap", Configuration{})
	want := fmt.Sprintf("testdata/truncated.pcap: offset %d: truncated packet record", off)
	if err == nil || err.Error() != want || !errors.Is(err, decode.ErrTruncated) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if len(recs) != whole || st.Packets != uint64(whole) {
		t.Fatalf("%d records before the cut, want %d", len(recs), whole)
	}
	full, _, _ := readAll(t, "testdata/eth.pcap", Configuration{})
	if diff := cmp.Diff(full[:whole], recs, addrCmp); diff != "" {
		t.Errorf("records before the cut differ from the whole file's:\n%s", diff)
	}
}

// TestCorruptFiles: every cut of the real pcapng and gzip files either ends
// cleanly at a block boundary or fails with an OffsetError; none panics.
func TestCorruptFiles(t *testing.T) {
	for _, name := range []string{"eth.pcapng", "eth.pcapng.gz", "sflow-export.pcap"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		fullRecs := -1
		for cut := len(b); cut >= 0; cut -= 1 + cut/50 {
			rd, err := NewReader(bytes.NewReader(b[:cut]), name, Configuration{}, deps())
			if err != nil {
				var oe *OffsetError
				if !errors.As(err, &oe) && cut > 0 {
					t.Fatalf("%s cut %d: open error %v is no OffsetError", name, cut, err)
				}
				continue
			}
			n := 0
			_, err = rd.Run(context.Background(), flow.SinkFunc(func(*flow.Record) { n++ }))
			if cut == len(b) {
				if err != nil {
					t.Fatal(err)
				}
				fullRecs = n
				continue
			}
			var oe *OffsetError
			if err != nil && (!errors.As(err, &oe) || oe.File != name || decode.Cause(err) == "other") {
				t.Fatalf("%s cut %d: %v", name, cut, err)
			}
			if n > fullRecs {
				t.Fatalf("%s cut %d: %d records, more than the whole file's %d", name, cut, n, fullRecs)
			}
		}
	}
	_, err := NewReader(strings.NewReader("this is not a capture file at all"), "x.txt", Configuration{}, deps())
	if err == nil || !strings.Contains(err.Error(), "x.txt: offset 0: not a pcap or pcapng file") {
		t.Fatalf("text file: %v", err)
	}
	// A pcapng block whose length is not a multiple of 4.
	b, _ := os.ReadFile("testdata/eth.pcapng")
	bad := append([]byte(nil), b...)
	shbLen := int(binary.LittleEndian.Uint32(bad[4:]))
	binary.LittleEndian.PutUint32(bad[shbLen+4:], 13)
	rd, err := NewReader(bytes.NewReader(bad), "bad.pcapng", Configuration{}, deps())
	if err == nil {
		_, err = rd.Run(context.Background(), flow.SinkFunc(func(*flow.Record) {}))
	}
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("bad.pcapng: offset %d: bad pcapng block length", shbLen)) {
		t.Fatalf("bad block length: %v", err)
	}
}

// TestTruncatedPcapng: a pcapng cut inside a block names that block's offset.
func TestTruncatedPcapng(t *testing.T) {
	b, err := os.ReadFile("testdata/eth.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	var starts []int
	for off := 0; off+8 <= len(b); off += int(binary.LittleEndian.Uint32(b[off+4:])) {
		starts = append(starts, off)
	}
	block := starts[len(starts)/2]
	cut := block + 20
	path := filepath.Join(t.TempDir(), "cut.pcapng")
	if err := os.WriteFile(path, b[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = readAll(t, path, Configuration{})
	want := fmt.Sprintf("%s: offset %d: truncated pcapng block", path, block)
	if err == nil || err.Error() != want || !errors.Is(err, decode.ErrTruncated) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

// TestTruncatedGzip: offsets in gzip files count uncompressed bytes, and
// the message says so.
func TestTruncatedGzip(t *testing.T) {
	b, err := os.ReadFile("testdata/eth-gzip.pcap")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cut.pcap.gz")
	if err := os.WriteFile(path, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	recs, _, err := readAll(t, path, Configuration{})
	if err == nil || !strings.Contains(err.Error(), path+": offset ") || !strings.Contains(err.Error(), " (uncompressed): truncated") || len(recs) == 0 {
		t.Fatalf("%d records, err = %v", len(recs), err)
	}
}

func TestProgressAndCancel(t *testing.T) {
	var last, total int64
	calls := 0
	_, _, err := readAll(t, "testdata/eth.pcapng.gz", Configuration{Progress: func(r, tot int64) { last, total = r, tot; calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat("testdata/eth.pcapng.gz")
	if calls < 2 || last != fi.Size() || total != fi.Size() {
		t.Fatalf("progress %d/%d after %d calls, file has %d bytes", last, total, calls, fi.Size())
	}
	rd, err := Open("testdata/eth.pcap", Configuration{}, deps())
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := rd.Run(ctx, flow.SinkFunc(func(*flow.Record) {})); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
}

func TestSniff(t *testing.T) {
	v5 := make([]byte, 24+48*2)
	binary.BigEndian.PutUint16(v5, 5)
	binary.BigEndian.PutUint16(v5[2:], 2)
	ipfix := make([]byte, 40)
	binary.BigEndian.PutUint16(ipfix, 10)
	binary.BigEndian.PutUint16(ipfix[2:], 40)
	sf := make([]byte, 40)
	binary.BigEndian.PutUint32(sf, 5)
	binary.BigEndian.PutUint32(sf[4:], 1)
	for _, c := range []struct {
		b    []byte
		want Kind
	}{
		{v5, KindNetFlow5}, {v5[:100], KindNone}, {ipfix, KindIPFIX}, {ipfix[:39], KindNone}, {sf, KindSFlow},
		{[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), KindNone}, {nil, KindNone},
	} {
		if got := Sniff(c.b); got != c.want {
			t.Errorf("Sniff(%x...) = %v, want %v", c.b[:min(8, len(c.b))], got, c.want)
		}
	}
}

// BenchmarkRun reads an in-memory capture of 59,000 packets: eth.pcap's
// records repeated 1,000 times behind its header, so the figure is the
// per-packet cost, not the cost of opening a reader.
func BenchmarkRun(b *testing.B) {
	eth, err := os.ReadFile("testdata/eth.pcap")
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Clone(eth[:24])
	for range 1000 {
		data = append(data, eth[24:]...)
	}
	var pkts uint64
	b.ReportAllocs()
	for b.Loop() {
		rd, err := NewReader(bytes.NewReader(data), "eth.pcap", Configuration{}, Dependencies{})
		if err != nil {
			b.Fatal(err)
		}
		st, _ := rd.Run(context.Background(), flow.SinkFunc(func(*flow.Record) {}))
		pkts += st.Packets
	}
	b.ReportMetric(float64(pkts)/b.Elapsed().Seconds(), "packets/s")
}

// TestLinkTypeFCSBits: a pcap header whose link type field also says how
// many FCS bytes frames carry (the top bits, as libpcap writes them) is
// still read as its link type in the low 16 bits, as tcpdump does.
func TestLinkTypeFCSBits(t *testing.T) {
	b, err := os.ReadFile("testdata/eth.pcap")
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := readAll(t, "testdata/eth.pcap", Configuration{})
	fcs := bytes.Clone(b)
	binary.LittleEndian.PutUint32(fcs[20:], 0x04000000|binary.LittleEndian.Uint32(b[20:])) // 4 FCS bytes
	path := filepath.Join(t.TempDir(), "fcs.pcap")
	if err := os.WriteFile(path, fcs, 0o644); err != nil {
		t.Fatal(err)
	}
	got, st, err := readAll(t, path, Configuration{})
	if err != nil || len(st.Errors) != 0 {
		t.Fatalf("err %v, errors %v", err, st.Errors)
	}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("records differ from the plain file's:\n%s", diff)
	}
}

// TestOpenDirectory: a directory given as a capture says so, instead of
// the "truncated file header" a failed read of it would give.
func TestOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir, Configuration{}, deps())
	if err == nil || !strings.Contains(err.Error(), dir+": is a directory") {
		t.Fatalf("Open(directory) = %v, want an error saying it is a directory", err)
	}
}
