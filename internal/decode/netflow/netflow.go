package netflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

// Defaults applied by New to zero Configuration fields.
const (
	DefaultMaxTemplatesPerExporter = 512
	DefaultMaxExporters            = 4096
	DefaultPendingTTL              = 5 * time.Second
)

// Bounds of the queue of data sets that arrived before their template.
const (
	maxPendingPerExporter      = 64        // data sets
	maxPendingBytesPerExporter = 256 << 10 // bytes
	maxPendingBytesTotal       = 32 << 20  // bytes, over all exporters
)

// Bounds of the template cache beyond MaxTemplatesPerExporter: real
// templates have tens of fields, and a flood of large ones must not take
// more than this per exporter (compiled form included, about 2.5 times).
const (
	maxFieldsPerTemplate        = 512
	maxTemplateBytesPerExporter = 256 << 10
)

// evictionSample is how many exporters are looked at to pick one to forget.
const evictionSample = 16

// Configuration of a Decoder. The zero value is usable.
type Configuration struct {
	// SamplingOverride sets the sampling rate for exporters (by IP) that
	// never send it; it wins over what they send.
	SamplingOverride map[netip.Addr]uint32
	// MaxTemplatesPerExporter bounds the templates (data and options, all
	// domains) kept per exporter; beyond it new templates are refused
	// (decode.ErrTooManyTempls). Default 512.
	MaxTemplatesPerExporter int
	// MaxExporters bounds the exporters (address and port) with template
	// state; to make room, the one silent longest among a random sample of
	// 16 is forgotten. Default 4096.
	MaxExporters int
	// PendingTTL is how long data that arrived before its template is held
	// (bounded count and bytes) before it is counted as no-template.
	// Default 5 s; negative disables holding.
	PendingTTL time.Duration
}

// Stats are the decoder's counters since New. Reading them is cheap.
type Stats struct {
	V5Datagrams    uint64
	V5Records      uint64
	V9Datagrams    uint64
	V9Records      uint64
	IPFIXDatagrams uint64
	IPFIXRecords   uint64
	OptionsRecords uint64 // v9/IPFIX options data records (sampling, system init time)

	TemplateMisses     uint64 // data sets dropped for want of a template (at once or when held data expired)
	TemplatesLearned   uint64 // new template IDs
	TemplatesRedefined uint64 // known template IDs sent with a different definition
	TemplatesWithdrawn uint64 // IPFIX withdrawals (one per template removed)
	TemplatesRefused   uint64 // refused because the exporter reached MaxTemplatesPerExporter

	PendingHeld     uint64 // data sets held waiting for their template
	PendingReplayed uint64 // held data sets decoded once the template came
	PendingExpired  uint64 // held data sets dropped after PendingTTL (or to make room)

	Exporters        uint64 // exporters with state now
	ExportersEvicted uint64
}

type counters struct {
	v5Datagrams, v5Records        atomic.Uint64
	v9Datagrams, v9Records        atomic.Uint64
	ipfixDatagrams, ipfixRecords  atomic.Uint64
	optionsRecords                atomic.Uint64
	templateMisses                atomic.Uint64
	learned, redefined, withdrawn atomic.Uint64
	refused                       atomic.Uint64
	pendingHeld, pendingReplayed  atomic.Uint64
	pendingExpired                atomic.Uint64
	exportersEvicted              atomic.Uint64
	pendingBytesTotal             atomic.Int64
}

// Decoder decodes NetFlow v5, v9 and IPFIX. It is safe for concurrent use;
// datagrams of one exporter are decoded one at a time.
type Decoder struct {
	conf Configuration
	// maxSkew (ns; 0: off) and onSkew are CheckClock's.
	maxSkew int64
	onSkew  func(exporter netip.AddrPort, ahead time.Duration)

	mu        sync.RWMutex
	exporters map[netip.AddrPort]*exporter

	v5recs sync.Pool // *flow.Record
	c      counters
}

var _ decode.Decoder = (*Decoder)(nil)

// New returns a Decoder; it does no I/O.
func New(conf Configuration) *Decoder {
	if conf.MaxTemplatesPerExporter <= 0 {
		conf.MaxTemplatesPerExporter = DefaultMaxTemplatesPerExporter
	}
	if conf.MaxExporters <= 0 {
		conf.MaxExporters = DefaultMaxExporters
	}
	if conf.PendingTTL == 0 {
		conf.PendingTTL = DefaultPendingTTL
	}
	if len(conf.SamplingOverride) > 0 {
		m := make(map[netip.Addr]uint32, len(conf.SamplingOverride))
		for a, r := range conf.SamplingOverride {
			m[a.Unmap()] = r
		}
		conf.SamplingOverride = m
	}
	d := &Decoder{conf: conf, exporters: make(map[netip.AddrPort]*exporter)}
	d.v5recs.New = func() any { return new(flow.Record) }
	return d
}

// Stats returns a snapshot of the counters.
func (d *Decoder) Stats() Stats {
	d.mu.RLock()
	n := len(d.exporters)
	d.mu.RUnlock()
	c := &d.c
	return Stats{
		V5Datagrams: c.v5Datagrams.Load(), V5Records: c.v5Records.Load(),
		V9Datagrams: c.v9Datagrams.Load(), V9Records: c.v9Records.Load(),
		IPFIXDatagrams: c.ipfixDatagrams.Load(), IPFIXRecords: c.ipfixRecords.Load(),
		OptionsRecords:     c.optionsRecords.Load(),
		TemplateMisses:     c.templateMisses.Load(),
		TemplatesLearned:   c.learned.Load(),
		TemplatesRedefined: c.redefined.Load(),
		TemplatesWithdrawn: c.withdrawn.Load(),
		TemplatesRefused:   c.refused.Load(),
		PendingHeld:        c.pendingHeld.Load(),
		PendingReplayed:    c.pendingReplayed.Load(),
		PendingExpired:     c.pendingExpired.Load(),
		Exporters:          uint64(n),
		ExportersEvicted:   c.exportersEvicted.Load(),
	}
}

// Decode decodes one datagram received from exporter at time received and
// hands every flow record to sink. It dispatches on the version field (5, 9
// or 10). It returns the number of flow records produced; a non-nil error
// unwraps to one of the decode sentinels and tells why (part of) the
// datagram was dropped.
func (d *Decoder) Decode(exporter netip.AddrPort, payload []byte, received time.Time, sink flow.Sink) (int, error) {
	if len(payload) < 2 {
		return 0, fmt.Errorf("netflow: datagram of %d bytes: %w", len(payload), decode.ErrTruncated)
	}
	addr := exporter.Addr().Unmap()
	switch v := binary.BigEndian.Uint16(payload); v {
	case 5:
		return d.decodeV5(netip.AddrPortFrom(addr, exporter.Port()), payload, received, sink)
	case 9, 10:
		return d.decodeTemplated(netip.AddrPortFrom(addr, exporter.Port()), v, payload, received, sink)
	default:
		return 0, fmt.Errorf("netflow: version %d: %w", v, decode.ErrVersion)
	}
}

// CheckClock turns on the check of export header times (maxSkew <= 0:
// off, as a new Decoder is); see decode.ClockChecker. The header times
// checked are v5 unix_secs and unix_nsecs, v9 unix_secs and the IPFIX
// export time; beyond maxSkew from the receive time every record time of
// the datagram (sysUptime-relative, delta and absolute alike: all are the
// exporter's clock) is moved by received minus header time. Export
// headers count whole seconds and datagrams take a moment to arrive, so a
// few seconds is the least sensible value. It must be called before the
// first Decode.
func (d *Decoder) CheckClock(maxSkew time.Duration, report func(exporter netip.AddrPort, ahead time.Duration)) {
	d.maxSkew = max(0, int64(maxSkew))
	d.onSkew = report
}

var _ decode.ClockChecker = (*Decoder)(nil)

// clockShift returns what to add to the record times of a datagram from ap
// whose header says it was exported at headerNs and that was received at
// receivedNs (unix ns): 0 while the check is off or the two are within
// its tolerance (CheckClock), else the difference, reported. It runs once
// per datagram.
func (d *Decoder) clockShift(ap netip.AddrPort, headerNs, receivedNs int64) int64 {
	tol := d.maxSkew
	if tol == 0 {
		return 0
	}
	shift := receivedNs - headerNs
	if shift >= -tol && shift <= tol {
		return 0
	}
	if d.onSkew != nil {
		d.onSkew(ap, time.Duration(-shift))
	}
	return shift
}

// override returns the configured sampling rate for addr, or 0.
func (d *Decoder) override(addr netip.Addr) uint32 {
	if d.conf.SamplingOverride == nil {
		return 0
	}
	return d.conf.SamplingOverride[addr]
}

// exporterFor returns the state of ap, creating it (and evicting the exporter
// silent longest when full).
func (d *Decoder) exporterFor(ap netip.AddrPort, now int64) *exporter {
	d.mu.RLock()
	e := d.exporters[ap]
	d.mu.RUnlock()
	if e != nil {
		return e
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e = d.exporters[ap]; e != nil {
		return e
	}
	if len(d.exporters) >= d.conf.MaxExporters {
		// Forget the exporter silent longest among a sample (map iteration
		// starts at a random place), so that a flood of new source
		// addresses costs a bounded amount of work per datagram.
		var oldest *exporter
		var oldestKey netip.AddrPort
		seen := 0
		for k, x := range d.exporters {
			if oldest == nil || x.lastSeen.Load() < oldest.lastSeen.Load() {
				oldest, oldestKey = x, k
			}
			if seen++; seen == evictionSample {
				break
			}
		}
		delete(d.exporters, oldestKey)
		d.c.exportersEvicted.Add(1)
		oldest.mu.Lock()
		oldest.dropAllPending(d)
		oldest.mu.Unlock()
	}
	e = &exporter{
		addr:     ap.Addr(),
		override: d.override(ap.Addr()),
		domains:  make(map[uint64]*domain),
	}
	e.lastSeen.Store(now)
	d.exporters[ap] = e
	return e
}

// exporter is the state kept per exporter address and port.
type exporter struct {
	mu       sync.Mutex
	lastSeen atomic.Int64 // unix ns of the last datagram
	addr     netip.Addr
	override uint32

	domains    map[uint64]*domain // key: version<<32 | source ID / observation domain
	lastDomKey uint64
	lastDom    *domain
	ntemplates int
	templBytes int // template definitions kept, bytes

	pending      []pendingSet
	pendingBytes int
	evicted      bool
	fieldBuf     []field // scratch for template parsing

	rec flow.Record // reused for every record of this exporter
}

// domain is a v9 source ID or an IPFIX observation domain of one exporter.
type domain struct {
	templates map[uint16]*template
	sampling  uint32 // from options data; 0 = not sent
	sysInitMs uint64 // IPFIX systemInitTimeMilliseconds from options data; 0 = not sent
}

func domKey(version uint16, id uint32) uint64 { return uint64(version)<<32 | uint64(id) }

// domain returns the domain, or nil if create is false and it is unknown.
// The number of domains is bounded by MaxTemplatesPerExporter.
func (e *exporter) domain(key uint64, create bool, limit int) *domain {
	if e.lastDom != nil && e.lastDomKey == key {
		return e.lastDom
	}
	dm := e.domains[key]
	if dm == nil {
		if !create || len(e.domains) >= limit {
			return nil
		}
		dm = &domain{templates: make(map[uint16]*template)}
		e.domains[key] = dm
	}
	e.lastDom, e.lastDomKey = dm, key
	return dm
}

// resetRecord clears everything the decoders set, leaving Header alone
// (HeaderLength 0 hides it).
func resetRecord(r *flow.Record) {
	r.Start, r.End = time.Time{}, time.Time{}
	r.SrcAddr, r.DstAddr = netip.Addr{}, netip.Addr{}
	r.SrcPort, r.DstPort = 0, 0
	r.Proto, r.TCPFlags = 0, 0
	r.Packets, r.Bytes, r.SampledPackets, r.SampledBytes = 0, 0, 0, 0
	r.SrcMAC, r.DstMAC = flow.MAC{}, flow.MAC{}
	r.InIf, r.OutIf = 0, 0
	r.VLAN = 0
	r.FrameLength = 0
	r.HeaderLength = 0
}
