package netflow

import (
	"errors"
	"runtime/debug"
	"testing"
	"time"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

// checkSink checks the invariants every emitted record must hold.
type checkSink struct {
	t *testing.T
	n int
}

func (c *checkSink) Record(r *flow.Record) {
	c.n++
	if r.SamplingRate == 0 {
		c.t.Fatal("sampling rate 0")
	}
	if r.Packets < r.SampledPackets || r.Bytes < r.SampledBytes {
		c.t.Fatalf("scaled counts below sampled: %d/%d %d/%d", r.Packets, r.SampledPackets, r.Bytes, r.SampledBytes)
	}
	if r.Format != flow.FormatNetFlow5 && r.Format != flow.FormatNetFlow9 && r.Format != flow.FormatIPFIX {
		c.t.Fatalf("format %v", r.Format)
	}
	if !r.Exporter.IsValid() {
		c.t.Fatal("no exporter")
	}
}

var sentinels = []error{decode.ErrTruncated, decode.ErrVersion, decode.ErrMalformed, decode.ErrNoTemplate, decode.ErrTooManyTempls}

// fuzzDecode feeds datagrams to one decoder and checks the contract: no
// panic, the count matches the sink, errors unwrap to a decode sentinel.
func fuzzDecode(t *testing.T, d *Decoder, dgs ...[]byte) {
	for i, p := range dgs {
		c := &checkSink{t: t}
		n, err := d.Decode(benchExporter, p, t0.Add(time.Duration(i)*time.Second), c)
		if n != c.n {
			t.Fatalf("Decode returned %d, sink got %d", n, c.n)
		}
		if err != nil {
			found := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					found++
				}
			}
			if found == 0 {
				t.Fatalf("error wraps no decode sentinel: %v", err)
			}
		}
	}
	if s := d.Stats(); s.Exporters > 1 {
		t.Fatalf("%d exporters", s.Exporters)
	}
}

// seedPairs adds (templates, data) pairs: consecutive datagrams of the real
// captures of a version and generated ones.
func seedPairs(f *testing.F, version uint16) [][]byte {
	var all [][]byte
	for _, name := range realCaptures {
		for _, dg := range readDatagrams(f, name) {
			if be.Uint16(dg.payload) == version {
				all = append(all, dg.payload)
			}
		}
	}
	in := benchStream(version)
	for _, dg := range append(in.setup, in.data[:2]...) {
		all = append(all, dg.payload)
	}
	for i := 0; i+1 < len(all); i++ {
		f.Add(all[i], all[i+1])
	}
	return all
}

func fuzzVersion(f *testing.F, version uint16) {
	seeds := seedPairs(f, version)
	f.Fuzz(func(t *testing.T, first, second []byte) {
		// a hang is a bug too: crash (with every goroutine's stack) so the
		// fuzzer keeps the input
		watchdog := time.AfterFunc(10*time.Second, func() {
			debug.SetTraceback("all")
			panic("decode took over 10 s")
		})
		defer watchdog.Stop()
		// a fresh decoder that already knows the real templates...
		d := New(Configuration{MaxTemplatesPerExporter: 16, PendingTTL: time.Second})
		var sink checkSink
		sink.t = t
		for _, s := range seeds[:1] {
			d.Decode(benchExporter, s, t0, &sink)
		}
		// ...then the fuzzed pair (which may redefine or withdraw them)
		fuzzDecode(t, d, first, second, first)
	})
}

func FuzzDecodeV5(f *testing.F)    { fuzzVersion(f, 5) }
func FuzzDecodeV9(f *testing.F)    { fuzzVersion(f, 9) }
func FuzzDecodeIPFIX(f *testing.F) { fuzzVersion(f, 10) }
