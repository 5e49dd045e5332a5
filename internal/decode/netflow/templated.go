package netflow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

// hdr is what a data record needs from its datagram's header.
type hdr struct {
	version uint16
	domain  uint32
	dkey    uint64
	baseNs  int64  // export time (v9 unix secs, IPFIX export time), ns
	uptime  uint32 // v9 sysUptime, ms
	shiftNs int64  // added to every record time: the exporter's clock error (see clockShift)
}

func (h *hdr) name() string {
	if h.version == 9 {
		return "netflow v9"
	}
	return "ipfix"
}

// run is the state of one Decode call of a v9/IPFIX datagram.
type run struct {
	d     *Decoder
	e     *exporter
	h     hdr
	now   int64
	sink  flow.Sink
	n     int   // flow records produced
	first error // first error met; decoding goes on where it can
}

func (r *run) fail(err error) {
	if r.first == nil {
		r.first = err
	}
}

func (d *Decoder) decodeTemplated(ap netip.AddrPort, version uint16, b []byte, received time.Time, sink flow.Sink) (int, error) {
	be := binary.BigEndian
	h := hdr{version: version}
	var body []byte
	if version == 9 {
		if len(b) < 20 {
			return 0, fmt.Errorf("netflow v9: header of %d bytes: %w", len(b), decode.ErrTruncated)
		}
		d.c.v9Datagrams.Add(1)
		h.uptime = be.Uint32(b[4:])
		h.baseNs = int64(be.Uint32(b[8:])) * 1e9
		h.domain = be.Uint32(b[16:])
		body = b[20:]
	} else {
		if len(b) < 16 {
			return 0, fmt.Errorf("ipfix: header of %d bytes: %w", len(b), decode.ErrTruncated)
		}
		l := int(be.Uint16(b[2:]))
		if l < 16 {
			return 0, fmt.Errorf("ipfix: message length %d: %w", l, decode.ErrMalformed)
		}
		if l > len(b) {
			return 0, fmt.Errorf("ipfix: message length %d, datagram %d bytes: %w", l, len(b), decode.ErrTruncated)
		}
		d.c.ipfixDatagrams.Add(1)
		h.baseNs = int64(be.Uint32(b[4:])) * 1e9
		h.domain = be.Uint32(b[12:])
		body = b[16:l]
	}
	h.dkey = domKey(version, h.domain)

	now := received.UnixNano()
	if !received.IsZero() {
		h.shiftNs = d.clockShift(ap, h.baseNs, now)
	}
	e := d.exporterFor(ap, now)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastSeen.Store(now)
	if len(e.pending) > 0 {
		d.expirePending(e, now)
	}
	r := run{d: d, e: e, h: h, now: now, sink: sink}
	r.sets(body)
	if version == 9 {
		d.c.v9Records.Add(uint64(r.n))
	} else {
		d.c.ipfixRecords.Add(uint64(r.n))
	}
	return r.n, r.first
}

// sets walks the (flow)sets of a datagram body.
func (r *run) sets(body []byte) {
	be := binary.BigEndian
	off := 20
	if r.h.version == 10 {
		off = 16
	}
	for len(body) >= 4 {
		id := be.Uint16(body)
		l := int(be.Uint16(body[2:]))
		if l < 4 {
			r.fail(fmt.Errorf("%s: set %d at offset %d: length %d: %w", r.h.name(), id, off, l, decode.ErrMalformed))
			return
		}
		if l > len(body) {
			r.fail(fmt.Errorf("%s: set %d at offset %d: length %d, %d bytes left: %w", r.h.name(), id, off, l, len(body), decode.ErrTruncated))
			return
		}
		set := body[4:l]
		body = body[l:]
		var err error
		switch {
		case id >= 256:
			err = r.dataSet(id, set)
		case r.h.version == 9 && id == 0, r.h.version == 10 && id == 2:
			err = r.templateSet(set)
		case r.h.version == 9 && id == 1:
			err = r.v9OptionsTemplateSet(set)
		case r.h.version == 10 && id == 3:
			err = r.ipfixOptionsTemplateSet(set)
		default:
			// reserved set IDs: skipped
		}
		if err != nil {
			r.fail(fmt.Errorf("%s: set %d at offset %d: %w", r.h.name(), id, off, err))
		}
		off += l
	}
}

// templateSet reads a v9 template flowset (ID 0) or an IPFIX template set
// (ID 2), learning, redefining and (IPFIX) withdrawing templates.
func (r *run) templateSet(set []byte) error {
	be := binary.BigEndian
	var firstErr error
	for len(set) >= 4 {
		start := set
		tid := be.Uint16(set)
		count := int(be.Uint16(set[2:]))
		set = set[4:]
		if count == 0 {
			if r.h.version == 9 || tid == 0 {
				return firstErr // padding
			}
			r.withdraw(tid, false)
			continue
		}
		if tid < 256 {
			return errors.Join(firstErr, fmt.Errorf("template ID %d: %w", tid, decode.ErrMalformed))
		}
		fields, rest, err := parseFields(r.h.version, set, count, r.e.fieldBuf[:0])
		r.e.fieldBuf = fields[:0]
		if err != nil {
			return errors.Join(firstErr, fmt.Errorf("template %d: %w", tid, err))
		}
		set = rest
		if err := r.learn(tid, fields, false, start[:len(start)-len(rest)]); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("template %d: %w", tid, err)
		}
	}
	return firstErr
}

// v9OptionsTemplateSet reads a v9 options template flowset (ID 1). Scope
// fields are v9 scope types, not field types: they are skipped.
func (r *run) v9OptionsTemplateSet(set []byte) error {
	be := binary.BigEndian
	var firstErr error
	for len(set) >= 6 {
		start := set
		tid := be.Uint16(set)
		scopeLen := int(be.Uint16(set[2:]))
		optLen := int(be.Uint16(set[4:]))
		if tid == 0 {
			return firstErr // padding
		}
		set = set[6:]
		if tid < 256 || scopeLen%4 != 0 || optLen%4 != 0 || scopeLen+optLen == 0 {
			return errors.Join(firstErr, fmt.Errorf("options template %d: scope length %d, option length %d: %w", tid, scopeLen, optLen, decode.ErrMalformed))
		}
		if scopeLen+optLen > len(set) {
			return errors.Join(firstErr, fmt.Errorf("options template %d: %w", tid, decode.ErrTruncated))
		}
		fields, rest, err := parseFields(9, set, (scopeLen+optLen)/4, r.e.fieldBuf[:0])
		r.e.fieldBuf = fields[:0]
		if err != nil {
			return errors.Join(firstErr, fmt.Errorf("options template %d: %w", tid, err))
		}
		for i := 0; i < scopeLen/4; i++ {
			fields[i].pen = true // scope type, never interpreted
		}
		set = rest
		if err := r.learn(tid, fields, true, start[:len(start)-len(rest)]); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("options template %d: %w", tid, err)
		}
	}
	return firstErr
}

// ipfixOptionsTemplateSet reads an IPFIX options template set (ID 3).
func (r *run) ipfixOptionsTemplateSet(set []byte) error {
	be := binary.BigEndian
	var firstErr error
	for len(set) >= 4 {
		start := set
		tid := be.Uint16(set)
		count := int(be.Uint16(set[2:]))
		if count == 0 {
			if tid == 0 {
				return firstErr // padding
			}
			set = set[4:]
			r.withdraw(tid, true)
			continue
		}
		if len(set) < 6 {
			return errors.Join(firstErr, fmt.Errorf("options template %d: %w", tid, decode.ErrTruncated))
		}
		scopeCount := int(be.Uint16(set[4:]))
		set = set[6:]
		if tid < 256 || scopeCount > count {
			return errors.Join(firstErr, fmt.Errorf("options template %d: %d fields, %d scope fields: %w", tid, count, scopeCount, decode.ErrMalformed))
		}
		fields, rest, err := parseFields(10, set, count, r.e.fieldBuf[:0])
		r.e.fieldBuf = fields[:0]
		if err != nil {
			return errors.Join(firstErr, fmt.Errorf("options template %d: %w", tid, err))
		}
		set = rest
		if err := r.learn(tid, fields, true, start[:len(start)-len(rest)]); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("options template %d: %w", tid, err)
		}
	}
	return firstErr
}

// learn stores a template definition: a resend of the same definition costs
// a comparison, a changed one replaces the old, a new ID counts against the
// exporter's limit. Held data for the template is decoded right away.
func (r *run) learn(tid uint16, fields []field, options bool, raw []byte) error {
	d, e := r.d, r.e
	dm := e.domain(r.h.dkey, true, d.conf.MaxTemplatesPerExporter)
	if dm == nil {
		d.c.refused.Add(1)
		return fmt.Errorf("too many domains: %w", decode.ErrTooManyTempls)
	}
	old := dm.templates[tid]
	if old != nil && old.options == options && bytes.Equal(old.raw, raw) {
		r.replay(dm, tid, old)
		return nil
	}
	if len(fields) > maxFieldsPerTemplate {
		return fmt.Errorf("%d fields, at most %d: %w", len(fields), maxFieldsPerTemplate, decode.ErrMalformed)
	}
	t, err := compile(r.h.version, fields, options, raw)
	if err != nil {
		if old != nil { // a broken redefinition: the old one is wrong now too
			e.removeTemplate(dm, tid)
		}
		return err
	}
	grow := len(t.raw)
	if old != nil {
		grow -= len(old.raw)
	}
	if old == nil && e.ntemplates >= d.conf.MaxTemplatesPerExporter || e.templBytes+grow > maxTemplateBytesPerExporter {
		d.c.refused.Add(1)
		return fmt.Errorf("exporter has %d templates of %d bytes: %w", e.ntemplates, e.templBytes, decode.ErrTooManyTempls)
	}
	if old != nil {
		d.c.redefined.Add(1)
		e.removeTemplate(dm, tid)
	} else {
		d.c.learned.Add(1)
	}
	dm.templates[tid] = t
	e.ntemplates++
	e.templBytes += len(t.raw)
	r.replay(dm, tid, t)
	return nil
}

// removeTemplate forgets template tid of domain dm.
func (e *exporter) removeTemplate(dm *domain, tid uint16) {
	if t, ok := dm.templates[tid]; ok {
		delete(dm.templates, tid)
		e.ntemplates--
		e.templBytes -= len(t.raw)
	}
}

// withdraw removes template tid (IPFIX). tid 2 withdraws all data
// templates, tid 3 all options templates of the domain.
func (r *run) withdraw(tid uint16, options bool) {
	dm := r.e.domain(r.h.dkey, false, 0)
	if dm == nil {
		return
	}
	if (tid == 2 && !options) || (tid == 3 && options) {
		for id, t := range dm.templates {
			if t.options == options {
				r.e.removeTemplate(dm, id)
				r.d.c.withdrawn.Add(1)
			}
		}
		return
	}
	if _, ok := dm.templates[tid]; ok {
		r.e.removeTemplate(dm, tid)
		r.d.c.withdrawn.Add(1)
	}
}

// dataSet decodes a data or options data set, or holds it when its template
// is unknown.
func (r *run) dataSet(tid uint16, set []byte) error {
	var t *template
	dm := r.e.domain(r.h.dkey, false, 0)
	if dm != nil {
		t = dm.templates[tid]
	}
	if t == nil {
		if r.d.hold(r.e, &r.h, tid, set, r.now) {
			return nil
		}
		r.d.c.templateMisses.Add(1)
		return fmt.Errorf("data for template %d of domain %d: %w", tid, r.h.domain, decode.ErrNoTemplate)
	}
	if t.options {
		return r.d.decodeOptions(dm, t, set)
	}
	n, err := r.d.decodeData(r.e, dm, &r.h, t, set, r.sink)
	r.n += n
	return err
}

// values holds the fields of one data record that need more than a copy
// into the record (times, ICMP, sampling); parse writes the rest straight
// into the flow.Record.
type values struct {
	has                                uint64 // bit 1<<opKind per field in the template
	firstUp, lastUp                    uint32
	startNs, endNs                     int64 // absolute (150-157)
	startDelta, endDelta               uint64
	sysInit                            uint64
	icmpTC                             uint16
	icmpType, icmpCode                 uint8
	sampInt, sampPkt, sampSpace, sampR uint64
}

func (v *values) hasOp(k opKind) bool { return v.has&(1<<k) != 0 }

// uintN reads a big-endian unsigned number of 1 to 8 bytes.
func uintN(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	case 8:
		return binary.BigEndian.Uint64(b)
	}
	var x uint64
	for _, c := range b {
		x = x<<8 | uint64(c)
	}
	return x
}

// ntpNs converts an NTP timestamp (RFC 7011 dateTimeMicro/Nanoseconds) to
// unix ns.
func ntpNs(x uint64) int64 {
	sec := int64(x>>32) - 2208988800
	frac := (x & 0xffffffff) * 1e9 >> 32
	return sec*1e9 + int64(frac)
}

var errVarLen = fmt.Errorf("variable-length field beyond the set: %w", decode.ErrTruncated)

// parse reads one record from b (len(b) >= t.minRec()) into v and returns
// its length. Every record of a template sets the same fields, so v is
// zeroed once per set (v.has = t.has) and only the addresses, whose fields
// may replace each other, are cleared between records.
func (t *template) parse(b []byte, v *values, rec *flow.Record) (int, error) {
	base := 0
	for i := range t.ops {
		o := &t.ops[i]
		p := base + int(o.off)
		k := o.kind
		if k == opVar {
			if p >= len(b) {
				return 0, errVarLen
			}
			l := int(b[p])
			p++
			if l == 255 {
				if p+2 > len(b) {
					return 0, errVarLen
				}
				l = int(binary.BigEndian.Uint16(b[p:]))
				p += 2
			}
			base = p + l
			if base+int(o.len) > len(b) {
				return 0, errVarLen
			}
			continue
		}
		f := b[p : p+int(o.len)]
		switch k {
		case opSrc4:
			if a := [4]byte(f); !rec.SrcAddr.IsValid() || a != [4]byte{} {
				rec.SrcAddr = netip.AddrFrom4(a)
			}
		case opDst4:
			if a := [4]byte(f); !rec.DstAddr.IsValid() || a != [4]byte{} {
				rec.DstAddr = netip.AddrFrom4(a)
			}
		case opSrc6:
			if a := [16]byte(f); !rec.SrcAddr.IsValid() || a != [16]byte{} {
				rec.SrcAddr = netip.AddrFrom16(a)
			}
		case opDst6:
			if a := [16]byte(f); !rec.DstAddr.IsValid() || a != [16]byte{} {
				rec.DstAddr = netip.AddrFrom16(a)
			}
		case opSrcPort:
			rec.SrcPort = uint16(uintN(f))
		case opDstPort:
			rec.DstPort = uint16(uintN(f))
		case opProto:
			rec.Proto = uint8(uintN(f))
		case opTCPFlags:
			rec.TCPFlags = uint8(uintN(f))
		case opInBytes: // the winning byte counter (see resolve)
			rec.SampledBytes = uintN(f)
		case opInPkts:
			rec.SampledPackets = uintN(f)
		case opFirstUp:
			v.firstUp = uint32(uintN(f))
		case opLastUp:
			v.lastUp = uint32(uintN(f))
		case opStartSec:
			v.startNs = int64(uintN(f)) * 1e9
		case opEndSec:
			v.endNs = int64(uintN(f)) * 1e9
		case opStartMs:
			v.startNs = int64(uintN(f)) * 1e6
		case opEndMs:
			v.endNs = int64(uintN(f)) * 1e6
		case opStartNTP:
			v.startNs = ntpNs(binary.BigEndian.Uint64(f))
		case opEndNTP:
			v.endNs = ntpNs(binary.BigEndian.Uint64(f))
		case opStartDelta:
			v.startDelta = uintN(f)
		case opEndDelta:
			v.endDelta = uintN(f)
		case opSysInit:
			v.sysInit = uintN(f)
		case opInSrcMAC: // the winning MACs (see resolve)
			rec.SrcMAC = flow.MAC(f)
		case opInDstMAC:
			rec.DstMAC = flow.MAC(f)
		case opInIf:
			rec.InIf = uint32(uintN(f))
		case opOutIf:
			rec.OutIf = uint32(uintN(f))
		case opVLAN:
			rec.VLAN = uint16(uintN(f))
		case opICMPTC:
			v.icmpTC = uint16(uintN(f))
		case opICMPType:
			v.icmpType = uint8(uintN(f))
		case opICMPCode:
			v.icmpCode = uint8(uintN(f))
		case opSampInt:
			v.sampInt = uintN(f)
		case opSampPkt:
			v.sampPkt = uintN(f)
		case opSampSpace:
			v.sampSpace = uintN(f)
		case opSampRand:
			v.sampR = uintN(f)
		}
	}
	if t.hasVar {
		return base + int(t.tailLen), nil
	}
	return t.minLen, nil
}

// samplingRate returns the rate a record's sampling fields describe, or 0.
// samplingPacketInterval with samplingPacketSpace is RFC 5477's systematic
// count-based sampling: select interval packets, skip space.
func (v *values) samplingRate() uint32 {
	var r uint64
	switch {
	case v.hasOp(opSampPkt) && v.sampPkt > 0:
		r = v.sampPkt
		if v.hasOp(opSampSpace) {
			r = (v.sampPkt + v.sampSpace) / v.sampPkt
		}
	case v.hasOp(opSampRand) && v.sampR > 0:
		r = v.sampR
	case v.hasOp(opSampInt) && v.sampInt > 0:
		r = v.sampInt
	}
	if r > 0xffffffff {
		r = 0xffffffff
	}
	return uint32(r)
}

// decodeOptions reads options data records for the sampling rate and the
// system init time of the domain.
func (d *Decoder) decodeOptions(dm *domain, t *template, b []byte) error {
	minRec := t.minRec()
	v := values{has: t.has}
	var scratch flow.Record
	for len(b) >= minRec {
		scratch.SrcAddr, scratch.DstAddr = netip.Addr{}, netip.Addr{}
		l, err := t.parse(b, &v, &scratch)
		if err != nil {
			return err
		}
		b = b[l:]
		d.c.optionsRecords.Add(1)
		if rate := v.samplingRate(); rate != 0 {
			dm.sampling = rate
		}
		if v.hasOp(opSysInit) && v.sysInit != 0 {
			dm.sysInitMs = v.sysInit
		}
	}
	return nil
}

// minRec is the least number of bytes a record can take.
func (t *template) minRec() int { return t.minRecLen }

// decodeData decodes the records of a data set and hands them to sink.
func (d *Decoder) decodeData(e *exporter, dm *domain, h *hdr, t *template, b []byte, sink flow.Sink) (int, error) {
	rec := &e.rec
	domRate := e.override
	if domRate == 0 {
		domRate = dm.sampling
	}
	format := flow.FormatNetFlow9
	if h.version == 10 {
		format = flow.FormatIPFIX
	}
	minRec := t.minRec()
	n := 0
	v := values{has: t.has}
	for len(b) >= minRec {
		resetRecord(rec)
		l, err := t.parse(b, &v, rec)
		if err != nil {
			return n, err
		}
		b = b[l:]

		rec.Format = format
		rec.Exporter = e.addr
		rec.ObservationDomain = h.domain
		rate := domRate
		if e.override == 0 && t.sampling {
			if rr := v.samplingRate(); rr != 0 {
				rate = rr
			}
		}
		if rate == 0 {
			rate = 1
		}
		rec.SamplingRate = rate
		rec.Packets = scale(rec.SampledPackets, rate)
		rec.Bytes = scale(rec.SampledBytes, rate)

		if rec.DstPort == 0 && (rec.Proto == flow.ProtoICMP || rec.Proto == flow.ProtoICMPv6) {
			switch {
			case v.hasOp(opICMPTC):
				rec.DstPort = v.icmpTC
			case v.hasOp(opICMPType) || v.hasOp(opICMPCode):
				rec.DstPort = uint16(v.icmpType)<<8 | uint16(v.icmpCode)
			}
		}

		if t.hasTimes {
			rec.Start, rec.End = recordTimes(&v, h, dm)
		} else {
			rec.Start = time.Unix(0, h.baseNs+h.shiftNs).UTC()
			rec.End = rec.Start
		}
		sink.Record(rec)
		n++
	}
	return n, nil
}

// recordTimes resolves a record's start and end: absolute times (150-157)
// win over deltas from the export time (158/159), which win over
// sysUptime-relative times (21/22; IPFIX: relative to
// systemInitTimeMilliseconds from the record or the domain's options data).
// A missing end is the start and vice versa; with neither, the export time.
// All of them are the exporter's clock: h.shiftNs moves them onto the
// receiver's.
func recordTimes(v *values, h *hdr, dm *domain) (time.Time, time.Time) {
	var start, end int64
	var hasStart, hasEnd bool
	sysInit := dm.sysInitMs
	if v.hasOp(opSysInit) && v.sysInit != 0 {
		sysInit = v.sysInit
	}
	if h.version == 9 {
		if v.hasOp(opFirstUp) {
			start, hasStart = h.baseNs-int64(int32(h.uptime-v.firstUp))*1e6, true
		}
		if v.hasOp(opLastUp) {
			end, hasEnd = h.baseNs-int64(int32(h.uptime-v.lastUp))*1e6, true
		}
	} else if sysInit != 0 {
		// sysInit + uptime, computed as a signed 32-bit distance from the
		// export time so that an uptime counter that wrapped (or a flow
		// that began before the exporter's init, as softflowd reading a
		// capture reports) lands next to the export time.
		exportMs := h.baseNs / 1e6
		up := uint32(uint64(exportMs) - sysInit)
		if v.hasOp(opFirstUp) {
			start, hasStart = (exportMs-int64(int32(up-v.firstUp)))*1e6, true
		}
		if v.hasOp(opLastUp) {
			end, hasEnd = (exportMs-int64(int32(up-v.lastUp)))*1e6, true
		}
	}
	if v.hasOp(opStartDelta) {
		start, hasStart = h.baseNs-int64(v.startDelta)*1e3, true
	}
	if v.hasOp(opEndDelta) {
		end, hasEnd = h.baseNs-int64(v.endDelta)*1e3, true
	}
	if v.hasOp(opStartSec) || v.hasOp(opStartMs) || v.hasOp(opStartNTP) {
		start, hasStart = v.startNs, true
	}
	if v.hasOp(opEndSec) || v.hasOp(opEndMs) || v.hasOp(opEndNTP) {
		end, hasEnd = v.endNs, true
	}
	switch {
	case !hasStart && !hasEnd:
		start, end = h.baseNs, h.baseNs
	case !hasStart:
		start = end
	case !hasEnd:
		end = start
	}
	return time.Unix(0, start+h.shiftNs).UTC(), time.Unix(0, end+h.shiftNs).UTC()
}
