// Package ingest feeds the detection engine from the collector: it owns the
// per-collector-goroutine sinks that batch records, the bounded queue to
// the engine's one goroutine (a full queue drops the batch and counts it —
// never silently), the engine's expiry tick, the per-exporter sampling-rate
// watch, and the hand-over of findings on a channel that blocks rather than
// drops. `padlock serve` (through internal/pipeline) and `padlock sensor`
// both run on it. It imports flow and detect; it must not import
// collectors, decoders, policy, locks or storage.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/detect"
	"padlock/internal/flow"
)

// Configuration of the ingest path (keys of the `pipeline:` section).
type Configuration struct {
	// Queue is the number of record batches that may wait for the engine;
	// beyond it batches are dropped and counted. Default 1024.
	Queue int `yaml:"queue"`
	// Batch is the number of records per batch. Default 256.
	Batch int `yaml:"batch"`
	// FlushInterval hands partial batches to the engine. Default 50ms.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// ExpireInterval ages engine state and confirms pending verdicts while
	// no records arrive. Default 1s.
	ExpireInterval time.Duration `yaml:"expire_interval"`
}

// DefaultConfiguration returns the defaults.
func DefaultConfiguration() Configuration {
	return Configuration{Queue: 1024, Batch: 256, FlushInterval: 50 * time.Millisecond, ExpireInterval: time.Second}
}

// Validate reports the first bad value, naming its key.
func (c Configuration) Validate() error {
	switch {
	case c.Queue < 1:
		return errors.New("queue: must be >= 1")
	case c.Batch < 1:
		return errors.New("batch: must be >= 1")
	case c.FlushInterval <= 0:
		return errors.New("flush_interval: must be > 0")
	case c.ExpireInterval <= 0:
		return errors.New("expire_interval: must be > 0")
	}
	return nil
}

// Dependencies of the ingest path.
type Dependencies struct {
	Detect    detect.Configuration
	Networks  detect.Networks // required
	Protected []netip.Prefix
	// OnSamplingChange is called (from a collector goroutine) when an
	// exporter's sampling rate differs from the one it sent before.
	OnSamplingChange func(r *flow.Record, old uint32)
	Clock            func() time.Time // nil: time.Now (engine expiry only)
	Logger           *slog.Logger
	Registerer       prometheus.Registerer
}

// Ingest is the collector → engine path.
type Ingest struct {
	conf  Configuration
	deps  Dependencies
	now   func() time.Time
	log   *slog.Logger
	eng   *detect.Engine
	batch chan []flow.Record
	// free recycles worked-off batches to the sinks, so steady-state
	// ingestion allocates (and the GC clears and scans) no new batches.
	free  chan []flow.Record
	found chan detect.Finding

	mu                sync.Mutex
	sinks             []*sink
	pending           []detect.Finding // engine goroutine only
	stopping, stopped atomic.Bool
	cancel            context.CancelFunc
	wg                sync.WaitGroup

	records, dropped prometheus.Counter
	findings         *prometheus.CounterVec

	dups *duplicates // engine goroutine only (but its count)
}

// New builds the ingest path and its detection engine. It does no I/O.
func New(conf Configuration, deps Dependencies) (*Ingest, error) {
	if err := conf.Validate(); err != nil {
		return nil, err
	}
	if deps.Networks == nil {
		return nil, errors.New("ingest: networks are required")
	}
	in := &Ingest{conf: conf, deps: deps, now: deps.Clock, log: deps.Logger,
		batch: make(chan []flow.Record, conf.Queue), free: make(chan []flow.Record, conf.Queue+64),
		found: make(chan detect.Finding, 1024), dups: newDuplicates()}
	if in.now == nil {
		in.now = time.Now
	}
	if in.log == nil {
		in.log = slog.Default()
	}
	eng, err := detect.New(deps.Detect, detect.Dependencies{
		Networks:   deps.Networks,
		Protected:  deps.Protected,
		OnFinding:  func(f detect.Finding) { in.pending = append(in.pending, f) },
		Registerer: deps.Registerer,
	})
	if err != nil {
		return nil, err
	}
	in.eng = eng
	in.records = prometheus.NewCounter(prometheus.CounterOpts{Name: "padlock_ingest_records_total",
		Help: "Records the collector handed to detection."})
	in.dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "padlock_ingest_dropped_records_total",
		Help: "Records dropped because the engine queue was full (or detection stopped)."})
	in.findings = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "padlock_ingest_findings_total",
		Help: "Findings the engine reported, by kind."}, []string{"kind"})
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "padlock_ingest_queue_batches",
		Help: "Record batches waiting for the engine."}, func() float64 { return float64(len(in.batch)) })
	dupPairs := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "padlock_ingest_duplicate_exporter_pairs",
		Help: "Exporter pairs found exporting the same traffic in the last 10 to 20 minutes (the log names them): detection counts it twice."},
		func() float64 { return float64(in.dups.count.Load()) })
	if r := deps.Registerer; r != nil {
		for _, c := range []prometheus.Collector{in.records, in.dropped, in.findings, queue, dupPairs} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("ingest: metrics: %w", err)
			}
		}
	}
	return in, nil
}

// Findings delivers the engine's findings in order; it is closed after Stop
// once the queue is worked off.
func (in *Ingest) Findings() <-chan detect.Finding { return in.found }

// Queued is the number of batches waiting for the engine.
func (in *Ingest) Queued() int { return len(in.batch) }

// Start starts the engine and the flusher.
func (in *Ingest) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	in.cancel = cancel
	in.wg.Add(2)
	go in.runEngine(ctx)
	go in.runFlusher(ctx)
	return nil
}

// Stop stops taking records and lets the engine finish the queue (or gives
// up when ctx ends). Findings is closed afterwards.
func (in *Ingest) Stop(ctx context.Context) error {
	if in.cancel == nil || in.stopping.Swap(true) {
		return nil
	}
	in.flushAll() // partial batches still reach the engine
	in.stopped.Store(true)
	in.cancel()
	done := make(chan struct{})
	go func() { in.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sink returns a sink safe for concurrent use (for tests and replay).
func (in *Ingest) Sink() flow.Sink { return in.NewSink(-1) }

// NewSink returns the sink of one collector goroutine (collect's NewSink).
func (in *Ingest) NewSink(int) flow.Sink {
	s := &sink{in: in, buf: in.newBatch(), sampling: map[exporterKey]uint32{}}
	in.mu.Lock()
	in.sinks = append(in.sinks, s)
	in.mu.Unlock()
	return s
}

type exporterKey struct {
	exporter netip.Addr
	domain   uint32
	format   flow.Format
	inIf     uint32
}

// maxSamplingKeys bounds the sampling-rate table of one sink.
const maxSamplingKeys = 65536

type sink struct {
	in       *Ingest
	mu       sync.Mutex
	buf      []flow.Record
	sampling map[exporterKey]uint32
	// last is the key and rate of the previous record: consecutive records
	// almost always come from the same exporter, so the table is consulted
	// only when the exporter or its rate changes.
	last     exporterKey
	lastRate uint32
	// inBatch: the collector holds mu for a datagram (flow.Batcher).
	inBatch bool
	// full batches and sampling changes waiting to be delivered once mu
	// is released
	full      [][]flow.Record
	changes   []samplingChange
	spareFull [][]flow.Record // full's last array, handed back after delivery
}

// BeginBatch implements flow.Batcher: the collector's goroutine holds the
// sink's lock for a whole datagram.
func (s *sink) BeginBatch() {
	s.mu.Lock()
	s.inBatch = true
}

// EndBatch implements flow.Batcher: it detaches the batches the datagram
// filled and the sampling-rate changes it saw, releases the lock, then
// hands them on (so a panicking callback can neither block the sink nor
// make it deliver twice).
func (s *sink) EndBatch() {
	s.inBatch = false
	if len(s.full) == 0 && len(s.changes) == 0 {
		s.mu.Unlock()
		return
	}
	full, changes := s.full, s.changes
	s.full, s.changes = s.spareFull, nil
	s.spareFull = nil
	s.mu.Unlock()
	s.deliver(full, changes)
	clear(full)
	s.mu.Lock()
	s.spareFull = full[:0] // reused by a later datagram
	s.mu.Unlock()
}

func (s *sink) Record(r *flow.Record) {
	if s.inBatch { // BeginBatch holds the lock
		s.add(r)
		return
	}
	s.mu.Lock()
	s.add(r)
	full, changes := s.full, s.changes
	s.full, s.changes = nil, nil
	s.mu.Unlock()
	s.deliver(full, changes)
}

// add appends r to the current batch (s.mu held).
func (s *sink) add(r *flow.Record) {
	k := exporterKey{r.Exporter, r.ObservationDomain, r.Format, r.InIf}
	if k != s.last || r.SamplingRate != s.lastRate {
		// The sampling rate per exporter, observation domain and input
		// interface (an sFlow agent may sample its interfaces
		// differently). SO_REUSEPORT keeps an exporter on one socket, so
		// one sink sees all of its records.
		prev, seen := s.sampling[k]
		if (!seen && len(s.sampling) < maxSamplingKeys) || seen && prev != r.SamplingRate {
			s.sampling[k] = r.SamplingRate
		}
		if seen && prev != r.SamplingRate && s.in.deps.OnSamplingChange != nil {
			s.changes = append(s.changes, samplingChange{r.Clone(), prev})
		}
		s.last, s.lastRate = k, r.SamplingRate
	}
	n := len(s.buf)
	if n < cap(s.buf) {
		s.buf = s.buf[:n+1]
	} else {
		s.buf = append(s.buf, flow.Record{})
	}
	r.CopyTo(&s.buf[n])
	if len(s.buf) >= s.in.conf.Batch {
		s.full = append(s.full, s.buf)
		s.buf = s.in.newBatch()
	}
}

// deliver enqueues full batches, then reports sampling-rate changes,
// outside the lock (a panicking callback loses no records).
func (s *sink) deliver(full [][]flow.Record, changes []samplingChange) {
	for _, b := range full {
		s.in.enqueue(b)
	}
	for _, c := range changes {
		s.in.deps.OnSamplingChange(c.r, c.old)
	}
}

type samplingChange struct {
	r   *flow.Record
	old uint32
}

func (s *sink) flush() {
	s.mu.Lock()
	b := s.buf
	if len(b) > 0 {
		s.buf = s.in.newBatch()
	}
	s.mu.Unlock()
	if len(b) > 0 {
		s.in.enqueue(b)
	}
}

var dropLog atomic.Int64

func (in *Ingest) enqueue(b []flow.Record) {
	in.records.Add(float64(len(b)))
	if !in.stopped.Load() {
		select {
		case in.batch <- b:
			return
		default:
		}
	}
	in.dropped.Add(float64(len(b)))
	if now := time.Now().Unix(); dropLog.Swap(now) != now {
		in.log.Warn("engine queue full: records dropped", "records", len(b), "queue", cap(in.batch))
	}
}

func (in *Ingest) flushAll() {
	in.mu.Lock()
	sinks := append([]*sink(nil), in.sinks...)
	in.mu.Unlock()
	for _, s := range sinks {
		s.flush()
	}
}

func (in *Ingest) runFlusher(ctx context.Context) {
	defer in.wg.Done()
	t := time.NewTicker(in.conf.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			in.flushAll()
		}
	}
}

// runEngine is the engine's one goroutine.
func (in *Ingest) runEngine(ctx context.Context) {
	defer in.wg.Done()
	defer close(in.found)
	t := time.NewTicker(in.conf.ExpireInterval)
	defer t.Stop()
	for {
		select {
		case b := <-in.batch:
			in.feed(b)
		case <-t.C:
			now := in.now()
			in.eng.Expire(now)
			for _, p := range in.dups.check(now) {
				in.log.Warn("two exporters export the same traffic: detection counts it twice (sFlow and NetFlow of one link, or NetFlow on both its ends); export each packet once",
					"exporters", p.Exporters[0].String()+" "+p.Exporters[1].String(), "flows_seen_by_both", p.Matched, "flows_followed", p.Followed)
			}
		case <-ctx.Done():
			for {
				select {
				case b := <-in.batch:
					in.feed(b)
					continue
				default:
				}
				break
			}
			in.handOver(ctx)
			return
		}
		in.handOver(ctx)
	}
}

func (in *Ingest) feed(b []flow.Record) {
	in.dups.observe(b)
	in.eng.Records(b)
	select {
	case in.free <- b[:0]:
	default:
	}
}

// newBatch returns an empty batch, recycled when one is free.
func (in *Ingest) newBatch() []flow.Record {
	select {
	case b := <-in.free:
		return b
	default:
		return make([]flow.Record, 0, in.conf.Batch)
	}
}

// handOver passes the engine's new findings on; it blocks rather than drop
// a finding (the record queue absorbs the wait).
func (in *Ingest) handOver(ctx context.Context) {
	for _, f := range in.pending {
		in.findings.WithLabelValues(string(f.Kind)).Inc()
		select {
		case in.found <- f:
			continue
		default:
		}
		select {
		case in.found <- f:
		case <-ctx.Done():
			in.log.Warn("stopping: finding not handled", "kind", f.Kind, "internal_ip", f.InternalIP.String())
		}
	}
	clear(in.pending)
	in.pending = in.pending[:0]
}
