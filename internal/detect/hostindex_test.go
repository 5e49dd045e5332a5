package detect

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// The host index agrees with a map through random adds and deletes of
// IPv4 and IPv6 addresses (deletes shift probe runs back; a wrong shift
// loses addresses or finds deleted ones).
func TestHostIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := newHostIndex()
	want := map[netip.Addr]uint32{}
	addr := func() netip.Addr {
		i := rng.IntN(3000)
		if i%7 == 0 {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		}
		return netip.AddrFrom4([4]byte{203, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	for step := 0; step < 200000; step++ {
		a := addr()
		h, ok := x.get(a)
		w, wok := want[a]
		if ok != wok || h != w {
			t.Fatalf("step %d: get(%s) = %d, %v; want %d, %v", step, a, h, ok, w, wok)
		}
		switch {
		case !ok:
			x.put(a, uint32(step))
			want[a] = uint32(step)
		case rng.IntN(2) == 0:
			x.del(a)
			delete(want, a)
		}
		if x.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, x.len(), len(want))
		}
	}
}
