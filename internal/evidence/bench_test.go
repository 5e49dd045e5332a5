package evidence

import (
	"io"
	"testing"

	"padlock/internal/detect"
)

// BenchmarkTrafficDump measures rendering one dump line from packet headers.
func BenchmarkTrafficDump(b *testing.B) {
	recs := samplePackets(&testing.T{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		writeTrafficDump(io.Discard, recs, 0, DefaultLimits)
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkFiles measures all evidence files of a netscan finding with 1000
// probes and 1000 packets, the default caps.
func BenchmarkFiles(b *testing.B) {
	recs := samplePackets(&testing.T{})
	f := detect.Finding{Kind: detect.KindNetscan, InternalIP: mustAddr("203.0.113.10"), Summary: seedSummary()}
	for len(f.Packets) < 1000 {
		f.Packets = append(f.Packets, recs...)
	}
	f.Packets = f.Packets[:1000]
	for i := 0; i < 1000; i++ {
		f.Probes = append(f.Probes, detect.Probe{Time: recs[0].Start, Src: f.InternalIP, Dst: mustAddr("198.18.0.1"), DstPort: uint16(i)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Files(f)
	}
}
