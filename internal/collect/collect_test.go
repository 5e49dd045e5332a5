package collect

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

// fakeDecoder stands in for the NetFlow decoder in unit tests: a "v5"
// datagram with count N in bytes 2..3 yields N records; byte 4 = 0xEE makes
// it panic, 0xDD makes it fail as malformed, a v9 datagram with 0xCC is a
// template miss.
type fakeDecoder struct{}

func (fakeDecoder) Decode(exp netip.AddrPort, b []byte, now time.Time, sink flow.Sink) (int, error) {
	if len(b) < 5 {
		return 0, fmt.Errorf("fake: %w", decode.ErrTruncated)
	}
	switch b[4] {
	case 0xEE:
		var m map[string]int
		m["boom"]++ // nil map write: a real panic
	case 0xDD:
		return 0, fmt.Errorf("fake: %w", decode.ErrMalformed)
	case 0xCC:
		return 0, fmt.Errorf("fake: %w", decode.ErrNoTemplate)
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	var r flow.Record
	for i := range n {
		r = flow.Record{Format: flow.FormatNetFlow5, Exporter: exp.Addr(), SrcPort: uint16(i), Packets: 1, SamplingRate: 1}
		sink.Record(&r)
	}
	return n, nil
}

func v5(n int, tag byte) []byte {
	b := make([]byte, 24+48*n)
	binary.BigEndian.PutUint16(b, 5)
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	b[4] = tag
	return b
}

type countSink struct{ n atomic.Int64 }

func (s *countSink) Record(*flow.Record) { s.n.Add(1) }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startCollector starts a NetFlow listener on 127.0.0.1 (ephemeral port)
// and returns it with the address to send to.
func startCollector(t *testing.T, conf Configuration, deps Dependencies) (*Collector, *net.UDPAddr) {
	t.Helper()
	if deps.Logger == nil {
		deps.Logger = quietLogger()
	}
	c, err := New(conf, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	ls := c.Listeners()
	if len(ls) == 0 {
		t.Fatal("no listeners")
	}
	a, err := net.ResolveUDPAddr("udp", ls[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	return c, a
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func send(t *testing.T, to *net.UDPAddr, ds ...[]byte) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, d := range ds {
		if _, err := c.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestRecordsArriveAndCountersMove(t *testing.T) {
	sink := &countSink{}
	reg := prometheus.NewPedanticRegistry()
	conf := Configuration{NetFlow: "127.0.0.1:0", Sockets: 2, ReceiveBuffer: 1 << 20}
	c, addr := startCollector(t, conf, Dependencies{
		Decoders:   Decoders{NetFlow: func() decode.Decoder { return fakeDecoder{} }},
		Sink:       sink,
		Registerer: reg,
	})
	if n := len(c.Listeners()); n != 2 {
		t.Fatalf("%d sockets, want 2", n)
	}
	for _, l := range c.Listeners() {
		if l.ReceiveBuffer < 1<<20 { // the kernel reports twice the request
			t.Errorf("socket %d receive buffer %d, want >= 1 MiB", l.Socket, l.ReceiveBuffer)
		}
	}
	// Two exporters (source ports), 100 datagrams of 30 records each.
	var ds [][]byte
	for range 50 {
		ds = append(ds, v5(30, 0))
	}
	send(t, addr, ds...)
	send(t, addr, ds...)
	eventually(t, "3000 records", func() bool { return sink.n.Load() == 3000 })

	tot := c.Totals()
	if tot.Received != 100 || tot.Records[flow.FormatNetFlow5] != 3000 {
		t.Errorf("totals: received %d, netflow5 records %d; want 100, 3000", tot.Received, tot.Records[flow.FormatNetFlow5])
	}
	if got := sample(t, reg, "padlock_flow_records_decoded_total", "proto=netflow5"); got != 3000 {
		t.Errorf("padlock_flow_records_decoded_total{proto=netflow5} = %v, want 3000", got)
	}
	exps := c.Exporters()
	if len(exps) != 1 || exps[0].Exporter != netip.MustParseAddr("127.0.0.1") || exps[0].Datagrams != 100 || exps[0].Records != 3000 ||
		exps[0].Bytes != uint64(100*len(ds[0])) {
		t.Errorf("exporters = %+v", exps)
	}
	rec := httptest.NewRecorder()
	c.StatusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/collector", nil))
	var st struct {
		Listeners []ListenerStatus
		Exporters []struct {
			Exporter string
			Format   string
			Records  uint64
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("status %s: %v", rec.Body, err)
	}
	if len(st.Listeners) != 2 || len(st.Exporters) != 1 || st.Exporters[0].Exporter != "127.0.0.1" ||
		st.Exporters[0].Format != "netflow5" || st.Exporters[0].Records != 3000 {
		t.Errorf("status = %s", rec.Body)
	}
}

// sample returns the value of one metric sample with the given label values
// ("name=value"); the pedantic registry also checks the metrics' consistency.
func sample(t *testing.T, reg *prometheus.Registry, name string, labelValues ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for _, lv := range labelValues {
				k, v, _ := strings.Cut(lv, "=")
				if have[k] != v {
					continue next
				}
			}
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no sample %s%v", name, labelValues)
	return 0
}

func TestMalformedDatagramsCountedByCause(t *testing.T) {
	sink := &countSink{}
	reg := prometheus.NewPedanticRegistry()
	c, addr := startCollector(t, Configuration{NetFlow: "127.0.0.1:0", Sockets: 1, MaxDatagram: 1024}, Dependencies{
		Decoders:   Decoders{NetFlow: func() decode.Decoder { return fakeDecoder{} }},
		Sink:       sink,
		Registerer: reg,
	})
	nine := v5(1, 0xCC)
	binary.BigEndian.PutUint16(nine, 9)
	send(t, addr,
		[]byte{1, 2, 3},          // too short to have a version: unknown format
		[]byte("GET / HTTP/1.1"), // not an export at all
		v5(2, 0xDD),              // malformed
		v5(2, 0xEE),              // decoder panics
		nine,                     // template miss
		make([]byte, 2000),       // longer than max_datagram
		v5(3, 0),                 // and a good one after all that
	)
	eventually(t, "the good datagram's records", func() bool { return sink.n.Load() == 3 })
	eventually(t, "all 7 datagrams", func() bool { return c.Totals().Received == 7 })
	tot := c.Totals()
	for cause, want := range map[string]uint64{"version": 2, "malformed": 1, "panic": 1, "truncated": 0} {
		if got := tot.ErrorsBy(cause); got != want {
			t.Errorf("errors %s = %d, want %d", cause, got, want)
		}
	}
	for reason, want := range map[string]uint64{"decode_error": 3, "panic": 1, "no_template": 1, "truncated": 1} {
		if got := tot.DroppedBy(reason); got != want {
			t.Errorf("dropped %s = %d, want %d", reason, got, want)
		}
	}
	if tot.TemplateMisses[flow.FormatNetFlow9] != 1 {
		t.Errorf("template misses = %v", tot.TemplateMisses)
	}
	exp := sample(t, reg, "padlock_decode_errors_total", "proto=netflow5", "cause=panic")
	if exp != 1 {
		t.Errorf("padlock_decode_errors_total{proto=netflow5,cause=panic} = %v", exp)
	}
	if v := sample(t, reg, "padlock_flow_template_misses_total", "proto=netflow9"); v != 1 {
		t.Errorf("template misses metric = %v", v)
	}
	if v := sample(t, reg, "padlock_datagrams_dropped_total", "reason=truncated"); v != 1 {
		t.Errorf("truncated drops metric = %v", v)
	}
}

// blockingSink holds the socket goroutine until released, so the kernel's
// receive buffer overflows.
type blockingSink struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
	n       atomic.Int64
}

func (s *blockingSink) Record(*flow.Record) {
	s.once.Do(func() { close(s.entered); <-s.release })
	s.n.Add(1)
}

func TestSocketBufferOverflowCounted(t *testing.T) {
	sink := &blockingSink{entered: make(chan struct{}), release: make(chan struct{})}
	c, addr := startCollector(t, Configuration{NetFlow: "127.0.0.1:0", Sockets: 1, ReceiveBuffer: 4096, Batch: 1}, Dependencies{
		Decoders: Decoders{NetFlow: func() decode.Decoder { return fakeDecoder{} }},
		Sink:     sink,
	})
	conn := send(t, addr, v5(1, 0))
	<-sink.entered
	const n = 500
	for range n {
		if _, err := conn.Write(v5(10, 0)); err != nil {
			t.Fatal(err)
		}
	}
	close(sink.release)
	// The kernel attaches its drop count to datagrams queued after the
	// drops, so keep one more coming until the count shows.
	sent := n + 1
	eventually(t, "socket buffer drops", func() bool {
		if c.Totals().DroppedBy("socket_buffer") > 0 {
			return true
		}
		if _, err := conn.Write(v5(10, 0)); err != nil {
			t.Fatal(err)
		}
		sent++
		return false
	})
	eventually(t, "the queue drained", func() bool {
		tot := c.Totals()
		return tot.Received+tot.DroppedBy("socket_buffer") >= uint64(sent)
	})
	tot := c.Totals()
	if got := tot.Received + tot.DroppedBy("socket_buffer"); got != uint64(sent) {
		t.Errorf("received %d + dropped %d = %d, want %d sent", tot.Received, tot.DroppedBy("socket_buffer"), got, sent)
	}
	if tot.Received == uint64(sent) {
		t.Errorf("nothing was dropped by the kernel")
	}
}

func TestConfigurationValidate(t *testing.T) {
	for _, tc := range []struct {
		conf Configuration
		want string
	}{
		{Configuration{NetFlow: "localhost:2055"}, "netflow: listen address \"localhost:2055\": host must be an IP address"},
		{Configuration{SFlow: "6343"}, "sflow: listen address"},
		{Configuration{IPFIX: ":99999"}, "ipfix: listen address \":99999\": bad port"},
		{Configuration{Sockets: -1}, "sockets:"},
		{Configuration{MaxDatagram: 100}, "max_datagram:"},
		{Configuration{Capture: CaptureConfiguration{Snaplen: -1}}, "capture.snaplen:"},
	} {
		err := tc.conf.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.conf, err, tc.want)
		}
	}
	if err := DefaultConfiguration().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestStartFailsOnBusyPortAndClosesEverything(t *testing.T) {
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	c, err := New(Configuration{SFlow: "127.0.0.1:0", NetFlow: busy.LocalAddr().String(), Sockets: 1},
		Dependencies{Decoders: Decoders{NetFlow: func() decode.Decoder { return fakeDecoder{} }}, Sink: &countSink{}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "netflow listener") {
		t.Fatalf("Start = %v, want a netflow listener error", err)
	}
	if len(c.Listeners()) != 0 {
		t.Errorf("listeners left open: %v", c.Listeners())
	}
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
