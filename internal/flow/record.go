// Package flow defines flow.Record, the one record type every source
// (sFlow, NetFlow v5/v9, IPFIX, pcap/pcapng, live capture) is turned into,
// and the small helpers around it. It imports only the standard library;
// every other package of padlock may import it.
package flow

import (
	"net"
	"net/netip"
	"time"
)

// Format names the kind of source a record was decoded from.
type Format uint8

const (
	FormatUnknown Format = iota
	FormatSFlow5
	FormatNetFlow5
	FormatNetFlow9
	FormatIPFIX
	FormatPcap // one record per captured packet (pcap, pcapng, live capture)
)

var formatNames = [...]string{"unknown", "sflow", "netflow5", "netflow9", "ipfix", "pcap"}

// String returns the short lower-case name used in metrics labels and output
// ("sflow", "netflow5", "netflow9", "ipfix", "pcap").
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "unknown"
}

// MarshalText makes a Format appear by name in JSON.
func (f Format) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// IP protocol numbers used across padlock.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP flag bits as carried in NetFlow/IPFIX tcpControlBits and TCP headers.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
	TCPUrg = 0x20
	TCPEce = 0x40
	TCPCwr = 0x80
)

// MaxHeader is the number of leading packet bytes a Record keeps.
const MaxHeader = 128

// Record is one flow (NetFlow/IPFIX), one flow sample (sFlow) or one packet
// (pcap). Packets and Bytes are already multiplied by SamplingRate; the raw
// sampled counts are kept in SampledPackets and SampledBytes.
//
// A Record is a plain value; decoders may reuse one Record between calls to
// the sink, so a consumer that keeps a record must copy it (Clone).
type Record struct {
	Start time.Time `json:"start"` // first packet of the flow (sample time for sFlow/pcap)
	End   time.Time `json:"end"`   // last packet of the flow (equal to Start for a single packet)

	Format            Format     `json:"format"`
	Exporter          netip.Addr `json:"exporter"`           // address of the exporter/agent that sent the data
	ObservationDomain uint32     `json:"observation_domain"` // v9 source ID, IPFIX observation domain, sFlow sub-agent, v5 engine type<<8|id
	SamplingRate      uint32     `json:"sampling_rate"`      // 1 when unsampled; never 0 after decoding

	SrcAddr  netip.Addr `json:"src_addr"`
	DstAddr  netip.Addr `json:"dst_addr"`
	SrcPort  uint16     `json:"src_port"` // for ICMP: 0
	DstPort  uint16     `json:"dst_port"` // for ICMP: type<<8 | code, as NetFlow does
	Proto    uint8      `json:"proto"`
	TCPFlags uint8      `json:"tcp_flags"` // OR of all flags seen in the flow

	Packets        uint64 `json:"packets"` // scaled by SamplingRate
	Bytes          uint64 `json:"bytes"`   // scaled by SamplingRate
	SampledPackets uint64 `json:"sampled_packets"`
	SampledBytes   uint64 `json:"sampled_bytes"`

	SrcMAC       MAC    `json:"src_mac,omitzero"`
	DstMAC       MAC    `json:"dst_mac,omitzero"`
	InIf         uint32 `json:"in_if,omitempty"`
	OutIf        uint32 `json:"out_if,omitempty"`
	VLAN         uint16 `json:"vlan,omitempty"`
	FrameLength  uint32 `json:"frame_length,omitempty"` // original length of the sampled/captured frame, when known
	HeaderLength uint16 `json:"header_length,omitempty"`
	// Header holds the first HeaderLength bytes of the packet starting at the
	// Ethernet header (sFlow raw header, pcap), or is empty.
	Header [MaxHeader]byte `json:"-"`
}

// HeaderBytes returns the captured packet bytes, or nil if there are none.
func (r *Record) HeaderBytes() []byte { return r.Header[:r.HeaderLength] }

// SetHeader copies up to MaxHeader bytes of b into the record.
func (r *Record) SetHeader(b []byte) {
	n := copy(r.Header[:], b)
	r.HeaderLength = uint16(n)
}

// Clone returns a copy that is safe to keep after the sink returns.
func (r *Record) Clone() *Record { c := *r; return &c }

// Duration is End-Start, never negative.
func (r *Record) Duration() time.Duration {
	if d := r.End.Sub(r.Start); d > 0 {
		return d
	}
	return 0
}

// MAC is an Ethernet address stored by value (no allocation).
type MAC [6]byte

// IsZero reports whether the MAC is all zero (not carried by the source).
func (m MAC) IsZero() bool { return m == MAC{} }

func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// MarshalText renders the MAC as aa:bb:cc:dd:ee:ff.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// Sink receives decoded records. The record is only valid during the call.
type Sink interface {
	Record(r *Record)
}

// A Filler is a Sink that lends its caller the place where it would copy
// the next record, so that a producer writes each record once, where the
// sink keeps it (analyze's batches: a copy of a 300-byte record per
// packet was a fifth of reading a capture of small packets). Slot returns
// that record, with undefined contents: the caller sets every field.
// Commit hands it over as Record(slot) would; a slot not committed is
// simply reused by the next Slot, and Record may be called in between
// (it may overwrite the slot).
type Filler interface {
	Sink
	Slot() *Record
	Commit()
}

// A Batcher is a Sink that wants to know where a datagram's records begin
// and end (the collector tells it), so that it can take its lock once per
// datagram instead of once per record. Between BeginBatch and EndBatch
// only the goroutine that called BeginBatch uses the sink; EndBatch is
// called even when decoding fails.
type Batcher interface {
	Sink
	BeginBatch()
	EndBatch()
}

// CopyTo copies r into dst like *dst = *r, but only the HeaderLength bytes
// of the header that are in use (most records have none, and the header is
// 128 of a record's 300 bytes); header bytes beyond HeaderLength that dst
// held before are cleared, so the two records are equal afterwards when
// r's unused header bytes are zero, as every decoder leaves them.
func (r *Record) CopyTo(dst *Record) {
	old := dst.HeaderLength
	dst.Start, dst.End = r.Start, r.End
	dst.Format, dst.Exporter, dst.ObservationDomain, dst.SamplingRate = r.Format, r.Exporter, r.ObservationDomain, r.SamplingRate
	dst.SrcAddr, dst.DstAddr, dst.SrcPort, dst.DstPort, dst.Proto, dst.TCPFlags = r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort, r.Proto, r.TCPFlags
	dst.Packets, dst.Bytes, dst.SampledPackets, dst.SampledBytes = r.Packets, r.Bytes, r.SampledPackets, r.SampledBytes
	dst.SrcMAC, dst.DstMAC, dst.InIf, dst.OutIf, dst.VLAN = r.SrcMAC, r.DstMAC, r.InIf, r.OutIf, r.VLAN
	dst.FrameLength, dst.HeaderLength = r.FrameLength, r.HeaderLength
	n := copy(dst.Header[:], r.Header[:min(int(r.HeaderLength), MaxHeader)])
	if int(old) > n {
		clear(dst.Header[n:min(int(old), MaxHeader)])
	}
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(r *Record)

// Record calls f(r).
func (f SinkFunc) Record(r *Record) { f(r) }
