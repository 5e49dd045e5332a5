package netflow

import (
	"bytes"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	gfnetflow "github.com/netsampler/goflow2/v2/decoders/netflow"
	gflegacy "github.com/netsampler/goflow2/v2/decoders/netflowlegacy"

	"padlock/internal/flow"
)

// benchInput is a realistic stream: the template datagram (v9/IPFIX), then
// data datagrams of 30 records each of a softflowd-like template.
type benchInput struct {
	setup []datagram // templates and sampling options
	data  []datagram
	recs  int // records per data datagram
}

var benchExporter = netip.MustParseAddrPort("192.0.2.10:40000")

const benchRecords = 30

func benchStream(version uint16) benchInput {
	at := time.Unix(1_795_617_423, 0)
	h := ghdr{version: version, uptime: 86_400_000, secs: uint32(at.Unix()), domain: 7, engine: 0x0102, sampling: 0x4000 | 100}
	g := newGen(1, h)
	g.sampling = 100
	var in benchInput
	in.recs = benchRecords
	dg := func(p []byte) datagram { return datagram{src: benchExporter, at: at, payload: p} }
	switch version {
	case 5:
		for i := 0; i < 16; i++ {
			in.data = append(in.data, dg(g.v5(benchRecords)))
		}
	case 9:
		in.setup = append(in.setup, dg(g.datagram(3, g.templateSet(softflowdV9), g.templateSet(samplingV9Options), g.dataSet(samplingV9Options, 1))))
		for i := 0; i < 16; i++ {
			in.data = append(in.data, dg(g.datagram(benchRecords, g.dataSet(softflowdV9, benchRecords))))
		}
	case 10:
		in.setup = append(in.setup, dg(g.datagram(0, g.templateSet(softflowdIPFIX), g.templateSet(samplingIPFIXOptions), g.dataSet(samplingIPFIXOptions, 1))))
		for i := 0; i < 16; i++ {
			in.data = append(in.data, dg(g.datagram(0, g.dataSet(softflowdIPFIX, benchRecords))))
		}
	}
	return in
}

// threadCPU is the CPU time the calling OS thread has used. On a shared
// machine wall time includes time spent waiting for a core; records per
// CPU-second of the (locked) benchmark thread is the per-core speed.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRates adds records/s (wall), ns/record (wall) and records/cpu-s.
func reportRates(b *testing.B, records int, cpu time.Duration) {
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
	if cpu > 0 {
		b.ReportMetric(float64(records)/cpu.Seconds(), "records/cpu-s")
	}
}

// countSink reads a field so the record is really produced.
type countSink struct {
	n     int
	bytes uint64
}

func (c *countSink) Record(r *flow.Record) { c.n++; c.bytes += r.Bytes }

func benchOurs(b *testing.B, version uint16) {
	in := benchStream(version)
	d := New(Configuration{})
	var sink countSink
	for _, dg := range in.setup {
		if _, err := d.Decode(dg.src, dg.payload, dg.at, &sink); err != nil {
			b.Fatal(err)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.SetBytes(int64(len(in.data[0].payload)))
	i := 0
	cpu0 := threadCPU()
	for b.Loop() {
		dg := &in.data[i%len(in.data)]
		i++
		n, err := d.Decode(dg.src, dg.payload, dg.at, &sink)
		if err != nil || n != in.recs {
			b.Fatalf("n=%d err=%v", n, err)
		}
	}
	reportRates(b, i*in.recs, threadCPU()-cpu0)
}

func BenchmarkDecodeV5(b *testing.B)    { benchOurs(b, 5) }
func BenchmarkDecodeV9(b *testing.B)    { benchOurs(b, 9) }
func BenchmarkDecodeIPFIX(b *testing.B) { benchOurs(b, 10) }

// benchGoflow2 runs goflow2's decoder and producer (what it takes goflow2 to
// get from a datagram to flow records) on the same input.
func benchGoflow2(b *testing.B, version uint16) {
	in := benchStream(version)
	o := newOracle(b)
	for _, dg := range in.setup {
		if _, err := o.decode(dg); err != nil {
			b.Fatal(err)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.SetBytes(int64(len(in.data[0].payload)))
	i := 0
	cpu0 := threadCPU()
	for b.Loop() {
		dg := in.data[i%len(in.data)]
		i++
		msgs, err := o.produce(dg)
		if err != nil || len(msgs) != in.recs {
			b.Fatalf("n=%d err=%v", len(msgs), err)
		}
		o.prod.Commit(msgs)
	}
	reportRates(b, i*in.recs, threadCPU()-cpu0)
}

func BenchmarkGoflow2V5(b *testing.B)    { benchGoflow2(b, 5) }
func BenchmarkGoflow2V9(b *testing.B)    { benchGoflow2(b, 9) }
func BenchmarkGoflow2IPFIX(b *testing.B) { benchGoflow2(b, 10) }

// TestZeroAllocsSteadyState holds the decoder to its promise: once templates
// are known, decoding a datagram allocates nothing.
func TestZeroAllocsSteadyState(t *testing.T) {
	for _, v := range []uint16{5, 9, 10} {
		in := benchStream(v)
		d := New(Configuration{})
		var sink countSink
		for _, dg := range in.setup {
			if _, err := d.Decode(dg.src, dg.payload, dg.at, &sink); err != nil {
				t.Fatal(err)
			}
		}
		i := 0
		allocs := testing.AllocsPerRun(200, func() {
			dg := &in.data[i%len(in.data)]
			i++
			if n, err := d.Decode(dg.src, dg.payload, dg.at, &sink); err != nil || n != in.recs {
				t.Fatalf("v%d: n=%d err=%v", v, n, err)
			}
		})
		if allocs != 0 {
			t.Errorf("v%d: %.1f allocations per datagram of %d records, want 0", v, allocs, in.recs)
		}
		if sink.bytes == 0 {
			t.Errorf("v%d: no bytes decoded", v)
		}
	}
}

// benchGoflow2DecodeOnly runs goflow2's decoders without the producer: the
// part of goflow2 that parses datagrams into its set/record structures (no
// flow records yet), for a fair split of the comparison.
func benchGoflow2DecodeOnly(b *testing.B, version uint16) {
	in := benchStream(version)
	o := newOracle(b)
	for _, dg := range in.setup {
		if _, err := o.decode(dg); err != nil {
			b.Fatal(err)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.SetBytes(int64(len(in.data[0].payload)))
	i := 0
	cpu0 := threadCPU()
	for b.Loop() {
		dg := in.data[i%len(in.data)]
		i++
		buf := bytes.NewBuffer(dg.payload)
		var err error
		if version == 5 {
			var p gflegacy.PacketNetFlowV5
			err = gflegacy.DecodeMessageVersion(buf, &p)
		} else {
			var v9 gfnetflow.NFv9Packet
			var ipfix gfnetflow.IPFIXPacket
			err = gfnetflow.DecodeMessageVersion(buf, o.templates, &v9, &ipfix)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	reportRates(b, i*in.recs, threadCPU()-cpu0)
}

func BenchmarkGoflow2DecodeOnlyV5(b *testing.B)    { benchGoflow2DecodeOnly(b, 5) }
func BenchmarkGoflow2DecodeOnlyV9(b *testing.B)    { benchGoflow2DecodeOnly(b, 9) }
func BenchmarkGoflow2DecodeOnlyIPFIX(b *testing.B) { benchGoflow2DecodeOnly(b, 10) }
