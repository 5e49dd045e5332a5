package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"padlock/internal/collect"
	"padlock/internal/config"
	"padlock/internal/detect"
	"padlock/internal/evidence"
	"padlock/internal/ingest"
)

// cmdSensor runs the collectors and the detectors only — no database, no
// locks: a probe at the edge, or padlock in the shared throughput bench. It
// prints every finding as one JSON line on stdout and serves /metrics,
// /api/v1/flagged and /api/v1/collector on the metrics listener.
func cmdSensor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sensor", stderr)
	configPath := fs.String("config", "", "configuration `file` (customers, protected, collect, detect)")
	netflowListen := fs.String("netflow-listen", "", "UDP `address` for NetFlow v5/v9 and IPFIX (overrides collect.netflow)")
	ipfixListen := fs.String("ipfix-listen", "", "UDP `address` for IPFIX (overrides collect.ipfix)")
	sflowListen := fs.String("sflow-listen", "", "UDP `address` for sFlow (overrides collect.sflow)")
	metricsListen := fs.String("metrics-listen", "127.0.0.1:9180", "HTTP `address` of /metrics and /api/v1/flagged")
	sockets := fs.Int("sockets", 0, "sockets per UDP port (SO_REUSEPORT; 0: the configuration's)")
	rcvbuf := fs.Int("receive-buffer", 0, "receive buffer per socket in `bytes` (0: the configuration's)")
	thresholdPPS := fs.Uint64("threshold-pps", 0, "packet limit per internal address in packets/s (overrides detect.packet_limit.threshold_pps)")
	scanRate := fs.Float64("scan-destinations-per-s", 0, "netscan threshold as distinct destinations per second over --scan-window")
	scanWindow := fs.Duration("scan-window", 10*time.Second, "netscan window used with --scan-destinations-per-s")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected arguments: %v", fs.Args())
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return usageError{err}
	}
	if len(cfg.Customers) == 0 {
		return usageErrorf("no internal networks: set customers: in --config")
	}
	// Given any listen flag, the sensor binds exactly the addresses given on
	// the command line and nothing else (the NetFlow port takes IPFIX too).
	if *netflowListen != "" || *sflowListen != "" || *ipfixListen != "" {
		cfg.Collect.NetFlow, cfg.Collect.SFlow, cfg.Collect.IPFIX = *netflowListen, *sflowListen, *ipfixListen
	}
	if *sockets > 0 {
		cfg.Collect.Sockets = *sockets
	}
	if *rcvbuf > 0 {
		cfg.Collect.ReceiveBuffer = *rcvbuf
	}
	if *thresholdPPS > 0 {
		cfg.Detect.PacketLimit.ThresholdPPS = *thresholdPPS
	}
	if *scanRate > 0 {
		applyScanRate(&cfg.Detect, *scanRate, *scanWindow)
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	in, err := ingest.New(ingest.DefaultConfiguration(), ingest.Dependencies{
		Detect:     cfg.Detect,
		Networks:   detect.NewPrefixes(cfg.Customers),
		Protected:  cfg.Protected,
		Logger:     logger.With("component", "ingest"),
		Registerer: reg,
	})
	if err != nil {
		return usageError{err}
	}
	col, err := collect.New(cfg.Collect, collect.Dependencies{
		Decoders:   exportDecoders(cfg),
		NewSink:    in.NewSink,
		Registerer: reg,
		Logger:     logger, // the collector adds component=collect
	})
	if err != nil {
		return usageError{err}
	}
	flagged := newFlaggedSet()

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("GET /api/v1/flagged", flagged)
	mux.Handle("GET /api/v1/collector", col.StatusHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	// CPU and heap profiles, for tuning on the operator's own traffic
	// (the metrics listener is meant for loopback or a management network).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	ln, err := net.Listen("tcp", *metricsListen)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)

	if err := in.Start(ctx); err != nil {
		return err
	}
	if err := col.Start(ctx); err != nil {
		in.Stop(context.Background())
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		enc := json.NewEncoder(stdout)
		for f := range in.Findings() {
			flagged.add(f)
			var v json.RawMessage = evidence.JSON(f, evidence.Limits{MaxProbeLines: 20, MaxPacketLines: 5})
			if err := enc.Encode(v); err != nil {
				logger.Error("write finding", "err", err)
			}
		}
	}()
	logger.Info("sensor running", "netflow", cfg.Collect.NetFlow, "ipfix", cfg.Collect.IPFIX, "sflow", cfg.Collect.SFlow,
		"metrics", ln.Addr().String(), "threshold_pps", cfg.Detect.PacketLimit.ThresholdPPS,
		"netscan_min_destinations", cfg.Detect.Netscan.MinDestinations, "netscan_window", time.Duration(cfg.Detect.Netscan.Window))
	<-ctx.Done()

	sctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	errs := []error{col.Stop(sctx), in.Stop(sctx)}
	select {
	case <-done:
	case <-sctx.Done():
	}
	errs = append(errs, hs.Shutdown(sctx))
	if err := errors.Join(errs...); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// applyScanRate turns "distinct destinations per second" into the netscan
// detector's window and count.
func applyScanRate(d *detect.Configuration, perSecond float64, window time.Duration) {
	d.Netscan.Window = detect.Duration(window)
	n := int(math.Ceil(perSecond * window.Seconds()))
	d.Netscan.MinDestinations = max(n, 1)
	if d.Netscan.MaxContacts < 2*d.Netscan.MinDestinations {
		d.Netscan.MaxContacts = 2 * d.Netscan.MinDestinations
	}
}

// flaggedSet is what the sensor has flagged, for GET /api/v1/flagged:
// [{"host","rule","kind","direction","since","last","findings"}].
// "rule" is "flood" for packet-limit and flood findings and "netscan" for
// scans (the names the shared bench expects); "detail_rule" keeps
// padlock's own rule name.
type flaggedSet struct {
	mu    sync.Mutex
	hosts map[[2]string]*flaggedHost
}

type flaggedHost struct {
	Host       string    `json:"host"`
	Rule       string    `json:"rule"`
	DetailRule string    `json:"detail_rule"`
	Kind       string    `json:"kind"`
	Direction  string    `json:"direction"`
	Since      time.Time `json:"since"`
	Last       time.Time `json:"last"`
	Findings   int       `json:"findings"`
}

func newFlaggedSet() *flaggedSet { return &flaggedSet{hosts: map[[2]string]*flaggedHost{}} }

func benchRule(f detect.Finding) string {
	switch {
	case f.Kind == detect.KindPacketLimit,
		f.Rule == "attack.udp_flood", f.Rule == "attack.syn_flood", f.Rule == "attack.icmp_flood", f.Rule == "attack.tcp_flood":
		return "flood"
	case f.Kind == detect.KindNetscan:
		return "netscan"
	}
	return f.Rule
}

func (s *flaggedSet) add(f detect.Finding) {
	host := f.InternalIP
	if !host.IsValid() {
		host = f.Source
	}
	key := [2]string{host.String(), f.Rule}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[key]
	if h == nil {
		h = &flaggedHost{Host: key[0], Rule: benchRule(f), DetailRule: f.Rule, Kind: string(f.Kind), Direction: string(f.Direction), Since: f.FirstSeen}
		s.hosts[key] = h
	}
	h.Last = f.LastSeen
	h.Findings++
}

func (s *flaggedSet) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := make([]flaggedHost, 0, len(s.hosts))
	for _, h := range s.hosts {
		out = append(out, *h)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].DetailRule < out[j].DetailRule
	})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
