// Command collectonly runs padlock's live collector (internal/collect) with
// the real decoders and a sink that only sums what detection would read,
// plus the Prometheus endpoint, so that bench/run-padlock.sh
// (PADLOCK_MODE=collectonly) can measure ingestion alone against
// shared/bench/flowgen. It is a benchmark tool, not part of the product:
// it binds exactly the addresses it is given and contacts nothing else.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"padlock/internal/collect"
	"padlock/internal/decode"
	"padlock/internal/decode/netflow"
	"padlock/internal/decode/sflow"
	"padlock/internal/flow"
)

// sumSink touches the fields detection reads, so the records are really
// consumed; one per socket goroutine, so no locking.
type sumSink struct{ packets, bytes uint64 }

func (s *sumSink) Record(r *flow.Record) {
	if r.SrcAddr.IsValid() {
		s.packets += r.Packets
		s.bytes += r.Bytes
	}
}

func main() {
	nf := flag.String("netflow-listen", "127.0.0.1:2055", "NetFlow v5/v9/IPFIX UDP listen address (empty: off)")
	sf := flag.String("sflow-listen", "127.0.0.1:6343", "sFlow UDP listen address (empty: off)")
	ml := flag.String("metrics-listen", "127.0.0.1:8080", "HTTP address of /metrics and /api/v1/exporters")
	sockets := flag.Int("sockets", 0, "sockets per port (0: one per CPU)")
	rcvbuf := flag.Int("receive-buffer", 32<<20, "receive buffer per socket in bytes")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to `FILE`")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	conf := collect.DefaultConfiguration()
	conf.NetFlow, conf.SFlow, conf.IPFIX = *nf, *sf, ""
	conf.Sockets, conf.ReceiveBuffer = *sockets, *rcvbuf
	reg := prometheus.NewRegistry()
	c, err := collect.New(conf, collect.Dependencies{
		Decoders: collect.Decoders{
			NetFlow: func() decode.Decoder { return netflow.New(netflow.Configuration{}) },
			SFlow:   func() decode.Decoder { return sflow.New(sflow.Configuration{}) },
		},
		NewSink:    func(int) flow.Sink { return &sumSink{} },
		Registerer: reg,
		Logger:     log,
	})
	if err != nil {
		log.Error("collector", "error", err.Error())
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Error("cpuprofile", "error", err.Error())
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Error("cpuprofile", "error", err.Error())
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := c.Start(ctx); err != nil {
		log.Error("collector", "error", err.Error())
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/exporters", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.Exporters())
	})
	ln, err := net.Listen("tcp", *ml)
	if err != nil {
		log.Error("metrics listener", "error", err.Error())
		os.Exit(1)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "error", err.Error())
		}
	}()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := c.Stop(sctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
