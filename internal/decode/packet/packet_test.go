package packet

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	v4A  = net.IP{198, 51, 100, 1}
	v4B  = net.IP{203, 0, 113, 9}
	v6A  = net.ParseIP("2001:db8::1")
	v6B  = net.ParseIP("2001:db8:1::2")
)

// build serializes layers the way a NIC would put them on the wire.
func build(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func eth(et layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: et}
}

func ip4(p layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Protocol: p, SrcIP: v4A, DstIP: v4B}
}

func ip6(p layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: p, SrcIP: v6A, DstIP: v6B}
}

func mac(h net.HardwareAddr) flow.MAC { return flow.MAC(h) }

func TestParse(t *testing.T) {
	a4, b4 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.9")
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::2")
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 22, SYN: true, ECE: true, Window: 1000}
	udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
	pay := gopacket.Payload([]byte("hello"))
	withOpts := ip4(layers.IPProtocolTCP)
	withOpts.Options = []layers.IPv4Option{{OptionType: 7, OptionLength: 11, OptionData: make([]byte, 9)}} // record route
	frag := ip4(layers.IPProtocolUDP)
	frag.FragOffset = 185
	hop := rawExt(layers.IPProtocolIPv6Destination, 8)
	dst := rawExt(layers.IPProtocolIPv6Routing, 16)
	ipv6Ext := ip6(layers.IPProtocolIPv6HopByHop)
	routing := rawExt(layers.IPProtocolIPv6Fragment, 16) // type-0 style routing header, one address
	fragHdr := &layers.IPv6Fragment{NextHeader: layers.IPProtocolTCP, Identification: 7}
	// Non-first IPv6 fragment.
	fragLater := &layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, FragmentOffset: 100}
	vlan := &layers.Dot1Q{VLANIdentifier: 100, Priority: 5, Type: layers.EthernetTypeIPv4}
	qinqOuter := &layers.Dot1Q{VLANIdentifier: 300, Type: layers.EthernetTypeDot1Q}
	qinqInner := &layers.Dot1Q{VLANIdentifier: 42, Type: layers.EthernetTypeIPv6}

	tests := []struct {
		name    string
		link    uint32
		data    []byte
		want    flow.Record
		payload string
		err     error
	}{
		{"ipv4 tcp", LinkEthernet, build(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolTCP), tcp, pay),
			flow.Record{SrcMAC: mac(macA), DstMAC: mac(macB), SrcAddr: a4, DstAddr: b4, Proto: 6, SrcPort: 40000, DstPort: 22, TCPFlags: flow.TCPSyn | flow.TCPEce}, "hello", nil},
		{"ipv4 options", LinkEthernet, build(t, eth(layers.EthernetTypeIPv4), withOpts, tcp, pay),
			flow.Record{SrcMAC: mac(macA), DstMAC: mac(macB), SrcAddr: a4, DstAddr: b4, Proto: 6, SrcPort: 40000, DstPort: 22, TCPFlags: flow.TCPSyn | flow.TCPEce}, "hello", nil},
		{"ipv4 udp padded", LinkEthernet, append(build(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp, pay), 0, 0, 0, 0, 0, 0),
			flow.Record{SrcMAC: mac(macA), DstMAC: mac(macB), SrcAddr: a4, DstAddr: b4, Proto: 17, SrcPort: 5353, DstPort: 53}, "hello", nil},
		{"ipv4 later fragment", LinkEthernet, build(t, eth(layers.EthernetTypeIPv4), frag, pay),
			flow.Record{SrcMAC: mac(macA), DstMAC: mac(macB), SrcAddr: a4, DstAddr: b4, Proto: 17}, "", nil},
		{"icmp echo", LinkEthernet, build(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}),
			flow.Record{SrcMAC: mac(macA), DstMAC: mac(macB), SrcAddr: a4, DstAddr: b4, Proto: 1, DstPort: 3<<8 | 3}, "", nil},
		{"vlan", LinkEthernet, build(t, eth(layers.EthernetTypeDot1Q), vlan, ip4(layers.IPProtocolUDP), udp),
			flow.Record{SrcMAC: mac(macA), DstMAC: mac(macB), VLAN: 100, SrcAddr: a4, DstAddr: b4, Proto: 17, SrcPort: 5353, DstPort: 53}, "", nil},
		{"qinq outer vlan", LinkEthernet, build(t, eth(layers.EthernetTypeQinQ), qinqOuter, qinqInner, ip6(layers.IPProtocolUDP), udp),
			flow.Record{SrcMAC: mac(macA), DstMAC: mac(macB), VLAN: 300, SrcAddr: a6, DstAddr: b6, Proto: 17, SrcPort: 5353, DstPort: 53}, "", nil},
		{"ipv6 tcp", LinkEthernet, build(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolTCP), tcp),
			flow.Record{SrcMAC: mac(macA), DstMAC: mac(macB), SrcAddr: a6, DstAddr: b6, Proto: 6, SrcPort: 40000, DstPort: 22, TCPFlags: flow.TCPSyn | flow.TCPEce}, "", nil},
		{"ipv6 extension chain", LinkEthernet, build(t, eth(layers.EthernetTypeIPv6), ipv6Ext, hop, dst, routing, fragHdr, tcp, pay),
			flow.Record{SrcMAC: mac(macA), DstMAC: mac(macB), SrcAddr: a6, DstAddr: b6, Proto: 6, SrcPort: 40000, DstPort: 22, TCPFlags: flow.TCPSyn | flow.TCPEce}, "hello", nil},
		{"ipv6 later fragment", LinkIPv6, build(t, ip6(layers.IPProtocolIPv6Fragment), fragLater, pay),
			flow.Record{SrcAddr: a6, DstAddr: b6, Proto: 17}, "", nil},
		{"icmpv6", LinkRaw, build(t, ip6(layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}),
			flow.Record{SrcAddr: a6, DstAddr: b6, Proto: 58, DstPort: 128 << 8}, "", nil},
		{"raw ipv4", LinkRaw, build(t, ip4(layers.IPProtocolUDP), udp, pay),
			flow.Record{SrcAddr: a4, DstAddr: b4, Proto: 17, SrcPort: 5353, DstPort: 53}, "hello", nil},
		{"linktype ipv4", LinkIPv4, build(t, ip4(layers.IPProtocolUDP), udp),
			flow.Record{SrcAddr: a4, DstAddr: b4, Proto: 17, SrcPort: 5353, DstPort: 53}, "", nil},
		{"null loopback le", LinkNull, append([]byte{2, 0, 0, 0}, build(t, ip4(layers.IPProtocolUDP), udp)...),
			flow.Record{SrcAddr: a4, DstAddr: b4, Proto: 17, SrcPort: 5353, DstPort: 53}, "", nil},
		{"null loopback be ipv6", LinkNull, append([]byte{0, 0, 0, 30}, build(t, ip6(layers.IPProtocolUDP), udp)...),
			flow.Record{SrcAddr: a6, DstAddr: b6, Proto: 17, SrcPort: 5353, DstPort: 53}, "", nil},
		{"linux sll", LinkLinuxSLL, append(sll(etherIPv4, macA), build(t, ip4(layers.IPProtocolUDP), udp)...),
			flow.Record{SrcMAC: mac(macA), SrcAddr: a4, DstAddr: b4, Proto: 17, SrcPort: 5353, DstPort: 53}, "", nil},
		{"linux sll2", LinkLinuxSLL2, append(sll2(etherIPv6, macA), build(t, ip6(layers.IPProtocolUDP), udp)...),
			flow.Record{SrcMAC: mac(macA), SrcAddr: a6, DstAddr: b6, Proto: 17, SrcPort: 5353, DstPort: 53}, "", nil},
		{"arp is not an error", LinkEthernet, build(t, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: 1, Protocol: 0x800, HwAddressSize: 6, ProtAddressSize: 4, Operation: 1,
			SourceHwAddress: macA, SourceProtAddress: v4A, DstHwAddress: macB, DstProtAddress: v4B}),
			flow.Record{SrcMAC: mac(macA), DstMAC: mac(macB)}, "", nil},
		{"truncated tcp keeps ports", LinkEthernet, build(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolTCP), tcp)[:14+20+6],
			flow.Record{SrcMAC: mac(macA), DstMAC: mac(macB), SrcAddr: a4, DstAddr: b4, Proto: 6, SrcPort: 40000, DstPort: 22}, "", decode.ErrTruncated},
		{"truncated ethernet", LinkEthernet, make([]byte, 13), flow.Record{}, "", decode.ErrTruncated},
		{"bad ihl", LinkIPv4, append([]byte{0x44}, make([]byte, 30)...), flow.Record{Proto: 0}, "", decode.ErrMalformed},
		{"unknown link type", 9999, make([]byte, 64), flow.Record{}, "", decode.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got flow.Record
			payload, err := ParsePayload(tt.link, tt.data, &got)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.name == "bad ihl" { // addresses were set before the IHL check
				got.SrcAddr, got.DstAddr = netip.Addr{}, netip.Addr{}
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if string(payload) != tt.payload {
				t.Errorf("payload = %q, want %q", payload, tt.payload)
			}
		})
	}
}

// rawExt is a generic IPv6 extension header of n bytes (n multiple of 8).
func rawExt(next layers.IPProtocol, n int) gopacket.SerializableLayer {
	b := make([]byte, n)
	b[0] = byte(next)
	b[1] = byte(n/8 - 1)
	return gopacket.Payload(b)
}

func sll(etype uint16, src net.HardwareAddr) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint16(b[0:], 4)
	binary.BigEndian.PutUint16(b[2:], 1)
	binary.BigEndian.PutUint16(b[4:], 6)
	copy(b[6:], src)
	binary.BigEndian.PutUint16(b[14:], etype)
	return b
}

func sll2(etype uint16, src net.HardwareAddr) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], etype)
	binary.BigEndian.PutUint32(b[4:], 3)
	binary.BigEndian.PutUint16(b[8:], 1)
	b[10] = 4
	b[11] = 6
	copy(b[12:], src)
	return b
}

func TestSetHeaderMakesEthernet(t *testing.T) {
	pkt := build(t, ip4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 1, DstPort: 2})
	var r flow.Record
	SetHeader(LinkRaw, pkt, &r)
	h := r.HeaderBytes()
	if len(h) != 14+len(pkt) || binary.BigEndian.Uint16(h[12:]) != etherIPv4 || string(h[14:]) != string(pkt) {
		t.Fatalf("header = %x", h)
	}
	// The synthesized header parses back to the same record.
	var a, b flow.Record
	if err := Parse(LinkEthernet, h, &a); err != nil {
		t.Fatal(err)
	}
	if err := Parse(LinkRaw, pkt, &b); err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("ethernet view %+v != raw view %+v", a, b)
	}
	long := make([]byte, 1500)
	SetHeader(LinkEthernet, long, &r)
	if r.HeaderLength != flow.MaxHeader {
		t.Fatalf("HeaderLength = %d", r.HeaderLength)
	}
	SetHeader(12345, long, &r)
	if r.HeaderLength != 0 {
		t.Fatalf("unknown link type kept %d bytes", r.HeaderLength)
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	pkt := build(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 2, ACK: true})
	bad := pkt[:30]
	var r flow.Record
	n := testing.AllocsPerRun(1000, func() {
		_ = Parse(LinkEthernet, pkt, &r)
		_ = Parse(LinkEthernet, bad, &r)
	})
	if n != 0 {
		t.Fatalf("%v allocations per parse", n)
	}
}

func BenchmarkParse(b *testing.B) {
	pkt := build(b, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 2, ACK: true})
	var r flow.Record
	b.ReportAllocs()
	for b.Loop() {
		_ = Parse(LinkEthernet, pkt, &r)
	}
}
