package evidence

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// icmpLine renders ICMPv4 as tcpdump does at default verbosity.
func icmpLine(src, dst netip.Addr, p []byte, length uint32) string {
	head := fmt.Sprintf("%s > %s: ICMP ", src, dst)
	if len(p) < 4 {
		return head[:len(head)-1] + " [|icmp]"
	}
	typ, code := p[0], p[1]
	var msg string
	switch typ {
	case 0, 8:
		if len(p) < 8 {
			return head + "[|icmp]"
		}
		kind := "echo reply"
		if typ == 8 {
			kind = "echo request"
		}
		msg = fmt.Sprintf("%s, id %d, seq %d", kind,
			binary.BigEndian.Uint16(p[4:]), binary.BigEndian.Uint16(p[6:]))
	case 3:
		var inner []byte
		if len(p) > 8 {
			inner = p[8:]
		}
		msg = icmpUnreach(code, p, inner)
	case 4:
		msg = "source quench"
	case 5:
		if len(p) < 28 {
			return head + "[|icmp]"
		}
		inner, _ := netip.AddrFromSlice(p[8+16 : 8+20])
		gw, _ := netip.AddrFromSlice(p[4:8])
		kinds := [...]string{"redirect %s to net %s", "redirect %s to host %s",
			"redirect-tos %s to net %s", "redirect-tos %s to host %s"}
		if int(code) < len(kinds) {
			msg = fmt.Sprintf(kinds[code], inner, gw)
		} else {
			msg = fmt.Sprintf("redirect-#%d %s to %s", code, inner, gw)
		}
	case 10:
		msg = "router solicitation"
	case 12:
		if code != 0 {
			msg = fmt.Sprintf("parameter problem - code %d", code)
		} else if len(p) >= 5 {
			msg = fmt.Sprintf("parameter problem - octet %d", p[4])
		} else {
			return head + "[|icmp]"
		}
	case 15:
		msg = "information request"
	case 16:
		msg = "information reply"
	case 17:
		msg = "address mask request"
	case 18:
		if len(p) < 12 {
			return head + "[|icmp]"
		}
		msg = fmt.Sprintf("address mask is 0x%08x", binary.BigEndian.Uint32(p[8:]))
	case 11:
		if code == 0 {
			msg = "time exceeded in-transit"
		} else {
			msg = "ip reassembly time exceeded"
		}
	case 13, 14:
		if len(p) < 8 {
			return head + "[|icmp]"
		}
		id, seq := binary.BigEndian.Uint16(p[4:]), binary.BigEndian.Uint16(p[6:])
		if typ == 13 {
			msg = fmt.Sprintf("time stamp query id %d seq %d", id, seq)
			break
		}
		if len(p) < 20 {
			return head + "[|icmp]"
		}
		msg = fmt.Sprintf("time stamp reply id %d seq %d: org %s, recv %s, xmit %s", id, seq,
			icmpTime(p[8:]), icmpTime(p[12:]), icmpTime(p[16:]))
	default:
		msg = fmt.Sprintf("type-#%d", typ)
	}
	return head + msg + fmt.Sprintf(", length %d", length)
}

// icmpUnreach renders a destination-unreachable message (hdr is the ICMP
// message, for the next-hop MTU) from the quoted
// packet (inner IPv4 header and the first 8 bytes of its payload).
func icmpUnreach(code byte, hdr, inner []byte) string {
	if len(inner) < 20 {
		return "dest_unreach [|icmp]"
	}
	dst, _ := netip.AddrFromSlice(inner[16:20])
	proto := inner[9]
	ihl := int(inner[0]&0x0f) * 4
	switch code {
	case 0:
		return fmt.Sprintf("net %s unreachable", dst)
	case 1:
		return fmt.Sprintf("host %s unreachable", dst)
	case 2:
		return fmt.Sprintf("%s protocol %d unreachable", dst, proto)
	case 4:
		if mtu := binary.BigEndian.Uint16(hdr[6:]); mtu != 0 {
			return fmt.Sprintf("%s unreachable - need to frag (mtu %d)", dst, mtu)
		}
		return fmt.Sprintf("%s unreachable - need to frag", dst)
	case 3:
		if len(inner) < ihl+4 {
			return "dest_unreach [|icmp]"
		}
		port := binary.BigEndian.Uint16(inner[ihl+2:])
		switch proto {
		case 6:
			return fmt.Sprintf("%s tcp port %d unreachable", dst, port)
		case 17:
			return fmt.Sprintf("%s udp port %d unreachable", dst, port)
		}
		return fmt.Sprintf("%s protocol %d port %d unreachable", dst, proto, port)
	}
	if f, ok := icmpUnreachCodes[code]; ok {
		return fmt.Sprintf(f, dst)
	}
	return fmt.Sprintf("%s unreachable - #%d", dst, code)
}

// icmpUnreachCodes are tcpdump's texts of the unreachable codes that say
// no more than the quoted destination.
var icmpUnreachCodes = map[byte]string{
	5: "%s unreachable - source route failed", 6: "net %s unreachable - unknown",
	7: "host %s unreachable - unknown", 8: "%s unreachable - source host isolated",
	9: "net %s unreachable - admin prohibited", 10: "host %s unreachable - admin prohibited",
	11: "net %s unreachable - tos prohibited", 12: "host %s unreachable - tos prohibited",
	13: "host %s unreachable - admin prohibited filter", 14: "host %s unreachable - host precedence violation",
	15: "host %s unreachable - precedence cutoff",
}

// icmpTime renders an ICMP time stamp (milliseconds since midnight UTC)
// as tcpdump does.
func icmpTime(b []byte) string {
	ms := binary.BigEndian.Uint32(b)
	sec := ms / 1000
	return fmt.Sprintf("%02d:%02d:%02d.%03d", sec/3600, sec/60%60, sec%60, ms%1000)
}

var icmp6Types = map[byte]string{
	1: "destination unreachable", 2: "packet too big", 3: "time exceeded in-transit",
	4: "parameter problem", 128: "echo request", 129: "echo reply",
	130: "multicast listener query", 131: "multicast listener report",
	132: "multicast listener done", 133: "router solicitation",
	134: "router advertisement", 135: "neighbor solicitation",
	136: "neighbor advertisement", 137: "redirect", 143: "multicast listener report v2",
}

var icmp6Unreach = map[byte]string{
	0: "unreachable route", 1: "unreachable prohibited", 2: "beyond scope",
	3: "unreachable address", 4: "unreachable port",
}

// icmp6Line renders ICMPv6 as tcpdump does at default verbosity.
func icmp6Line(src, dst netip.Addr, p []byte, length uint32) string {
	head := fmt.Sprintf("%s > %s: ICMP6, ", src, dst)
	if len(p) < 4 {
		return head + "[|icmp6]"
	}
	typ, code := p[0], p[1]
	name, ok := icmp6Types[typ]
	if !ok {
		name = fmt.Sprintf("unknown icmp6 type (%d)", typ)
	}
	msg := name
	addrAt := func(off int) (netip.Addr, bool) {
		if len(p) < off+16 {
			return netip.Addr{}, false
		}
		a, _ := netip.AddrFromSlice(p[off : off+16])
		return a, true
	}
	switch typ {
	case 128, 129:
		if len(p) < 8 {
			return head + msg + " [|icmp6]"
		}
		msg += fmt.Sprintf(", id %d, seq %d", binary.BigEndian.Uint16(p[4:]), binary.BigEndian.Uint16(p[6:]))
	case 135:
		if a, ok := addrAt(8); ok {
			msg += ", who has " + a.String()
		}
	case 136:
		if a, ok := addrAt(8); ok {
			msg += ", tgt is " + a.String()
		}
	case 2:
		if len(p) >= 8 {
			msg += fmt.Sprintf(", mtu %d", binary.BigEndian.Uint32(p[4:]))
		}
	case 3:
		if a, ok := addrAt(8 + 24); ok && code == 0 {
			msg += " for " + a.String()
		}
	case 1:
		c, ok := icmp6Unreach[code]
		if !ok {
			c = fmt.Sprintf("unknown unreach code (%d)", code)
		}
		msg += ", " + c
		var inner []byte
		if len(p) > 8 {
			inner = p[8:]
		}
		if len(inner) >= 40 {
			idst, _ := netip.AddrFromSlice(inner[24:40])
			switch code {
			case 0, 1, 3:
				msg += " " + idst.String()
			case 4:
				if len(inner) >= 44 {
					port := binary.BigEndian.Uint16(inner[42:])
					switch inner[6] {
					case 6:
						msg += fmt.Sprintf(", %s tcp port %d", idst, port)
					case 17:
						msg += fmt.Sprintf(", %s udp port %d", idst, port)
					default:
						msg += fmt.Sprintf(", %s protocol %d port %d unreachable", idst, inner[6], port)
					}
				}
			}
		}
	case 143:
		if len(p) >= 8 {
			msg += fmt.Sprintf(", %d group record(s)", binary.BigEndian.Uint16(p[6:]))
		}
	}
	return head + msg + fmt.Sprintf(", length %d", length)
}
