package netflow

import (
	"encoding/binary"
	"math/rand/v2"
)

// This file builds NetFlow v5, v9 and IPFIX datagrams for tests and
// benchmarks: templates of any field list, records with plausible values.

var be = binary.BigEndian

// gfield is a template field; pen != 0 makes it enterprise-specific (IPFIX).
type gfield struct {
	typ, len uint16
	pen      uint32
}

// gtmpl is a template: options templates have scope scope fields first.
type gtmpl struct {
	id      uint16
	fields  []gfield
	options bool
	scope   int
}

// ghdr is the header of a generated datagram.
type ghdr struct {
	version  uint16
	uptime   uint32 // v5/v9
	secs     uint32
	nsecs    uint32 // v5
	seq      uint32
	domain   uint32 // v9 source ID, IPFIX domain
	engine   uint16 // v5 type<<8|id
	sampling uint16 // v5 raw header field
}

type gen struct {
	r *rand.Rand
	h ghdr
	// options values written into options data records
	samplingIE uint16
	sampling   uint32
}

func newGen(seed uint64, h ghdr) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), h: h, samplingIE: 34, sampling: 1}
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// set wraps a set body with its header; v9 sets are padded to 4 bytes.
func (g *gen) set(id uint16, body []byte) []byte {
	b := make([]byte, 4, 4+len(body)+3)
	b = append(b, body...)
	if g.h.version == 9 {
		b = pad4(b)
	}
	be.PutUint16(b, id)
	be.PutUint16(b[2:], uint16(len(b)))
	return b
}

// templateSet encodes templates (all data or all options) as one set.
func (g *gen) templateSet(ts ...gtmpl) []byte {
	var body []byte
	options := len(ts) > 0 && ts[0].options
	for _, t := range ts {
		body = be.AppendUint16(body, t.id)
		switch {
		case g.h.version == 9 && t.options:
			body = be.AppendUint16(body, uint16(4*t.scope))
			body = be.AppendUint16(body, uint16(4*(len(t.fields)-t.scope)))
		case t.options:
			body = be.AppendUint16(body, uint16(len(t.fields)))
			body = be.AppendUint16(body, uint16(t.scope))
		default:
			body = be.AppendUint16(body, uint16(len(t.fields)))
		}
		for _, f := range t.fields {
			typ := f.typ
			if f.pen != 0 {
				typ |= 0x8000
			}
			body = be.AppendUint16(body, typ)
			body = be.AppendUint16(body, f.len)
			if f.pen != 0 {
				body = be.AppendUint32(body, f.pen)
			}
		}
	}
	id := uint16(0)
	switch {
	case g.h.version == 9 && options:
		id = 1
	case g.h.version == 10 && options:
		id = 3
	case g.h.version == 10:
		id = 2
	}
	return g.set(id, body)
}

// withdrawSet is an IPFIX template withdrawal for ids (set 2 or 3).
func (g *gen) withdrawSet(options bool, ids ...uint16) []byte {
	var body []byte
	for _, id := range ids {
		body = be.AppendUint16(body, id)
		body = be.AppendUint16(body, 0)
	}
	if options {
		return g.set(3, body)
	}
	return g.set(2, body)
}

// dataSet encodes n records of template t.
func (g *gen) dataSet(t gtmpl, n int) []byte {
	var body []byte
	for i := 0; i < n; i++ {
		body = g.record(body, t)
	}
	return g.set(t.id, body)
}

func (g *gen) exportMs() uint64 { return uint64(g.h.secs) * 1000 }

// record appends one record of template t with plausible values.
func (g *gen) record(b []byte, t gtmpl) []byte {
	r := g.r
	proto := []uint8{6, 17, 1, 58, 6, 6, 17}[r.IntN(7)]
	ago := uint32(r.IntN(3_600_000))
	dur := uint32(r.IntN(60_000))
	for i, f := range t.fields {
		if f.len == 0xffff {
			n := r.IntN(300)
			if n < 255 && r.IntN(2) == 0 {
				b = append(b, byte(n))
			} else {
				b = append(b, 255)
				b = be.AppendUint16(b, uint16(n))
			}
			for j := 0; j < n; j++ {
				b = append(b, byte(r.Uint32()))
			}
			continue
		}
		var v uint64
		var raw []byte
		switch {
		case f.pen != 0 || (t.options && i < t.scope):
			v = r.Uint64()
		case f.typ == 8 || f.typ == 12:
			raw = []byte{203, 0, 113, byte(r.Uint32())}
			if r.IntN(2) == 0 {
				raw = []byte{198, 51, 100, byte(r.Uint32())}
			}
		case f.typ == 27 || f.typ == 28:
			raw = []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(r.Uint32()), byte(r.Uint32())}
		case f.typ == 56 || f.typ == 57 || f.typ == 80 || f.typ == 81:
			raw = []byte{0x02, 0, byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}
		case f.typ == 4:
			v = uint64(proto)
		case f.typ == 6:
			v = uint64(r.IntN(256))
		case f.typ == 7 || f.typ == 11:
			v = uint64(r.IntN(65536))
			if proto == 1 || proto == 58 {
				v = 0
			}
		case f.typ == 32 || f.typ == 139:
			v = uint64([]uint16{0x0800, 0x0000, 0x0303, 0x8000, 0x8100}[r.IntN(5)])
		case f.typ == 1 || f.typ == 23 || f.typ == 85:
			v = uint64(40 + r.IntN(1_000_000))
		case f.typ == 2 || f.typ == 24 || f.typ == 86:
			v = uint64(1 + r.IntN(1000))
		case f.typ == 10 || f.typ == 14:
			v = uint64(r.IntN(64))
		case f.typ == 58:
			v = uint64(r.IntN(4096))
		case f.typ == 22: // first switched / flowStartSysUpTime
			v = uint64(g.h.uptime - ago - dur)
		case f.typ == 21:
			v = uint64(g.h.uptime - ago)
		case f.typ == 150:
			v = (g.exportMs() - uint64(ago+dur)) / 1000
		case f.typ == 151:
			v = (g.exportMs() - uint64(ago)) / 1000
		case f.typ == 152:
			v = g.exportMs() - uint64(ago+dur)
		case f.typ == 153:
			v = g.exportMs() - uint64(ago)
		case f.typ == 154 || f.typ == 156:
			v = ntp(g.exportMs() - uint64(ago+dur))
		case f.typ == 155 || f.typ == 157:
			v = ntp(g.exportMs() - uint64(ago))
		case f.typ == 158:
			v = uint64(ago+dur) * 1000
		case f.typ == 159:
			v = uint64(ago) * 1000
		case f.typ == 34 || f.typ == 50 || f.typ == 305:
			v = 0
			if f.typ == g.samplingIE {
				v = uint64(g.sampling)
			}
		default:
			v = r.Uint64()
		}
		if raw != nil && len(raw) == int(f.len) {
			b = append(b, raw...)
			continue
		}
		for k := int(f.len) - 1; k >= 0; k-- {
			if k >= 8 {
				b = append(b, byte(r.Uint32()))
				continue
			}
			b = append(b, byte(v>>(8*k)))
		}
	}
	return b
}

// ntp encodes unix ms as an NTP timestamp.
func ntp(ms uint64) uint64 {
	sec := ms/1000 + 2208988800
	frac := (ms % 1000) << 32 / 1000
	return sec<<32 | frac
}

// datagram builds a v9 or IPFIX datagram of sets (count = records for v9).
func (g *gen) datagram(count int, sets ...[]byte) []byte {
	var b []byte
	if g.h.version == 9 {
		b = make([]byte, 20)
		be.PutUint16(b, 9)
		be.PutUint16(b[2:], uint16(count))
		be.PutUint32(b[4:], g.h.uptime)
		be.PutUint32(b[8:], g.h.secs)
		be.PutUint32(b[12:], g.h.seq)
		be.PutUint32(b[16:], g.h.domain)
	} else {
		b = make([]byte, 16)
		be.PutUint16(b, 10)
		be.PutUint32(b[4:], g.h.secs)
		be.PutUint32(b[8:], g.h.seq)
		be.PutUint32(b[12:], g.h.domain)
	}
	g.h.seq++
	for _, s := range sets {
		b = append(b, s...)
	}
	if g.h.version == 10 {
		be.PutUint16(b[2:], uint16(len(b)))
	}
	return b
}

// v5 builds a NetFlow v5 datagram of n records.
func (g *gen) v5(n int) []byte {
	r := g.r
	b := make([]byte, 24, 24+48*n)
	be.PutUint16(b, 5)
	be.PutUint16(b[2:], uint16(n))
	be.PutUint32(b[4:], g.h.uptime)
	be.PutUint32(b[8:], g.h.secs)
	be.PutUint32(b[12:], g.h.nsecs)
	be.PutUint32(b[16:], g.h.seq)
	be.PutUint16(b[20:], g.h.engine)
	be.PutUint16(b[22:], g.h.sampling)
	g.h.seq += uint32(n)
	for i := 0; i < n; i++ {
		rec := make([]byte, 48)
		copy(rec, []byte{203, 0, 113, byte(r.Uint32()), 198, 51, 100, byte(r.Uint32()), 10, 0, 0, 1})
		be.PutUint16(rec[12:], uint16(r.IntN(64)))
		be.PutUint16(rec[14:], uint16(r.IntN(64)))
		be.PutUint32(rec[16:], uint32(1+r.IntN(1000)))
		be.PutUint32(rec[20:], uint32(40+r.IntN(1_000_000)))
		ago := uint32(r.IntN(3_600_000))
		dur := uint32(r.IntN(60_000))
		be.PutUint32(rec[24:], g.h.uptime-ago-dur)
		be.PutUint32(rec[28:], g.h.uptime-ago)
		be.PutUint16(rec[32:], uint16(r.IntN(65536)))
		be.PutUint16(rec[34:], uint16(r.IntN(65536)))
		rec[37] = byte(r.IntN(256))
		rec[38] = []byte{6, 17, 1}[r.IntN(3)]
		b = append(b, rec...)
	}
	return b
}

// Templates modelled on softflowd 1.1.0 (-T full) and flowgen.
var (
	softflowdV9 = gtmpl{id: 1024, fields: []gfield{
		{8, 4, 0}, {12, 4, 0}, {22, 4, 0}, {21, 4, 0}, {1, 4, 0}, {2, 4, 0}, {10, 4, 0}, {14, 4, 0},
		{61, 1, 0}, {136, 1, 0}, {7, 2, 0}, {11, 2, 0}, {4, 1, 0}, {6, 1, 0}, {60, 1, 0}, {5, 1, 0},
	}}
	softflowdIPFIX = gtmpl{id: 1024, fields: []gfield{
		{8, 4, 0}, {12, 4, 0}, {152, 8, 0}, {153, 8, 0}, {1, 4, 0}, {2, 4, 0}, {10, 4, 0}, {14, 4, 0},
		{61, 1, 0}, {136, 1, 0}, {7, 2, 0}, {11, 2, 0}, {4, 1, 0}, {6, 1, 0}, {60, 1, 0}, {5, 1, 0},
	}}
	samplingV9Options    = gtmpl{id: 257, options: true, scope: 1, fields: []gfield{{1, 4, 0}, {34, 4, 0}, {35, 1, 0}}}
	samplingIPFIXOptions = gtmpl{id: 257, options: true, scope: 1, fields: []gfield{{149, 4, 0}, {34, 4, 0}, {35, 1, 0}}}
)
