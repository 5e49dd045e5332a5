package evidence

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// dnsLine follows tcpdump's DNS printer (ns_print) at default verbosity for
// UDP port 53: "ID[flags] TYPE? name. (len)" for queries and
// "ID[flags] an/ns/ar TYPE data,... (len)" for responses. p is the captured
// DNS message, length its length on the wire. Records tcpdump only prints
// with -v (SOA details, EDNS options) are reduced as tcpdump reduces them.
func dnsLine(p []byte, length uint32) string {
	var b strings.Builder
	d := dnsMsg{p: p}
	if length < 12 {
		return fmt.Sprintf(" domain [length %d < 12] (invalid)", length)
	}
	if len(p) < 12 {
		return " [|domain]"
	}
	id := binary.BigEndian.Uint16(p)
	flags := binary.BigEndian.Uint16(p[2:])
	qd, an, ns, ar := binary.BigEndian.Uint16(p[4:]), binary.BigEndian.Uint16(p[6:]),
		binary.BigEndian.Uint16(p[8:]), binary.BigEndian.Uint16(p[10:])
	op := dnsOps[(flags>>11)&0xf]
	fmt.Fprintf(&b, " %d%s", id, op)
	off := 12
	if flags&0x8000 != 0 { // response
		b.WriteString(dnsRcode(flags & 0xf))
		if flags&0x0400 != 0 {
			b.WriteString("*")
		}
		if flags&0x0080 == 0 {
			b.WriteString("-")
		}
		if flags&0x0200 != 0 {
			b.WriteString("|")
		}
		if flags&0x0020 != 0 {
			b.WriteString("$")
		}
		if qd != 1 {
			fmt.Fprintf(&b, " [%dq]", qd)
		}
		for i := 0; i < int(qd); i++ {
			n, ok := d.skipName(off)
			if !ok || n+4 > len(p) {
				return b.String() + " [|domain]"
			}
			off = n + 4
		}
		fmt.Fprintf(&b, " %d/%d/%d", an, ns, ar)
		for i := 0; i < int(an); i++ {
			if i > 0 {
				if off >= len(p) {
					return b.String() + " [|domain]"
				}
				b.WriteString(",")
			}
			var ok bool
			if off, ok = d.rr(&b, off); !ok {
				return b.String() + " [|domain]"
			}
		}
	} else {
		if flags&0x0100 != 0 {
			b.WriteString("+")
		}
		if flags&0x0010 != 0 {
			b.WriteString("%")
		}
		if b2 := flags; b2&0x6cf != 0 {
			fmt.Fprintf(&b, " [b2&3=0x%x]", b2)
		}
		// tcpdump's order: an inverse query's unusual counts are "no
		// question" and "not one answer", any other query's are "answers"
		// and then "not one question"
		if (flags>>11)&0xf == 1 {
			if qd != 0 {
				fmt.Fprintf(&b, " [%dq]", qd)
			}
			if an != 1 {
				fmt.Fprintf(&b, " [%da]", an)
			}
		} else {
			if an != 0 {
				fmt.Fprintf(&b, " [%da]", an)
			}
			if qd != 1 {
				fmt.Fprintf(&b, " [%dq]", qd)
			}
		}
		if ns != 0 {
			fmt.Fprintf(&b, " [%dn]", ns)
		}
		if ar != 0 {
			fmt.Fprintf(&b, " [%dau]", ar)
		}
		for i := 0; i < int(qd); i++ {
			if i > 0 && off >= len(p) {
				return b.String() + " [|domain]"
			}
			name, n, ok := d.name(off)
			if !ok || n+4 > len(p) {
				return b.String() + " [|domain]"
			}
			typ, class := binary.BigEndian.Uint16(p[n:]), binary.BigEndian.Uint16(p[n+2:])
			fmt.Fprintf(&b, " %s", dnsType(typ))
			if class&0x7fff != 1 {
				fmt.Fprintf(&b, " %s", dnsClass(class&0x7fff))
			}
			fmt.Fprintf(&b, "? %s", name)
			off = n + 4
		}
	}
	fmt.Fprintf(&b, " (%d)", length)
	return b.String()
}

type dnsMsg struct{ p []byte }

// name decodes the domain name at off (following compression pointers) and
// returns it with a trailing dot and the offset after it in the message.
func (d dnsMsg) name(off int) (string, int, bool) {
	var b strings.Builder
	end := -1
	for hops := 0; hops < 64; hops++ {
		if off >= len(d.p) {
			return "", 0, false
		}
		l := int(d.p[off])
		switch {
		case l == 0:
			if end < 0 {
				end = off + 1
			}
			if b.Len() == 0 {
				b.WriteString(".")
			}
			return b.String(), end, true
		case l&0xc0 == 0xc0:
			if off+1 >= len(d.p) {
				return "", 0, false
			}
			if end < 0 {
				end = off + 2
			}
			off = (l&0x3f)<<8 | int(d.p[off+1])
		case l&0xc0 != 0:
			return "", 0, false // EDNS0 extended label types: tcpdump prints them, we do not
		default:
			if off+1+l > len(d.p) {
				return "", 0, false
			}
			for _, c := range d.p[off+1 : off+1+l] {
				if c == '.' || c == '\\' {
					b.WriteByte('\\')
					b.WriteByte(c)
				} else if c < 0x20 || c >= 0x7f {
					fmt.Fprintf(&b, "\\%03o", c)
				} else {
					b.WriteByte(c)
				}
			}
			b.WriteByte('.')
			off += 1 + l
		}
	}
	return "", 0, false
}

func (d dnsMsg) skipName(off int) (int, bool) {
	_, n, ok := d.name(off)
	return n, ok
}

// rr prints one resource record of the answer section as tcpdump does.
func (d dnsMsg) rr(b *strings.Builder, off int) (int, bool) {
	n, ok := d.skipName(off)
	if !ok || n+10 > len(d.p) {
		return 0, false
	}
	p := d.p
	typ, class := binary.BigEndian.Uint16(p[n:]), binary.BigEndian.Uint16(p[n+2:])
	rdlen := int(binary.BigEndian.Uint16(p[n+8:]))
	rd := n + 10
	end := rd + rdlen
	if class&0x7fff != 1 && typ != 41 {
		fmt.Fprintf(b, " %s", dnsClass(class&0x7fff))
	}
	fmt.Fprintf(b, " %s", dnsType(typ))
	if end > len(p) {
		return 0, false
	}
	switch typ {
	case 1: // A
		if rdlen == 4 {
			a, _ := netip.AddrFromSlice(p[rd:end])
			fmt.Fprintf(b, " %s", a)
		}
	case 28: // AAAA
		if rdlen == 16 {
			a, _ := netip.AddrFromSlice(p[rd:end])
			fmt.Fprintf(b, " %s", a)
		}
	case 2, 5, 12, 39: // NS, CNAME, PTR, DNAME
		name, _, ok := d.name(rd)
		if !ok {
			return 0, false
		}
		b.WriteString(" " + name)
	case 15: // MX
		if rdlen < 3 {
			return 0, false
		}
		name, _, ok := d.name(rd + 2)
		if !ok {
			return 0, false
		}
		fmt.Fprintf(b, " %s %d", name, binary.BigEndian.Uint16(p[rd:]))
	case 16: // TXT
		for i := rd; i < end; {
			l := int(p[i])
			if i+1+l > end {
				return 0, false
			}
			fmt.Fprintf(b, " \"%s\"", p[i+1:i+1+l])
			i += 1 + l
		}
	}
	return end, true
}

var dnsOps = [16]string{"", " inv_q", " stat", " op3", " notify", " update", " op6", " op7",
	" op8", " updateA", " updateD", " updateDA", " updateM", " updateMA", " zoneInit", " zoneRef"}

func dnsRcode(c uint16) string {
	switch c {
	case 0:
		return ""
	case 1:
		return " FormErr"
	case 2:
		return " ServFail"
	case 3:
		return " NXDomain"
	case 4:
		return " NotImp"
	case 5:
		return " Refused"
	}
	return fmt.Sprintf(" Resp%d", c)
}

var dnsTypes = map[uint16]string{1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO",
	15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS",
	46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 99: "SPF", 252: "AXFR", 255: "ANY", 257: "CAA"}

func dnsType(t uint16) string {
	if s, ok := dnsTypes[t]; ok {
		return s
	}
	return fmt.Sprintf("Type%d", t)
}

func dnsClass(c uint16) string {
	switch c {
	case 1:
		return "IN"
	case 3:
		return "CHAOS"
	case 4:
		return "HS"
	case 255:
		return "ANY"
	}
	return fmt.Sprintf("CLASS%d", c)
}
