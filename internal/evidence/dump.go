package evidence

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"padlock/internal/flow"
)

// dumpTimeLayout is tcpdump's default time stamp (-tttt off): time of day
// with microseconds.
const dumpTimeLayout = "15:04:05.000000"

// TrafficDump writes one line per record in tcpdump's default one-line
// format (what `tcpdump -n -r` prints), at most l.MaxPacketLines lines, and a
// last line saying how many packets were left out (omitted plus those cut by
// the cap).
//
// Records with header bytes are parsed (Ethernet, 802.1Q, ARP, IPv4, IPv6,
// TCP, UDP, ICMP, ICMPv6) and printed as tcpdump prints them, including
// tcpdump's relative TCP sequence numbers, which depend on the earlier
// packets of the same dump. Records without header bytes (flow records) get a
// summary line built from their fields, marked "flow record".
//
// Application payloads are printed as tcpdump prints them for DNS over UDP
// and TCP (queries and answers with A, AAAA, NS, CNAME, PTR, MX, TXT), the
// first text line of HTTP, RTSP, FTP, SMTP and WHOIS, and the SSH banner.
// NTP prints its version, mode and length as tcpdump does.
// Not reproduced: tcpdump's other dissectors (SNMP, BGP, Redis/RESP,
// mDNS, VXLAN, EDNS and SOA/SRV details, ...), which print more than
// "UDP, length N" or "length N" for their ports; IPv6 extension headers
// other than hop-by-hop, destination options and fragment (routing);
// IP fragments after the first.
func TrafficDump(w io.Writer, recs []flow.Record, omitted int, l Limits) error {
	var b strings.Builder
	writeTrafficDump(&b, recs, omitted, l)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write traffic dump: %w", err)
	}
	return nil
}

func writeTrafficDump(w io.Writer, recs []flow.Record, omitted int, l Limits) {
	if max := l.packets(); len(recs) > max {
		omitted += len(recs) - max
		recs = recs[:max]
	}
	d := NewDumper()
	for i := range recs {
		io.WriteString(w, d.Line(&recs[i]))
		io.WriteString(w, "\n")
	}
	if omitted > 0 {
		io.WriteString(w, omittedLine(omitted, "packets"))
	}
}

// tcpConv is tcpdump's key for a TCP conversation: the addresses and ports
// in a collating order so that both directions share one entry.
type tcpConv struct {
	src, dst netip.Addr
	ports    uint32
}

type tcpISN struct{ seq, ack uint32 }

// Dumper renders packets one by one, keeping tcpdump's per-conversation
// state for relative sequence numbers. A Dumper is not safe for concurrent
// use.
type Dumper struct {
	conv map[tcpConv]tcpISN
}

// NewDumper returns a Dumper with no conversation state.
func NewDumper() *Dumper { return &Dumper{conv: make(map[tcpConv]tcpISN)} }

// Line returns the dump line of r without a trailing newline.
func (d *Dumper) Line(r *flow.Record) string {
	ts := r.Start.Format(dumpTimeLayout)
	if hdr := r.HeaderBytes(); len(hdr) > 0 {
		if s, ok := d.packet(hdr, r.FrameLength); ok {
			return ts + " " + s
		}
	}
	return ts + " " + recordLine(r)
}

// recordLine summarises a record that has no (parsable) header bytes.
func recordLine(r *flow.Record) string {
	var b strings.Builder
	ip := "IP"
	if r.SrcAddr.Is6() && !r.SrcAddr.Is4In6() {
		ip = "IP6"
	}
	b.WriteString(ip + " ")
	switch r.Proto {
	case flow.ProtoTCP, flow.ProtoUDP:
		fmt.Fprintf(&b, "%s > %s: ", addrPort(r.SrcAddr, r.SrcPort), addrPort(r.DstAddr, r.DstPort))
	default:
		fmt.Fprintf(&b, "%s > %s: ", r.SrcAddr, r.DstAddr)
	}
	switch r.Proto {
	case flow.ProtoTCP:
		fmt.Fprintf(&b, "Flags [%s]", tcpFlagString(r.TCPFlags))
	case flow.ProtoUDP:
		b.WriteString("UDP")
	case flow.ProtoICMP:
		fmt.Fprintf(&b, "ICMP type %d code %d", r.DstPort>>8, r.DstPort&0xff)
	case flow.ProtoICMPv6:
		fmt.Fprintf(&b, "ICMP6 type %d code %d", r.DstPort>>8, r.DstPort&0xff)
	default:
		fmt.Fprintf(&b, "ip-proto-%d", r.Proto)
	}
	fmt.Fprintf(&b, ", flow record: %d packets, %d bytes", r.Packets, r.Bytes)
	if r.SamplingRate > 1 {
		fmt.Fprintf(&b, ", sampling rate %d", r.SamplingRate)
	}
	if dur := r.Duration(); dur > 0 {
		fmt.Fprintf(&b, ", duration %s", dur)
	}
	if r.Format != flow.FormatUnknown {
		fmt.Fprintf(&b, " (%s)", r.Format)
	}
	return b.String()
}

func addrPort(a netip.Addr, p uint16) string {
	return a.String() + "." + strconv.Itoa(int(p))
}

// tcpFlagString is tcpdump's flag rendering: F S R P . U E W, "none" if 0.
func tcpFlagString(f uint8) string {
	const chars = "FSRP.UEW"
	var b strings.Builder
	for i := 0; i < 8; i++ {
		if f&(1<<i) != 0 {
			b.WriteByte(chars[i])
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// packet renders an Ethernet frame. ok is false when the frame is too short
// to say anything tcpdump-like about it.
func (d *Dumper) packet(data []byte, frameLen uint32) (string, bool) {
	var eth layers.Ethernet
	if err := eth.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
		return "", false
	}
	if frameLen < uint32(len(data)) {
		frameLen = uint32(len(data))
	}
	etype := eth.EthernetType
	payload := eth.Payload
	hlen := uint32(14)
	for etype == layers.EthernetTypeDot1Q || etype == layers.EthernetTypeQinQ {
		var q layers.Dot1Q
		if err := q.DecodeFromBytes(payload, gopacket.NilDecodeFeedback); err != nil {
			return "", false
		}
		etype, payload = q.Type, q.Payload
		hlen += 4
	}
	switch etype {
	case layers.EthernetTypeIPv4:
		return d.ipv4(payload)
	case layers.EthernetTypeIPv6:
		return d.ipv6(payload)
	case layers.EthernetTypeARP:
		return arpLine(payload, frameLen-hlen)
	}
	return fmt.Sprintf("ethertype Unknown (0x%04x), length %d: ", uint16(etype), frameLen), true
}

func arpLine(data []byte, length uint32) (string, bool) {
	var a layers.ARP
	if err := a.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil ||
		a.AddrType != layers.LinkTypeEthernet || a.Protocol != layers.EthernetTypeIPv4 ||
		len(a.SourceProtAddress) != 4 || len(a.DstProtAddress) != 4 {
		return "", false
	}
	spa, _ := netip.AddrFromSlice(a.SourceProtAddress)
	tpa, _ := netip.AddrFromSlice(a.DstProtAddress)
	switch a.Operation {
	case layers.ARPRequest:
		return fmt.Sprintf("ARP, Request who-has %s tell %s, length %d", tpa, spa, length), true
	case layers.ARPReply:
		return fmt.Sprintf("ARP, Reply %s is-at %s, length %d", spa,
			formatMAC(a.SourceHwAddress), length), true
	}
	return "", false
}

func formatMAC(b []byte) string {
	var m flow.MAC
	copy(m[:], b)
	return m.String()
}

func (d *Dumper) ipv4(data []byte) (string, bool) {
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
		return "", false
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP.To4())
	dst, _ := netip.AddrFromSlice(ip.DstIP.To4())
	length := uint32(ip.Length) - uint32(ip.IHL)*4
	if ip.FragOffset != 0 {
		return fmt.Sprintf("IP %s > %s: ip-proto-%d", src, dst, uint8(ip.Protocol)), true
	}
	if ip.Flags&layers.IPv4MoreFragments != 0 && ip.Protocol == layers.IPProtocolUDP {
		// a first fragment: the UDP length covers the datagram, not this
		// fragment, and tcpdump takes it as it stands
		length = ^uint32(0)
	}
	return "IP " + d.transport(src, dst, uint8(ip.Protocol), ip.Payload, length), true
}

func (d *Dumper) ipv6(data []byte) (string, bool) {
	var ip layers.IPv6
	if err := ip.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
		return "", false
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP)
	dst, _ := netip.AddrFromSlice(ip.DstIP)
	length := uint32(ip.Length)
	p := data[40:min(len(data), 40+int(ip.Length))]
	next := uint8(ip.NextHeader)
	// tcpdump prints the hop-by-hop and destination options headers by
	// name after the addresses, and then the transport without them: TCP
	// and UDP with their bare ports, because the IPv6 header's next header
	// is not theirs ("IP6 a > b: HBH 5000 > 6000: UDP, length 10").
	prefix := src.String() + " > " + dst.String() + ": "
	exts := ""
	for next == 0 || next == 60 {
		name := "HBH"
		if next == 60 {
			name = "DSTOPT"
		}
		if len(p) < 2 || (int(p[1])+1)*8 > len(p) {
			return "IP6 " + prefix + exts + "[|" + strings.ToLower(name) + "]", true
		}
		hl := (int(p[1]) + 1) * 8
		exts += name + " "
		next, p = p[0], p[hl:]
		length -= min(length, uint32(hl))
	}
	if next == 44 { // fragment
		line := d.fragment6(src, dst, p, length)
		return "IP6 " + prefix + exts + strings.TrimPrefix(line, prefix), true
	}
	if exts == "" {
		return "IP6 " + d.transport(src, dst, next, p, length), true
	}
	if next == 59 {
		return "IP6 " + prefix + exts + "no next header", true
	}
	line := d.transport(src, dst, next, p, length)
	if strings.HasPrefix(line, prefix) {
		line = line[len(prefix):]
	} else if next == flow.ProtoTCP || next == flow.ProtoUDP {
		line = strings.Replace(line, src.String()+".", "", 1)
		line = strings.Replace(line, " > "+dst.String()+".", " > ", 1)
	}
	return "IP6 " + prefix + exts + line, true
}

// fragment6 renders an IPv6 packet behind a fragment header as tcpdump
// does: "a > b: frag (offset|length)", for the first fragment followed by
// its transport header, whose TCP and UDP ports then stand without the
// addresses ("frag (0|1448) 5000 > 9999: UDP, length 2000").
func (d *Dumper) fragment6(src, dst netip.Addr, data []byte, length uint32) string {
	if len(data) < 8 || length < 8 {
		return fmt.Sprintf("%s > %s: frag [|frag]", src, dst)
	}
	next := data[0]
	off := uint32(binary.BigEndian.Uint16(data[2:]) &^ 7)
	flen := length - 8
	line := fmt.Sprintf("%s > %s: frag (%d|%d)", src, dst, off, flen)
	if off != 0 {
		return line
	}
	tlen := flen
	if next == flow.ProtoUDP {
		tlen = ^uint32(0) // the UDP length covers the datagram, not this fragment
	}
	t := d.transport(src, dst, next, data[8:], tlen)
	if p := src.String() + " > " + dst.String() + ": "; strings.HasPrefix(t, p) {
		t = t[len(p):] // ICMP6 and the rest: the addresses are already there
	} else if next == flow.ProtoTCP || next == flow.ProtoUDP {
		t = strings.Replace(t, src.String()+".", "", 1)
		t = strings.Replace(t, " > "+dst.String()+".", " > ", 1)
	}
	return line + " " + t
}

// transport renders what follows "IP " / "IP6 ". length is the length of
// the IP payload as the IP header states it (not as captured).
func (d *Dumper) transport(src, dst netip.Addr, proto uint8, data []byte, length uint32) string {
	switch proto {
	case flow.ProtoTCP:
		return d.tcp(src, dst, data, length)
	case flow.ProtoUDP:
		return udpLine(src, dst, data, length)
	case flow.ProtoICMP:
		return icmpLine(src, dst, data, length)
	case flow.ProtoICMPv6:
		return icmp6Line(src, dst, data, length)
	}
	return fmt.Sprintf("%s > %s: ip-proto-%d %d", src, dst, proto, length)
}

func udpLine(src, dst netip.Addr, data []byte, length uint32) string {
	if len(data) < 8 {
		if len(data) >= 4 {
			sp, dp := binary.BigEndian.Uint16(data), binary.BigEndian.Uint16(data[2:])
			return addrPort(src, sp) + " > " + addrPort(dst, dp) + ":  [|udp]"
		}
		return fmt.Sprintf("%s > %s:  [|udp]", src, dst)
	}
	sport, dport := binary.BigEndian.Uint16(data), binary.BigEndian.Uint16(data[2:])
	head := addrPort(src, sport) + " > " + addrPort(dst, dport) + ": "
	ulen := uint32(binary.BigEndian.Uint16(data[4:]))
	if ulen < 8 {
		return head + fmt.Sprintf("truncated-udplength %d", ulen)
	}
	// tcpdump states the lengths of the payloads, not of the datagrams
	if ulen > length {
		return head + fmt.Sprintf("UDP, bad length %d > %d", ulen-8, length-min(length, 8))
	}
	if sport == 53 || dport == 53 {
		return head + strings.TrimPrefix(dnsLine(data[8:min(len(data), int(ulen))], ulen-8), " ")
	}
	if sport == 123 || dport == 123 {
		return head + ntpLine(data[8:], ulen-8)
	}
	return head + fmt.Sprintf("UDP, length %d", ulen-8)
}

// ntpLine is tcpdump's NTP line at default verbosity: version, mode and
// length (an NTP reflection attack's monlist answers are "NTPv2, Reserved").
func ntpLine(p []byte, length uint32) string {
	if len(p) == 0 || length == 0 {
		return " [|ntp]"
	}
	modes := [...]string{"unspecified", "symmetric active", "symmetric passive", "Client",
		"Server", "Broadcast", "Control Message", "Reserved"}
	return fmt.Sprintf("NTPv%d, %s, length %d", p[0]>>3&7, modes[p[0]&7], length)
}

func (d *Dumper) tcp(src, dst netip.Addr, data []byte, length uint32) string {
	var t layers.TCP
	if err := t.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
		if len(data) >= 4 {
			sp, dp := binary.BigEndian.Uint16(data), binary.BigEndian.Uint16(data[2:])
			return addrPort(src, sp) + " > " + addrPort(dst, dp) + ": [|tcp]"
		}
		return fmt.Sprintf("%s > %s: [|tcp]", src, dst)
	}
	sport, dport := uint16(t.SrcPort), uint16(t.DstPort)
	var b strings.Builder
	b.WriteString(addrPort(src, sport) + " > " + addrPort(dst, dport) + ": ")
	flags := data[13]
	fmt.Fprintf(&b, "Flags [%s]", tcpFlagString(flags))
	hlen := uint32(t.DataOffset) * 4
	seq, ack := t.Seq, t.Ack
	var thseq, thack uint32
	rev := false
	if t.ACK {
		// tcpdump's collating order: lower port first, then lower address.
		if sport > dport {
			rev = true
		} else if sport == dport && src.Compare(dst) > 0 {
			rev = true
		}
		var k tcpConv
		if rev {
			k = tcpConv{src: dst, dst: src, ports: uint32(dport)<<16 | uint32(sport)}
		} else {
			k = tcpConv{src: src, dst: dst, ports: uint32(sport)<<16 | uint32(dport)}
		}
		th, found := d.conv[k]
		if !found || t.SYN {
			if rev {
				th = tcpISN{ack: seq, seq: ack - 1}
			} else {
				th = tcpISN{seq: seq, ack: ack - 1}
			}
			d.conv[k] = th
		} else if rev {
			seq -= th.ack
			ack -= th.seq
		} else {
			seq -= th.seq
			ack -= th.ack
		}
		thseq, thack = th.seq, th.ack
	}
	if hlen > length {
		fmt.Fprintf(&b, " [bad hdr length %d - too long, > %d]", hlen, length)
		return b.String()
	}
	length -= hlen
	if length > 0 || flags&(flow.TCPSyn|flow.TCPFin|flow.TCPRst) != 0 {
		fmt.Fprintf(&b, ", seq %d", seq)
		if length > 0 {
			fmt.Fprintf(&b, ":%d", seq+length)
		}
	}
	if t.ACK {
		fmt.Fprintf(&b, ", ack %d", ack)
	}
	fmt.Fprintf(&b, ", win %d", t.Window)
	if t.URG {
		fmt.Fprintf(&b, ", urg %d", t.Urgent)
	}
	if hlen > 20 {
		b.WriteString(", options [")
		if !writeTCPOptions(&b, data[20:hlen], rev, thseq, thack) {
			return b.String() // tcpdump stops the line at a bad option
		}
		b.WriteString("]")
	}
	fmt.Fprintf(&b, ", length %d", length)
	if length > 0 { // RST data too: tcpdump prints it only with -v, but its payload printers run
		b.WriteString(tcpPayload(sport, dport, t.Payload, length))
	}
	return b.String()
}

// writeTCPOptions follows tcpdump's option printer. It returns false when
// an option's length is bad: tcpdump then prints "[bad opt]" (closing the
// bracket only after a first good option) and nothing more of the packet.
func writeTCPOptions(b *strings.Builder, opts []byte, rev bool, thseq, thack uint32) bool {
	sep := ""
	for len(opts) > 0 {
		opt := opts[0]
		b.WriteString(sep)
		if opt != 0 && opt != 1 {
			if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
				b.WriteString("[bad opt]")
				if sep != "" {
					b.WriteString("]")
				}
				return false
			}
		}
		first := sep == ""
		sep = ","
		name, known := tcpOptionNames[opt]
		if !known {
			name = "unknown-" + strconv.Itoa(int(opt))
		}
		b.WriteString(name)
		if opt == 0 || opt == 1 { // eol, nop
			opts = opts[1:]
			if opt == 0 {
				return true
			}
			continue
		}
		l := int(opts[1])
		v := opts[2:l]
		want := -1
		switch opt {
		case 2: // mss
			want = 2
			if len(v) >= 2 {
				fmt.Fprintf(b, " %d", binary.BigEndian.Uint16(v))
			}
		case 3: // wscale
			want = 1
			if len(v) >= 1 {
				fmt.Fprintf(b, " %d", v[0])
			}
		case 4: // sackOK
			want = 0
		case 5: // sack
			if len(v)%8 != 0 {
				b.WriteString(" invalid sack")
			} else {
				fmt.Fprintf(b, " %d ", len(v)/8)
				for i := 0; i+8 <= len(v); i += 8 {
					s, e := binary.BigEndian.Uint32(v[i:]), binary.BigEndian.Uint32(v[i+4:])
					if rev {
						s, e = s-thseq, e-thseq
					} else {
						s, e = s-thack, e-thack
					}
					fmt.Fprintf(b, "{%d:%d}", s, e)
				}
			}
		case 28: // user timeout: minutes when the low bit is set
			want = 2
			if len(v) >= 2 {
				u := binary.BigEndian.Uint16(v)
				secs := uint32(u >> 1)
				if u&1 != 0 {
					secs *= 60
				}
				fmt.Fprintf(b, " 0x%x %d", u, secs)
			}
		case 34: // TCP Fast Open
			b.WriteString(" " + tfoOption(v))
		case 254: // experiment (RFC 6994), named by its magic
			if len(v) < 2 {
				b.WriteString("[bad opt]")
				if !first {
					b.WriteString("]")
				}
				return false
			}
			if m := binary.BigEndian.Uint16(v); m == 0xf989 {
				b.WriteString("-tfo" + tfoOption(v[2:]))
			} else {
				fmt.Fprintf(b, "-%04x", m)
			}
		case 8: // timestamp
			want = 8
			if len(v) >= 8 {
				fmt.Fprintf(b, " val %d ecr %d", binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:]))
			}
		default:
			if len(v) > 0 {
				b.WriteString(" 0x")
				for _, c := range v {
					fmt.Fprintf(b, "%02x", c)
				}
			}
		}
		if want >= 0 && want != len(v) {
			fmt.Fprintf(b, "[len %d]", l)
		}
		opts = opts[l:]
	}
	return true
}

// tfoOption is what tcpdump prints of a TCP Fast Open option's cookie.
func tfoOption(c []byte) string {
	switch {
	case len(c) == 0:
		return " cookiereq"
	case len(c)%2 != 0 || len(c) < 4 || len(c) > 16:
		return " (invalid)"
	}
	return fmt.Sprintf(" cookie %x", c)
}

var tcpOptionNames = map[byte]string{
	0: "eol", 1: "nop", 2: "mss", 3: "wscale", 4: "sackOK", 5: "sack",
	6: "echo", 7: "echoreply", 8: "TS", 11: "cc", 12: "ccnew", 13: "ccecho",
	19: "md5", 28: "uto", 29: "tcp-ao", 30: "mptcp", 34: "tfo",
	254: "exp",
}

// tcpPayload prints what tcpdump's payload printers print at default
// verbosity for the ports it dissects: the first text line of HTTP, RTSP,
// FTP, SMTP and WHOIS (txtproto), the SSH version banner and DNS over TCP.
// Other payloads add nothing (tcpdump also prints nothing for most).
func tcpPayload(sport, dport uint16, p []byte, length uint32) string {
	is := func(port uint16) bool { return sport == port || dport == port }
	switch {
	case is(21):
		return txtLine("FTP", p, length, nil)
	case is(22):
		return sshLine(p)
	case is(25):
		return txtLine("SMTP", p, length, nil)
	case is(43):
		return txtLine("WHOIS", p, length, nil)
	case is(53):
		return dnsOverTCP(p, length)
	case is(80), is(8080):
		return txtLine("HTTP", p, length, httpCmds)
	case is(554), is(8554):
		return txtLine("RTSP", p, length, rtspCmds)
	}
	return ""
}

var httpCmds = []string{"OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "CONNECT", "PATCH",
	"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "ORDERPATCH", "ACL"}

var rtspCmds = []string{"DESCRIBE", "ANNOUNCE", "GET_PARAMETER", "OPTIONS", "PAUSE", "PLAY", "RECORD",
	"REDIRECT", "SETUP", "SET_PARAMETER", "TEARDOWN"}

// txtLine mirrors tcpdump's txtproto_print at default verbosity: ": PROTO"
// and, when the payload starts like a request (a known command) or a
// response (a three-digit second token), or always when cmds is nil, ": "
// and its first line.
func txtLine(proto string, p []byte, length uint32, cmds []string) string {
	out := ": " + proto
	print := cmds == nil
	if !print {
		tok, rest := nextToken(p)
		for _, c := range cmds {
			if strings.EqualFold(tok, c) {
				print = true
			}
		}
		if !print && tok != "" {
			tok, _ = nextToken(rest)
			if len(tok) == 3 && isDigits(tok) {
				print = true
			}
		}
	}
	if !print {
		return out
	}
	line, ok := firstLine(p)
	if !ok && uint32(len(p)) < length {
		return out + ": " + line + "[|" + strings.ToLower(proto) + "]"
	}
	return out + ": " + line
}

// sshLine prints the SSH version banner; encrypted payload prints nothing.
func sshLine(p []byte) string {
	if !bytes.HasPrefix(p, []byte("SSH-")) {
		return ""
	}
	for i, c := range p {
		if c == '\r' || c == '\n' {
			return ": SSH: " + string(p[:i])
		}
	}
	return ""
}

// dnsOverTCP follows tcpdump's domain_print for TCP: a two-byte length
// prefix that must match the segment, then the DNS message.
func dnsOverTCP(p []byte, length uint32) string {
	if length < 2 {
		return fmt.Sprintf(" [DNS over TCP: length %d < 2] (invalid)", length)
	}
	if len(p) < 2 {
		return " [|domain]"
	}
	if pl := uint32(binary.BigEndian.Uint16(p)); pl != length-2 {
		return fmt.Sprintf(" [prefix length(%d) != length(%d)] (invalid)", pl, length-2)
	}
	return " " + strings.TrimPrefix(dnsLine(p[2:], length-2), " ")
}

func nextToken(p []byte) (string, []byte) {
	i := 0
	for i < len(p) && p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n' {
		i++
	}
	tok := string(p[:i])
	for i < len(p) && (p[i] == ' ' || p[i] == '\t') {
		i++
	}
	return tok, p[i:]
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// firstLine returns the printable first line of p (up to CRLF or LF).
func firstLine(p []byte) (string, bool) {
	var b strings.Builder
	for i, c := range p {
		if c == '\n' || (c == '\r' && i+1 < len(p) && p[i+1] == '\n') {
			return b.String(), true
		}
		if c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\0x%02x", c)
		}
	}
	return b.String(), false
}
