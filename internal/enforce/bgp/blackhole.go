package bgp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"padlock/internal/enforce"
)

// blackhole announces one RTBH route per blocked prefix.
type blackhole struct{ s *Speaker }

func (blackhole) Name() string { return enforce.MethodBlackhole }

func (blackhole) Capabilities() enforce.Capabilities {
	return enforce.Capabilities{BlockInbound: true,
		Scopes: []enforce.Scope{enforce.ScopeAddress, enforce.ScopeSubnet}}
}

func (b blackhole) Apply(_ context.Context, c enforce.Change) error {
	var errs []error
	build := func(blocks []enforce.Block, withdraw bool) []*apiutil.Path {
		var out []*apiutil.Path
		for _, bl := range blocks {
			p, err := b.path(bl.Target, withdraw)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, p)
		}
		return out
	}
	if add := build(c.Add.Blocks, false); len(add) > 0 {
		if err := b.s.add(add); err != nil {
			errs = append(errs, err)
		}
	}
	if del := build(c.Remove.Blocks, true); len(del) > 0 {
		if err := b.s.withdraw(del); err != nil {
			errs = append(errs, err)
		}
	}
	if len(c.Add.Allows) > 0 {
		errs = append(errs, fmt.Errorf("blackhole cannot whitelist: %w", enforce.ErrUnsupported))
	}
	return errors.Join(errs...)
}

func (b blackhole) path(t enforce.Target, withdraw bool) (*apiutil.Path, error) {
	if !t.Prefix.IsValid() {
		return nil, fmt.Errorf("blackhole %s: %w", t, enforce.ErrUnsupported)
	}
	nlri, err := gobgp.NewIPAddrPrefix(t.Prefix)
	if err != nil {
		return nil, fmt.Errorf("blackhole %s: %w", t, err)
	}
	attrs := []gobgp.PathAttributeInterface{gobgp.NewPathAttributeOrigin(gobgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	fam := gobgp.RF_IPv4_UC
	if t.Prefix.Addr().Is4() {
		nh, err := gobgp.NewPathAttributeNextHop(b.s.cfg.NextHop)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		fam = gobgp.RF_IPv6_UC
		mp, err := gobgp.NewPathAttributeMpReachNLRI(fam, []gobgp.PathNLRI{{NLRI: nlri}}, b.s.cfg.NextHop6)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	attrs = append(attrs, gobgp.NewPathAttributeCommunities(b.s.communities))
	slices.SortFunc(attrs, func(x, y gobgp.PathAttributeInterface) int { return int(x.GetType()) - int(y.GetType()) })
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw, Age: time.Now().Unix()}, nil
}

// Applied reports the blackhole routes padlock originates; those no
// established peer has in its adj-RIB-out are marked NotEffective.
func (b blackhole) Applied(ctx context.Context) (enforce.Desired, error) {
	local, out, err := b.s.announced(ctx, gobgp.RF_IPv4_UC, gobgp.RF_IPv6_UC)
	if local == nil {
		return enforce.Desired{}, err
	}
	var d enforce.Desired
	for key, p := range local {
		if !hasCommunity(p, uint32(gobgp.COMMUNITY_BLACKHOLE)) {
			continue
		}
		nlri, ok := p.Nlri.(*gobgp.IPAddrPrefix)
		if !ok {
			continue
		}
		b := enforce.Block{Target: enforce.Target{Prefix: nlri.Prefix}, Method: enforce.MethodBlackhole}
		if out != nil && !out[key] {
			b.NotEffective = notAdvertised
		}
		d.Blocks = append(d.Blocks, b)
	}
	return d, err
}

func hasCommunity(p *apiutil.Path, c uint32) bool {
	for _, a := range p.Attrs {
		if cs, ok := a.(*gobgp.PathAttributeCommunities); ok && slices.Contains(cs.Value, c) {
			return true
		}
	}
	return false
}

// notAdvertised is the NotEffective reason of a route in padlock's RIB that
// no established session carries (the routers did not negotiate its address
// family, or an export filter dropped it).
const notAdvertised = "in padlock's RIB but not advertised to any established peer"
