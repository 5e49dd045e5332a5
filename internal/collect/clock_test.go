package collect

import (
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/decode"
	"padlock/internal/decode/netflow"
	"padlock/internal/flow"
)

// fixedClock is the collector's clock in tests: every datagram is received
// at the same instant.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// v5At is a NetFlow v5 datagram exported at secs whose one record ran from
// 10 s to 0.5 s before the export (sysUptime 100 s).
func v5At(secs int64) []byte {
	b := make([]byte, 24+48)
	be := binary.BigEndian
	be.PutUint16(b, 5)
	be.PutUint16(b[2:], 1)
	be.PutUint32(b[4:], 100_000)
	be.PutUint32(b[8:], uint32(secs))
	r := b[24:]
	copy(r, []byte{203, 0, 113, 10, 198, 51, 100, 7})
	be.PutUint32(r[16:], 10) // packets
	be.PutUint32(r[20:], 600)
	be.PutUint32(r[24:], 90_000) // first
	be.PutUint32(r[28:], 99_500) // last
	r[38] = flow.ProtoUDP
	return b
}

// timeSink keeps the times of the records by exporter.
type timeSink struct {
	mu   sync.Mutex
	recs map[netip.Addr][][2]time.Time
}

func (s *timeSink) Record(r *flow.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[r.Exporter] = append(s.recs[r.Exporter], [2]time.Time{r.Start, r.End})
}

func (s *timeSink) of(a netip.Addr) [][2]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][2]time.Time(nil), s.recs[a]...)
}

// A router whose clock runs 10 minutes fast exports next to one on time:
// with max_clock_skew its records land on the collector's timeline like the
// other's, the datagrams are counted per exporter and in the metric, and the
// exporter is logged once; with 0 its times stay as sent.
func TestExporterClockCorrected(t *testing.T) {
	now := time.Unix(1_795_617_423, 0)
	fast := netip.MustParseAddr("127.0.0.5")
	onTime := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		name    string
		maxSkew time.Duration
		moved   bool
	}{{"corrected", 10 * time.Second, true}, {"check off", 0, false}} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &timeSink{recs: map[netip.Addr][][2]time.Time{}}
			reg := prometheus.NewPedanticRegistry()
			logs := &lockedBuffer{}
			c, addr := startCollector(t, Configuration{NetFlow: "127.0.0.1:0", Sockets: 1, MaxClockSkew: tc.maxSkew}, Dependencies{
				Decoders:   Decoders{NetFlow: func() decode.Decoder { return netflow.New(netflow.Configuration{}) }},
				Sink:       sink,
				Registerer: reg,
				Logger:     slog.New(slog.NewTextHandler(logs, nil)),
				Clock:      fixedClock{now},
			})
			conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: fast.AsSlice()}, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for range 3 {
				if _, err := conn.Write(v5At(now.Unix() + 600)); err != nil {
					t.Fatal(err)
				}
			}
			send(t, addr, v5At(now.Unix()))
			eventually(t, "4 records", func() bool { return len(sink.of(fast)) == 3 && len(sink.of(onTime)) == 1 })

			want := [2]time.Time{now.Add(-10 * time.Second).UTC(), now.Add(-500 * time.Millisecond).UTC()}
			if got := sink.of(onTime)[0]; got != want {
				t.Errorf("on-time exporter's record %v, want %v", got, want)
			}
			wantFast := want
			if !tc.moved {
				wantFast = [2]time.Time{want[0].Add(600 * time.Second), want[1].Add(600 * time.Second)}
			}
			for i, got := range sink.of(fast) {
				if got != wantFast {
					t.Errorf("fast exporter's record %d: %v, want %v", i, got, wantFast)
				}
			}

			var corrected uint64
			if tc.moved {
				corrected = 3
			}
			for _, e := range c.Exporters() {
				switch e.Exporter {
				case fast:
					if e.ClockCorrected != corrected || (tc.moved && e.ClockAheadSeconds != 600) {
						t.Errorf("fast exporter: clock corrected %d, %v s ahead; want %d", e.ClockCorrected, e.ClockAheadSeconds, corrected)
					}
				case onTime:
					if e.ClockCorrected != 0 || e.ClockAheadSeconds != 0 {
						t.Errorf("on-time exporter: clock corrected %d, %v s ahead", e.ClockCorrected, e.ClockAheadSeconds)
					}
				}
			}
			if got := c.Totals().ClockCorrected[flow.FormatNetFlow5]; got != corrected {
				t.Errorf("Totals.ClockCorrected = %d, want %d", got, corrected)
			}
			if v := sample(t, reg, "padlock_flow_clock_corrected_total", "proto=netflow5"); v != float64(corrected) {
				t.Errorf("padlock_flow_clock_corrected_total{proto=netflow5} = %v, want %d", v, corrected)
			}
			logged := strings.Count(logs.String(), "exporter 127.0.0.5 clock 600 s ahead of the collector; its record times are corrected")
			if tc.moved && logged != 1 || !tc.moved && logged != 0 {
				t.Errorf("clock logged %d times:\n%s", logged, logs)
			}
			if strings.Contains(logs.String(), "127.0.0.1 clock") {
				t.Errorf("on-time exporter logged:\n%s", logs)
			}
		})
	}
}

func TestMaxClockSkewValidated(t *testing.T) {
	for _, tc := range []struct {
		d  time.Duration
		ok bool
	}{{0, true}, {2 * time.Second, true}, {10 * time.Minute, true}, {time.Second, false}, {-time.Second, false}} {
		err := Configuration{MaxClockSkew: tc.d}.Validate()
		if tc.ok != (err == nil) || err != nil && !strings.HasPrefix(err.Error(), "max_clock_skew: ") {
			t.Errorf("max_clock_skew %v: %v", tc.d, err)
		}
	}
	if d := DefaultConfiguration().MaxClockSkew; d != 10*time.Second {
		t.Errorf("default max_clock_skew %v", d)
	}
}
