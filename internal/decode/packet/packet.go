// Package packet parses one raw packet (as captured by pcap, or as carried in
// an sFlow raw packet header) down to the transport layer into a flow.Record:
// MAC addresses, 802.1Q/QinQ VLAN, IPv4 (with options), IPv6 (skipping
// extension headers), TCP, UDP, ICMP and ICMPv6. It never allocates, never
// panics and never reads past the slice it is given.
//
// It owns only packet parsing; it imports flow and decode and nothing else of
// padlock, and no third-party packet library.
package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

// Link types (pcap LINKTYPE_* values) that Parse understands.
const (
	LinkNull      = 0   // BSD loopback: 4-byte address family in host byte order
	LinkEthernet  = 1   // IEEE 802.3 Ethernet
	LinkRaw       = 101 // raw IPv4 or IPv6 (DLT_RAW), version from the first nibble
	LinkLoop      = 108 // OpenBSD loopback: 4-byte address family in network byte order
	LinkLinuxSLL  = 113 // Linux "cooked" capture v1
	LinkIPv4      = 228 // raw IPv4
	LinkIPv6      = 229 // raw IPv6
	LinkLinuxSLL2 = 276 // Linux "cooked" capture v2
)

// EtherTypes handled by the parser.
const (
	etherIPv4   = 0x0800
	etherIPv6   = 0x86dd
	etherVLAN   = 0x8100
	etherQinQ   = 0x88a8
	etherQinQ9x = 0x9100
	etherMPLS   = 0x8847
)

// Errors are allocated once so that parsing never allocates; each wraps one
// of the decode sentinels.
var (
	ErrLinkType = fmt.Errorf("packet: unsupported link type: %w", decode.ErrMalformed)

	errEthernet  = fmt.Errorf("packet: ethernet header: %w", decode.ErrTruncated)
	errVLAN      = fmt.Errorf("packet: 802.1Q tag: %w", decode.ErrTruncated)
	errMPLS      = fmt.Errorf("packet: MPLS label stack: %w", decode.ErrTruncated)
	errLinkHdr   = fmt.Errorf("packet: link-layer header: %w", decode.ErrTruncated)
	errFamily    = fmt.Errorf("packet: unknown loopback address family: %w", decode.ErrMalformed)
	errIPVersion = fmt.Errorf("packet: IP version does not match: %w", decode.ErrMalformed)
	errIPv4      = fmt.Errorf("packet: IPv4 header: %w", decode.ErrTruncated)
	errIHL       = fmt.Errorf("packet: IPv4 header length below 20: %w", decode.ErrMalformed)
	errIPv6      = fmt.Errorf("packet: IPv6 header: %w", decode.ErrTruncated)
	errIPv6Ext   = fmt.Errorf("packet: IPv6 extension header: %w", decode.ErrTruncated)
	errTooDeep   = fmt.Errorf("packet: too many headers: %w", decode.ErrMalformed)
	errTCP       = fmt.Errorf("packet: TCP header: %w", decode.ErrTruncated)
	errTCPOff    = fmt.Errorf("packet: TCP data offset below 5: %w", decode.ErrMalformed)
	errUDP       = fmt.Errorf("packet: UDP header: %w", decode.ErrTruncated)
	errICMP      = fmt.Errorf("packet: ICMP header: %w", decode.ErrTruncated)
)

// maxTags bounds the number of VLAN tags, MPLS labels and IPv6 extension
// headers followed, so that crafted input cannot make parsing slow.
const maxTags = 8

// Parse decodes data, a packet of the given pcap link type, into r. It sets
// only the fields it finds (MACs, VLAN, addresses, protocol, ports, TCP flags;
// for ICMP and ICMPv6 DstPort is type<<8|code) and leaves every other field
// of r untouched. On a truncated or malformed packet it returns an error
// wrapping decode.ErrTruncated or decode.ErrMalformed, with the fields parsed
// before the problem already set. Non-IP packets (ARP, LLDP, ...) are not an
// error: they just carry no addresses.
func Parse(linkType uint32, data []byte, r *flow.Record) error {
	_, err := ParsePayload(linkType, data, r)
	return err
}

// ParsePayload is Parse that also returns the transport payload: the bytes
// after the TCP or UDP header (bounded by the IP length, so Ethernet padding
// is excluded), or nil when there is none.
func ParsePayload(linkType uint32, data []byte, r *flow.Record) ([]byte, error) {
	switch linkType {
	case LinkEthernet:
		return parseEthernet(data, r)
	case LinkRaw:
		if len(data) == 0 {
			return nil, errIPv4
		}
		switch data[0] >> 4 {
		case 4:
			return parseIPv4(data, r)
		case 6:
			return parseIPv6(data, r)
		}
		return nil, errIPVersion
	case LinkIPv4:
		return parseIPv4(data, r)
	case LinkIPv6:
		return parseIPv6(data, r)
	case LinkNull, LinkLoop:
		if len(data) < 4 {
			return nil, errLinkHdr
		}
		var family uint32
		if linkType == LinkLoop {
			family = binary.BigEndian.Uint32(data)
		} else {
			family = binary.LittleEndian.Uint32(data)
			if family > 0xffff { // written by a big-endian host
				family = binary.BigEndian.Uint32(data)
			}
		}
		switch family {
		case 2: // AF_INET everywhere
			return parseIPv4(data[4:], r)
		case 10, 24, 28, 30: // AF_INET6 on Linux, Net/OpenBSD, FreeBSD, Darwin
			return parseIPv6(data[4:], r)
		}
		return nil, errFamily
	case LinkLinuxSLL:
		if len(data) < 16 {
			return nil, errLinkHdr
		}
		if binary.BigEndian.Uint16(data[2:]) == 1 && binary.BigEndian.Uint16(data[4:]) == 6 {
			copy(r.SrcMAC[:], data[6:12])
		}
		return parseEtherType(binary.BigEndian.Uint16(data[14:]), data[16:], r, 0)
	case LinkLinuxSLL2:
		if len(data) < 20 {
			return nil, errLinkHdr
		}
		if binary.BigEndian.Uint16(data[8:]) == 1 && data[11] == 6 {
			copy(r.SrcMAC[:], data[12:18])
		}
		return parseEtherType(binary.BigEndian.Uint16(data[0:]), data[20:], r, 0)
	}
	return nil, ErrLinkType
}

func parseEthernet(data []byte, r *flow.Record) ([]byte, error) {
	if len(data) < 14 {
		return nil, errEthernet
	}
	copy(r.DstMAC[:], data[0:6])
	copy(r.SrcMAC[:], data[6:12])
	return parseEtherType(binary.BigEndian.Uint16(data[12:]), data[14:], r, 0)
}

// parseEtherType continues after an EtherType field; depth counts VLAN tags
// and MPLS labels seen so far. The outermost VLAN ID is recorded.
func parseEtherType(etype uint16, data []byte, r *flow.Record, depth int) ([]byte, error) {
	for {
		switch etype {
		case etherIPv4:
			return parseIPv4(data, r)
		case etherIPv6:
			return parseIPv6(data, r)
		case etherVLAN, etherQinQ, etherQinQ9x:
			if depth >= maxTags {
				return nil, errTooDeep
			}
			if len(data) < 4 {
				return nil, errVLAN
			}
			if depth == 0 || r.VLAN == 0 {
				r.VLAN = binary.BigEndian.Uint16(data) & 0x0fff
			}
			etype = binary.BigEndian.Uint16(data[2:])
			data = data[4:]
			depth++
		case etherMPLS:
			for {
				if depth >= maxTags {
					return nil, errTooDeep
				}
				if len(data) < 4 {
					return nil, errMPLS
				}
				bottom := data[2]&1 == 1
				data = data[4:]
				depth++
				if bottom {
					break
				}
			}
			if len(data) == 0 {
				return nil, errIPv4
			}
			switch data[0] >> 4 {
			case 4:
				return parseIPv4(data, r)
			case 6:
				return parseIPv6(data, r)
			}
			return nil, nil // pseudowire or other payload: not IP
		default:
			return nil, nil // not IP: no addresses, not an error
		}
	}
}

func parseIPv4(data []byte, r *flow.Record) ([]byte, error) {
	if len(data) < 20 {
		return nil, errIPv4
	}
	if data[0]>>4 != 4 {
		return nil, errIPVersion
	}
	r.SrcAddr = netip.AddrFrom4([4]byte(data[12:16]))
	r.DstAddr = netip.AddrFrom4([4]byte(data[16:20]))
	r.Proto = data[9]
	ihl := int(data[0]&0x0f) * 4
	if ihl < 20 {
		return nil, errIHL
	}
	if len(data) < ihl {
		return nil, errIPv4
	}
	// Trim Ethernet padding; a total length beyond the capture is normal
	// (snap length, sFlow header size) and keeps what was captured.
	if total := int(binary.BigEndian.Uint16(data[2:])); total >= ihl && total < len(data) {
		data = data[:total]
	}
	if binary.BigEndian.Uint16(data[6:])&0x1fff != 0 {
		return nil, nil // non-first fragment: no transport header
	}
	return parseL4(data[ihl:], r)
}

// IPv6 extension headers skipped on the way to the transport header.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6AH       = 51
	ipv6DestOpts = 60
	ipv6Mobility = 135
	ipv6HIP      = 139
	ipv6Shim6    = 140
)

func parseIPv6(data []byte, r *flow.Record) ([]byte, error) {
	if len(data) < 40 {
		return nil, errIPv6
	}
	if data[0]>>4 != 6 {
		return nil, errIPVersion
	}
	r.SrcAddr = netip.AddrFrom16([16]byte(data[8:24]))
	r.DstAddr = netip.AddrFrom16([16]byte(data[24:40]))
	next := data[6]
	r.Proto = next
	if payload := int(binary.BigEndian.Uint16(data[4:])); payload != 0 && 40+payload < len(data) {
		data = data[:40+payload] // trim Ethernet padding (0 means jumbogram)
	}
	data = data[40:]
	for range maxTags {
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts, ipv6Mobility, ipv6HIP, ipv6Shim6:
			if len(data) < 2 {
				return nil, errIPv6Ext
			}
			n := 8 + int(data[1])*8
			if len(data) < n {
				r.Proto = data[0]
				return nil, errIPv6Ext
			}
			next = data[0]
			data = data[n:]
		case ipv6AH:
			if len(data) < 2 {
				return nil, errIPv6Ext
			}
			n := (int(data[1]) + 2) * 4
			if len(data) < n {
				r.Proto = data[0]
				return nil, errIPv6Ext
			}
			next = data[0]
			data = data[n:]
		case ipv6Fragment:
			if len(data) < 8 {
				return nil, errIPv6Ext
			}
			next = data[0]
			r.Proto = next
			if binary.BigEndian.Uint16(data[2:])&0xfff8 != 0 {
				return nil, nil // non-first fragment: no transport header
			}
			data = data[8:]
		default:
			r.Proto = next
			return parseL4(data, r)
		}
		r.Proto = next
	}
	return nil, errTooDeep
}

// parseL4 reads the transport header of protocol r.Proto.
func parseL4(data []byte, r *flow.Record) ([]byte, error) {
	switch r.Proto {
	case flow.ProtoTCP:
		if len(data) < 4 {
			return nil, errTCP
		}
		r.SrcPort = binary.BigEndian.Uint16(data)
		r.DstPort = binary.BigEndian.Uint16(data[2:])
		if len(data) < 14 {
			return nil, errTCP
		}
		r.TCPFlags = data[13]
		off := int(data[12]>>4) * 4
		if off < 20 {
			return nil, errTCPOff
		}
		if len(data) < off {
			return nil, errTCP
		}
		return data[off:], nil
	case flow.ProtoUDP, 132 /* SCTP: ports in the same place */, 136 /* UDP-Lite */ :
		if len(data) < 4 {
			return nil, errUDP
		}
		r.SrcPort = binary.BigEndian.Uint16(data)
		r.DstPort = binary.BigEndian.Uint16(data[2:])
		if r.Proto != flow.ProtoUDP {
			return nil, nil
		}
		if len(data) < 8 {
			return nil, errUDP
		}
		payload := data[8:]
		if n := int(binary.BigEndian.Uint16(data[4:])); n >= 8 && n-8 < len(payload) {
			payload = payload[:n-8]
		}
		return payload, nil
	case flow.ProtoICMP, flow.ProtoICMPv6:
		if len(data) < 2 {
			return nil, errICMP
		}
		r.SrcPort = 0
		r.DstPort = uint16(data[0])<<8 | uint16(data[1])
		return nil, nil
	}
	return nil, nil
}

// SetHeader keeps the first flow.MaxHeader bytes of the packet in r.Header
// as an Ethernet frame, the form flow.Record promises. Ethernet captures are
// copied as they are; for the other link types a 14-byte Ethernet header is
// made up (zero MACs, except the sender's MAC of Linux cooked captures, and
// the EtherType of the network layer) and the network-layer bytes follow.
// For an unknown link type the header is left empty.
func SetHeader(linkType uint32, data []byte, r *flow.Record) {
	r.HeaderLength = 0
	var off int
	var etype uint16
	var src []byte
	switch linkType {
	case LinkEthernet:
		r.SetHeader(data)
		return
	case LinkRaw, LinkIPv4, LinkIPv6:
		off = 0
	case LinkNull, LinkLoop:
		off = 4
	case LinkLinuxSLL:
		off = 16
		if len(data) >= off {
			etype = binary.BigEndian.Uint16(data[14:])
			if binary.BigEndian.Uint16(data[4:]) == 6 {
				src = data[6:12]
			}
		}
	case LinkLinuxSLL2:
		off = 20
		if len(data) >= off {
			etype = binary.BigEndian.Uint16(data[0:])
			if data[11] == 6 {
				src = data[12:18]
			}
		}
	default:
		return
	}
	if len(data) < off {
		return
	}
	data = data[off:]
	if etype == 0 && len(data) > 0 {
		switch data[0] >> 4 {
		case 4:
			etype = etherIPv4
		case 6:
			etype = etherIPv6
		}
	}
	r.Header = [flow.MaxHeader]byte{}
	copy(r.Header[6:12], src)
	binary.BigEndian.PutUint16(r.Header[12:], etype)
	n := copy(r.Header[14:], data)
	r.HeaderLength = uint16(14 + n)
}

// IsTruncated reports whether err only says the packet ended early (the
// common case for sFlow headers and short snap lengths), as opposed to
// malformed.
func IsTruncated(err error) bool { return errors.Is(err, decode.ErrTruncated) }
