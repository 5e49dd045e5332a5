package collect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"time"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

// classify picks the format of an export datagram from its version field:
// NetFlow v5/v9 and IPFIX start with a 16-bit version 5, 9 or 10, sFlow with
// a 32-bit version 5 (so its first 16 bits are 0).
func classify(b []byte) flow.Format {
	if len(b) < 4 {
		return flow.FormatUnknown
	}
	switch binary.BigEndian.Uint16(b) {
	case 5:
		return flow.FormatNetFlow5
	case 9:
		return flow.FormatNetFlow9
	case 10:
		return flow.FormatIPFIX
	case 0:
		if binary.BigEndian.Uint32(b) == 5 {
			return flow.FormatSFlow5
		}
	}
	return flow.FormatUnknown
}

var errUnknownFormat = fmt.Errorf("not NetFlow v5/v9, IPFIX or sFlow v5: %w", decode.ErrVersion)

// handle decodes one datagram from exporter, received at now. length is the
// datagram's real length (longer than b when it did not fit the buffer).
func (w *worker) handle(from netip.AddrPort, b []byte, length int, now time.Time) {
	exp := from.Addr().Unmap()
	f := classify(b)
	st := w.statsFor(exp, f)
	st.datagrams.Add(1)
	st.bytes.Add(uint64(length))
	st.lastSeen.Store(now.UnixNano())
	if length > len(b) {
		st.dropped.Add(1)
		w.dropped[dropTruncated].Add(1)
		w.logError(now, exp, f, fmt.Errorf("datagram of %d bytes longer than max_datagram %d: %w", length, len(b), decode.ErrTruncated))
		return
	}
	var dec decode.Decoder
	switch f {
	case flow.FormatNetFlow5, flow.FormatNetFlow9, flow.FormatIPFIX:
		dec = w.netflow
	case flow.FormatSFlow5:
		dec = w.sflow
	}
	var (
		n   int
		err error
	)
	if dec == nil {
		err = errUnknownFormat
		if f != flow.FormatUnknown {
			err = fmt.Errorf("no %s decoder configured: %w", f, decode.ErrVersion)
		}
	} else {
		n, err = w.decode(dec, netip.AddrPortFrom(exp, from.Port()), b, now)
		if w.clockSkewed {
			w.clockSkewed = false
			w.clockCorrected(st, exp, f, now)
		}
	}
	if n > 0 {
		st.records.Add(uint64(n))
	}
	if err == nil {
		return
	}
	ci := causeIndex(err)
	if ci == causeNoTemplate {
		st.templateMisses.Add(1)
	} else {
		st.errors[ci].Add(1)
	}
	if n == 0 {
		st.dropped.Add(1)
		switch ci {
		case causeNoTemplate:
			w.dropped[dropNoTemplate].Add(1)
		case causePanic:
			w.dropped[dropPanic].Add(1)
		default:
			w.dropped[dropDecodeError].Add(1)
		}
	}
	if ci != causeNoTemplate || n == 0 {
		w.logError(now, exp, f, err)
	}
}

// clockReport is the NetFlow decoder's report of a datagram whose record
// times it moved; handle picks it up after the Decode call.
func (w *worker) clockReport(_ netip.AddrPort, ahead time.Duration) {
	w.clockSkewed, w.clockAhead = true, ahead
}

// clockLogInterval is how often an exporter whose clock is off is logged.
const clockLogInterval = 5 * time.Minute

// clockCorrected counts a datagram whose record times the decoder moved
// onto the collector's clock and logs the exporter at most every
// clockLogInterval.
func (w *worker) clockCorrected(st *expStats, exp netip.Addr, f flow.Format, now time.Time) {
	n := st.clockCorrected.Add(1)
	st.clockAhead.Store(int64(w.clockAhead))
	st.clockAt.Store(now.UnixNano())
	if now.UnixNano() < st.clockLogNext {
		return
	}
	st.clockLogNext = now.Add(clockLogInterval).UnixNano()
	dir, off := "ahead of", w.clockAhead
	if off < 0 {
		dir, off = "behind", -off
	}
	w.c.log.Warn(fmt.Sprintf("exporter %s clock %.0f s %s the collector; its record times are corrected", exp, off.Seconds(), dir),
		"listener", w.name, "exporter", exp.String(), "format", f.String(),
		"clock_ahead_seconds", w.clockAhead.Seconds(), "max_clock_skew", w.c.conf.MaxClockSkew.String(),
		"datagrams_corrected", n-st.clockLogged)
	st.clockLogged = n
}

// errPanic marks a recovered decoder panic (cause "panic").
var errPanic = errors.New("decoder panic")

// decode runs the decoder, turning a panic into an error: the last line of
// defence, so that one malformed datagram never stops the collector.
func (w *worker) decode(dec decode.Decoder, from netip.AddrPort, b []byte, now time.Time) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			n, err = 0, panicError{p: p, stack: debug.Stack()}
		}
	}()
	if w.batcher != nil {
		w.batcher.BeginBatch()
		defer w.batcher.EndBatch() // before the recover above, also on a panic
	}
	return dec.Decode(from, b, now, w.sink)
}

type panicError struct {
	p     any
	stack []byte
}

func (e panicError) Error() string { return fmt.Sprintf("decoder panic: %v\n%s", e.p, e.stack) }
func (e panicError) Unwrap() error { return errPanic }

// logError logs at most one decode problem per 10 s per socket, saying how
// many were suppressed since the last one; the counters have them all.
func (w *worker) logError(now time.Time, exp netip.Addr, f flow.Format, err error) {
	if now.Before(w.logNext) {
		w.logSuppressed++
		return
	}
	w.logNext = now.Add(10 * time.Second)
	w.c.log.Warn("datagram dropped or partly decoded", "listener", w.name, "exporter", exp.String(), "format", f.String(),
		"cause", causeName(err), "error", err.Error(), "suppressed", w.logSuppressed)
	w.logSuppressed = 0
}

func causeName(err error) string {
	if errors.Is(err, errPanic) {
		return "panic"
	}
	return decode.Cause(err)
}
