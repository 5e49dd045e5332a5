package evidence

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/flow"
)

// Raw-byte packet builders: they make packets gopacket's serialisers refuse
// (wrong lengths, fragments, unusual options), as they arrive on the wire.

func rvCsum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// rvIP4 is an IPv4 header with options opts (a multiple of 4 bytes) before
// payload; flagsFrag is the flags-and-fragment-offset field.
func rvIP4(src, dst string, proto byte, flagsFrag uint16, opts, payload []byte) []byte {
	ihl := 5 + len(opts)/4
	h := make([]byte, 20, 20+len(opts)+len(payload))
	h[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(h[2:], uint16(ihl*4+len(payload)))
	binary.BigEndian.PutUint16(h[4:], 1)
	binary.BigEndian.PutUint16(h[6:], flagsFrag)
	h[8], h[9] = 64, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	h = append(h, opts...)
	binary.BigEndian.PutUint16(h[10:], rvCsum(h))
	return append(h, payload...)
}

func rvIP6(src, dst string, next byte, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6], h[7] = next, 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// rvUDP is a UDP header with the given length field (0: the true length).
func rvUDP(sp, dp uint16, ulen int, data []byte) []byte {
	if ulen == 0 {
		ulen = 8 + len(data)
	}
	h := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(h, sp)
	binary.BigEndian.PutUint16(h[2:], dp)
	binary.BigEndian.PutUint16(h[4:], uint16(ulen))
	return append(h, data...)
}

func rvTCP(sp, dp uint16, seq, ack uint32, flags byte, opts, data []byte) []byte {
	h := make([]byte, 20, 20+len(opts)+len(data))
	binary.BigEndian.PutUint16(h, sp)
	binary.BigEndian.PutUint16(h[2:], dp)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12] = byte((20+len(opts))/4) << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 65535)
	h = append(h, opts...)
	return append(h, data...)
}

func rvEth(etype uint16, p []byte) []byte {
	h := []byte{2, 0, 0, 0, 0, 0x0b, 2, 0, 0, 0, 0, 0x0a, byte(etype >> 8), byte(etype)}
	return append(h, p...)
}

// rvCheck renders frames (one record each, as the pcap decoder makes them)
// and compares with want, lines tcpdump 4.99 -n -r prints for the same
// packets; where tcpdump is installed it also checks want against it.
func rvCheck(t *testing.T, frames [][]byte, want []string) {
	t.Helper()
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var recs []flow.Record
	var file bytes.Buffer
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr, 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	file.Write(hdr)
	for i, fr := range frames {
		ts := base.Add(time.Duration(i) * time.Second)
		r := flow.Record{Start: ts, End: ts, Format: flow.FormatPcap, SamplingRate: 1, Packets: 1,
			Bytes: uint64(len(fr)), FrameLength: uint32(len(fr))}
		r.SetHeader(fr)
		recs = append(recs, r)
		ph := make([]byte, 16)
		binary.LittleEndian.PutUint32(ph, uint32(ts.Unix()))
		binary.LittleEndian.PutUint32(ph[8:], uint32(len(fr)))
		binary.LittleEndian.PutUint32(ph[12:], uint32(len(fr)))
		file.Write(ph)
		file.Write(fr)
	}
	var b strings.Builder
	if err := TrafficDump(&b, recs, 0, Limits{MaxPacketLines: len(recs)}); err != nil {
		t.Fatal(err)
	}
	var full []string
	for i, w := range want {
		full = append(full, base.Add(time.Duration(i)*time.Second).Format(dumpTimeLayout)+" "+w)
	}
	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if diff := cmp.Diff(full, got); diff != "" {
		t.Errorf("traffic dump differs from tcpdump's lines (-tcpdump +ours):\n%s", diff)
	}
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		return
	}
	path := filepath.Join(t.TempDir(), "p.pcap")
	if err := os.WriteFile(path, file.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-n", "-r", path)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	td := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if diff := cmp.Diff(full, td); diff != "" {
		t.Logf("note: this tcpdump prints otherwise than the expected lines (-expected +tcpdump):\n%s", diff)
	}
}

// A UDP datagram cut into IPv4 fragments: the first fragment's UDP length
// covers the whole datagram, and tcpdump prints it ("UDP, length 2000"),
// not a bad length; a datagram whose UDP length exceeds an unfragmented IP
// packet is "bad length" in payload bytes, and a UDP length below 8 is
// "truncated-udplength".
func TestReviewUDPLengthInFragmentsAndBadLengths(t *testing.T) {
	const s, d = "198.51.100.1", "203.0.113.9"
	x := bytes.Repeat([]byte("x"), 100)
	rvCheck(t, [][]byte{
		rvEth(0x0800, rvIP4(s, d, 17, 0x2000, nil, rvUDP(5000, 9999, 2008, x))), // MF, offset 0
		rvEth(0x0800, rvIP4(s, d, 17, 0x2000, nil, rvUDP(5000, 9999, 50, x))),
		rvEth(0x0800, rvIP4(s, d, 17, 0, nil, rvUDP(5000, 9999, 2008, x))),
		rvEth(0x0800, rvIP4(s, d, 17, 0, nil, rvUDP(5000, 9999, 4, x))),
	}, []string{
		"IP 198.51.100.1.5000 > 203.0.113.9.9999: UDP, length 2000",
		"IP 198.51.100.1.5000 > 203.0.113.9.9999: UDP, length 42",
		"IP 198.51.100.1.5000 > 203.0.113.9.9999: UDP, bad length 2000 > 100",
		"IP 198.51.100.1.5000 > 203.0.113.9.9999: truncated-udplength 4",
	})
}

// IPv6 extension headers: tcpdump prints hop-by-hop and destination
// options by name after the addresses and TCP/UDP with bare ports behind
// them; a fragment header behind them keeps the names.
func TestReviewIPv6ExtensionHeaders(t *testing.T) {
	const s, d = "2001:db8::1", "2001:db8::2"
	hbh := func(next byte) []byte { return []byte{next, 0, 5, 2, 0, 0, 1, 0} }
	dst := func(next byte) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	z := bytes.Repeat([]byte("z"), 10)
	echo := []byte{128, 0, 0, 0, 0, 1, 0, 2}
	frag := []byte{17, 0, 0, 1, 0, 0, 0, 5}
	rvCheck(t, [][]byte{
		rvEth(0x86dd, rvIP6(s, d, 0, cat(hbh(17), rvUDP(5000, 6000, 0, z)))),
		rvEth(0x86dd, rvIP6(s, d, 0, cat(hbh(6), rvTCP(40000, 443, 1, 0, 2, nil, nil)))),
		rvEth(0x86dd, rvIP6(s, d, 60, cat(dst(17), rvUDP(5000, 6000, 0, z)))),
		rvEth(0x86dd, rvIP6(s, d, 60, cat(dst(58), echo))),
		rvEth(0x86dd, rvIP6(s, d, 0, cat(hbh(60), dst(6), rvTCP(40000, 443, 1, 0, 2, nil, nil)))),
		rvEth(0x86dd, rvIP6(s, d, 0, cat(hbh(44), frag, rvUDP(5000, 6000, 0, z)))),
		rvEth(0x86dd, rvIP6(s, d, 60, dst(59))),
	}, []string{
		"IP6 2001:db8::1 > 2001:db8::2: HBH 5000 > 6000: UDP, length 10",
		"IP6 2001:db8::1 > 2001:db8::2: HBH 40000 > 443: Flags [S], seq 1, win 65535, length 0",
		"IP6 2001:db8::1 > 2001:db8::2: DSTOPT 5000 > 6000: UDP, length 10",
		"IP6 2001:db8::1 > 2001:db8::2: DSTOPT ICMP6, echo request, id 1, seq 2, length 8",
		"IP6 2001:db8::1 > 2001:db8::2: HBH DSTOPT 40000 > 443: Flags [S], seq 1, win 65535, length 0",
		"IP6 2001:db8::1 > 2001:db8::2: HBH frag (0|18) 5000 > 6000: UDP, length 10",
		"IP6 2001:db8::1 > 2001:db8::2: DSTOPT no next header",
	})
}

// TCP options tcpdump decodes beyond a hex dump: TCP Fast Open (option 34
// and the experimental option 254 with magic 0xf989), the user timeout in
// seconds, other experimental options by magic; option 27 has no name in
// tcpdump.
func TestReviewTCPOptions(t *testing.T) {
	const s, d = "198.51.100.1", "203.0.113.9"
	opts := [][]byte{
		{34, 2, 1, 1}, // TFO cookie request
		append(append([]byte{34, 10}, bytes.Repeat([]byte{0x11}, 8)...), 0, 0),
		{34, 5, 'a', 'b', 'c', 0, 0, 0}, // odd cookie: invalid
		{254, 4, 0xf9, 0x89},            // experimental TFO, cookie request
		append(append([]byte{254, 12, 0xf9, 0x89}, bytes.Repeat([]byte{0x22}, 8)...), 1, 1, 1, 1),
		{254, 8, 0x12, 0x34, 1, 2, 3, 4}, // another experiment
		{28, 4, 0x80, 0x11},              // user timeout 0x4008 minutes
		{28, 4, 0x00, 0x20},              // user timeout 16 seconds
		{27, 8, 0, 0, 0, 0, 0, 0},
	}
	var frames [][]byte
	for i, o := range opts {
		frames = append(frames, rvEth(0x0800, rvIP4(s, d, 6, 0, nil, rvTCP(uint16(41000+i), 80, 1, 0, 2, o, nil))))
	}
	pre := func(port int, rest string) string {
		return "IP 198.51.100.1." + strconv.Itoa(port) + " > 203.0.113.9.80: Flags [S], seq 1, win 65535, options [" + rest + "], length 0"
	}
	rvCheck(t, frames, []string{
		pre(41000, "tfo  cookiereq,nop,nop"),
		pre(41001, "tfo  cookie 1111111111111111,eol"),
		pre(41002, "tfo  (invalid),eol"),
		pre(41003, "exp-tfo cookiereq"),
		pre(41004, "exp-tfo cookie 2222222222222222,nop,nop,nop,nop"),
		pre(41005, "exp-1234"),
		pre(41006, "uto 0x8011 983520"),
		pre(41007, "uto 0x20 16"),
		pre(41008, "unknown-27 0x000000000000"),
	})
}

// ICMP messages tcpdump names: unreachable codes (need to frag with the
// next-hop MTU a path-MTU problem turns on), redirects with the gateway,
// parameter problems, source quench, time stamps, information and address
// mask messages.
func TestReviewICMPTypes(t *testing.T) {
	const s, d = "203.0.113.9", "198.51.100.1"
	quoted := rvIP4(d, s, 17, 0, nil, rvUDP(5353, 33434, 0, []byte("qqqq")))[:28]
	icmp := func(typ, code byte, rest4 uint32, body []byte) []byte {
		m := []byte{typ, code, 0, 0, byte(rest4 >> 24), byte(rest4 >> 16), byte(rest4 >> 8), byte(rest4)}
		return rvEth(0x0800, rvIP4(s, d, 1, 0, nil, append(m, body...)))
	}
	var frames [][]byte
	var want []string
	add := func(f []byte, w string) {
		frames = append(frames, f)
		want = append(want, "IP 203.0.113.9 > 198.51.100.1: ICMP "+w)
	}
	add(icmp(3, 4, 1400, quoted), "203.0.113.9 unreachable - need to frag (mtu 1400), length 36")
	add(icmp(3, 4, 0, quoted), "203.0.113.9 unreachable - need to frag, length 36")
	add(icmp(3, 5, 0, quoted), "203.0.113.9 unreachable - source route failed, length 36")
	add(icmp(3, 6, 0, quoted), "net 203.0.113.9 unreachable - unknown, length 36")
	add(icmp(3, 7, 0, quoted), "host 203.0.113.9 unreachable - unknown, length 36")
	add(icmp(3, 8, 0, quoted), "203.0.113.9 unreachable - source host isolated, length 36")
	add(icmp(3, 11, 0, quoted), "net 203.0.113.9 unreachable - tos prohibited, length 36")
	add(icmp(3, 12, 0, quoted), "host 203.0.113.9 unreachable - tos prohibited, length 36")
	add(icmp(3, 14, 0, quoted), "host 203.0.113.9 unreachable - host precedence violation, length 36")
	add(icmp(3, 15, 0, quoted), "host 203.0.113.9 unreachable - precedence cutoff, length 36")
	add(icmp(5, 0, 0x0a000001, quoted), "redirect 203.0.113.9 to net 10.0.0.1, length 36")
	add(icmp(5, 1, 0x0a000001, quoted), "redirect 203.0.113.9 to host 10.0.0.1, length 36")
	add(icmp(5, 3, 0x0a000001, quoted), "redirect-tos 203.0.113.9 to host 10.0.0.1, length 36")
	add(icmp(12, 0, 0x05000000, quoted), "parameter problem - octet 5, length 36")
	add(icmp(12, 1, 0, quoted), "parameter problem - code 1, length 36")
	add(icmp(4, 0, 0, quoted), "source quench, length 36")
	add(icmp(13, 0, 0x00010002, []byte{0, 0x38, 0xce, 0xfc, 0, 0, 0, 0, 0, 0, 0, 0}), "time stamp query id 1 seq 2, length 20")
	add(icmp(14, 0, 0x00010002, []byte{0, 0x38, 0xce, 0xfc, 0, 0x38, 0xce, 0xfd, 0, 0x38, 0xce, 0xfe}),
		"time stamp reply id 1 seq 2: org 01:02:03.004, recv 01:02:03.005, xmit 01:02:03.006, length 20")
	add(icmp(10, 0, 0, nil), "router solicitation, length 8")
	add(icmp(15, 0, 0x00010002, nil), "information request, length 8")
	add(icmp(16, 0, 0x00010002, nil), "information reply, length 8")
	add(icmp(17, 0, 0x00010002, []byte{0, 0, 0, 0}), "address mask request, length 12")
	add(icmp(18, 0, 0x00010002, []byte{0xff, 0xff, 0xff, 0}), "address mask is 0xffffff00, length 12")
	rvCheck(t, frames, want)
}

// NTP, the reflection attacks' favourite: tcpdump prints version, mode and
// length for port 123, not "UDP, length N".
func TestReviewNTP(t *testing.T) {
	const s, d = "198.51.100.1", "203.0.113.9"
	pad := make([]byte, 47)
	monlist := append([]byte{0x17, 0x80, 0x03, 0x2a}, make([]byte, 436)...)
	rvCheck(t, [][]byte{
		rvEth(0x0800, rvIP4(s, d, 17, 0, nil, rvUDP(40000, 123, 0, append([]byte{0x23}, pad...)))),
		rvEth(0x0800, rvIP4(d, s, 17, 0, nil, rvUDP(123, 40000, 0, append([]byte{0x24}, pad...)))),
		rvEth(0x0800, rvIP4(d, s, 17, 0, nil, rvUDP(123, 40000, 0, monlist))),
		rvEth(0x0800, rvIP4(s, d, 17, 0, nil, rvUDP(40000, 123, 0, []byte{0x16, 0x02, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}))),
		rvEth(0x0800, rvIP4(s, d, 17, 0, nil, rvUDP(40000, 123, 0, nil))),
		rvEth(0x86dd, rvIP6("2001:db8::1", "2001:db8::2", 17, rvUDP(40000, 123, 0, append([]byte{0x21}, pad...)))),
	}, []string{
		"IP 198.51.100.1.40000 > 203.0.113.9.123: NTPv4, Client, length 48",
		"IP 203.0.113.9.123 > 198.51.100.1.40000: NTPv4, Server, length 48",
		"IP 203.0.113.9.123 > 198.51.100.1.40000: NTPv2, Reserved, length 440",
		"IP 198.51.100.1.40000 > 203.0.113.9.123: NTPv2, Control Message, length 12",
		"IP 198.51.100.1.40000 > 203.0.113.9.123:  [|ntp]",
		"IP6 2001:db8::1.40000 > 2001:db8::2.123: NTPv4, symmetric active, length 48",
	})
}

// A reset that carries data still goes through tcpdump's payload printers
// (only -v prints the reset's data instead).
func TestReviewTCPResetWithPayload(t *testing.T) {
	const s, d = "198.51.100.1", "203.0.113.9"
	rvCheck(t, [][]byte{
		rvEth(0x0800, rvIP4(s, d, 6, 0, nil, rvTCP(40000, 80, 7004, 9001, 0x14, nil, []byte("reset reason")))),
		rvEth(0x0800, rvIP4(d, s, 6, 0, nil, rvTCP(25, 40001, 1, 0, 0x04, nil, []byte("421 bye\r\n")))),
	}, []string{
		"IP 198.51.100.1.40000 > 203.0.113.9.80: Flags [R.], seq 7004:7016, ack 9001, win 65535, length 12: HTTP",
		"IP 203.0.113.9.25 > 198.51.100.1.40001: Flags [R], seq 1:10, win 65535, length 9: SMTP: 421 bye",
	})
}

// A DNS query's unusual section counts, as a garbage flood to port 53
// produces them, come in tcpdump's order: answers before questions, and
// for an inverse query questions unless zero and answers unless one.
func TestReviewDNSQueryCounts(t *testing.T) {
	const s, d = "198.51.100.1", "203.0.113.9"
	q := []byte{1, 'a', 0, 0, 1, 0, 1}
	msg := func(flags, qd, an, ns, ar uint16, body []byte) []byte {
		h := make([]byte, 12)
		binary.BigEndian.PutUint16(h, 7)
		binary.BigEndian.PutUint16(h[2:], flags)
		binary.BigEndian.PutUint16(h[4:], qd)
		binary.BigEndian.PutUint16(h[6:], an)
		binary.BigEndian.PutUint16(h[8:], ns)
		binary.BigEndian.PutUint16(h[10:], ar)
		return rvEth(0x0800, rvIP4(s, d, 17, 0, nil, rvUDP(40000, 53, 0, append(h, body...))))
	}
	rvCheck(t, [][]byte{
		msg(0x0100, 2, 1, 0, 0, append(append([]byte{}, q...), q...)),
		msg(0x0100, 0, 2, 1, 1, nil),
		msg(0x0800, 1, 1, 0, 0, q),
		msg(0x0800, 0, 1, 0, 0, nil),
	}, []string{
		"IP 198.51.100.1.40000 > 203.0.113.9.53: 7+ [1a] [2q] A? a. A? a. (26)",
		"IP 198.51.100.1.40000 > 203.0.113.9.53: 7+ [2a] [0q] [1n] [1au] (12)",
		"IP 198.51.100.1.40000 > 203.0.113.9.53: 7 inv_q [1q] A? a. (19)",
		"IP 198.51.100.1.40000 > 203.0.113.9.53: 7 inv_q (12)",
	})
}
