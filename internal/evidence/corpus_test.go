package evidence

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"padlock/internal/flow"
)

// corpusDir holds the captures of real tools made by
// testdata/captures/make.sh at the repository root.
const corpusDir = "../../testdata/captures"

// readPcap turns a capture into records as the pcap decoder does: one record
// per packet, the first flow.MaxHeader bytes, FrameLength the original length.
func readPcap(t *testing.T, path string) []flow.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []flow.Record
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		rec := flow.Record{Start: ci.Timestamp.UTC(), End: ci.Timestamp.UTC(), Format: flow.FormatPcap,
			SamplingRate: 1, Packets: 1, Bytes: uint64(ci.Length), FrameLength: uint32(ci.Length)}
		rec.SetHeader(data)
		out = append(out, rec)
	}
}

// TestTrafficDumpCorpusMatchesTcpdump renders every packet of the real-tool
// captures (nmap, masscan, hping3, SMTP, HTTP, iperf3, IPv6) and compares
// with tcpdump -n -r, DNS answers included.
func TestTrafficDumpCorpusMatchesTcpdump(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.pcap"))
	n := 0
	for _, path := range files {
		base := filepath.Base(path)
		if strings.Count(base, ".") > 1 {
			continue // flow-export renditions are NetFlow/sFlow datagrams, not the traffic
		}
		n++
		t.Run(strings.TrimSuffix(base, ".pcap"), func(t *testing.T) {
			recs := readPcap(t, path)
			var b strings.Builder
			if err := TrafficDump(&b, recs, 0, Limits{MaxPacketLines: len(recs) + 1}); err != nil {
				t.Fatal(err)
			}
			compareWithTcpdump(t, path, b.String())
		})
	}
	if n < 10 {
		t.Fatalf("only %d captures in %s; the corpus is part of the repository", n, corpusDir)
	}
}
