package evidence

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/detect"
)

// seedSection returns the lines of testdata/seed.txt (a verbatim copy of the
// seed document) from the line equal to start up to, not including, the
// first blank line after at least one non-blank line.
func seedSection(t *testing.T, start string) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/seed.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if l != start {
			continue
		}
		var out []string
		for _, m := range lines[i:] {
			if m == "" && len(out) > 0 && out[len(out)-1] != "" && len(out) > 3 {
				break
			}
			out = append(out, m)
		}
		return out
	}
	t.Fatalf("seed has no line %q", start)
	return nil
}

var mustAddr = netip.MustParseAddr

// TestNetscanLogSeed renders the seed's netscan example and compares it with
// the seed byte for byte. The seed's date "Thu Nov 13 18:14:27 2021" names
// the wrong weekday (13 Nov 2021 was a Saturday), so no correct ctime can
// produce it: the probes are dated 13 Nov 2025 (a Thursday) and only the year
// of the rendered lines is replaced before the comparison.
func TestNetscanLogSeed(t *testing.T) {
	ts := time.Date(2025, 11, 13, 18, 14, 27, 0, time.UTC)
	f := detect.Finding{Kind: detect.KindNetscan, Direction: detect.DirOut, InternalIP: mustAddr("10.0.0.1")}
	for i := 2; i <= 5; i++ {
		f.Probes = append(f.Probes, detect.Probe{Time: ts, Src: mustAddr("10.0.0.1"),
			Dst: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), DstPort: 22, Proto: 6})
	}
	f.ProbesOmitted = 812
	var b bytes.Buffer
	if err := NetscanLog(&b, f, DefaultLimits); err != nil {
		t.Fatal(err)
	}
	golden(t, "netscan_seed.log", b.Bytes())

	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := seedSection(t, strings.Repeat("#", 67))
	if len(got) != len(want) {
		t.Fatalf("got %d lines, seed has %d:\n%s", len(got), len(want), b.String())
	}
	for i := range got {
		g := strings.Replace(got[i], "Thu Nov 13 18:14:27 2025:", "Thu Nov 13 18:14:27 2021:", 1)
		if i == len(got)-1 {
			// The seed's "....." stands for the lines left out; ours says how many.
			if !strings.HasPrefix(g, want[i]) || !strings.Contains(g, "812 more lines left out") {
				t.Errorf("last line %q does not continue the seed's %q with the count", g, want[i])
			}
			continue
		}
		if g != want[i] {
			t.Errorf("line %d:\n got %q\nseed %q", i+1, g, want[i])
		}
	}
	if !strings.HasPrefix(got[6], "Thu Nov 13 18:14:27 2025:") {
		t.Errorf("probe time not in C ctime format: %q", got[6])
	}
}

func TestNetscanLogIPv6AndCap(t *testing.T) {
	ts := time.Date(2026, 3, 1, 9, 5, 7, 0, time.UTC) // a Sunday
	f := detect.Finding{Kind: detect.KindNetscan, InternalIP: mustAddr("2001:db8:1234:5678:9abc:def0:1234:5678")}
	for i := 0; i < 5; i++ {
		f.Probes = append(f.Probes, detect.Probe{Time: ts.Add(time.Duration(i) * time.Second),
			Src: f.InternalIP, Dst: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)}), DstPort: uint16(20 + i), Proto: 6})
	}
	f.Probes = append(f.Probes, detect.Probe{Time: ts, Src: f.InternalIP, Dst: mustAddr("198.18.0.1"), DstPort: 443})
	var b bytes.Buffer
	if err := NetscanLog(&b, f, Limits{MaxProbeLines: 4}); err != nil {
		t.Fatal(err)
	}
	golden(t, "netscan_ipv6.log", b.Bytes())
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if got := lines[len(lines)-1]; got != "..... 2 more lines left out" {
		t.Errorf("last line = %q, want the count of the 2 probes beyond the cap", got)
	}
	// Every line of the banner, rule and probes has the same width.
	w := len(lines[0])
	for i, l := range lines {
		if i == 3 || i == 4 || i == len(lines)-1 {
			continue // blank line, header, omitted line
		}
		if len(l) != w {
			t.Errorf("line %d is %d wide, banner %d: %q", i+1, len(l), w, l)
		}
	}
	if !strings.HasPrefix(lines[6], "Sun Mar  1 09:05:07 2026:") {
		t.Errorf("ctime day not space padded: %q", lines[6])
	}
}

// seedSummary is the seed's packet-limit example. The seed gives only the
// rounded GByte figures; these byte counts produce exactly them (and the
// seed's 161 MBit/s).
func seedSummary() *detect.Summary {
	ext := func(a string, p, fl, by uint64) detect.External {
		return detect.External{Addr: mustAddr(a), Counters: detect.Counters{Packets: p, Flows: fl, Bytes: by}}
	}
	s := &detect.Summary{
		Direction: detect.DirOut, Internal: mustAddr("198.51.100.1"), ThresholdPPS: 100000,
		Window: 300 * time.Second,
		Externals: []detect.External{
			ext("10.0.0.6", 40668000, 40667, 6344500000),
			ext("10.0.0.7", 5000, 5, 500000),
			ext("10.0.0.8", 1000, 1, 100000),
		},
	}
	for _, e := range s.Externals {
		s.Sum.Packets += e.Packets
		s.Sum.Flows += e.Flows
		s.Sum.Bytes += e.Bytes
	}
	return s
}

func TestSummarySeed(t *testing.T) {
	var b bytes.Buffer
	if err := Summary(&b, seedSummary()); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary_seed.txt", b.Bytes())
	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := seedSection(t, "Direction OUT")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summary differs from the seed (-seed +got):\n%s", diff)
	}
}

func TestSummaryNumbers(t *testing.T) {
	for _, tc := range []struct {
		bytes uint64
		gbyte string
	}{
		{0, "0.000"}, {1 << 30, "1.000"}, {1<<30 - 1, "1.000"}, {(1 << 30) * 1234, "1,234.000"},
		{536870, "0.000"}, {536871, "0.001"}, {6344500000, "5.909"},
	} {
		if got := gbytes(tc.bytes); got != tc.gbyte {
			t.Errorf("gbytes(%d) = %q, want %q", tc.bytes, got, tc.gbyte)
		}
	}
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 40674000: "40,674,000", 1234567890123: "1,234,567,890,123"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
	// A 60 s window of an inbound flood, IPv6 external, one address left out.
	s := &detect.Summary{Direction: detect.DirIn, Internal: mustAddr("203.0.113.7"), ThresholdPPS: 50000,
		Window: 60 * time.Second,
		Sum:    detect.Counters{Packets: 9000000, Flows: 12, Bytes: 9000000 * 1500},
		Externals: []detect.External{
			{Addr: mustAddr("2001:db8::dead:beef"), Counters: detect.Counters{Packets: 8999999, Flows: 11, Bytes: 8999999 * 1500}},
		},
		ExternalsOmitted: 1,
	}
	var b bytes.Buffer
	if err := Summary(&b, s); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary_in_60s.txt", b.Bytes())
	if !strings.Contains(b.String(), "Sum                           9,000,000 packets/60s (150,000 packets/s), 12 flows/60s (0 flows/s), 12.573 GByte/60s (1,716 MBit/s)\n") {
		t.Errorf("sum line wrong:\n%s", b.String())
	}
}
