package netflow

import (
	"encoding/binary"
	"fmt"

	"padlock/internal/decode"
)

// opKind says what a compiled template does with one field.
type opKind uint8

const (
	opNone opKind = iota
	opVar         // variable-length field (IPFIX): skip it, move the base
	opSrc4
	opDst4
	opSrc6
	opDst6
	opSrcPort
	opDstPort
	opProto
	opTCPFlags
	opInBytes    // 1 IN_BYTES / octetDeltaCount
	opInPkts     // 2 IN_PKTS / packetDeltaCount
	opOutBytes   // 23 OUT_BYTES / postOctetDeltaCount
	opOutPkts    // 24 OUT_PKTS / postPacketDeltaCount
	opTotBytes   // 85 octetTotalCount
	opTotPkts    // 86 packetTotalCount
	opFirstUp    // 22 FIRST_SWITCHED / flowStartSysUpTime (ms)
	opLastUp     // 21 LAST_SWITCHED / flowEndSysUpTime (ms)
	opStartSec   // 150
	opEndSec     // 151
	opStartMs    // 152
	opEndMs      // 153
	opStartNTP   // 154, 156 (NTP timestamp)
	opEndNTP     // 155, 157
	opStartDelta // 158 flowStartDeltaMicroseconds
	opEndDelta   // 159 flowEndDeltaMicroseconds
	opSysInit    // 160 systemInitTimeMilliseconds
	opInSrcMAC   // 56
	opInDstMAC   // 80
	opOutSrcMAC  // 81
	opOutDstMAC  // 57
	opInIf       // 10
	opOutIf      // 14
	opVLAN       // 58
	opICMPTC     // 32, 139 type<<8|code
	opICMPType   // 176, 178
	opICMPCode   // 177, 179
	opSampInt    // 34 samplingInterval
	opSampPkt    // 305 samplingPacketInterval
	opSampSpace  // 306 samplingPacketSpace
	opSampRand   // 50 samplerRandomInterval
)

// op is one compiled field: read len bytes at off from the current base. For
// opVar, off is where the length prefix sits and len is the number of fixed
// bytes that follow the field up to the next variable-length field.
type op struct {
	kind opKind
	len  uint16
	off  uint16
}

// template is a compiled (options) template.
type template struct {
	raw       []byte // definition as received, to recognise a resend cheaply
	options   bool
	hasVar    bool
	minLen    int // bytes before the first variable-length field (whole record if none)
	tailLen   int // fixed bytes after the last variable-length field
	minRecLen int // least bytes a record takes: fixed bytes plus one per variable-length field
	ops       []op
	hasTimes  bool   // has any flow time field
	has       uint64 // bit 1<<opKind for every op
	sampling  bool   // has a sampling field
}

// field is one template field as parsed.
type field struct {
	typ uint16
	len uint16
	pen bool // IPFIX enterprise-specific: never interpreted
}

// kindFor maps an information element to the op that reads it, checking the
// length; unknown or oddly sized fields are skipped (opNone).
func kindFor(typ, length uint16) opKind {
	uintOK := length >= 1 && length <= 8
	switch typ {
	case 8:
		return pick(length == 4, opSrc4)
	case 12:
		return pick(length == 4, opDst4)
	case 27:
		return pick(length == 16, opSrc6)
	case 28:
		return pick(length == 16, opDst6)
	case 7:
		return pick(uintOK, opSrcPort)
	case 11:
		return pick(uintOK, opDstPort)
	case 4:
		return pick(uintOK, opProto)
	case 6:
		return pick(uintOK, opTCPFlags)
	case 1:
		return pick(uintOK, opInBytes)
	case 2:
		return pick(uintOK, opInPkts)
	case 23:
		return pick(uintOK, opOutBytes)
	case 24:
		return pick(uintOK, opOutPkts)
	case 85:
		return pick(uintOK, opTotBytes)
	case 86:
		return pick(uintOK, opTotPkts)
	case 22:
		return pick(uintOK, opFirstUp)
	case 21:
		return pick(uintOK, opLastUp)
	case 150:
		return pick(uintOK, opStartSec)
	case 151:
		return pick(uintOK, opEndSec)
	case 152:
		return pick(uintOK, opStartMs)
	case 153:
		return pick(uintOK, opEndMs)
	case 154, 156:
		return pick(length == 8, opStartNTP)
	case 155, 157:
		return pick(length == 8, opEndNTP)
	case 158:
		return pick(uintOK, opStartDelta)
	case 159:
		return pick(uintOK, opEndDelta)
	case 160:
		return pick(uintOK, opSysInit)
	case 56:
		return pick(length == 6, opInSrcMAC)
	case 80:
		return pick(length == 6, opInDstMAC)
	case 81:
		return pick(length == 6, opOutSrcMAC)
	case 57:
		return pick(length == 6, opOutDstMAC)
	case 10:
		return pick(uintOK, opInIf)
	case 14:
		return pick(uintOK, opOutIf)
	case 58:
		return pick(uintOK, opVLAN)
	case 32, 139:
		return pick(uintOK, opICMPTC)
	case 176, 178:
		return pick(uintOK, opICMPType)
	case 177, 179:
		return pick(uintOK, opICMPCode)
	case 34:
		return pick(uintOK, opSampInt)
	case 305:
		return pick(uintOK, opSampPkt)
	case 306:
		return pick(uintOK, opSampSpace)
	case 50:
		return pick(uintOK, opSampRand)
	}
	return opNone
}

func pick(ok bool, k opKind) opKind {
	if ok {
		return k
	}
	return opNone
}

// compile turns parsed fields into a template. version 10 enables
// variable-length fields (length 65535).
func compile(version uint16, fields []field, options bool, raw []byte) (*template, error) {
	t := &template{options: options, raw: append([]byte(nil), raw...)}
	off := 0     // offset from the current base
	varIdx := -1 // index in t.ops of the last opVar
	for _, f := range fields {
		if version == 10 && f.len == 0xffff {
			if varIdx >= 0 {
				t.ops[varIdx].len = uint16(off)
			} else {
				t.minLen = off
			}
			t.ops = append(t.ops, op{kind: opVar, off: uint16(off)})
			varIdx = len(t.ops) - 1
			t.hasVar = true
			off = 0
			continue
		}
		k := opNone
		if !f.pen {
			k = kindFor(f.typ, f.len)
		}
		if k != opNone {
			t.ops = append(t.ops, op{kind: k, off: uint16(off), len: f.len})
			t.has |= 1 << k
			switch k {
			case opFirstUp, opLastUp, opStartSec, opEndSec, opStartMs, opEndMs,
				opStartNTP, opEndNTP, opStartDelta, opEndDelta:
				t.hasTimes = true
			case opSampInt, opSampPkt, opSampSpace, opSampRand:
				t.sampling = true
			}
		}
		off += int(f.len)
		if off > 0xffff {
			return nil, fmt.Errorf("template longer than 65535 bytes: %w", decode.ErrMalformed)
		}
	}
	if varIdx >= 0 {
		t.ops[varIdx].len = uint16(off)
		t.tailLen = off
	} else {
		t.minLen = off
	}
	t.resolve()
	t.minRecLen = t.minLen
	for _, o := range t.ops {
		if o.kind == opVar {
			t.minRecLen += 1 + int(o.len)
		}
	}
	if !t.hasVar && t.minLen == 0 {
		return nil, fmt.Errorf("template of zero length: %w", decode.ErrMalformed)
	}
	return t, nil
}

// parseFields reads count field specifiers from b (IPFIX: with enterprise
// numbers when version is 10) into dst, returning the rest of b.
func parseFields(version uint16, b []byte, count int, dst []field) ([]field, []byte, error) {
	be := binary.BigEndian
	for i := 0; i < count; i++ {
		if len(b) < 4 {
			return dst, b, fmt.Errorf("field %d of %d: %w", i+1, count, decode.ErrTruncated)
		}
		f := field{typ: be.Uint16(b), len: be.Uint16(b[2:])}
		b = b[4:]
		if version == 10 && f.typ&0x8000 != 0 {
			if len(b) < 4 {
				return dst, b, fmt.Errorf("enterprise number of field %d: %w", i+1, decode.ErrTruncated)
			}
			f.typ &^= 0x8000
			f.pen = true
			b = b[4:]
		}
		dst = append(dst, f)
	}
	return dst, b, nil
}

// resolve settles, once per template, which of several fields for the same
// record field wins, so that parse writes each record field at most once:
// byte and packet counts come from IN (1/2), else total (85/86), else OUT
// (23/24); MACs from the ingress fields (56/80), else the egress ones
// (81/57).
func (t *template) resolve() {
	pickFirst := func(kinds ...opKind) opKind {
		for _, k := range kinds {
			if t.has&(1<<k) != 0 {
				return k
			}
		}
		return opNone
	}
	bytesOp := pickFirst(opInBytes, opTotBytes, opOutBytes)
	pktsOp := pickFirst(opInPkts, opTotPkts, opOutPkts)
	srcMAC := pickFirst(opInSrcMAC, opOutSrcMAC)
	dstMAC := pickFirst(opInDstMAC, opOutDstMAC)
	ops := t.ops[:0]
	for _, o := range t.ops {
		switch o.kind {
		case opInBytes, opTotBytes, opOutBytes:
			if o.kind != bytesOp {
				continue
			}
			o.kind = opInBytes
		case opInPkts, opTotPkts, opOutPkts:
			if o.kind != pktsOp {
				continue
			}
			o.kind = opInPkts
		case opInSrcMAC, opOutSrcMAC:
			if o.kind != srcMAC {
				continue
			}
			o.kind = opInSrcMAC
		case opInDstMAC, opOutDstMAC:
			if o.kind != dstMAC {
				continue
			}
			o.kind = opInDstMAC
		}
		ops = append(ops, o)
	}
	t.ops = ops
}
