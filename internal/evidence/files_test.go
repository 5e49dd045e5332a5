package evidence

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/detect"
)

func names(fs []File) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name+" "+f.ContentType)
	}
	return out
}

func TestFiles(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	scan := detect.Finding{Kind: detect.KindNetscan, Direction: detect.DirOut, InternalIP: mustAddr("203.0.113.10"),
		Rule: "netscan.horizontal", Measured: 300, Threshold: 250, Unit: "destinations",
		FirstSeen: t0, LastSeen: t0.Add(40 * time.Second), SamplingRate: 1, Samples: 612,
		Detail: "SYN to 300 hosts on port 22"}
	scan.Probes = []detect.Probe{{Time: t0, Src: scan.InternalIP, Dst: mustAddr("198.18.1.7"), DstPort: 22, Proto: 6}}
	scan.ProbesOmitted = 299
	scan.Packets = samplePackets(t)[9:12]
	limit := detect.Finding{Kind: detect.KindPacketLimit, Direction: detect.DirOut, InternalIP: mustAddr("198.51.100.1"),
		Rule: "packet_limit.pps", Measured: 135580, Threshold: 100000, Unit: "packets/s", SamplingRate: 1000, Samples: 40673,
		Summary: seedSummary()}
	spam := scan
	spam.Kind, spam.Rule, spam.Unit, spam.Detail = detect.KindSpam, "spam.smtp_fanout", "mail servers", "SMTP to 150 mail servers"
	spam.Probes = []detect.Probe{{Time: t0, Src: scan.InternalIP, Dst: mustAddr("198.51.100.25"), DstPort: 25, Proto: 6}}
	spam.ProbesOmitted = 0
	flows := limit
	flows.Packets = nil
	for _, r := range samplePackets(t)[:2] {
		r.HeaderLength = 0 // a NetFlow-style record: no packet bytes
		flows.Packets = append(flows.Packets, r)
	}

	for _, tc := range []struct {
		name string
		f    detect.Finding
		want []string
	}{
		{"netscan", scan, []string{
			"netscan.log text/plain; charset=utf-8", "traffic.txt text/plain; charset=utf-8",
			"traffic.pcap application/vnd.tcpdump.pcap", "finding.json application/json"}},
		{"spam", spam, []string{ // the connections' log is no netscan log
			"spam.log text/plain; charset=utf-8", "traffic.txt text/plain; charset=utf-8",
			"traffic.pcap application/vnd.tcpdump.pcap", "finding.json application/json"}},
		{"packet_limit_no_packets", limit, []string{"summary.txt text/plain; charset=utf-8", "finding.json application/json"}},
		{"packet_limit_flow_records", flows, []string{"summary.txt text/plain; charset=utf-8",
			"traffic.txt text/plain; charset=utf-8", "finding.json application/json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := Files(tc.f)
			if diff := cmp.Diff(tc.want, names(fs)); diff != "" {
				t.Fatalf("files (-want +got):\n%s", diff)
			}
			for _, f := range fs {
				if len(f.Data) == 0 {
					t.Errorf("%s is empty", f.Name)
				}
				if f.Name == NameJSON {
					golden(t, "finding_"+tc.name+".json", f.Data)
				}
				if f.Name == NameSpamLog && !strings.Contains(string(f.Data), "#          Spam detected from host   203.0.113.10") {
					t.Errorf("spam.log banner:\n%s", f.Data)
				}
			}
		})
	}

	// The pcap holds the finding's packets: tcpdump prints what traffic.txt says.
	fs := Files(scan)
	dir := t.TempDir()
	for _, f := range fs {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := exec.LookPath("tcpdump"); err == nil || os.Getenv("CI") != "" {
		compareWithTcpdump(t, filepath.Join(dir, NamePcap), string(fs[1].Data))
	}
}

func TestJSONFacts(t *testing.T) {
	f := detect.Finding{Kind: detect.KindAttack, Direction: detect.DirOut, InternalIP: mustAddr("203.0.113.66"),
		Rule: "attack.syn_flood", Measured: math.Inf(1), Threshold: 50000, Unit: "packets/s",
		SamplingRate: 512, Samples: 77, Summary: seedSummary()}
	f.Packets = samplePackets(t)[:1]
	var m map[string]any
	if err := json.Unmarshal(JSON(f, DefaultLimits), &m); err != nil {
		t.Fatalf("JSON is not valid JSON: %v", err)
	}
	for k, want := range map[string]any{
		"kind": "network_attack", "direction": "out", "internal_ip": "203.0.113.66", "rule": "attack.syn_flood",
		"measured": nil, "threshold": 50000.0, "sampling_rate": 512.0, "samples": 77.0,
	} {
		if got, ok := m[k]; !ok || !cmp.Equal(got, want) {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	pk := m["packets"].([]any)[0].(map[string]any)
	if line := pk["line"].(string); !strings.Contains(line, "Flags [S], seq 1000000") {
		t.Errorf("packet line = %q", line)
	}
	if files := m["evidence_files"].([]any); len(files) != 3 {
		t.Errorf("evidence_files = %v, want summary, traffic, pcap", files)
	}
}

func TestPcapCap(t *testing.T) {
	recs := samplePackets(t)
	var b bytes.Buffer
	n, err := Pcap(&b, recs, Limits{MaxPacketLines: 5})
	if err != nil || n != 5 {
		t.Fatalf("Pcap = %d, %v; want 5 packets", n, err)
	}
	// 24-byte file header, 16-byte record headers, at most 128 bytes each.
	if b.Len() > 24+5*(16+128) {
		t.Errorf("pcap of 5 snapped packets is %d bytes", b.Len())
	}
}
