package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"padlock/internal/detect"
)

// The corpus in testdata/captures was recorded from real tools (nmap,
// masscan, hping3, an SMTP fan-out, benign servers) in network namespaces;
// its README says how. Captures are small, so the flood test scales the
// attack threshold down; everything else runs on the defaults.
const corpus = "../../testdata/captures"

type verdict struct {
	Kind, Direction, InternalIP, Rule, Source string
}

func analyzeJSON(t *testing.T, cfg string, files ...string) []verdict {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "padlock.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfgPath, "--format", "json", "--evidence-dir", filepath.Join(dir, "ev")}
	for _, f := range files {
		if !filepath.IsAbs(f) {
			f = filepath.Join(corpus, f)
		}
		args = append(args, f)
	}
	var out, errb bytes.Buffer
	if err := cmdAnalyze(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("analyze %v: %v\n%s", files, err, errb.String())
	}
	var vs []verdict
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var f struct {
			Kind       string `json:"kind"`
			Direction  string `json:"direction"`
			InternalIP string `json:"internal_ip"`
			Rule       string `json:"rule"`
			Source     string `json:"source"`
			Samples    uint64 `json:"samples"`
			Threshold  float64
			Measured   float64
		}
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("output line is not JSON: %v: %s", err, line)
		}
		if f.Samples == 0 || f.Measured < f.Threshold {
			t.Errorf("finding %s %s with %d samples, measured %v below threshold %v", f.Rule, f.InternalIP, f.Samples, f.Measured, f.Threshold)
		}
		vs = append(vs, verdict{f.Kind, f.Direction, f.InternalIP, f.Rule, f.Source})
	}
	// Every finding has its evidence files on disk.
	ents, _ := os.ReadDir(filepath.Join(dir, "ev"))
	if len(ents) != len(vs) {
		t.Errorf("%d evidence directories for %d findings", len(ents), len(vs))
	}
	return vs
}

const corpusBase = `customers: [203.0.113.0/24, "2001:db8:c::/64"]
protected: [203.0.113.1/32, "2001:db8:c::1/128"]
`

func TestAnalyzeCorpusVerdicts(t *testing.T) {
	if _, err := os.Stat(corpus); err != nil {
		t.Fatalf("corpus missing: %v", err)
	}
	floods := corpusBase + "detect:\n  attack: {window: 6s, min_pps: 200}\n"
	victims := corpusBase + "detect:\n  packet_limit: {threshold_pps: 50, window: 15s}\n"
	tests := []struct {
		file string
		cfg  string
		want []verdict
	}{
		{"scan-nmap-syn", corpusBase, []verdict{{"netscan", "out", "203.0.113.10", "netscan.horizontal", ""}}},
		{"scan-masscan", corpusBase, []verdict{{"netscan", "out", "203.0.113.10", "netscan.horizontal", ""}}},
		{"scan-nmap-vertical", corpusBase, []verdict{{"netscan", "out", "203.0.113.10", "netscan.vertical", ""}}},
		{"scan-nmap-vertical-ipv6", corpusBase, []verdict{{"netscan", "out", "2001:db8:c::10", "netscan.vertical", ""}}},
		{"spam-smtp", corpusBase, []verdict{{"spam", "out", "203.0.113.12", "spam.smtp_fanout", ""}}},
		{"spoof", corpusBase, []verdict{
			{"incorrect_network_config", "out", "", "incorrect_network_config.spoofed_source", "198.51.100.66"},
			{"incorrect_network_config", "out", "", "incorrect_network_config.spoofed_source", "198.18.77.77"}}},
		{"flood-syn", floods, []verdict{{"network_attack", "out", "203.0.113.11", "attack.syn_flood", ""}}},
		{"flood-udp", floods, []verdict{{"network_attack", "out", "203.0.113.11", "attack.udp_flood", ""}}},
		{"flood-udp-inbound", victims, []verdict{{"packet_limit", "in", "203.0.113.20", "packet_limit.pps", ""}}},
		// Benign traps: busy servers and clients whose contacts are answered.
		{"benign-web", floods, nil},
		{"benign-crawler", floods, nil},
		{"benign-dns", floods, nil},
		{"benign-iperf", floods, nil},
		{"benign-web", corpusBase, nil},
		{"benign-crawler", corpusBase, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := analyzeJSON(t, tt.cfg, tt.file+".pcap")
			if !slices.Equal(got, tt.want) {
				t.Errorf("verdicts\n got %+v\nwant %+v", got, tt.want)
			}
			// The same traffic exported by real exporters gives the same
			// verdicts: softflowd (NetFlow v9, IPFIX) and pmacct (sFlow).
			for _, ext := range []string{".netflow9.pcap", ".ipfix.pcap", ".sflow.pcap"} {
				if _, err := os.Stat(filepath.Join(corpus, tt.file+ext)); err != nil {
					continue
				}
				if got := analyzeJSON(t, tt.cfg, tt.file+ext); !slices.Equal(got, tt.want) {
					t.Errorf("%s: verdicts\n got %+v\nwant %+v", ext, got, tt.want)
				}
			}
		})
	}
}

func TestAnalyzeTextIsTheSeedFormat(t *testing.T) {
	var out, errb bytes.Buffer
	err := cmdAnalyze(context.Background(), []string{"--customers", "203.0.113.0/24", filepath.Join(corpus, "scan-nmap-syn.pcap")}, &out, &errb)
	if err != nil {
		t.Fatal(err, errb.String())
	}
	s := out.String()
	for _, want := range []string{
		strings.Repeat("#", 67) + "\n#          Netscan detected from host   203.0.113.10              #\n",
		"time                        src_ip\t\t  dest_ip:dest_port\n" + strings.Repeat("-", 67) + "\n",
		":  203.0.113.10 =>         198.18.0.0:   22\n",
		" IP 203.0.113.10.",
		// the dump shows both directions: the targets' resets too
		".22 > 203.0.113.10.44862: Flags [R.]",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("text output lacks %q:\n%s", want, s)
		}
	}
}

func TestAnalyzeErrors(t *testing.T) {
	dir := t.TempDir()
	trunc := filepath.Join(dir, "cut.pcap")
	data, err := os.ReadFile(filepath.Join(corpus, "scan-nmap-syn.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(trunc, data[:len(data)/2+7], 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("detect:\n  netscan: {min_destination: 3}\n"), 0o644)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"bad config names the key", []string{"--config", bad, trunc}, 2, "detect.netscan.min_destination: unknown key"},
		{"bad customers", []string{"--customers", "203.0.113.7/24", trunc}, 2, "host bits set"},
		{"no customers", []string{trunc}, 2, "no internal networks"},
		{"missing file", []string{"--customers", "203.0.113.0/24", filepath.Join(dir, "nope.pcap")}, 1, "nope.pcap"},
		{"truncated file names file and offset", []string{"--customers", "203.0.113.0/24", trunc}, 1, "cut.pcap: offset "},
		{"not a capture", []string{"--customers", "203.0.113.0/24", bad}, 1, "bad.yaml"},
		{"a directory", []string{"--customers", "203.0.113.0/24", dir}, 1, dir + ": is a directory"},
		{"evidence dir that cannot be one fails before the analysis", []string{"--customers", "203.0.113.0/24", "--evidence-dir", bad, trunc}, 1, "--evidence-dir: mkdir " + bad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"analyze"}, tt.args...), &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.stderr) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tt.code, errb.String(), tt.stderr)
			}
		})
	}
}

// TestAnalyzeSpoofedSourceAndRerun: a spoofed-source finding (neither end
// a customer's) is headed and filed by its source address; flags may
// follow the files; a second run into the same evidence directory
// replaces the first run's finding directories instead of mixing with them.
func TestAnalyzeSpoofedSourceAndRerun(t *testing.T) {
	ev := filepath.Join(t.TempDir(), "ev")
	if err := os.MkdirAll(ev, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(ev, "notes.txt") // not analyze's: left alone
	os.WriteFile(keep, []byte("mine"), 0o644)
	for _, d := range []string{"2024-march-01", "2023-backup-1.0", "001-notes-203.0.113.10"} { // look alike, are not
		os.MkdirAll(filepath.Join(ev, d), 0o755)
	}
	analyze := func(files ...string) string {
		var out, errb bytes.Buffer
		args := []string{"--customers", "203.0.113.0/24,2001:db8:c::/64"}
		for _, f := range files {
			args = append(args, filepath.Join(corpus, f))
		}
		args = append(args, "--evidence-dir", ev) // after the files
		if err := cmdAnalyze(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("analyze %v: %v\n%s", files, err, errb.String())
		}
		return out.String()
	}
	dirs := func() (names []string) {
		ents, _ := os.ReadDir(ev)
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	out := analyze("scan-nmap-syn.pcap", "spoof.pcap")
	for _, want := range []string{
		"=== finding 2: incorrect_network_config OUT source 198.51.100.66\n",
		"=== finding 3: incorrect_network_config OUT source 198.18.77.77\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	want := []string{"001-netscan-203.0.113.10", "001-notes-203.0.113.10", "002-incorrect_network_config-198.51.100.66", "003-incorrect_network_config-198.18.77.77", "2023-backup-1.0", "2024-march-01", "notes.txt"}
	if got := dirs(); !slices.Equal(got, want) {
		t.Fatalf("evidence directory holds %v, want %v", got, want)
	}
	analyze("spoof.pcap")
	want = []string{"001-incorrect_network_config-198.51.100.66", "001-notes-203.0.113.10", "002-incorrect_network_config-198.18.77.77", "2023-backup-1.0", "2024-march-01", "notes.txt"}
	if got := dirs(); !slices.Equal(got, want) {
		t.Fatalf("after a second run the evidence directory holds %v, want %v", got, want)
	}
	if files, _ := os.ReadDir(filepath.Join(ev, want[0])); len(files) == 0 { // ours, rewritten
		t.Errorf("%s is empty", want[0])
	}
}

// TestEvidenceDirsOfEveryKindAreReplaced: for a finding of every kind, the
// directory writeEvidence makes is one a rerun replaces (attack findings'
// kind is network_attack, which a hand-written list of names once missed:
// the rerun's rename onto the old directory then failed).
func TestEvidenceDirsOfEveryKindAreReplaced(t *testing.T) {
	dir := t.TempDir()
	for _, addr := range []string{"203.0.113.10", "2001:db8:c::10"} {
		for _, k := range detect.Kinds {
			f := detect.Finding{Kind: k, Direction: detect.DirOut, InternalIP: netip.MustParseAddr(addr), Rule: string(k) + ".x"}
			for run := range 2 {
				if err := prepareEvidenceDir(dir); err != nil {
					t.Fatal(err)
				}
				if err := replaceEvidence(dir, []detect.Finding{f}); err != nil {
					t.Fatalf("%s %s, run %d: %v", k, addr, run+1, err)
				}
				if ents, _ := os.ReadDir(dir); len(ents) != 1 {
					t.Fatalf("%s %s, run %d: %d entries, want the one finding directory", k, addr, run+1, len(ents))
				}
			}
		}
	}
}

// TestAnalyzeEvidenceLosesNothing: when the evidence cannot be written (a
// file in the way of a finding's directory, as a full disk would), every
// finding is still printed, the error says why and the previous run's
// evidence stays; so it does when no input could be read at all (a
// mistyped file name).
func TestAnalyzeEvidenceLosesNothing(t *testing.T) {
	ev := filepath.Join(t.TempDir(), "ev")
	analyze := func(format string, files ...string) (string, string, error) {
		var out, errb bytes.Buffer
		args := []string{"--customers", "203.0.113.0/24,2001:db8:c::/64", "--format", format, "--evidence-dir", ev}
		for _, f := range files {
			args = append(args, filepath.Join(corpus, f))
		}
		err := cmdAnalyze(context.Background(), args, &out, &errb)
		return out.String(), errb.String(), err
	}
	listing := func() (names []string) {
		ents, _ := os.ReadDir(ev)
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	if _, stderr, err := analyze("json", "scan-nmap-syn.pcap"); err != nil {
		t.Fatalf("first run: %v\n%s", err, stderr)
	}
	before := listing()
	if !slices.Equal(before, []string{"001-netscan-203.0.113.10"}) {
		t.Fatalf("first run left %v", before)
	}
	// a file where the second finding's directory goes
	if err := os.WriteFile(filepath.Join(ev, "002-netscan-2001_db8_c__10"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	before = listing()
	for _, format := range []string{"json", "text"} {
		out, stderr, err := analyze(format, "scan-nmap-vertical.pcap", "scan-nmap-vertical-ipv6.pcap")
		if err == nil || !strings.Contains(err.Error(), "is in the way of finding 2") {
			t.Errorf("%s: error %v, want one naming what is in the way", format, err)
		}
		n := strings.Count(out, `"kind":"netscan"`)
		if format == "text" {
			n = strings.Count(out, "=== finding ")
		}
		if n != 2 || !strings.Contains(stderr, "2 findings") {
			t.Errorf("%s: %d findings printed, want 2; stderr %q", format, n, stderr)
		}
		if got := listing(); !slices.Equal(got, before) {
			t.Errorf("%s: evidence directory %v, want it left as %v", format, got, before)
		}
	}
	if _, _, err := analyze("json", "scan-nmap-syn.pcapX"); err == nil || !strings.Contains(err.Error(), "left as it was") {
		t.Errorf("unreadable input: error %v, want one saying the evidence was left", err)
	}
	if got := listing(); !slices.Equal(got, before) {
		t.Errorf("after an unreadable input the evidence directory holds %v, want %v", got, before)
	}
}

// TestAnalyzeExporterClockOff: the real softflowd export of the nmap scan,
// its capture times moved 10 minutes back, reads as a router whose clock
// runs 10 minutes fast: analyze says so, moves its record times onto the
// capture's clock (the finding 10 minutes earlier than in the original)
// and finds the same scan.
func TestAnalyzeExporterClockOff(t *testing.T) {
	src := filepath.Join(corpus, "scan-nmap-syn.netflow9.pcap")
	shifted := shiftedCopy(t, src, -10*time.Minute)
	run := func(file string) (detect.Finding, string) {
		var stdout, stderr bytes.Buffer
		if err := cmdAnalyze(context.Background(), []string{"--customers", "203.0.113.0/24", "--format", "json", file}, &stdout, &stderr); err != nil {
			t.Fatal(err, stderr.String())
		}
		var f detect.Finding
		if err := json.Unmarshal([]byte(strings.SplitN(stdout.String(), "\n", 2)[0]), &f); err != nil {
			t.Fatalf("%s: %v\n%s", file, err, stdout.String())
		}
		return f, stderr.String()
	}
	orig, origErr := run(src)
	got, msg := run(shifted)
	if strings.Contains(origErr, "clock") {
		t.Errorf("the original capture reported a clock: %s", origErr)
	}
	if !regexp.MustCompile(`exporter \S+: clock ahead of the capture by (9m59s|10m0s|10m1s) in \d+ datagrams`).MatchString(msg) {
		t.Errorf("stderr does not name the exporter's clock:\n%s", msg)
	}
	if got.Rule != orig.Rule || got.InternalIP != orig.InternalIP {
		t.Errorf("finding %s %s, want %s %s as in the original", got.Rule, got.InternalIP, orig.Rule, orig.InternalIP)
	}
	if d := orig.FirstSeen.Sub(got.FirstSeen); d < 10*time.Minute-time.Second || d > 10*time.Minute+time.Second {
		t.Errorf("first seen %s, the original's %s: want 10 minutes earlier", got.FirstSeen, orig.FirstSeen)
	}
}

// shiftedCopy writes a copy of the capture src with every packet's time
// moved by d and returns its path.
func shiftedCopy(t *testing.T, src string, d time.Duration) string {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	shifted := filepath.Join(t.TempDir(), "shifted-"+filepath.Base(src))
	out, err := os.Create(shifted)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(out)
	if err := w.WriteFileHeader(65536, r.LinkType()); err != nil {
		t.Fatal(err)
	}
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		ci.Timestamp = ci.Timestamp.Add(d)
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return shifted
}

// Two captures of one scanner analysed together: nmap's vertical scan
// began within answer_grace of its horizontal one, while that verdict was
// pending, and is reported too; and a scan whose verdict is pending when
// the next input continues minutes later is still reported (it was then
// re-evaluated at the later time, when its contacts had aged out).
func TestAnalyzeScansBackToBack(t *testing.T) {
	got := analyzeJSON(t, corpusBase, "scan-nmap-syn.pcap", "scan-nmap-vertical.pcap")
	want := []verdict{{"netscan", "out", "203.0.113.10", "netscan.horizontal", ""}, {"netscan", "out", "203.0.113.10", "netscan.vertical", ""}}
	if !slices.Equal(got, want) {
		t.Errorf("horizontal, then vertical scan: verdicts\n got %+v\nwant %+v", got, want)
	}
	later := shiftedCopy(t, filepath.Join(corpus, "benign-iperf.pcap"), 400*time.Second)
	got = analyzeJSON(t, corpusBase, "scan-nmap-syn.pcap", later)
	if want := want[:1]; !slices.Equal(got, want) {
		t.Errorf("scan, then traffic 400 s later: verdicts\n got %+v\nwant %+v", got, want)
	}
}
