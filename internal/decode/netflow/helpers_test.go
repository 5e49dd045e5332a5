package netflow

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"padlock/internal/flow"
)

// datagram is one UDP export datagram read from a capture.
type datagram struct {
	src     netip.AddrPort
	at      time.Time
	payload []byte
}

// realCaptures are the softflowd exports in testdata (see testdata/README.md).
var realCaptures = []string{
	"softflowd-v5.pcap",
	"softflowd-v9.pcap",
	"softflowd-ipfix.pcap",
	"softflowd-v9-sampled.pcap",
	"softflowd-ipfix-milli.pcap",
}

// readDatagrams returns the UDP payloads of an Ethernet/IPv4 capture.
func readDatagrams(tb testing.TB, name string) []datagram {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		tb.Fatalf("%s: link type %v, want Ethernet", name, r.LinkType())
	}
	var out []datagram
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		if len(data) < 14+20+8 || binary.BigEndian.Uint16(data[12:]) != 0x0800 {
			continue
		}
		ip := data[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			continue
		}
		udp := ip[ihl:]
		ulen := int(binary.BigEndian.Uint16(udp[4:]))
		if ulen < 8 || ulen > len(udp) {
			tb.Fatalf("%s: bad UDP length", name)
		}
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(udp))
		out = append(out, datagram{src: src, at: ci.Timestamp, payload: append([]byte(nil), udp[8:ulen]...)})
	}
	return out
}

// collect is a sink that keeps copies.
type collect struct{ recs []flow.Record }

func (c *collect) Record(r *flow.Record) { c.recs = append(c.recs, *r) }

// decodeAll feeds datagrams to a fresh decoder and returns the records, per
// datagram.
func decodeAll(tb testing.TB, d *Decoder, dgs []datagram) [][]flow.Record {
	tb.Helper()
	out := make([][]flow.Record, len(dgs))
	for i, dg := range dgs {
		var c collect
		n, err := d.Decode(dg.src, dg.payload, dg.at, &c)
		if err != nil {
			tb.Fatalf("datagram %d: %v", i, err)
		}
		if n != len(c.recs) {
			tb.Fatalf("datagram %d: Decode says %d records, sink got %d", i, n, len(c.recs))
		}
		out[i] = c.recs
	}
	return out
}

// needTool skips (or, under CI, fails) when a tool is missing.
func needTool(tb testing.TB, err error, what string) {
	tb.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s needed under CI: %v", what, err)
	}
	tb.Skipf("%s not available: %v", what, err)
}

// readAllPackets returns the capture time of every packet in a capture.
func readAllPackets(tb testing.TB, name string) []time.Time {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	var out []time.Time
	for {
		_, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, ci.Timestamp)
	}
}
