// Package netset answers "could this IPv4 address be in that set of
// prefixes?" with one bit test, for the lookups every flow record makes
// (is this end a customer's address?). Most addresses a record names are
// outside the provider's networks; the filter rejects them without
// touching the prefix table, and accepts addresses in /16s that one
// prefix covers whole. Everything else goes to the caller's exact lookup.
package netset

import (
	"encoding/binary"
	"net/netip"
)

// V4Filter holds two bits per IPv4 /16: some prefix of the set overlaps
// it, and some prefix covers all of it. The zero value is an empty set.
// 16 KiB; not safe for concurrent mutation, safe for concurrent reads.
type V4Filter struct {
	some [1 << 16 / 64]uint64
	all  [1 << 16 / 64]uint64
}

// Add records an IPv4 prefix (IPv6 prefixes are ignored).
func (f *V4Filter) Add(p netip.Prefix) {
	p = p.Masked()
	if !p.IsValid() || !p.Addr().Is4() {
		return
	}
	b := p.Addr().As4()
	first := uint32(b[0])<<8 | uint32(b[1])
	if p.Bits() > 16 {
		f.some[first/64] |= 1 << (first % 64)
		return
	}
	n := uint32(1) << (16 - p.Bits())
	for x := first; x < first+n; x++ {
		f.some[x/64] |= 1 << (x % 64)
		f.all[x/64] |= 1 << (x % 64)
	}
}

// Check tells for the IPv4 address v (big-endian uint32) whether the set
// surely contains it (in), surely does not (!maybe), or the caller must
// look (maybe && !in).
func (f *V4Filter) Check(v uint32) (in, maybe bool) {
	x := v >> 16
	bit := uint64(1) << (x % 64)
	return f.all[x/64]&bit != 0, f.some[x/64]&bit != 0
}

// Uint32 returns an IPv4 address as a big-endian uint32; a must be IPv4.
func Uint32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}
