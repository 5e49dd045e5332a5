package netflow

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"padlock/internal/flow"
)

// TestFlowgen decodes what the shared load generator (../shared/bench/flowgen)
// sends, for every NetFlow format. It is opt-in: FLOWGEN=/path/to/flowgen.
func TestFlowgen(t *testing.T) {
	bin := os.Getenv("FLOWGEN")
	if bin == "" {
		t.Skip("set FLOWGEN to a flowgen binary to run")
	}
	for _, proto := range []string{"netflow5", "netflow9", "ipfix"} {
		t.Run(proto, func(t *testing.T) {
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetReadBuffer(8 << 20)
			port := conn.LocalAddr().(*net.UDPAddr).Port
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-proto", proto, "-port", strconv.Itoa(port), "-rate", "30000",
				"-duration", "1s", "-sampling", "1000", "-workers", "2")
			done := make(chan []byte, 1)
			go func() { out, _ := cmd.Output(); done <- out }()

			d := New(Configuration{})
			var sink countSink
			flooded, sampled := 0, 0
			check := flowgenCheck{sink: &sink, flood: &flooded, sampled: &sampled}
			buf := make([]byte, 65536)
			var out []byte
			for out == nil {
				select {
				case out = <-done:
				default:
				}
				conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				n, src, err := conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					continue
				}
				if _, err := d.Decode(src, buf[:n], time.Now(), &check); err != nil {
					t.Fatalf("decode: %v", err)
				}
			}
			for { // drain
				conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				n, src, err := conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					break
				}
				if _, err := d.Decode(src, buf[:n], time.Now(), &check); err != nil {
					t.Fatalf("decode: %v", err)
				}
			}
			var res struct {
				RecordsSent int `json:"records_sent"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("flowgen output %q: %v", out, err)
			}
			if sink.n != res.RecordsSent || sink.n == 0 {
				t.Errorf("decoded %d records, flowgen sent %d", sink.n, res.RecordsSent)
			}
			if sampled != sink.n || flooded == 0 {
				t.Errorf("%d of %d records with sampling 1000, %d flood records", sampled, sink.n, flooded)
			}
			t.Logf("%d records, %d to the flood target", sink.n, flooded)
		})
	}
}

var floodTarget = netip.MustParseAddr("198.51.100.77")

type flowgenCheck struct {
	sink           *countSink
	flood, sampled *int
}

func (c *flowgenCheck) Record(r *flow.Record) {
	c.sink.Record(r)
	if r.DstAddr == floodTarget && r.DstPort == 80 && r.Proto == flow.ProtoUDP {
		*c.flood++
	}
	if r.SamplingRate == 1000 && r.Packets == 1000*r.SampledPackets {
		*c.sampled++
	}
}
