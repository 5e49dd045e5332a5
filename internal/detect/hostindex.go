package detect

import (
	"net/netip"
	"unsafe"

	"padlock/internal/detect/detector"
	"padlock/internal/netset"
)

// hostIndex maps internal addresses to dense host indexes. IPv4 addresses
// (nearly all of them) live in an open-addressing table of 8-byte slots
// (address<<32 | index+1; 0 is empty) kept at most half full, so a lookup
// hashes one word and usually reads one cache line; IPv6 addresses use a map.
type hostIndex struct {
	slots []uint64
	shift uint8 // 64 - log2(len(slots))
	n4    int
	v6    map[detector.Key16]uint32
}

func newHostIndex() hostIndex {
	return hostIndex{slots: make([]uint64, 64), shift: 64 - 6, v6: map[detector.Key16]uint32{}}
}

func (t *hostIndex) len() int { return t.n4 + len(t.v6) }

func (t *hostIndex) slot(k uint32) int { return int(uint64(k) * 0x9e3779b97f4a7c15 >> t.shift) }

func (t *hostIndex) get(a netip.Addr) (uint32, bool) {
	if !a.Is4() {
		h, ok := t.v6[a.As16()]
		return h, ok
	}
	k := netset.Uint32(a)
	mask := len(t.slots) - 1
	for i := t.slot(k); ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return 0, false
		}
		if uint32(s>>32) == k {
			return uint32(s) - 1, true
		}
	}
}

// slotAddr appends the address of the slot where a lookup of a begins (for
// prefetch; IPv6 addresses, in the map, have none).
func (t *hostIndex) slotAddr(addrs []uintptr, a netip.Addr) []uintptr {
	if !a.Is4() {
		return addrs
	}
	return append(addrs, uintptr(unsafe.Pointer(&t.slots[t.slot(netset.Uint32(a))])))
}

// put adds a, which must not be in the table.
func (t *hostIndex) put(a netip.Addr, h uint32) {
	if !a.Is4() {
		t.v6[a.As16()] = h
		return
	}
	if (t.n4+1)*2 > len(t.slots) {
		old := t.slots
		t.slots = make([]uint64, 2*len(old))
		t.shift--
		for _, s := range old {
			if s != 0 {
				t.insert(s)
			}
		}
	}
	t.insert(uint64(netset.Uint32(a))<<32 | uint64(h+1))
	t.n4++
}

func (t *hostIndex) insert(s uint64) {
	mask := len(t.slots) - 1
	i := t.slot(uint32(s >> 32))
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = s
}

// del removes a (linear probing: later slots of the run shift back).
func (t *hostIndex) del(a netip.Addr) {
	if !a.Is4() {
		delete(t.v6, a.As16())
		return
	}
	k := netset.Uint32(a)
	mask := len(t.slots) - 1
	i := t.slot(k)
	for {
		s := t.slots[i]
		if s == 0 {
			return
		}
		if uint32(s>>32) == k {
			break
		}
		i = (i + 1) & mask
	}
	t.n4--
	// backward-shift deletion
	for j := i; ; {
		t.slots[i] = 0
		for {
			j = (j + 1) & mask
			s := t.slots[j]
			if s == 0 {
				return
			}
			home := t.slot(uint32(s >> 32))
			// s may move to i when its home is not cyclically in (i, j]
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				t.slots[i] = s
				i = j
				break
			}
		}
	}
}
