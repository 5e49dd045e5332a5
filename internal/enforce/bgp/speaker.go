package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"padlock/internal/enforce"
)

// Speaker is the embedded BGP speaker. New does no I/O; Start opens the
// listener and the sessions; Stop closes them (peers drop padlock's routes,
// a new Start announces them again from the desired state).
type Speaker struct {
	cfg         Configuration
	log         *slog.Logger
	communities []uint32

	mu       sync.Mutex
	srv      *server.BgpServer
	onChange func()
}

// OnPeerChange sets a function called (from gobgp's goroutine; it must not
// block) whenever a session changes state, before Start. padlock wires the
// reconcile loop's Trigger here, so a lock pending for want of a session is
// reported applied as soon as the session is up, not after the backoff.
func (s *Speaker) OnPeerChange(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onChange = f
}

var (
	_ enforce.Driver = blackhole{}
	_ enforce.Driver = flowSpec{}
)

// New checks the configuration and builds a speaker.
func New(cfg Configuration, logger *slog.Logger) (*Speaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bgp: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	if !cfg.NextHop6.IsValid() {
		cfg.NextHop6 = netip.MustParseAddr("100::1")
	}
	comms := []uint32{uint32(gobgp.COMMUNITY_BLACKHOLE)}
	for _, s := range cfg.Communities {
		c, _ := parseCommunity(s)
		if !slices.Contains(comms, c) {
			comms = append(comms, c)
		}
	}
	comms = append(comms, uint32(gobgp.COMMUNITY_NO_EXPORT))
	return &Speaker{cfg: cfg, log: logger.With("component", "enforce_bgp"), communities: comms}, nil
}

// Start starts the speaker and adds the peers. Sessions come up in the
// background; until one is established the drivers report ErrNotEffective.
func (s *Speaker) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("bgp: already started")
	}
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	srv := server.NewBgpServer(server.LoggerOption(slog.New(warnHandler{s.log.Handler()}), lvl))
	go srv.Serve()
	global := &api.Global{Asn: s.cfg.ASN, RouterId: s.cfg.RouterID.String(), ListenPort: -1}
	var local netip.Addr
	if s.cfg.Listen != "" {
		a, port, _ := splitListen(s.cfg.Listen)
		local = a
		global.ListenPort = int32(port)
		global.ListenAddresses = []string{a.String()}
	}
	fail := func(err error) error {
		srv.Stop()
		return fmt.Errorf("bgp: %w", err)
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		return fail(fmt.Errorf("start speaker: %w", err))
	}
	// padlock only announces: nothing a router sends is accepted, so the
	// RIB holds padlock's own paths and nothing is passed between peers.
	var stmts []*api.Statement
	for i, rt := range []api.Conditions_RouteType{api.Conditions_ROUTE_TYPE_EXTERNAL, api.Conditions_ROUTE_TYPE_INTERNAL} {
		stmts = append(stmts, &api.Statement{Name: fmt.Sprintf("padlock-learned-%d", i),
			Conditions: &api.Conditions{RouteType: rt},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT}})
	}
	if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: "padlock-reject-learned", Statements: stmts}}); err != nil {
		return fail(fmt.Errorf("import policy: %w", err))
	}
	if err := srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: "padlock-reject-learned"}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
	}}); err != nil {
		return fail(fmt.Errorf("import policy: %w", err))
	}
	retry := uint64(max(s.cfg.ConnectRetry, time.Second) / time.Second)
	if s.cfg.ConnectRetry == 0 {
		retry = 5
	}
	for _, p := range s.cfg.Peers {
		peer := &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN},
			Transport: &api.Transport{RemotePort: uint32(cmpOr(p.Port, 179))},
			Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: retry, HoldTime: 90, KeepaliveInterval: 30}},
		}
		if local.IsValid() {
			peer.Transport.LocalAddress = local.String()
		}
		for _, f := range families {
			afi, safi := f.Afi(), f.Safi()
			peer.AfiSafis = append(peer.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{
				Family: apiutil.ToApiFamily(afi, safi), Enabled: true}})
		}
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
			return fail(fmt.Errorf("peer %s: %w", p.Address, err))
		}
	}
	if s.onChange != nil {
		f := s.onChange
		err := srv.WatchEvent(context.WithoutCancel(ctx), server.WatchEventMessageCallbacks{
			OnPeerUpdate: func(e *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
				if e.Type == apiutil.PEER_EVENT_STATE {
					f()
				}
			},
		}, server.WatchPeer())
		if err != nil {
			return fail(fmt.Errorf("watch peers: %w", err))
		}
	}
	s.srv = srv
	return nil
}

// Stop closes the sessions and the listener.
func (s *Speaker) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	done := make(chan struct{})
	go func() { srv.Stop(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bgp: stop: %w", ctx.Err())
	}
}

// warnHandler passes on records of level Warn and above: gobgp logs every
// session event at Info.
type warnHandler struct{ slog.Handler }

func (h warnHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
func (h warnHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return warnHandler{h.Handler.WithAttrs(a)}
}
func (h warnHandler) WithGroup(n string) slog.Handler { return warnHandler{h.Handler.WithGroup(n)} }

// Blackhole returns the RTBH driver, named enforce.MethodBlackhole.
func (s *Speaker) Blackhole() enforce.Driver { return blackhole{s} }

// FlowSpec returns the FlowSpec driver, named enforce.MethodFlowSpec.
func (s *Speaker) FlowSpec() enforce.Driver { return flowSpec{s} }

// EstablishedPeers returns the addresses of the peers whose session is up.
func (s *Speaker) EstablishedPeers(ctx context.Context) ([]netip.Addr, error) {
	srv, err := s.server()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	err = srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.State != nil && p.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED {
			if a, err := netip.ParseAddr(p.State.NeighborAddress); err == nil {
				out = append(out, a)
			} else if a, err := netip.ParseAddr(p.Conf.NeighborAddress); err == nil {
				out = append(out, a)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bgp: list peers: %w", err)
	}
	return out, nil
}

var families = []gobgp.Family{gobgp.RF_IPv4_UC, gobgp.RF_IPv6_UC, gobgp.RF_FS_IPv4_UC, gobgp.RF_FS_IPv6_UC}

func (s *Speaker) server() (*server.BgpServer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil, errors.New("bgp: speaker not started")
	}
	return s.srv, nil
}

// announced returns, per NLRI string, the locally originated paths of the
// given families, and whether each is in the adj-RIB-out of an established
// peer. err wraps enforce.ErrNotEffective when no peer is established.
func (s *Speaker) announced(ctx context.Context, fams ...gobgp.Family) (map[string]*apiutil.Path, map[string]bool, error) {
	srv, err := s.server()
	if err != nil {
		return nil, nil, err
	}
	local := map[string]*apiutil.Path{}
	for _, f := range fams {
		err := srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f},
			func(n gobgp.NLRI, paths []*apiutil.Path) {
				// Imports are rejected: every path here is padlock's own.
				if len(paths) > 0 {
					local[n.String()] = paths[0]
				}
			})
		if err != nil {
			return nil, nil, fmt.Errorf("bgp: read rib: %w", err)
		}
	}
	peers, err := s.EstablishedPeers(ctx)
	if err != nil {
		return nil, nil, err
	}
	if len(peers) == 0 {
		return local, nil, fmt.Errorf("bgp: no established peer: %w", enforce.ErrNotEffective)
	}
	out := map[string]bool{}
	for _, peer := range peers {
		for _, f := range fams {
			err := srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_OUT, Name: peer.String(), Family: f},
				func(n gobgp.NLRI, _ []*apiutil.Path) { out[n.String()] = true })
			if err != nil && !strings.Contains(err.Error(), "not supported") && !strings.Contains(err.Error(), "not configured") {
				return nil, nil, fmt.Errorf("bgp: read adj-rib-out of %s: %w", peer, err)
			}
		}
	}
	return local, out, nil
}

func (s *Speaker) add(paths []*apiutil.Path) error {
	srv, err := s.server()
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(paths, 1000) {
		if _, err := srv.AddPath(apiutil.AddPathRequest{Paths: chunk}); err != nil {
			return fmt.Errorf("bgp: announce: %w", err)
		}
	}
	return nil
}

func (s *Speaker) withdraw(paths []*apiutil.Path) error {
	srv, err := s.server()
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(paths, 1000) {
		if err := srv.DeletePath(apiutil.DeletePathRequest{Paths: chunk}); err != nil {
			return fmt.Errorf("bgp: withdraw: %w", err)
		}
	}
	return nil
}

func cmpOr(p, def uint16) uint16 {
	if p == 0 {
		return def
	}
	return p
}
