package collect

import (
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

// Causes a decode can fail for, as metric label values: decode.Cause's
// values plus "panic" (a decoder panicked; recovered and counted).
var causes = [...]string{"truncated", "version", "malformed", "no_template", "template_limit", "other", "panic"}

const (
	causeNoTemplate = 3
	causePanic      = 6
)

func causeIndex(err error) int {
	if errors.Is(err, errPanic) {
		return causePanic
	}
	c := decode.Cause(err)
	for i, s := range causes {
		if s == c {
			return i
		}
	}
	return 5 // other
}

// Reasons a datagram (or captured packet) is dropped without records.
var dropReasons = [...]string{"socket_buffer", "truncated", "decode_error", "no_template", "panic"}

const (
	dropSocketBuffer = iota
	dropTruncated
	dropDecodeError
	dropNoTemplate
	dropPanic
)

const numFormats = int(flow.FormatPcap) + 1

// expKey identifies one exporter's traffic in one format.
type expKey struct {
	addr   netip.Addr
	format flow.Format
}

// expStats are the counters of one exporter and format on one socket. Only
// the socket's goroutine writes them; readers use the atomics.
type expStats struct {
	key            expKey
	datagrams      atomic.Uint64
	records        atomic.Uint64
	bytes          atomic.Uint64
	templateMisses atomic.Uint64
	dropped        atomic.Uint64
	errors         [len(causes)]atomic.Uint64
	lastSeen       atomic.Int64  // unix nanoseconds
	clockCorrected atomic.Uint64 // datagrams whose record times were moved (max_clock_skew)
	clockAhead     atomic.Int64  // ns the exporter's clock was ahead at the last correction
	clockAt        atomic.Int64  // unix ns of the last correction
	clockLogNext   int64         // unix ns; worker goroutine only
	clockLogged    uint64        // clockCorrected when last logged; worker goroutine only
}

// ExporterStatus is what one exporter sent in one format, summed over the
// sockets. It is the per-exporter view the metrics deliberately do not have
// (no IP addresses as metric labels).
type ExporterStatus struct {
	Exporter       netip.Addr        `json:"exporter"` // the zero address collects exporters beyond max_exporters
	Format         flow.Format       `json:"format"`
	Datagrams      uint64            `json:"datagrams"`
	Records        uint64            `json:"records"`
	Bytes          uint64            `json:"bytes"`
	TemplateMisses uint64            `json:"template_misses"`
	Dropped        uint64            `json:"dropped"`
	Errors         map[string]uint64 `json:"errors,omitempty"` // by cause
	LastSeen       time.Time         `json:"last_seen"`
	// ClockCorrected counts the datagrams whose export header clock was
	// more than max_clock_skew off the collector's; their record times
	// were moved onto the collector's clock. ClockAheadSeconds is how far
	// ahead (negative: behind) the exporter's clock was the last time.
	ClockCorrected    uint64  `json:"clock_corrected,omitempty"`
	ClockAheadSeconds float64 `json:"clock_ahead_seconds,omitempty"`
}

// Exporters returns the per-exporter counters, sorted by exporter and format.
func (c *Collector) Exporters() []ExporterStatus {
	merged := map[expKey]*ExporterStatus{}
	clockAt := map[expKey]int64{} // of the ClockAheadSeconds taken
	for _, w := range c.workers() {
		w.mu.Lock()
		for k, s := range w.exp {
			e := merged[k]
			if e == nil {
				e = &ExporterStatus{Exporter: k.addr, Format: k.format}
				merged[k] = e
			}
			e.Datagrams += s.datagrams.Load()
			e.Records += s.records.Load()
			e.Bytes += s.bytes.Load()
			e.TemplateMisses += s.templateMisses.Load()
			e.Dropped += s.dropped.Load()
			for i := range s.errors {
				if v := s.errors[i].Load(); v > 0 {
					if e.Errors == nil {
						e.Errors = map[string]uint64{}
					}
					e.Errors[causes[i]] += v
				}
			}
			if t := time.Unix(0, s.lastSeen.Load()); t.After(e.LastSeen) {
				e.LastSeen = t
			}
			if n := s.clockCorrected.Load(); n > 0 {
				e.ClockCorrected += n
				if at := s.clockAt.Load(); at > clockAt[k] {
					clockAt[k] = at
					e.ClockAheadSeconds = time.Duration(s.clockAhead.Load()).Seconds()
				}
			}
		}
		w.mu.Unlock()
	}
	out := make([]ExporterStatus, 0, len(merged))
	for _, e := range merged {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b ExporterStatus) int {
		if c := a.Exporter.Compare(b.Exporter); c != 0 {
			return c
		}
		return cmp.Compare(a.Format, b.Format)
	})
	return out
}

// Totals are the collector-wide counters (what the metrics export).
type Totals struct {
	Received       uint64                          // datagrams / captured packets read
	Records        [numFormats]uint64              // records handed to the sink, by flow.Format
	Bytes          [numFormats]uint64              // payload bytes, by format
	TemplateMisses [numFormats]uint64              // datagrams with data for an unknown template
	ClockCorrected [numFormats]uint64              // datagrams whose record times were moved onto the collector's clock
	Errors         [numFormats][len(causes)]uint64 // decode errors by format and cause
	Dropped        [len(dropReasons)]uint64        // by reason
}

// RecordsTotal is the number of records handed to the sink, all formats.
func (t Totals) RecordsTotal() uint64 {
	var s uint64
	for _, v := range t.Records {
		s += v
	}
	return s
}

// DroppedBy returns the drops for one reason ("socket_buffer", "truncated",
// "decode_error", "no_template", "panic").
func (t Totals) DroppedBy(reason string) uint64 {
	for i, r := range dropReasons {
		if r == reason {
			return t.Dropped[i]
		}
	}
	return 0
}

// ErrorsBy returns the decode errors of one cause over all formats.
func (t Totals) ErrorsBy(cause string) uint64 {
	var s uint64
	for i, c := range causes {
		if c == cause {
			for f := range t.Errors {
				s += t.Errors[f][i]
			}
		}
	}
	return s
}

// Totals sums the counters of all sockets.
func (c *Collector) Totals() Totals {
	var t Totals
	for _, w := range c.workers() {
		t.Received += w.received.Load()
		for i := range w.dropped {
			t.Dropped[i] += w.dropped[i].Load()
		}
		w.mu.Lock()
		for k, s := range w.exp {
			f := int(k.format)
			t.Records[f] += s.records.Load()
			t.Bytes[f] += s.bytes.Load()
			t.TemplateMisses[f] += s.templateMisses.Load()
			t.ClockCorrected[f] += s.clockCorrected.Load()
			for i := range s.errors {
				t.Errors[f][i] += s.errors[i].Load()
			}
		}
		w.mu.Unlock()
	}
	return t
}

func (c *Collector) workers() []*worker {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*worker(nil), c.work...)
}

// metrics is a prometheus.Collector reading the per-socket atomics at
// scrape time, so the hot path never touches a shared counter.
type metrics struct {
	c                                              *Collector
	records, received, dropped, errors, misses, by *prometheus.Desc
	rcvbuf, exporters, clock                       *prometheus.Desc
}

func newMetrics(c *Collector) *metrics {
	return &metrics{
		c: c,
		records: prometheus.NewDesc("padlock_flow_records_decoded_total",
			"Flow records (sFlow: flow samples, capture: packets) decoded and handed to detection.", []string{"proto"}, nil),
		received: prometheus.NewDesc("padlock_datagrams_received_total",
			"Datagrams (capture: packets) read from the collector's sockets.", []string{"listener"}, nil),
		dropped: prometheus.NewDesc("padlock_datagrams_dropped_total",
			"Datagrams lost without records: socket_buffer (kernel receive buffer full), truncated (longer than max_datagram), decode_error, no_template, panic.", []string{"reason"}, nil),
		errors: prometheus.NewDesc("padlock_decode_errors_total",
			"Datagrams whose decoding failed (in part), by format and cause; template misses are counted separately.", []string{"proto", "cause"}, nil),
		misses: prometheus.NewDesc("padlock_flow_template_misses_total",
			"NetFlow v9/IPFIX datagrams with data records for a template not (yet) received.", []string{"proto"}, nil),
		clock: prometheus.NewDesc("padlock_flow_clock_corrected_total",
			"NetFlow/IPFIX datagrams whose export header time was more than collect.max_clock_skew from the time they were received (exporter clock wrong); the record times they carry were moved onto the collector's clock. Template-only datagrams count too.", []string{"proto"}, nil),
		by: prometheus.NewDesc("padlock_collect_bytes_received_total",
			"Payload bytes of the datagrams received, by format.", []string{"proto"}, nil),
		rcvbuf: prometheus.NewDesc("padlock_collect_receive_buffer_bytes",
			"Receive buffer the kernel granted, summed over the sockets of a listener.", []string{"listener"}, nil),
		exporters: prometheus.NewDesc("padlock_collect_exporters",
			"Exporter and format pairs seen (summed over sockets).", nil, nil),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.records, m.received, m.dropped, m.errors, m.misses, m.by, m.rcvbuf, m.exporters, m.clock} {
		ch <- d
	}
}

// metricFormats are the formats always exported (zero until seen).
var metricFormats = []flow.Format{flow.FormatNetFlow5, flow.FormatNetFlow9, flow.FormatIPFIX, flow.FormatSFlow5}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	t := m.c.Totals()
	for f := range numFormats {
		ff := flow.Format(f)
		if t.Records[f] == 0 && t.Bytes[f] == 0 && !slices.Contains(metricFormats, ff) {
			continue
		}
		name := ff.String()
		ch <- prometheus.MustNewConstMetric(m.records, prometheus.CounterValue, float64(t.Records[f]), name)
		ch <- prometheus.MustNewConstMetric(m.by, prometheus.CounterValue, float64(t.Bytes[f]), name)
		if ff == flow.FormatNetFlow9 || ff == flow.FormatIPFIX {
			ch <- prometheus.MustNewConstMetric(m.misses, prometheus.CounterValue, float64(t.TemplateMisses[f]), name)
		}
		if ff == flow.FormatNetFlow5 || ff == flow.FormatNetFlow9 || ff == flow.FormatIPFIX {
			ch <- prometheus.MustNewConstMetric(m.clock, prometheus.CounterValue, float64(t.ClockCorrected[f]), name)
		}
		for i, c := range causes {
			if i == causeNoTemplate || (t.Errors[f][i] == 0 && f == int(flow.FormatUnknown)) {
				continue
			}
			ch <- prometheus.MustNewConstMetric(m.errors, prometheus.CounterValue, float64(t.Errors[f][i]), name, c)
		}
	}
	for i, r := range dropReasons {
		ch <- prometheus.MustNewConstMetric(m.dropped, prometheus.CounterValue, float64(t.Dropped[i]), r)
	}
	recv := map[string]uint64{}
	bufs := map[string]int{}
	exp := map[expKey]bool{}
	for _, w := range m.c.workers() {
		recv[w.name] += w.received.Load()
		bufs[w.name] += w.rcvbuf
		w.mu.Lock()
		for k := range w.exp {
			exp[k] = true
		}
		w.mu.Unlock()
	}
	for n, v := range recv {
		ch <- prometheus.MustNewConstMetric(m.received, prometheus.CounterValue, float64(v), n)
		ch <- prometheus.MustNewConstMetric(m.rcvbuf, prometheus.GaugeValue, float64(bufs[n]), n)
	}
	ch <- prometheus.MustNewConstMetric(m.exporters, prometheus.GaugeValue, float64(len(exp)))
}

// statsFor returns the counters of one exporter and format, creating them
// (bounded by max_exporters) on first sight. Only the worker's goroutine
// calls it.
func (w *worker) statsFor(addr netip.Addr, f flow.Format) *expStats {
	k := expKey{addr, f}
	if w.last != nil && w.last.key == k {
		return w.last
	}
	w.mu.Lock()
	s := w.exp[k]
	if s == nil {
		if len(w.exp) >= w.maxExp {
			k.addr = netip.Addr{}
			s = w.exp[k]
		}
		if s == nil {
			s = &expStats{key: k}
			w.exp[k] = s
		}
	}
	w.mu.Unlock()
	w.last = s
	return s
}

// worker is one socket's goroutine state.
type worker struct {
	c       *Collector
	id      int
	name    string // listener name
	addr    string
	rcvbuf  int
	sink    flow.Sink
	batcher flow.Batcher // sink, when it is this worker's own and a flow.Batcher
	netflow decode.Decoder
	sflow   decode.Decoder
	maxExp  int

	received atomic.Uint64
	dropped  [len(dropReasons)]atomic.Uint64

	mu   sync.Mutex // guards exp (the map, not the counters)
	exp  map[expKey]*expStats
	last *expStats

	logNext       time.Time
	logSuppressed int

	// set by the NetFlow decoder's clock report during a Decode call
	clockSkewed bool
	clockAhead  time.Duration
}

// newWorker registers a worker; the caller holds c.mu.
func (c *Collector) newWorker(name, addr string, rcvbuf int) *worker {
	w := &worker{c: c, id: len(c.work), name: name, addr: addr, rcvbuf: rcvbuf, maxExp: c.conf.MaxExporters, exp: map[expKey]*expStats{}}
	if c.deps.NewSink != nil {
		w.sink = c.deps.NewSink(w.id)
		// a sink of its own: it may hold the sink for a whole datagram
		w.batcher, _ = w.sink.(flow.Batcher)
	} else {
		w.sink = c.deps.Sink
	}
	if c.deps.Decoders.NetFlow != nil {
		w.netflow = c.deps.Decoders.NetFlow()
		if cc, ok := w.netflow.(decode.ClockChecker); ok {
			cc.CheckClock(c.conf.MaxClockSkew, w.clockReport)
		}
	}
	if c.deps.Decoders.SFlow != nil {
		w.sflow = c.deps.Decoders.SFlow()
	}
	c.work = append(c.work, w)
	return w
}

// StatusHandler serves the per-exporter counters and the open sockets as
// JSON ({"listeners":[...],"exporters":[...]}), for the metrics listener
// (e.g. GET /api/v1/collector).
func (c *Collector) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Listeners []ListenerStatus `json:"listeners"`
			Exporters []ExporterStatus `json:"exporters"`
		}{c.Listeners(), c.Exporters()})
	})
}
