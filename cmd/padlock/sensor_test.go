package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSensorFlagsTheScanner sends the NetFlow v9 export of a real nmap
// scan (softflowd) to an in-process sensor on loopback and expects the
// scanner flagged as netscan, a JSON finding on stdout, the records in the
// decoded counter and nothing bound but the given addresses.
func TestSensorFlagsTheScanner(t *testing.T) {
	base, nfPort, stdout, stderr := startSensor(t)
	sendCapture(t, nfPort, "127.0.0.1", "../../"+demoCaptureName)
	defer func() {
		if l := grepLines(stderr.String(), "two exporters"); l != "" {
			t.Errorf("one exporter taken for two: %s", l)
		}
	}()

	type flagged struct {
		Host       string `json:"host"`
		Rule       string `json:"rule"`
		DetailRule string `json:"detail_rule"`
	}
	var got []flagged
	waitUntil(t, 20*time.Second, "the scanner flagged", func() bool {
		res, err := http.Get(base + "/api/v1/flagged")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		got = nil
		json.NewDecoder(res.Body).Decode(&got)
		return len(got) > 0
	})
	if len(got) != 1 || got[0].Host != "203.0.113.10" || got[0].Rule != "netscan" {
		t.Fatalf("flagged %+v, want only 203.0.113.10 netscan", got)
	}
	if m := metricsOf(t, base); !strings.Contains(m, `padlock_flow_records_decoded_total{proto="netflow9"} 557`) {
		t.Errorf("decoded counter is not the capture's 557 records:\n%s", grepLines(m, "padlock_flow_records_decoded_total"))
	}
	var f struct {
		Kind       string `json:"kind"`
		InternalIP string `json:"internal_ip"`
	}
	line, _, _ := strings.Cut(stdout.String(), "\n")
	if err := json.Unmarshal([]byte(line), &f); err != nil || f.Kind != "netscan" || f.InternalIP != "203.0.113.10" {
		t.Errorf("stdout finding %q (%v)", line, err)
	}
	// Nothing but the given addresses is bound: the default sFlow port is free.
	if c, err := net.ListenPacket("udp", "127.0.0.1:6343"); err == nil {
		c.Close()
	} else if !strings.Contains(err.Error(), "permission") {
		t.Errorf("the sensor bound the default sFlow port although only --netflow-listen was given: %v", err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// startSensor runs `padlock sensor` in-process (customers
// 203.0.113.0/24) with NetFlow and HTTP on free loopback ports, until the
// test ends.
func startSensor(t *testing.T) (base string, nfPort int, stdout, stderr *syncBuffer) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "padlock.yaml")
	os.WriteFile(cfg, []byte("customers: [203.0.113.0/24]\n"), 0o644)
	nfPort, httpPort := freeUDP(t), freeTCP(t, "127.0.0.1")
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- cmdSensor(ctx, []string{"--config", cfg,
			"--netflow-listen", fmt.Sprintf("127.0.0.1:%d", nfPort),
			"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", httpPort)}, stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("sensor: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("sensor did not stop within 10 s of its context ending")
		}
	})
	base = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	waitUntil(t, 10*time.Second, "sensor listening", func() bool {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	})
	return base, nfPort, stdout, stderr
}

// sendCapture sends the NetFlow v9 datagrams of a capture of softflowd's
// export to the sensor from the loopback address from, as an exporter
// there would, with their export time set to now.
func sendCapture(t *testing.T, nfPort int, from, capture string) {
	data, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	grams, err := udpPayloads(data)
	if err != nil || len(grams) == 0 {
		t.Fatalf("capture: %d datagrams, %v", len(grams), err)
	}
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: nfPort})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	now := uint32(time.Now().Unix())
	for _, g := range grams {
		restampNetFlow9(g, now)
		conn.Write(g)
		time.Sleep(time.Millisecond)
	}
}

// TestSensorWarnsOfDuplicateExporters: the same softflowd export (of an
// hping3 SYN flood, 4,000 flows) arriving from two exporters (127.0.0.1
// and 127.0.0.2, as NetFlow from both ends of one link would) is counted
// twice by detection; the sensor says so in its log, naming both, and in
// padlock_ingest_duplicate_exporter_pairs.
func TestSensorWarnsOfDuplicateExporters(t *testing.T) {
	base, nfPort, _, stderr := startSensor(t)
	sendCapture(t, nfPort, "127.0.0.1", "../../testdata/captures/flood-syn.netflow9.pcap")
	sendCapture(t, nfPort, "127.0.0.2", "../../testdata/captures/flood-syn.netflow9.pcap")
	waitUntil(t, 15*time.Second, "the duplicate exporters reported", func() bool {
		return strings.Contains(stderr.String(), "two exporters export the same traffic")
	})
	line := grepLines(stderr.String(), "two exporters export the same traffic")
	if !strings.Contains(line, "127.0.0.1 127.0.0.2") {
		t.Errorf("the warning does not name both exporters: %s", line)
	}
	if m := metricsOf(t, base); !strings.Contains(m, "padlock_ingest_duplicate_exporter_pairs 1\n") {
		t.Errorf("metrics: %s", grepLines(m, "duplicate"))
	}
}

// metricsOf returns what the sensor's /metrics says.
func metricsOf(t *testing.T, base string) string {
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m bytes.Buffer
	m.ReadFrom(res.Body)
	return m.String()
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
