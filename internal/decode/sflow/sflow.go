// Package sflow decodes sFlow version 5 datagrams (sflow.org/sflow_version_5.txt)
// into flow.Records: one record per flow sample (format 1) or expanded flow
// sample (format 3). Raw packet headers are parsed with package packet; the
// sampled IPv4, IPv6 and Ethernet structures are used when a sample carries
// no raw header; the extended switch structure supplies the VLAN. Counter
// samples are counted, not turned into records; unknown samples and records
// are skipped by their length.
//
// The decoder is written for speed: it reads the datagram in place and does
// not allocate per sample. goflow2's decoder is its test oracle. It owns
// sFlow decoding only and imports flow, decode and decode/packet of padlock.
package sflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"padlock/internal/decode"
	"padlock/internal/decode/packet"
	"padlock/internal/flow"
)

// Sample formats (enterprise 0).
const (
	sampleFlow            = 1
	sampleCounter         = 2
	sampleExpandedFlow    = 3
	sampleExpandedCounter = 4
)

// Flow record formats (enterprise 0).
const (
	recordRawHeader = 1
	recordEthernet  = 2
	recordIPv4      = 3
	recordIPv6      = 4
	recordExtSwitch = 1001
)

// header_protocol values of the raw packet header record.
const (
	headerEthernet = 1  // ETHERNET-ISO88023
	headerIPv4     = 11 // IPv4
	headerIPv6     = 12 // IPv6
)

// ifaceUnknownValue is the interface value meaning "no interface".
const ifaceUnknownValue = 0x3fffffff

// Errors are allocated once; each wraps one decode sentinel.
var (
	errVersion     = fmt.Errorf("sflow: %w (want 5)", decode.ErrVersion)
	errHeader      = fmt.Errorf("sflow: datagram header: %w", decode.ErrTruncated)
	errAgentType   = fmt.Errorf("sflow: agent address type: %w", decode.ErrMalformed)
	errSample      = fmt.Errorf("sflow: sample: %w", decode.ErrTruncated)
	errSampleShort = fmt.Errorf("sflow: flow sample shorter than its fields: %w", decode.ErrMalformed)
	errRecord      = fmt.Errorf("sflow: flow record: %w", decode.ErrTruncated)
	errRecordShort = fmt.Errorf("sflow: flow record shorter than its fields: %w", decode.ErrMalformed)
)

// Configuration of the sFlow decoder.
type Configuration struct {
	// SamplingOverride replaces the sampling rate of every sample sent from
	// an exporter (by UDP source address), for agents that report it wrongly.
	SamplingOverride map[netip.Addr]uint32
}

// Stats are the decoder's counters since New.
type Stats struct {
	Datagrams      uint64 // datagrams given to Decode
	FlowSamples    uint64 // flow and expanded flow samples decoded into records
	CounterSamples uint64 // counter samples (counted only)
	OtherSamples   uint64 // samples of unknown or non-standard format, skipped
	HeaderErrors   uint64 // raw packet headers that did not parse down to L4 (record still emitted)
	Errors         uint64 // datagrams dropped in whole or in part
}

// Decoder decodes sFlow v5. It is safe for concurrent use.
type Decoder struct {
	override map[netip.Addr]uint32
	scratch  sync.Pool

	datagrams, flowSamples, counterSamples, otherSamples, headerErrors, errors atomic.Uint64
}

// New returns a decoder; it does no I/O.
func New(conf Configuration) *Decoder {
	d := &Decoder{override: conf.SamplingOverride}
	d.scratch.New = func() any { return new(flow.Record) }
	return d
}

// Stats returns a snapshot of the counters.
func (d *Decoder) Stats() Stats {
	return Stats{
		Datagrams:      d.datagrams.Load(),
		FlowSamples:    d.flowSamples.Load(),
		CounterSamples: d.counterSamples.Load(),
		OtherSamples:   d.otherSamples.Load(),
		HeaderErrors:   d.headerErrors.Load(),
		Errors:         d.errors.Load(),
	}
}

var _ decode.Decoder = (*Decoder)(nil)

// counts accumulates per-datagram counters, added to the atomics once.
type counts struct{ flow, counter, other, headerErr uint64 }

// Decode decodes one sFlow datagram received from exporter and hands one
// record per flow sample to sink. Record.Exporter is the UDP source address
// of the datagram (not the agent address inside it), so that records, the
// sampling override and per-exporter counters all name the same address;
// ObservationDomain is the sub-agent ID; Start and End are received.
// Records of the samples before a malformed one are delivered; the error
// says why the rest was dropped.
func (d *Decoder) Decode(exporter netip.AddrPort, payload []byte, received time.Time, sink flow.Sink) (int, error) {
	d.datagrams.Add(1)
	r := d.scratch.Get().(*flow.Record)
	var c counts
	n, err := d.decode(exporter.Addr(), payload, received, sink, r, &c)
	d.scratch.Put(r)
	if c.flow != 0 {
		d.flowSamples.Add(c.flow)
	}
	if c.counter != 0 {
		d.counterSamples.Add(c.counter)
	}
	if c.other != 0 {
		d.otherSamples.Add(c.other)
	}
	if c.headerErr != 0 {
		d.headerErrors.Add(c.headerErr)
	}
	if err != nil {
		d.errors.Add(1)
	}
	return n, err
}

func (d *Decoder) decode(exporter netip.Addr, b []byte, received time.Time, sink flow.Sink, r *flow.Record, c *counts) (int, error) {
	if len(b) < 8 {
		return 0, errHeader
	}
	if binary.BigEndian.Uint32(b) != 5 {
		return 0, errVersion
	}
	var off int
	switch binary.BigEndian.Uint32(b[4:]) {
	case 1:
		off = 8 + 4
	case 2:
		off = 8 + 16
	default:
		return 0, errAgentType
	}
	if len(b) < off+16 {
		return 0, errHeader
	}
	subAgent := binary.BigEndian.Uint32(b[off:])
	// sequence number and uptime are not needed
	nSamples := binary.BigEndian.Uint32(b[off+12:])
	b = b[off+16:]

	override, hasOverride := uint32(0), false
	if d.override != nil {
		override, hasOverride = d.override[exporter]
	}

	produced := 0
	for i := uint32(0); i < nSamples; i++ {
		if len(b) < 8 {
			return produced, errSample
		}
		format := binary.BigEndian.Uint32(b)
		length := binary.BigEndian.Uint32(b[4:])
		b = b[8:]
		if uint64(length) > uint64(len(b)) {
			return produced, errSample
		}
		body := b[:length]
		b = b[length:]
		switch format {
		case sampleFlow, sampleExpandedFlow:
		case sampleCounter, sampleExpandedCounter:
			c.counter++
			continue
		default:
			c.other++
			continue
		}

		*r = flow.Record{}
		r.Format = flow.FormatSFlow5
		r.Exporter = exporter
		r.ObservationDomain = subAgent
		r.Start, r.End = received, received
		var rate, inIf, outIf, nRecords uint32
		if format == sampleFlow {
			// seq, source_id, rate, pool, drops, input, output, n
			if len(body) < 32 {
				return produced, errSampleShort
			}
			rate = binary.BigEndian.Uint32(body[8:])
			inIf = iface(binary.BigEndian.Uint32(body[20:]))
			outIf = iface(binary.BigEndian.Uint32(body[24:]))
			nRecords = binary.BigEndian.Uint32(body[28:])
			body = body[32:]
		} else {
			// seq, source type, source index, rate, pool, drops,
			// input format, input value, output format, output value, n
			if len(body) < 44 {
				return produced, errSampleShort
			}
			rate = binary.BigEndian.Uint32(body[12:])
			if binary.BigEndian.Uint32(body[24:]) == 0 {
				inIf = iface(binary.BigEndian.Uint32(body[28:]))
			}
			if binary.BigEndian.Uint32(body[32:]) == 0 {
				outIf = iface(binary.BigEndian.Uint32(body[36:]))
			}
			nRecords = binary.BigEndian.Uint32(body[40:])
			body = body[44:]
		}
		if hasOverride {
			rate = override
		}
		if rate == 0 {
			rate = 1
		}
		r.SamplingRate = rate
		r.InIf, r.OutIf = inIf, outIf

		var frameLen uint32
		var haveHeader bool
		var ipv4, ipv6, ether []byte // sampled structures, used without a raw header
		var switchVLAN uint16
		for j := uint32(0); j < nRecords; j++ {
			if len(body) < 8 {
				return produced, errRecord
			}
			rformat := binary.BigEndian.Uint32(body)
			rlength := binary.BigEndian.Uint32(body[4:])
			body = body[8:]
			if uint64(rlength) > uint64(len(body)) {
				return produced, errRecord
			}
			rec := body[:rlength]
			body = body[rlength:]
			switch rformat {
			case recordRawHeader:
				// protocol, frame_length, stripped, header<>
				if len(rec) < 16 {
					return produced, errRecordShort
				}
				proto := binary.BigEndian.Uint32(rec)
				frameLen = binary.BigEndian.Uint32(rec[4:])
				hlen := binary.BigEndian.Uint32(rec[12:])
				if uint64(hlen) > uint64(len(rec)-16) {
					return produced, errRecordShort
				}
				hdr := rec[16 : 16+hlen]
				haveHeader = true
				var link uint32
				switch proto {
				case headerEthernet:
					link = packet.LinkEthernet
				case headerIPv4:
					link = packet.LinkIPv4
				case headerIPv6:
					link = packet.LinkIPv6
				default:
					c.headerErr++
					continue
				}
				if err := packet.Parse(link, hdr, r); err != nil {
					c.headerErr++
				}
				packet.SetHeader(link, hdr, r)
			case recordEthernet:
				ether = rec
			case recordIPv4:
				ipv4 = rec
			case recordIPv6:
				ipv6 = rec
			case recordExtSwitch:
				if len(rec) < 16 {
					return produced, errRecordShort
				}
				switchVLAN = uint16(binary.BigEndian.Uint32(rec) & 0x0fff)
			}
		}
		if !haveHeader {
			var err error
			switch {
			case ipv4 != nil:
				frameLen, err = sampledIP(ipv4, 4, r)
			case ipv6 != nil:
				frameLen, err = sampledIP(ipv6, 16, r)
			}
			if err == nil && ether != nil {
				err = sampledEthernet(ether, r, &frameLen)
			}
			if err != nil {
				return produced, err
			}
		}
		if r.VLAN == 0 {
			r.VLAN = switchVLAN
		}
		r.FrameLength = frameLen
		r.SampledPackets = 1
		r.SampledBytes = uint64(frameLen)
		r.Packets = uint64(rate)
		r.Bytes = uint64(frameLen) * uint64(rate)
		c.flow++
		produced++
		sink.Record(r)
	}
	return produced, nil
}

// iface turns an sFlow interface field into an ifIndex: 0 when the value
// is not a single interface (discarded, multiple) or unknown.
func iface(v uint32) uint32 {
	if v>>30 != 0 || v == ifaceUnknownValue {
		return 0
	}
	return v
}

// sampledIP reads sampled_ipv4 / sampled_ipv6 (addrLen 4 or 16):
// length, protocol, src, dst, src_port, dst_port, tcp_flags, tos/priority.
func sampledIP(b []byte, addrLen int, r *flow.Record) (uint32, error) {
	if len(b) < 8+2*addrLen+16 {
		return 0, errRecordShort
	}
	length := binary.BigEndian.Uint32(b)
	r.Proto = uint8(binary.BigEndian.Uint32(b[4:]))
	if addrLen == 4 {
		r.SrcAddr = netip.AddrFrom4([4]byte(b[8:12]))
		r.DstAddr = netip.AddrFrom4([4]byte(b[12:16]))
	} else {
		r.SrcAddr = netip.AddrFrom16([16]byte(b[8:24]))
		r.DstAddr = netip.AddrFrom16([16]byte(b[24:40]))
	}
	p := b[8+2*addrLen:]
	r.SrcPort = uint16(binary.BigEndian.Uint32(p))
	r.DstPort = uint16(binary.BigEndian.Uint32(p[4:]))
	r.TCPFlags = uint8(binary.BigEndian.Uint32(p[8:]))
	return length, nil
}

// sampledEthernet reads sampled_ethernet: length, src_mac, dst_mac, type,
// each MAC an XDR opaque[6] padded to 8 bytes.
func sampledEthernet(b []byte, r *flow.Record, frameLen *uint32) error {
	if len(b) < 24 {
		return errRecordShort
	}
	if *frameLen == 0 {
		*frameLen = binary.BigEndian.Uint32(b)
	}
	r.SrcMAC = flow.MAC(b[4:10])
	r.DstMAC = flow.MAC(b[12:18])
	return nil
}
