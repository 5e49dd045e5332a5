package inventory

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"padlock/internal/netset"
)

// Entry maps one prefix to the product that holds it and its customer.
type Entry struct {
	Prefix     netip.Prefix `json:"prefix"`
	CustomerID int64        `json:"customer_id"`
	Type       ProductType  `json:"product_type"` // server or address
	ProductID  int64        `json:"product_id"`   // Server.ID or Address.ID
}

// Index is an immutable longest-prefix-match table over IPv4 and IPv6.
// It keeps one hash map per prefix length in use and probes the lengths
// from longest to shortest, so a lookup costs at most as many map probes as
// there are distinct prefix lengths (typically a handful). Build a new
// Index when the inventory changes and swap it in atomically; an Index is
// safe for concurrent use because nobody writes to it after Build.
type Index struct {
	all    []Entry
	v4     []v4level
	v6     []v6level
	size   int
	byProd map[productKey][]netip.Prefix
	filter netset.V4Filter // rejects most IPv4 misses (external addresses) with one bit test
	macs   map[[6]byte]MACEntry
}

// MACEntry is the server a MAC address is registered to.
type MACEntry struct {
	CustomerID int64 `json:"customer_id"`
	ServerID   int64 `json:"server_id"`
}

type productKey struct {
	t  ProductType
	id int64
}

type v4level struct {
	bits int
	m    map[uint32]int32
}

type v6key struct{ hi, lo uint64 }

type v6level struct {
	bits int
	m    map[v6key]int32
}

// Build returns an Index over entries. When two entries carry the same
// prefix the later one wins (the store forbids that anyway).
func Build(entries []Entry) *Index { return BuildWithMACs(entries, nil) }

// BuildWithMACs returns an Index over entries that also answers which
// server a MAC address is registered to (LookupMAC); macs is kept, not
// copied.
func BuildWithMACs(entries []Entry, macs map[[6]byte]MACEntry) *Index {
	x := &Index{byProd: map[productKey][]netip.Prefix{}, macs: macs}
	l4 := map[int]map[uint32]int32{}
	l6 := map[int]map[v6key]int32{}
	// Size each level's map up front: growing big maps dominates Build.
	var n4 [33]int
	var n6 [129]int
	for _, e := range entries {
		if p := e.Prefix; p.IsValid() {
			if p.Addr().Is4() {
				n4[p.Bits()]++
			} else {
				n6[p.Bits()]++
			}
		}
	}
	for bits, n := range n4 {
		if n > 0 {
			l4[bits] = make(map[uint32]int32, n)
		}
	}
	for bits, n := range n6 {
		if n > 0 {
			l6[bits] = make(map[v6key]int32, n)
		}
	}
	x.all = make([]Entry, 0, len(entries))
	for _, e := range entries {
		p := e.Prefix.Masked()
		if !p.IsValid() {
			continue
		}
		e.Prefix = p
		i := int32(len(x.all))
		x.all = append(x.all, e)
		k := productKey{e.Type, e.ProductID}
		x.byProd[k] = append(x.byProd[k], p)
		x.filter.Add(p)
		if p.Addr().Is4() {
			m := l4[p.Bits()]
			if m == nil {
				m = map[uint32]int32{}
				l4[p.Bits()] = m
			}
			m[netset.Uint32(p.Addr())] = i
		} else {
			m := l6[p.Bits()]
			if m == nil {
				m = map[v6key]int32{}
				l6[p.Bits()] = m
			}
			m[v6(p.Addr())] = i
		}
	}
	for bits, m := range l4 {
		x.v4 = append(x.v4, v4level{bits, m})
		x.size += len(m)
	}
	for bits, m := range l6 {
		x.v6 = append(x.v6, v6level{bits, m})
		x.size += len(m)
	}
	slices.SortFunc(x.v4, func(a, b v4level) int { return b.bits - a.bits })
	slices.SortFunc(x.v6, func(a, b v6level) int { return b.bits - a.bits })
	return x
}

// Len is the number of prefixes in the index.
func (x *Index) Len() int {
	if x == nil {
		return 0
	}
	return x.size
}

// Lookup returns the entry with the longest prefix containing a.
// IPv4-mapped IPv6 addresses are looked up as IPv4.
func (x *Index) Lookup(a netip.Addr) (Entry, bool) {
	if x == nil || !a.IsValid() {
		return Entry{}, false
	}
	a = a.Unmap()
	if a.Is4() {
		k := netset.Uint32(a)
		if _, maybe := x.filter.Check(k); !maybe {
			return Entry{}, false
		}
		for _, l := range x.v4 {
			if i, ok := l.m[k&mask32(l.bits)]; ok {
				return x.all[i], true
			}
		}
		return Entry{}, false
	}
	k := v6(a.WithZone(""))
	for _, l := range x.v6 {
		if i, ok := l.m[mask128(k, l.bits)]; ok {
			return x.all[i], true
		}
	}
	return Entry{}, false
}

// LookupPrefix returns the entry with the longest prefix that contains the
// whole of p (for example the server subnet a lock on p falls into).
func (x *Index) LookupPrefix(p netip.Prefix) (Entry, bool) {
	if x == nil || !p.IsValid() {
		return Entry{}, false
	}
	p = p.Masked()
	if p.Addr().Is4() {
		k := netset.Uint32(p.Addr())
		for _, l := range x.v4 {
			if l.bits > p.Bits() {
				continue
			}
			if i, ok := l.m[k&mask32(l.bits)]; ok {
				return x.all[i], true
			}
		}
		return Entry{}, false
	}
	k := v6(p.Addr())
	for _, l := range x.v6 {
		if l.bits > p.Bits() {
			continue
		}
		if i, ok := l.m[mask128(k, l.bits)]; ok {
			return x.all[i], true
		}
	}
	return Entry{}, false
}

// LookupMAC returns the server the MAC address mac is registered to.
func (x *Index) LookupMAC(mac [6]byte) (MACEntry, bool) {
	if x == nil {
		return MACEntry{}, false
	}
	e, ok := x.macs[mac]
	return e, ok
}

// Prefixes returns the prefixes of one product (nil when it has none).
func (x *Index) Prefixes(t ProductType, id int64) []netip.Prefix {
	if x == nil {
		return nil
	}
	return slices.Clone(x.byProd[productKey{t, id}])
}

func v6(a netip.Addr) v6key {
	b := a.As16()
	return v6key{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func mask32(bits int) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

func mask128(k v6key, bits int) v6key {
	switch {
	case bits == 0:
		return v6key{}
	case bits <= 64:
		return v6key{k.hi & (^uint64(0) << (64 - bits)), 0}
	case bits == 128:
		return k
	default:
		return v6key{k.hi, k.lo & (^uint64(0) << (128 - bits))}
	}
}
