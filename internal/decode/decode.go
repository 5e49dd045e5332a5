// Package decode holds what all flow decoders share: the Decoder contract
// and the sentinel errors a decode failure unwraps to, so that collectors can
// count errors by cause without knowing the format. The decoders themselves
// live in the sub-packages (netflow, sflow, pcapfile, packet).
package decode

import (
	"errors"
	"net/netip"
	"time"

	"padlock/internal/flow"
)

// Decoder turns one export datagram into records handed to sink. It returns
// the number of records it produced; an error describes why (part of) the
// datagram was dropped and unwraps to one of the sentinels below. A decoder
// never panics on malformed input and keeps bounded state.
type Decoder interface {
	Decode(exporter netip.AddrPort, payload []byte, received time.Time, sink flow.Sink) (int, error)
}

// ClockChecker is implemented by decoders whose record times come from the
// exporter's clock (NetFlow v5/v9 and IPFIX export headers; sFlow record
// times are the receive time and need no check). A datagram whose header
// time differs from the time it was received by more than maxSkew has its
// record times moved by the difference, onto the receiver's clock, so that
// one exporter with a wrong clock cannot move hosts' event time.
//
// CheckClock must be called before the first Decode. maxSkew <= 0 disables
// the check. report, if not nil, is called once for every datagram whose
// times were moved, from Decode and on its goroutine, with the exporter and
// how far its clock is ahead of the receiver (negative: behind).
type ClockChecker interface {
	CheckClock(maxSkew time.Duration, report func(exporter netip.AddrPort, ahead time.Duration))
}

// Causes of decode errors; errors returned by decoders wrap exactly one.
var (
	ErrTruncated     = errors.New("truncated")
	ErrVersion       = errors.New("unsupported version")
	ErrMalformed     = errors.New("malformed")
	ErrNoTemplate    = errors.New("no template")
	ErrTooManyTempls = errors.New("template limit reached")
)

// Cause returns a short metric label for err ("truncated", "version",
// "malformed", "no_template", "template_limit", "other").
func Cause(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTruncated):
		return "truncated"
	case errors.Is(err, ErrVersion):
		return "version"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrNoTemplate):
		return "no_template"
	case errors.Is(err, ErrTooManyTempls):
		return "template_limit"
	}
	return "other"
}
