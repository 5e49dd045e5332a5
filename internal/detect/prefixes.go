package detect

import (
	"net/netip"
	"slices"

	"padlock/internal/flow"
	"padlock/internal/netset"
)

// Prefixes implements Networks from a list of customer prefixes (the
// `customers:` key or --customers): an address is internal when a prefix
// contains it, its owner is the most specific containing prefix (written
// as a string, e.g. "203.0.113.0/24"), and MACs can be assigned to owners
// with AddMAC. Lookups do not allocate. Not safe for concurrent mutation;
// build it before use.
type Prefixes struct {
	v4     []v4net        // IPv4 prefixes, most specific first (small lists)
	list   []netip.Prefix // most specific first
	bits   []int          // distinct prefix lengths, longest first (large lists)
	byBits map[netip.Prefix]string
	macs   map[flow.MAC]string
	filter netset.V4Filter // long lists: answers most IPv4 lookups with one bit test
}

type v4net struct{ net, mask uint32 }

// linearMax is the list size up to which lookups scan the list.
const linearMax = 16

// NewPrefixes builds the set; prefixes are masked.
func NewPrefixes(pfx []netip.Prefix) *Prefixes {
	p := &Prefixes{byBits: map[netip.Prefix]string{}, macs: map[flow.MAC]string{}}
	for _, x := range pfx {
		x = x.Masked()
		if _, dup := p.byBits[x]; dup {
			continue
		}
		p.list = append(p.list, x)
		p.byBits[x] = x.String()
		p.filter.Add(x)
	}
	slices.SortStableFunc(p.list, func(a, b netip.Prefix) int { return b.Bits() - a.Bits() })
	for _, x := range p.list {
		if x.Addr().Is4() {
			b := x.Addr().As4()
			mask := ^uint32(0) << (32 - x.Bits())
			if x.Bits() == 0 {
				mask = 0
			}
			p.v4 = append(p.v4, v4net{uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), mask})
		}
		if !slices.Contains(p.bits, x.Bits()) {
			p.bits = append(p.bits, x.Bits())
		}
	}
	return p
}

// AddMAC registers mac as belonging to owner (an owner string as Owner
// returns it).
func (p *Prefixes) AddMAC(mac flow.MAC, owner string) { p.macs[mac] = owner }

func (p *Prefixes) lookup(a netip.Addr) (netip.Prefix, bool) {
	if len(p.list) <= linearMax {
		for _, x := range p.list {
			if x.Contains(a) {
				return x, true
			}
		}
		return netip.Prefix{}, false
	}
	for _, b := range p.bits {
		if b > a.BitLen() {
			continue
		}
		x, err := a.Prefix(b)
		if err != nil {
			continue
		}
		if _, ok := p.byBits[x]; ok && x.Addr().Is4() == a.Is4() {
			return x, true
		}
	}
	return netip.Prefix{}, false
}

// Internal implements Networks.
func (p *Prefixes) Internal(a netip.Addr) bool {
	if !a.Is4() {
		_, ok := p.lookup(a)
		return ok
	}
	v := netset.Uint32(a)
	if len(p.list) <= linearMax {
		for _, n := range p.v4 {
			if v&n.mask == n.net {
				return true
			}
		}
		return false
	}
	// long lists (an inventory's prefixes): most addresses of a record
	// are external and the filter rejects them with one bit test; the
	// loop above is cheaper for short lists, which stay in L1
	if in, maybe := p.filter.Check(v); in || !maybe {
		return in
	}
	_, ok := p.lookup(a)
	return ok
}

// ends reports which ends of a record are internal, as the engine's
// ownership does (bit 0 src, bit 1 dst): for two IPv4 addresses and a
// short list, one pass over the list for both, without the interface
// call per address (a tenth of the engine's instructions before).
func (p *Prefixes) ends(src, dst netip.Addr) uint8 {
	var in uint8
	if src.Is4() && dst.Is4() && len(p.list) <= linearMax {
		s, d := netset.Uint32(src), netset.Uint32(dst)
		for _, n := range p.v4 {
			if s&n.mask == n.net {
				in |= inSrc
			}
			if d&n.mask == n.net {
				in |= inDst
			}
		}
		return in
	}
	if p.Internal(src) {
		in |= inSrc
	}
	if p.Internal(dst) {
		in |= inDst
	}
	return in
}

// Owner implements Networks.
func (p *Prefixes) Owner(a netip.Addr) (string, bool) {
	x, ok := p.lookup(a)
	if !ok {
		return "", false
	}
	return p.byBits[x], true
}

// MACOwner implements Networks.
func (p *Prefixes) MACOwner(m flow.MAC) (string, bool) { o, ok := p.macs[m]; return o, ok }

var _ Networks = (*Prefixes)(nil)
