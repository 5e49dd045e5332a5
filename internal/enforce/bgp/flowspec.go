package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"padlock/internal/enforce"
)

// flowSpec announces discard rules for blocked prefixes and accept rules for
// whitelisted sources (see the package documentation for the rule set).
type flowSpec struct{ s *Speaker }

// Large communities (RFC 8092) ASN:1:1 and ASN:1:2 tag the two accept rules
// of a whitelist entry, so that reading the RIB back tells the whitelisted
// source from the locked target even when both are locked.
const (
	tagAllowIn  = 1 // {destination target, source whitelisted}
	tagAllowOut = 2 // {destination whitelisted, source target}
)

func (flowSpec) Name() string { return enforce.MethodFlowSpec }

func (flowSpec) Capabilities() enforce.Capabilities {
	return enforce.Capabilities{BlockInbound: true, BlockOutbound: true, Allow: true,
		Scopes: []enforce.Scope{enforce.ScopeAddress, enforce.ScopeSubnet}}
}

// rule is one FlowSpec NLRI with padlock's meaning.
type rule struct {
	dst, src netip.Prefix // either may be invalid (absent)
	accept   bool         // no action; otherwise traffic-rate 0 (discard)
	tag      uint32       // tagAllow* for accept rules
}

func blockRules(p netip.Prefix) []rule {
	return []rule{{dst: p}, {src: p}}
}

func allowRules(a enforce.Allow) []rule {
	w := enforce.Address(a.Source).Prefix
	return []rule{
		{dst: a.Target.Prefix, src: w, accept: true, tag: tagAllowIn},
		{dst: w, src: a.Target.Prefix, accept: true, tag: tagAllowOut},
	}
}

func (f flowSpec) Apply(_ context.Context, c enforce.Change) error {
	var errs []error
	paths := func(rules []rule, withdraw bool) []*apiutil.Path {
		var out []*apiutil.Path
		for _, r := range rules {
			p, err := f.path(r, withdraw)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, p)
		}
		return out
	}
	var addAllow, addBlock, delBlock, delAllow []rule
	for _, a := range c.Add.Allows {
		if !a.Target.Prefix.IsValid() {
			errs = append(errs, fmt.Errorf("flowspec %s: %w", a.Target, enforce.ErrUnsupported))
			continue
		}
		addAllow = append(addAllow, allowRules(a)...)
	}
	for _, b := range c.Add.Blocks {
		if !b.Target.Prefix.IsValid() {
			errs = append(errs, fmt.Errorf("flowspec %s: %w", b.Target, enforce.ErrUnsupported))
			continue
		}
		addBlock = append(addBlock, blockRules(b.Target.Prefix)...)
	}
	for _, b := range c.Remove.Blocks {
		if b.Target.Prefix.IsValid() {
			delBlock = append(delBlock, blockRules(b.Target.Prefix)...)
		}
	}
	for _, a := range c.Remove.Allows {
		if a.Target.Prefix.IsValid() && a.Source.IsValid() {
			delAllow = append(delAllow, allowRules(a)...)
		}
	}
	// Accept rules go out before the discards they punch through, and
	// are withdrawn after the discards are gone.
	for _, step := range []struct {
		rules    []rule
		withdraw bool
	}{{addAllow, false}, {addBlock, false}, {delBlock, true}, {delAllow, true}} {
		ps := paths(step.rules, step.withdraw)
		if len(ps) == 0 {
			continue
		}
		var err error
		if step.withdraw {
			err = f.s.withdraw(ps)
		} else {
			err = f.s.add(ps)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (f flowSpec) path(r rule, withdraw bool) (*apiutil.Path, error) {
	p := r.dst
	if !p.IsValid() {
		p = r.src
	}
	fam := gobgp.RF_FS_IPv4_UC
	nh := netip.IPv4Unspecified()
	if p.Addr().Is6() {
		fam, nh = gobgp.RF_FS_IPv6_UC, netip.IPv6Unspecified()
	}
	var comps []gobgp.FlowSpecComponentInterface
	for i, q := range []netip.Prefix{r.dst, r.src} {
		if !q.IsValid() {
			continue
		}
		pre, err := gobgp.NewIPAddrPrefix(q)
		if err != nil {
			return nil, fmt.Errorf("flowspec %s: %w", q, err)
		}
		switch {
		case i == 0 && fam == gobgp.RF_FS_IPv4_UC:
			comps = append(comps, gobgp.NewFlowSpecDestinationPrefix(pre))
		case i == 0:
			comps = append(comps, gobgp.NewFlowSpecDestinationPrefix6(pre, 0))
		case fam == gobgp.RF_FS_IPv4_UC:
			comps = append(comps, gobgp.NewFlowSpecSourcePrefix(pre))
		default:
			comps = append(comps, gobgp.NewFlowSpecSourcePrefix6(pre, 0))
		}
	}
	nlri, err := gobgp.NewFlowSpecUnicast(fam, comps)
	if err != nil {
		return nil, fmt.Errorf("flowspec: %w", err)
	}
	mp, err := gobgp.NewPathAttributeMpReachNLRI(fam, []gobgp.PathNLRI{{NLRI: nlri}}, nh)
	if err != nil {
		return nil, fmt.Errorf("flowspec: %w", err)
	}
	attrs := []gobgp.PathAttributeInterface{gobgp.NewPathAttributeOrigin(gobgp.BGP_ORIGIN_ATTR_TYPE_IGP), mp}
	if r.accept {
		attrs = append(attrs, gobgp.NewPathAttributeLargeCommunities([]*gobgp.LargeCommunity{
			gobgp.NewLargeCommunity(f.s.cfg.ASN, 1, r.tag)}))
	} else {
		attrs = append(attrs, gobgp.NewPathAttributeExtendedCommunities([]gobgp.ExtendedCommunityInterface{
			gobgp.NewTrafficRateExtended(0, 0)}))
	}
	slices.SortFunc(attrs, func(x, y gobgp.PathAttributeInterface) int { return int(x.GetType()) - int(y.GetType()) })
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw, Age: time.Now().Unix()}, nil
}

// Applied reports the blocks and allows whose rules padlock originates;
// one is in effect when both its rules are in the adj-RIB-out of an
// established peer, and marked NotEffective otherwise.
func (f flowSpec) Applied(ctx context.Context) (enforce.Desired, error) {
	local, out, err := f.s.announced(ctx, gobgp.RF_FS_IPv4_UC, gobgp.RF_FS_IPv6_UC)
	if local == nil {
		return enforce.Desired{}, err
	}
	have := map[rule]bool{} // rule → advertised
	for key, p := range local {
		r, ok := parseRule(p.Nlri.String())
		if !ok {
			continue
		}
		r.accept = !isDiscard(p)
		if r.accept {
			r.tag = allowTag(p, f.s.cfg.ASN)
			if r.tag == 0 {
				continue // not padlock's
			}
		}
		have[r] = out == nil || out[key]
	}
	// A block or allow is its two rules; it is in effect when both are
	// advertised, and reported (for removal) when either is in the RIB.
	var d enforce.Desired
	seen := map[rule]bool{}
	for r := range have {
		switch {
		case !r.accept && !seen[r] && (r.dst.IsValid() != r.src.IsValid()):
			pair := []rule{{dst: r.dst}, {src: r.dst}}
			if r.src.IsValid() {
				pair = []rule{{dst: r.src}, {src: r.src}}
			}
			b := enforce.Block{Target: enforce.Target{Prefix: pair[0].dst}, Method: enforce.MethodFlowSpec}
			if adv0, ok0 := have[pair[0]]; !ok0 || !adv0 || !have[pair[1]] {
				b.NotEffective = notAdvertised
			}
			seen[pair[0]], seen[pair[1]] = true, true
			d.Blocks = append(d.Blocks, b)
		case r.accept && !seen[r]:
			in := r
			if r.tag == tagAllowOut {
				in = rule{dst: r.src, src: r.dst, accept: true, tag: tagAllowIn}
			}
			if !in.src.IsSingleIP() {
				continue
			}
			outRule := rule{dst: in.src, src: in.dst, accept: true, tag: tagAllowOut}
			a := enforce.Allow{Source: in.src.Addr(), Target: enforce.Target{Prefix: in.dst}, Method: enforce.MethodFlowSpec}
			if advIn, okIn := have[in]; !okIn || !advIn || !have[outRule] {
				a.NotEffective = notAdvertised
			}
			seen[in], seen[outRule] = true, true
			d.Allows = append(d.Allows, a)
		}
	}
	return d, err
}

// parseRule reads back what path() builds: "[destination: P][source: Q]"
// (IPv6 prefixes carry an offset: "2001:db8::1/128/0").
func parseRule(s string) (rule, bool) {
	var r rule
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	for part := range strings.SplitSeq(s, "][") {
		name, val, ok := strings.Cut(part, ": ")
		if !ok {
			return r, false
		}
		if strings.Count(val, "/") == 2 {
			i := strings.LastIndex(val, "/")
			if val[i+1:] != "0" {
				return r, false
			}
			val = val[:i]
		}
		p, err := netip.ParsePrefix(val)
		if err != nil {
			return r, false
		}
		switch name {
		case "destination":
			r.dst = p
		case "source":
			r.src = p
		default:
			return r, false // a component padlock does not use
		}
	}
	return r, r.dst.IsValid() || r.src.IsValid()
}

func isDiscard(p *apiutil.Path) bool {
	for _, a := range p.Attrs {
		if ec, ok := a.(*gobgp.PathAttributeExtendedCommunities); ok {
			for _, c := range ec.Value {
				if tr, ok := c.(*gobgp.TrafficRateExtended); ok && tr.Rate == 0 {
					return true
				}
			}
		}
	}
	return false
}

func allowTag(p *apiutil.Path, asn uint32) uint32 {
	for _, a := range p.Attrs {
		if lc, ok := a.(*gobgp.PathAttributeLargeCommunities); ok {
			for _, c := range lc.Values {
				if c.ASN == asn && c.LocalData1 == 1 && (c.LocalData2 == tagAllowIn || c.LocalData2 == tagAllowOut) {
					return c.LocalData2
				}
			}
		}
	}
	return 0
}
