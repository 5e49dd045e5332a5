package netflow

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"padlock/internal/flow"
)

// tsharkRecord is one flow record as tshark's cflow dissector shows it.
type tsharkRecord struct {
	src, dst         netip.Addr
	srcPort, dstPort uint16
	proto            uint8
	packets, octets  uint64
}

func (r tsharkRecord) String() string {
	return fmt.Sprintf("%v:%d > %v:%d proto %d pkts %d bytes %d", r.src, r.srcPort, r.dst, r.dstPort, r.proto, r.packets, r.octets)
}

type pdmlField struct {
	Name   string      `xml:"name,attr"`
	Show   string      `xml:"show,attr"`
	Fields []pdmlField `xml:"field"`
}

type pdmlPacket struct {
	Protos []struct {
		Name   string      `xml:"name,attr"`
		Fields []pdmlField `xml:"field"`
	} `xml:"proto"`
}

// tsharkDecode runs tshark on a capture and returns the flow records of each
// frame, in order.
func tsharkDecode(t *testing.T, name string) [][]tsharkRecord {
	t.Helper()
	path, err := exec.LookPath("tshark")
	needTool(t, err, "tshark")
	out, err := exec.Command(path, "-r", filepath.Join("testdata", name), "-d", "udp.port==9995,cflow", "-T", "pdml").Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", name, err)
	}
	var doc struct {
		Packets []pdmlPacket `xml:"packet"`
	}
	if err := xml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("tshark pdml: %v", err)
	}
	frames := make([][]tsharkRecord, len(doc.Packets))
	for i, p := range doc.Packets {
		for _, pr := range p.Protos {
			if pr.Name == "cflow" {
				walkPDML(t, pr.Fields, &frames[i])
			}
		}
	}
	return frames
}

// walkPDML finds record nodes: fields whose children carry a source address
// and a packet count.
func walkPDML(t *testing.T, fields []pdmlField, out *[]tsharkRecord) {
	for _, f := range fields {
		kids := map[string]string{}
		for _, k := range f.Fields {
			if _, dup := kids[k.Name]; !dup {
				kids[k.Name] = k.Show
			}
		}
		_, v4 := kids["cflow.srcaddr"]
		_, v6 := kids["cflow.srcaddrv6"]
		if _, pk := kids["cflow.packets"]; pk && (v4 || v6) {
			var r tsharkRecord
			if v4 {
				r.src, r.dst = netip.MustParseAddr(kids["cflow.srcaddr"]), netip.MustParseAddr(kids["cflow.dstaddr"])
			} else {
				r.src, r.dst = netip.MustParseAddr(kids["cflow.srcaddrv6"]), netip.MustParseAddr(kids["cflow.dstaddrv6"])
			}
			num := func(name string) uint64 {
				s, ok := kids[name]
				if !ok {
					return 0
				}
				v, err := strconv.ParseUint(s, 0, 64)
				if err != nil {
					t.Fatalf("tshark %s=%q: %v", name, s, err)
				}
				return v
			}
			r.srcPort, r.dstPort = uint16(num("cflow.srcport")), uint16(num("cflow.dstport"))
			if _, ok := kids["cflow.dstport"]; !ok {
				// ICMP records without ports: NetFlow's convention puts
				// type<<8|code where the destination port would be.
				switch {
				case kids["cflow.icmp_type_code_ipv4"] != "":
					r.dstPort = uint16(num("cflow.icmp_type_code_ipv4"))
				case kids["cflow.icmp_ipv6_type"] != "":
					r.dstPort = uint16(num("cflow.icmp_ipv6_type"))<<8 | uint16(num("cflow.icmp_ipv6_code"))
				}
			}
			r.proto = uint8(num("cflow.protocol"))
			r.packets, r.octets = num("cflow.packets"), num("cflow.octets")
			*out = append(*out, r)
			continue
		}
		walkPDML(t, f.Fields, out)
	}
}

// TestRealExportersMatchTshark decodes softflowd's real exports and holds
// every record to what tshark decodes from the same capture.
func TestRealExportersMatchTshark(t *testing.T) {
	span := sourceSpan(t)
	for _, name := range realCaptures {
		t.Run(name, func(t *testing.T) {
			dgs := readDatagrams(t, name)
			want := tsharkDecode(t, name)
			if len(want) != len(dgs) {
				t.Fatalf("tshark saw %d frames, we read %d datagrams", len(want), len(dgs))
			}
			d := New(Configuration{})
			got := decodeAll(t, d, dgs)
			total := 0
			for i := range dgs {
				if len(got[i]) != len(want[i]) {
					t.Errorf("datagram %d: %d records, tshark %d", i, len(got[i]), len(want[i]))
					continue
				}
				for j, w := range want[i] {
					r := got[i][j]
					g := tsharkRecord{r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort, r.Proto, r.SampledPackets, r.SampledBytes}
					if g != w {
						t.Errorf("datagram %d record %d:\n got %v\nwant %v", i, j, g, w)
					}
					checkRealRecord(t, name, r, span)
				}
				total += len(want[i])
			}
			if total == 0 {
				t.Fatal("no records in capture")
			}
			t.Logf("%d datagrams, %d records, all equal to tshark's", len(dgs), total)
		})
	}
}

// checkRealRecord checks what tshark cannot: wall-clock times (the source
// capture's time span), sampling, format.
func checkRealRecord(t *testing.T, name string, r flow.Record, span [2]time.Time) {
	t.Helper()
	wantRate := uint32(1)
	if strings.Contains(name, "sampled") || strings.Contains(name, "milli") {
		wantRate = 2 // softflowd -s 2
	}
	if r.SamplingRate != wantRate || r.Packets != r.SampledPackets*uint64(wantRate) || r.Bytes != r.SampledBytes*uint64(wantRate) {
		t.Errorf("%v: sampling %d packets %d/%d bytes %d/%d, want rate %d", r.SrcAddr, r.SamplingRate, r.Packets, r.SampledPackets, r.Bytes, r.SampledBytes, wantRate)
	}
	// softflowd stamps flows with the packets' capture times; the export
	// header's clock has one-second resolution.
	lo, hi := span[0].Add(-1100*time.Millisecond), span[1].Add(1100*time.Millisecond)
	if r.Start.Before(lo) || r.End.After(hi) || r.End.Before(r.Start) {
		t.Errorf("%v > %v: start %v end %v outside the source capture %v .. %v", r.SrcAddr, r.DstAddr, r.Start, r.End, span[0], span[1])
	}
	want := map[string]flow.Format{"v5": flow.FormatNetFlow5, "v9": flow.FormatNetFlow9, "ipfix": flow.FormatIPFIX}
	for k, f := range want {
		if strings.Contains(name, "-"+k) && r.Format != f {
			t.Errorf("format %v, want %v", r.Format, f)
		}
	}
	if r.Exporter != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("exporter %v", r.Exporter)
	}
	if strings.Contains(name, "v9.pcap") || name == "softflowd-ipfix.pcap" {
		// -T ether: softflowd exports MACs (the veth pair's, never zero).
		if r.SrcMAC.IsZero() || r.DstMAC.IsZero() {
			t.Errorf("%v > %v: MACs %v %v missing", r.SrcAddr, r.DstAddr, r.SrcMAC, r.DstMAC)
		}
	}
}

// sourceSpan returns the first and last packet times of testdata/source.pcap.
func sourceSpan(t *testing.T) [2]time.Time {
	t.Helper()
	var span [2]time.Time
	f := readAllPackets(t, "source.pcap")
	if len(f) == 0 {
		t.Fatal("empty source.pcap")
	}
	span[0], span[1] = f[0], f[len(f)-1]
	return span
}
