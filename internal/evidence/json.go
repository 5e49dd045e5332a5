package evidence

import (
	"bytes"
	"encoding/json"
	"math"
	"time"

	"padlock/internal/detect"
	"padlock/internal/flow"
)

// jsonFinding is the machine-readable form of a finding: every field of
// detect.Finding plus the sample packets, which the Finding itself does not
// serialise.
type jsonFinding struct {
	detect.Finding
	// Shadow the float fields so that NaN and ±Inf, which JSON cannot
	// carry, become null instead of failing the whole document.
	Measured  jsonFloat    `json:"measured"`
	Threshold jsonFloat    `json:"threshold"`
	Packets   []jsonPacket `json:"packets,omitempty"`
	Files     []string     `json:"evidence_files,omitempty"`
}

type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// jsonPacket is one sample record with its traffic-dump line.
type jsonPacket struct {
	Time         time.Time   `json:"time"`
	Format       flow.Format `json:"format"`
	Src          string      `json:"src"`
	Dst          string      `json:"dst"`
	SrcPort      uint16      `json:"src_port"`
	DstPort      uint16      `json:"dst_port"`
	Proto        uint8       `json:"proto"`
	TCPFlags     uint8       `json:"tcp_flags,omitempty"`
	Packets      uint64      `json:"packets"`
	Bytes        uint64      `json:"bytes"`
	SamplingRate uint32      `json:"sampling_rate"`
	FrameLength  uint32      `json:"frame_length,omitempty"`
	HeaderBytes  int         `json:"header_bytes,omitempty"`
	Line         string      `json:"line"`
}

// JSON renders f as one indented JSON document: kind, direction,
// internal_ip, rule, measured, threshold, unit, first_seen, last_seen,
// sampling_rate, samples, the summary, the probes, the sample packets (each
// with its traffic-dump line) and the names of the other evidence files.
func JSON(f detect.Finding, l Limits) []byte {
	j := jsonFinding{Finding: f, Measured: jsonFloat(f.Measured), Threshold: jsonFloat(f.Threshold)}
	probes := f.Probes
	if max := l.probes(); len(probes) > max {
		j.Finding.ProbesOmitted += len(probes) - max
		j.Finding.Probes = probes[:max]
	}
	pkts := f.Packets
	if max := l.packets(); len(pkts) > max {
		j.Finding.PacketsOmitted += len(pkts) - max
		pkts = pkts[:max]
	}
	d := NewDumper()
	for i := range pkts {
		r := &pkts[i]
		j.Packets = append(j.Packets, jsonPacket{
			Time: r.Start, Format: r.Format, Src: r.SrcAddr.String(), Dst: r.DstAddr.String(),
			SrcPort: r.SrcPort, DstPort: r.DstPort, Proto: r.Proto, TCPFlags: r.TCPFlags,
			Packets: r.Packets, Bytes: r.Bytes, SamplingRate: r.SamplingRate,
			FrameLength: r.FrameLength, HeaderBytes: int(r.HeaderLength), Line: d.Line(r),
		})
	}
	if len(f.Probes) > 0 {
		j.Files = append(j.Files, probeLogName(f))
	}
	if f.Summary != nil {
		j.Files = append(j.Files, NameSummary)
	}
	if len(pkts) > 0 {
		j.Files = append(j.Files, NameTraffic)
		for i := range pkts {
			if pkts[i].HeaderLength > 0 {
				j.Files = append(j.Files, NamePcap)
				break
			}
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep "a > b" in dump lines readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(j); err != nil {
		// Only reachable if a field type cannot be marshalled, which the
		// shadowed floats rule out; keep the file well-formed anyway.
		b.Reset()
		enc.Encode(map[string]string{"error": err.Error()})
	}
	return b.Bytes()
}
