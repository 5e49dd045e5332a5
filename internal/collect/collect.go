// Package collect owns live flow ingestion: the UDP listeners for sFlow,
// NetFlow v5/v9 and IPFIX exports (several SO_REUSEPORT sockets per port,
// large receive buffers, batched reads with recvmmsg), live packet capture
// from an interface with AF_PACKET, and the counters that say what arrived,
// what was decoded and what was lost, per format and per exporter.
//
// Every socket has one goroutine that reads a batch of datagrams and decodes
// them in place with its own decoder instances, handing the records to the
// sink before it reads again: there is no queue and no per-datagram
// allocation or channel send, so the kernel's socket buffer is the only
// buffer and its overflows are the only loss (counted through SO_RXQ_OVFL).
// Decoders keep per-exporter template state and are not shared between
// goroutines; SO_REUSEPORT hashes on the 4-tuple, so the datagrams of one
// exporter (address and source port) always land on the same socket and
// thus the same decoder.
//
// Metrics (the names shared/bench expects; registered on the Registerer in
// Dependencies, read from the sockets' counters at scrape time):
// padlock_flow_records_decoded_total{proto} (records handed to the sink),
// padlock_datagrams_received_total{listener},
// padlock_datagrams_dropped_total{reason} (socket_buffer, truncated,
// decode_error, no_template, panic), padlock_decode_errors_total{proto,cause},
// padlock_flow_template_misses_total{proto},
// padlock_flow_clock_corrected_total{proto} (NetFlow/IPFIX datagrams whose
// export header clock was more than max_clock_skew off; their record times
// were moved onto the collector's clock),
// padlock_collect_bytes_received_total{proto},
// padlock_collect_receive_buffer_bytes{listener} and padlock_collect_exporters.
// Per-exporter counts are in Exporters and StatusHandler, never in labels.
//
// collect imports flow, decode (the Decoder contract) and decode/packet (for
// live capture), but no export decoder: cmd/padlock passes the NetFlow and
// sFlow decoder constructors in Dependencies.
// It must not import detect, lock or anything downstream of the record
// stream.
package collect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

// Configuration of the collector. Empty listen addresses disable a listener.
// Every UDP port accepts every format: the datagram's version field picks
// the decoder (NetFlow v5, v9, IPFIX, sFlow v5), so the ports are only
// conventions.
type Configuration struct {
	// SFlow, NetFlow and IPFIX are UDP listen addresses "host:port" with a
	// literal IP or an empty host (all addresses); no name is resolved.
	SFlow   string `yaml:"sflow"`
	NetFlow string `yaml:"netflow"`
	IPFIX   string `yaml:"ipfix"`
	// Sockets per listen address, bound with SO_REUSEPORT (0: number of CPUs).
	Sockets int `yaml:"sockets"`
	// ReceiveBuffer is the SO_RCVBUF requested per socket in bytes. As root
	// SO_RCVBUFFORCE lifts net.core.rmem_max; otherwise the kernel caps it.
	// What the kernel granted is logged and exported as a gauge.
	ReceiveBuffer int `yaml:"receive_buffer"`
	// Batch is the number of datagrams read per recvmmsg call.
	Batch int `yaml:"batch"`
	// MaxDatagram is the size of each receive buffer; longer datagrams are
	// dropped (reason "truncated").
	MaxDatagram int `yaml:"max_datagram"`
	// MaxExporters bounds the per-exporter statistics per socket; further
	// exporters are counted together under the zero address.
	MaxExporters int `yaml:"max_exporters"`
	// MaxClockSkew is how far a NetFlow/IPFIX export header's time may be
	// from the time the collector received the datagram. Beyond it the
	// exporter's clock is taken to be wrong (misconfigured NTP): the
	// datagram's record times are moved by the difference onto the
	// collector's clock, the datagram is counted (per exporter and in
	// padlock_flow_clock_corrected_total) and the exporter and its offset
	// are logged, at most every 5 minutes per exporter. Otherwise one
	// router with a fast clock moves its hosts' event time ahead and the
	// records of the exporters with right clocks fall behind the detectors'
	// windows. Export headers count whole seconds, so the least is 2s.
	// 0 disables the check. Default 10s. sFlow needs none: its record
	// times are the receive time.
	MaxClockSkew time.Duration `yaml:"max_clock_skew"`
	// Capture reads packets from an interface (AF_PACKET), one record each.
	Capture CaptureConfiguration `yaml:"capture"`
}

// CaptureConfiguration of live capture; an empty Interface disables it.
type CaptureConfiguration struct {
	Interface string `yaml:"interface"`
	Snaplen   int    `yaml:"snaplen"` // bytes kept per packet (default 128)
}

// DefaultConfiguration returns the defaults: sFlow on :6343, NetFlow on
// :2055, IPFIX on :4739, one socket per CPU, 32 MiB receive buffers,
// exporter clocks corrected beyond 10 s.
func DefaultConfiguration() Configuration {
	return Configuration{
		SFlow:         ":6343",
		NetFlow:       ":2055",
		IPFIX:         ":4739",
		ReceiveBuffer: 32 << 20,
		Batch:         64,
		MaxDatagram:   9216,
		MaxExporters:  4096,
		MaxClockSkew:  DefaultMaxClockSkew,
		Capture:       CaptureConfiguration{Snaplen: 128},
	}
}

// Validate reports the first bad value, naming its key.
func (c Configuration) Validate() error {
	for _, l := range []struct{ key, addr string }{{"sflow", c.SFlow}, {"netflow", c.NetFlow}, {"ipfix", c.IPFIX}} {
		if l.addr == "" {
			continue
		}
		if _, err := parseListen(l.addr); err != nil {
			return fmt.Errorf("%s: %w", l.key, err)
		}
	}
	switch {
	case c.Sockets < 0 || c.Sockets > 256:
		return fmt.Errorf("sockets: %d out of range 0..256", c.Sockets)
	case c.ReceiveBuffer < 0:
		return fmt.Errorf("receive_buffer: must be >= 0")
	case c.Batch < 0 || c.Batch > 1024:
		return fmt.Errorf("batch: %d out of range 0..1024", c.Batch)
	case c.MaxDatagram != 0 && (c.MaxDatagram < 512 || c.MaxDatagram > 65535):
		return fmt.Errorf("max_datagram: %d out of range 512..65535", c.MaxDatagram)
	case c.MaxExporters < 0:
		return fmt.Errorf("max_exporters: must be >= 0")
	case c.MaxClockSkew != 0 && c.MaxClockSkew < MinMaxClockSkew:
		return fmt.Errorf("max_clock_skew: %s: must be 0 (no correction) or at least %s (export headers count whole seconds)", c.MaxClockSkew, MinMaxClockSkew)
	case c.Capture.Snaplen < 0 || c.Capture.Snaplen > 65535:
		return fmt.Errorf("capture.snaplen: %d out of range 0..65535", c.Capture.Snaplen)
	}
	return nil
}

// Bounds of max_clock_skew.
const (
	DefaultMaxClockSkew = 10 * time.Second
	MinMaxClockSkew     = 2 * time.Second
)

// withDefaults fills zero values, except MaxClockSkew, where 0 means off.
func (c Configuration) withDefaults() Configuration {
	d := DefaultConfiguration()
	if c.Sockets == 0 {
		c.Sockets = runtime.NumCPU()
	}
	if c.Batch == 0 {
		c.Batch = d.Batch
	}
	if c.MaxDatagram == 0 {
		c.MaxDatagram = d.MaxDatagram
	}
	if c.MaxExporters == 0 {
		c.MaxExporters = d.MaxExporters
	}
	if c.Capture.Snaplen == 0 {
		c.Capture.Snaplen = d.Capture.Snaplen
	}
	return c
}

// parseListen accepts "host:port" with a literal IP or an empty host.
func parseListen(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen address %q: %w", s, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen address %q: bad port", s)
	}
	var a netip.Addr
	if host != "" {
		if a, err = netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, fmt.Errorf("listen address %q: host must be an IP address (no names are resolved)", s)
		}
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// Decoders are constructors: every socket goroutine makes its own instances,
// because decoders keep per-exporter template state and are not safe for
// concurrent use.
type Decoders struct {
	NetFlow func() decode.Decoder // NetFlow v5, v9 and IPFIX, by version field
	SFlow   func() decode.Decoder // sFlow v5
}

// Clock tells the time records are received at.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Dependencies of the collector.
type Dependencies struct {
	Decoders Decoders
	// Sink receives the records of all sockets and must therefore be safe
	// for concurrent use. Ignored when NewSink is set.
	Sink flow.Sink
	// NewSink, if set, is called once per socket goroutine (worker is
	// 0..n-1) at Start; each returned sink is only ever called from that
	// one goroutine, so it needs no locking (e.g. a shard of a consumer).
	NewSink    func(worker int) flow.Sink
	Registerer prometheus.Registerer // nil: metrics are not registered
	Logger     *slog.Logger          // nil: slog.Default()
	Clock      Clock                 // nil: the system clock
}

// Collector is the live ingestion component.
type Collector struct {
	conf   Configuration
	deps   Dependencies
	log    *slog.Logger
	met    *metrics
	mu     sync.Mutex
	closer []func() error
	wg     sync.WaitGroup
	work   []*worker
	state  int // 0 new, 1 started, 2 stopped
	// stopping is set before the sockets are closed, so that the errors
	// their reads return then are not reported as failures.
	stopping atomic.Bool
	status   []ListenerStatus
}

// New checks the configuration and returns a collector; it does no I/O.
func New(conf Configuration, deps Dependencies) (*Collector, error) {
	if err := conf.Validate(); err != nil {
		return nil, fmt.Errorf("collect: %w", err)
	}
	conf = conf.withDefaults()
	if deps.Sink == nil && deps.NewSink == nil {
		return nil, errors.New("collect: no sink")
	}
	if (conf.SFlow != "" || conf.NetFlow != "" || conf.IPFIX != "") && deps.Decoders.NetFlow == nil && deps.Decoders.SFlow == nil {
		return nil, errors.New("collect: listeners configured but no decoders given")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Clock == nil {
		deps.Clock = systemClock{}
	}
	c := &Collector{conf: conf, deps: deps, log: deps.Logger.With("component", "collect")}
	c.met = newMetrics(c)
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(c.met); err != nil {
			return nil, fmt.Errorf("collect: register metrics: %w", err)
		}
	}
	return c, nil
}

// ListenerStatus describes one open socket.
type ListenerStatus struct {
	Name          string `json:"name"`    // "sflow", "netflow", "ipfix" or "capture"
	Address       string `json:"address"` // bound address or interface
	Socket        int    `json:"socket"`  // index among the sockets of the address
	ReceiveBuffer int    `json:"receive_buffer"`
}

// Listeners returns the sockets opened by Start.
func (c *Collector) Listeners() []ListenerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ListenerStatus(nil), c.status...)
}

// Start binds every configured socket (an error if any cannot be bound; then
// nothing stays open) and starts one goroutine per socket.
func (c *Collector) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != 0 {
		return errors.New("collect: Start called twice")
	}
	c.state = 1
	var starts []func()
	fail := func(err error) error {
		for _, cl := range c.closer {
			_ = cl()
		}
		c.closer, c.work, c.status = nil, nil, nil
		return fmt.Errorf("collect: %w", err)
	}
	for _, l := range []struct{ name, addr string }{{"sflow", c.conf.SFlow}, {"netflow", c.conf.NetFlow}, {"ipfix", c.conf.IPFIX}} {
		if l.addr == "" {
			continue
		}
		ap, _ := parseListen(l.addr)
		for i := 0; i < c.conf.Sockets; i++ {
			s, err := openUDP(ctx, ap, c.conf.ReceiveBuffer)
			if err != nil {
				return fail(fmt.Errorf("%s listener %s: %w", l.name, l.addr, err))
			}
			c.closer = append(c.closer, s.Close)
			if ap.Port() == 0 { // the other sockets join the port the kernel picked
				ap = netip.AddrPortFrom(ap.Addr(), uint16(s.conn.LocalAddr().(*net.UDPAddr).Port))
			}
			w := c.newWorker(l.name, l.addr, s.rcvbuf)
			c.status = append(c.status, ListenerStatus{Name: l.name, Address: s.local, Socket: i, ReceiveBuffer: s.rcvbuf})
			if i == 0 {
				c.log.Info("listening", "listener", l.name, "address", s.local, "sockets", c.conf.Sockets,
					"receive_buffer_requested", c.conf.ReceiveBuffer, "receive_buffer", s.rcvbuf)
			}
			starts = append(starts, func() { w.runUDP(s) })
		}
	}
	if c.conf.Capture.Interface != "" {
		cp, err := openCapture(c.conf.Capture, c.conf.ReceiveBuffer)
		if err != nil {
			return fail(fmt.Errorf("capture on %s: %w", c.conf.Capture.Interface, err))
		}
		c.closer = append(c.closer, cp.Close)
		w := c.newWorker("capture", c.conf.Capture.Interface, cp.rcvbuf)
		c.status = append(c.status, ListenerStatus{Name: "capture", Address: c.conf.Capture.Interface, ReceiveBuffer: cp.rcvbuf})
		c.log.Info("capturing", "interface", c.conf.Capture.Interface, "snaplen", c.conf.Capture.Snaplen, "receive_buffer", cp.rcvbuf)
		starts = append(starts, func() { w.runCapture(cp) })
	}
	for _, s := range starts {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			s()
		}()
	}
	return nil
}

// Stop closes every socket and waits for the goroutines to finish the batch
// they are decoding, or for ctx.
func (c *Collector) Stop(ctx context.Context) error {
	c.mu.Lock()
	if c.state != 1 {
		c.mu.Unlock()
		return nil
	}
	c.state = 2
	c.stopping.Store(true)
	for _, cl := range c.closer {
		_ = cl()
	}
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("collect: stop: %w", ctx.Err())
	}
}
