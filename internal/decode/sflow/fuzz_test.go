package sflow

import (
	"net/netip"
	"testing"
	"time"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

// FuzzDecode is seeded with the real pmacct datagrams and the synthetic
// ones. Every error must wrap a sentinel, the count returned must match the
// records delivered, and every record must be sane.
func FuzzDecode(f *testing.F) {
	for _, dg := range readDatagrams(f, realCapture) {
		f.Add(dg.payload)
	}
	for _, dg := range synthetic(f) {
		f.Add(dg)
	}
	d := New(Configuration{SamplingOverride: map[netip.Addr]uint32{netip.MustParseAddr("127.0.0.2"): 3}})
	from := netip.MustParseAddrPort("127.0.0.1:6343")
	f.Fuzz(func(t *testing.T, payload []byte) {
		var delivered int
		n, err := d.Decode(from, payload, time.Unix(1, 0), flow.SinkFunc(func(r *flow.Record) {
			delivered++
			if r.SamplingRate == 0 || r.Format != flow.FormatSFlow5 || r.Packets != uint64(r.SamplingRate) || int(r.HeaderLength) > flow.MaxHeader {
				t.Fatalf("bad record %+v", r)
			}
		}))
		if n != delivered {
			t.Fatalf("returned %d, delivered %d", n, delivered)
		}
		if err != nil && decode.Cause(err) == "other" {
			t.Fatalf("error %v wraps no sentinel", err)
		}
	})
}
