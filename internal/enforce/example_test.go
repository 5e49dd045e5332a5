package enforce_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/enforce"
	"padlock/internal/enforce/bgp"
	"padlock/internal/enforce/nftables"
	"padlock/internal/enforce/webhook"
)

// lockStore stands for the lock manager, which implements enforce.Source.
type lockStore struct{}

func (lockStore) Desired(context.Context) (enforce.Desired, error) { return enforce.Desired{}, nil }

// How cmd/padlock wires enforcement: drivers from their config sections, the
// loop over them, Start in order and Stop in reverse.
func Example_wiring() {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	reg := prometheus.NewRegistry()

	bgpCfg := bgp.DefaultConfiguration() // then decode `enforce.bgp:` over it
	speaker, err := bgp.New(bgpCfg, log)
	if err != nil {
		fmt.Println(err) // bgp: asn: required ...
		return
	}
	nft, _ := nftables.New(nftables.DefaultConfiguration(), log)
	hook, _ := webhook.New(webhook.DefaultConfiguration(), log)

	loop, _ := enforce.New(enforce.DefaultConfiguration(), enforce.Dependencies{
		Source:     lockStore{},
		Drivers:    []enforce.Driver{speaker.Blackhole(), speaker.FlowSpec(), nft, hook},
		Registerer: reg,
		Logger:     log,
		OnStatus:   func(s enforce.Status) { /* lock manager: show "enforcement: pending" + s.Err */ },
	})
	speaker.OnPeerChange(loop.Trigger)
	_ = speaker.Start(ctx)
	_ = nft.Start(ctx)
	_ = loop.Start(ctx) // reconciles at once: re-announces, rebuilds the table
	// after every lock change: loop.Trigger(); to show a lock: loop.Status(id)
	_ = loop.Stop(ctx)
	_ = nft.Stop(ctx)
	_ = speaker.Stop(ctx)
}
