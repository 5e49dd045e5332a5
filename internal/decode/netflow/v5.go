package netflow

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"time"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

const (
	v5HeaderLen = 24
	v5RecordLen = 48
)

// decodeV5 decodes a NetFlow v5 datagram received at received from ap. v5
// is stateless: no exporter state is created for it.
func (d *Decoder) decodeV5(ap netip.AddrPort, b []byte, received time.Time, sink flow.Sink) (int, error) {
	if len(b) < v5HeaderLen {
		return 0, fmt.Errorf("netflow v5: header of %d bytes: %w", len(b), decode.ErrTruncated)
	}
	d.c.v5Datagrams.Add(1)
	be := binary.BigEndian
	count := int(be.Uint16(b[2:]))
	uptime := be.Uint32(b[4:])
	base := int64(be.Uint32(b[8:]))*1e9 + int64(be.Uint32(b[12:]))
	if !received.IsZero() {
		// every record time is relative to base: moving it moves them all
		base += d.clockShift(ap, base, received.UnixNano())
	}
	addr := ap.Addr()
	rate := uint32(be.Uint16(b[22:]) & 0x3fff)
	if o := d.override(addr); o != 0 {
		rate = o
	}
	if rate == 0 {
		rate = 1
	}

	rec := d.v5recs.Get().(*flow.Record)
	defer d.v5recs.Put(rec)
	resetRecord(rec)
	rec.Format = flow.FormatNetFlow5
	rec.Exporter = addr
	rec.ObservationDomain = uint32(b[20])<<8 | uint32(b[21])
	rec.SamplingRate = rate

	body := b[v5HeaderLen:]
	n := 0
	for ; n < count && len(body) >= v5RecordLen; n++ {
		r := body[:v5RecordLen]
		body = body[v5RecordLen:]
		rec.SrcAddr = netip.AddrFrom4([4]byte(r[0:4]))
		rec.DstAddr = netip.AddrFrom4([4]byte(r[4:8]))
		rec.InIf = uint32(be.Uint16(r[12:]))
		rec.OutIf = uint32(be.Uint16(r[14:]))
		pkts := uint64(be.Uint32(r[16:]))
		octets := uint64(be.Uint32(r[20:]))
		rec.SampledPackets, rec.SampledBytes = pkts, octets
		rec.Packets, rec.Bytes = scale(pkts, rate), scale(octets, rate)
		rec.Start = uptimeTime(base, uptime, be.Uint32(r[24:]))
		rec.End = uptimeTime(base, uptime, be.Uint32(r[28:]))
		rec.SrcPort = be.Uint16(r[32:])
		rec.DstPort = be.Uint16(r[34:])
		rec.TCPFlags = r[37]
		rec.Proto = r[38]
		sink.Record(rec)
	}
	d.c.v5Records.Add(uint64(n))
	if n < count {
		return n, fmt.Errorf("netflow v5: header says %d records, datagram holds %d: %w", count, n, decode.ErrTruncated)
	}
	return n, nil
}

// uptimeTime converts a sysUptime-relative timestamp (ms) to wall time,
// given the export time baseNs at exporter uptime up (ms). The difference is
// taken modulo 2^32 as a signed number, so a flow that started before the
// uptime counter wrapped (or a few ms "after" the header, as some exporters
// write) still lands next to the export time.
func uptimeTime(baseNs int64, up, at uint32) time.Time {
	diff := int64(int32(up - at))
	return time.Unix(0, baseNs-diff*1e6).UTC()
}

// scale multiplies a sampled count by the sampling rate, saturating.
func scale(v uint64, rate uint32) uint64 {
	hi, lo := bits.Mul64(v, uint64(rate))
	if hi != 0 {
		return ^uint64(0)
	}
	return lo
}
