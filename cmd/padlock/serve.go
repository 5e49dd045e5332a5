package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"padlock/internal/collect"
	"padlock/internal/config"
	"padlock/internal/enforce"
	"padlock/internal/enforce/bgp"
	"padlock/internal/enforce/nftables"
	"padlock/internal/enforce/webhook"
	"padlock/internal/lock"
	"padlock/internal/notify"
	"padlock/internal/pipeline"
	"padlock/internal/policy"
	"padlock/internal/store"
	"padlock/internal/web/api"
	"padlock/internal/web/auth"
	"padlock/internal/web/ui"
)

// component is what serve starts in order and stops in reverse.
type component interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

type named struct {
	name string
	c    component
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	configPath := fs.String("config", "", "configuration `file` (YAML); defaults for everything when empty")
	dataDir := fs.String("data", "", "data `directory` (overrides the file's data:)")
	listen := fs.String("listen", "", "HTTP listen `address` (overrides the file's listen:)")
	demo := fs.Bool("demo", false, "load a demo inventory, create demo credentials and replay a bundled netscan")
	demoCapture := fs.String("demo-capture", "", "NetFlow v9 export `capture` the demo replays (default: testdata/demo/scan.netflow9.pcap, looked up from the working directory and the binary's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected arguments: %v", fs.Args())
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	if *dataDir != "" {
		cfg.Data = *dataDir
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *demo {
		applyDemoConfig(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := newServer(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer srv.close()
	if *demo {
		if err := srv.loadDemo(ctx, stdout); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		srv.afterStart = append(srv.afterStart, func(ctx context.Context) { srv.replayDemo(ctx, stdout, *demoCapture) })
	}
	return srv.run(ctx, stdout)
}

// server is padlock serve: every component, wired.
type server struct {
	cfg        config.Config
	log        *slog.Logger
	reg        *prometheus.Registry
	db         *store.DB
	svc        *lock.Service
	notifier   *notify.Component
	loop       *enforce.Loop
	policy     *policy.Policy
	pipeline   *pipeline.Pipeline
	collector  *collect.Collector
	components []named
	// afterStart runs once every component has started (the demo replay).
	afterStart []func(context.Context)
	mux        *http.ServeMux
}

func newServer(ctx context.Context, cfg config.Config, logger *slog.Logger) (*server, error) {
	s := &server{cfg: cfg, log: logger, reg: prometheus.NewRegistry(), mux: http.NewServeMux()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	dsn := cfg.Store.DSN
	if dsn == "" {
		dsn = store.DefaultDSN(cfg.Data)
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	s.db = db

	// Mail: rendered inside lock transactions, sent by the outbox worker.
	s.notifier, err = notify.New(cfg.Notify, notify.Dependencies{Outbox: db, Stats: db, Logger: logger.With("component", "notify"), Registerer: s.reg})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("notify: %w", err)
	}
	renderer := &mailRenderer{db: db, r: s.notifier.Renderer(), clientURL: cfg.Web.BaseURL}

	// Lock service; every committed change wakes enforcement and the mailer.
	// The drivers are built below; the service asks them (through
	// canWhitelist) only once requests arrive.
	var drivers []enforce.Driver
	s.svc, err = lock.New(cfg.Locks, lock.Dependencies{
		Store:  db,
		Render: renderer.Render,
		CanWhitelist: func(method string, target lock.TargetKind) bool {
			return canWhitelist(drivers, method, target)
		},
		OnChange: func(lock.Change) {
			if s.loop != nil {
				s.loop.Trigger()
			}
			s.notifier.Kick()
		},
		Logger:     logger.With("component", "lock"),
		Registerer: s.reg,
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	renderer.svc = s.svc

	// Enforcement drivers, then the reconcile loop over them.
	var driverComponents []named
	var speaker *bgp.Speaker
	if c := cfg.Enforce.BGP; c != nil {
		sp, err := bgp.New(*c, logger.With("component", "bgp"))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("enforce.bgp: %w", err)
		}
		speaker = sp
		drivers = append(drivers, sp.Blackhole(), sp.FlowSpec())
		driverComponents = append(driverComponents, named{"bgp", sp})
	}
	if c := cfg.Enforce.NFTables; c != nil {
		d, err := nftables.New(*c, logger.With("component", "nftables"))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("enforce.nftables: %w", err)
		}
		drivers = append(drivers, d)
		driverComponents = append(driverComponents, named{"nftables", d})
	}
	for i, c := range cfg.Enforce.Webhooks {
		d, err := webhook.New(c, logger.With("component", "webhook"))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("enforce.webhooks[%d]: %w", i, err)
		}
		drivers = append(drivers, d)
	}
	ecfg := cfg.Enforce.Configuration
	ecfg.Protected = protectedOf(ecfg.Protected, cfg.Protected, cfg.Policy.Protected)
	s.loop, err = enforce.New(ecfg, enforce.Dependencies{
		Source:     desiredSource{svc: s.svc, db: db},
		Drivers:    drivers,
		Registerer: s.reg,
		Logger:     logger.With("component", "enforce"),
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("enforce: %w", err)
	}
	if speaker != nil {
		// A session coming up applies what waited for it at once.
		speaker.OnPeerChange(s.loop.Trigger)
	}

	// Detection pipeline: collector → engine → policy → store → lock service.
	plog := logger.With("component", "policy")
	s.policy, err = policy.New(cfg.Policy, policy.Dependencies{
		OnTrip: func(st policy.BreakerState) {
			plog.Error("CIRCUIT BREAKER OPEN: automatic actions stopped, findings queue for review", "reason", st.Reason, "since", st.Since)
			saveBreaker(db, st, plog)
		},
		Registerer: s.reg,
	})
	if err != nil {
		s.close()
		return nil, err
	}
	// A breaker that was open when padlock stopped is open again: a
	// restart must not turn automatic locking back on by itself.
	if br, err := db.Breaker(ctx); err != nil {
		s.close()
		return nil, err
	} else if br.Open {
		s.policy.Restore(policy.BreakerState{Open: true, Reason: br.Reason, Since: br.Since})
		plog.Warn("circuit breaker restored open: automatic actions stay stopped until staff close it", "reason", br.Reason, "since", br.Since)
	}
	s.pipeline, err = pipeline.New(cfg.Pipeline, pipeline.Dependencies{
		Detect:    cfg.Detect,
		Customers: cfg.Customers,
		Protected: protectedOf(cfg.Protected, cfg.Policy.Protected),
		Policy:    s.policy,
		Store:     db,
		Locks:     s.svc,
		// notify cases also tell the customer (one notice per case).
		Notice:     noticeRenderer{svc: s.svc, r: s.notifier.Renderer(), clientURL: cfg.Web.BaseURL}.Notice,
		Logger:     logger.With("component", "pipeline"),
		Registerer: s.reg,
	})
	if err != nil {
		s.close()
		return nil, err
	}
	s.collector, err = collect.New(cfg.Collect, collect.Dependencies{
		Decoders:   exportDecoders(cfg),
		NewSink:    s.pipeline.NewSink,
		Registerer: s.reg,
		Logger:     logger, // the collector adds component=collect
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("collect: %w", err)
	}
	s.reg.MustRegister(newLockStates(db))

	s.components = append(s.components, named{"lock", s.svc})
	s.components = append(s.components, driverComponents...)
	s.components = append(s.components, named{"enforce", s.loop}, named{"notify", s.notifier},
		named{"pipeline", s.pipeline}, named{"collect", s.collector})

	// HTTP: API, health, metrics.
	s.mux.Handle("/api/v1/", api.New(api.Dependencies{Service: s.svc, Auth: storeAuth{db}, Findings: findingSource{db}, Enforcement: s.loop, Logger: logger.With("component", "api")}))
	mon := monitoringOnly(cfg.Web.MonitoringNetworks, cfg.Web.TrustedProxies)
	s.mux.Handle("GET /collector", mon(s.collector.StatusHandler()))
	s.mux.Handle("GET /policy/breaker", mon(http.HandlerFunc(s.breakerState)))
	s.mux.HandleFunc("GET /healthz", s.healthz)
	webUI, err := ui.New(ui.Configuration{
		BaseURL:         cfg.Web.BaseURL,
		TrustedProxies:  cfg.Web.TrustedProxies,
		SessionLifetime: cfg.Web.SessionLifetime,
		SecureCookies:   cfg.Web.SecureCookies,
	}, ui.Dependencies{
		Service:     s.svc,
		Store:       db,
		Enforcement: s.loop,
		Policy:      breakerView{p: s.policy, db: db, log: plog},
		Settings:    redacted(cfg),
		Logger:      logger.With("component", "web"),
		Mails:       s.notifier.Renderer(),
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("web: %w", err)
	}
	s.components = append(s.components, named{"web", webUI})
	s.mux.Handle("/", webUI)
	s.mux.Handle("GET /metrics", mon(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})))
	return s, nil
}

// monitoringOnly serves h to clients in nets only (web.monitoring_networks;
// the client is the forwarded address behind a trusted proxy, so a proxy
// on loopback does not open the endpoints to everyone it forwards); the
// others get 403 naming the setting.
func monitoringOnly(nets, trusted []netip.Prefix) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip := auth.ClientIP(r, trusted)
			for _, p := range nets {
				if p.Contains(ip) {
					h.ServeHTTP(w, r)
					return
				}
			}
			http.Error(w, fmt.Sprintf("forbidden: %s is served to web.monitoring_networks only, and %s is not in them", r.URL.Path, ip), http.StatusForbidden)
		})
	}
}

// healthz answers 200 when the database answers; the body says what runs.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.db.SQL().PingContext(ctx); err != nil {
		http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// breakerState shows the circuit breaker (staff monitoring; the admin area
// reads Policy.State through its own interface).
func (s *server) breakerState(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.policy.State())
}

// run starts every component in order, serves HTTP until ctx ends, then
// stops them in reverse order.
func (s *server) run(ctx context.Context, stdout io.Writer) error {
	started := 0
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := started - 1; i >= 0; i-- {
			if err := s.components[i].c.Stop(sctx); err != nil {
				s.log.Error("stop", "component", s.components[i].name, "err", err)
			}
		}
	}()
	for _, c := range s.components {
		if err := c.c.Start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", c.name, err)
		}
		started++
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{
		Handler:           http.NewCrossOriginProtection().Handler(s.mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(stdout, "padlock is serving on http://%s (API under /api/v1, metrics at /metrics)\n", ln.Addr())
	for _, l := range s.collector.Listeners() {
		if l.Socket == 0 {
			fmt.Fprintf(stdout, "collecting %s on %s\n", l.Name, l.Address)
		}
	}
	s.log.Info("serving", "listen", ln.Addr().String(), "data", s.cfg.Data)
	for _, f := range s.afterStart {
		go f(ctx)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *server) close() {
	if s.db != nil {
		s.db.Close()
	}
}
