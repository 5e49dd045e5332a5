package detect

import (
	"net/netip"
	"slices"

	"padlock/internal/flow"
)

// Prefixes implements Networks from a list of customer prefixes (the
// `customers:` key or --customers): an address is internal when a prefix
// contains it, its owner is the most specific containing prefix (written
// as a string, e.g. "203.0.113.0/24"), and MACs can be assigned to owners
// with AddMAC. Lookups do not allocate. Not safe for concurrent mutation;
// build it before use.
type Prefixes struct {
	list   []netip.Prefix // most specific first
	bits   []int          // distinct prefix lengths, longest first (large lists)
	byBits map[netip.Prefix]string
	macs   map[flow.MAC]string
}

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
	}
	slices.SortStableFunc(p.list, func(a, b netip.Prefix) int { return b.Bits() - a.Bits() })
	for _, x := range p.list {
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
func (p *Prefixes) Internal(a netip.Addr) bool { _, ok := p.lookup(a); return ok }

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
