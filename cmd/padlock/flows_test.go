package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var updateFlows = flag.Bool("update", false, "rewrite the golden files under testdata/flows")

// captures are copies of the decoders' testdata (see testdata/flows/README.md),
// so that the golden output changes only when this command or a decoder does.
const captures = "testdata/flows/"

func runFlows(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = cmdFlows(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

// golden compares got with testdata/flows/NAME (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "flows", name)
	if *updateFlows {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, d)
	}
}

// TestFlowsGolden prints real captures, one per kind of source, as a table
// (golden, whole file) and as JSON (checked line by line; the first 8 lines
// golden).
func TestFlowsGolden(t *testing.T) {
	for _, tc := range []struct{ name, file string }{
		{"raw-packets", captures + "eth.pcap"},
		{"raw-packets-pcapng-gzip", captures + "eth.pcapng.gz"},
		{"netflow-export", captures + "netflow-export.pcap"},
		{"sflow-export", captures + "sflow-export.pcapng"},
		{"softflowd-v5", captures + "softflowd-v5.pcap"},
		{"softflowd-v9", captures + "softflowd-v9.pcap"},
		{"softflowd-ipfix", captures + "softflowd-ipfix.pcap"},
		{"pmacct-sflow", captures + "pmacct-sfprobe.pcap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runFlows(t, tc.file)
			if err != nil {
				t.Fatalf("flows %s: %v\n%s", tc.file, err, errOut)
			}
			if strings.Count(out, "\n") < 2 {
				t.Fatalf("no records printed:\n%s", out)
			}
			golden(t, tc.name+".table", out+"--- stderr ---\n"+errOut)
			jout, _, err := runFlows(t, "--format", "json", tc.file)
			if err != nil {
				t.Fatal(err)
			}
			checkJSONLines(t, jout)
			if strings.Count(jout, "\n") != strings.Count(out, "\n")-1 { // the table has a header
				t.Errorf("%d JSON lines, %d table lines", strings.Count(jout, "\n"), strings.Count(out, "\n")-1)
			}
			jout, _, err = runFlows(t, "--format", "json", "--limit", "8", tc.file)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".json", jout)
		})
	}
}

// checkJSONLines checks that every line is one object with the record's
// field names, addresses as strings and RFC 3339 times.
func checkJSONLines(t *testing.T, out string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	n, addrs := 0, 0
	for sc.Scan() {
		n++
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v: %s", n, err, sc.Text())
		}
		for _, k := range []string{"start", "end", "format", "exporter", "src_addr", "dst_addr", "proto", "packets", "bytes", "sampling_rate"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("line %d has no %q: %s", n, k, sc.Text())
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, m["start"].(string)); err != nil {
			t.Fatalf("line %d: start: %v", n, err)
		}
		s, ok := m["src_addr"].(string) // "" for non-IP packets (ARP)
		if !ok {
			t.Fatalf("line %d: src_addr %v is not a string", n, m["src_addr"])
		}
		if s != "" {
			addrs++
		}
	}
	if n == 0 || addrs == 0 {
		t.Fatalf("%d JSON lines, %d with addresses", n, addrs)
	}
}

func TestFlowsLimitAndSeveralFiles(t *testing.T) {
	out, errOut, err := runFlows(t, "--limit", "5", captures+"softflowd-v9.pcap", captures+"eth.pcap")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "\n"); n != 6 { // header + 5
		t.Errorf("%d lines with --limit 5, want header + 5:\n%s", n, out)
	}
	if !strings.Contains(errOut, "5 records (--limit 5 reached)") {
		t.Errorf("summary does not say the limit was reached:\n%s", errOut)
	}
	out, _, err = runFlows(t, "--format", "json", captures+"softflowd-v5.pcap", captures+"softflowd-ipfix.pcap")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"format":"netflow5"`) || !strings.Contains(out, `"format":"ipfix"`) {
		t.Errorf("records of both files expected")
	}
}

// TestFlowsTruncatedFile: the records before the damage are printed, then
// an error naming the file and the offset.
func TestFlowsTruncatedFile(t *testing.T) {
	src, err := os.ReadFile(captures + "softflowd-v9.pcap")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(path, src[:len(src)-100], 0o644); err != nil {
		t.Fatal(err)
	}
	full, _, err := runFlows(t, captures+"softflowd-v9.pcap")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runFlows(t, path)
	if err == nil {
		t.Fatal("no error for a truncated file")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "offset") {
		t.Errorf("error %q does not name the file and the offset", err)
	}
	if n := strings.Count(out, "\n"); n < 2 || n >= strings.Count(full, "\n") {
		t.Errorf("printed %d lines of the cut file, the whole file has %d; want what could be read", n, strings.Count(full, "\n"))
	}
	if !strings.Contains(errOut, "1 file(s) with errors") {
		t.Errorf("summary does not list the error:\n%s", errOut)
	}

	var ue usageError
	if _, _, err := runFlows(t, captures+"truncated.pcap"); err == nil || errors.As(err, &ue) {
		t.Errorf("truncated.pcap: err = %v, want a (non-usage) error", err)
	}
	if _, _, err := runFlows(t, filepath.Join(t.TempDir(), "missing.pcap")); err == nil || !strings.Contains(err.Error(), "missing.pcap") {
		t.Errorf("missing file: %v", err)
	}
}

func TestFlowsUsage(t *testing.T) {
	var ue usageError
	for _, args := range [][]string{{}, {"--format", "xml", "x.pcap"}, {"--limit", "-1", "x.pcap"}} {
		if _, _, err := runFlows(t, args...); !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	if code := run([]string{"flows"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Errorf("exit status %d without files, want 2", code)
	}
}
