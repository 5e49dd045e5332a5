package detect_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"padlock/internal/detect"
)

// Internal and Owner agree with checking every prefix, for short lists
// (scanned) and long ones (filtered, then looked up by length), IPv4 and
// IPv6, inside, beside and far from the prefixes; so does the engine's
// ownership of both ends of a record at once.
func TestPrefixesInternal(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{3, 40, 400} {
		var pfx []netip.Prefix
		for i := range n {
			if i%4 == 3 {
				var b [16]byte
				b[0], b[1], b[2], b[3], b[4] = 0x20, 0x01, 0x0d, 0xb8, byte(rng.IntN(256))
				pfx = append(pfx, netip.PrefixFrom(netip.AddrFrom16(b), 40+rng.IntN(25)).Masked())
				continue
			}
			a := netip.AddrFrom4([4]byte{198, byte(18 + rng.IntN(2)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			pfx = append(pfx, netip.PrefixFrom(a, []int{12, 16, 22, 24, 29, 32}[rng.IntN(6)]).Masked())
		}
		nets := detect.NewPrefixes(pfx)
		hits := 0
		var prev netip.Addr
		var prevIn bool
		for range 50000 {
			var a netip.Addr
			p := pfx[rng.IntN(len(pfx))]
			switch rng.IntN(3) {
			case 0: // far away
				a = netip.AddrFrom4([4]byte{byte(rng.IntN(224)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			default: // at or near a prefix
				b := p.Addr().As16()
				b[15] ^= byte(rng.IntN(256))
				if rng.IntN(2) == 0 {
					b[13] ^= byte(rng.IntN(4))
				}
				a = netip.AddrFrom16(b).Unmap()
			}
			want := false
			for _, q := range pfx {
				want = want || q.Contains(a)
			}
			if got := nets.Internal(a); got != want {
				t.Fatalf("%d prefixes: Internal(%s) = %v, want %v", n, a, got, want)
			}
			if _, ok := nets.Owner(a); ok != want {
				t.Fatalf("%d prefixes: Owner(%s) found %v, want %v", n, a, ok, want)
			}
			if prev.IsValid() {
				var in uint8
				if prevIn {
					in |= 1
				}
				if want {
					in |= 2
				}
				if got := nets.Ends(prev, a); got != in {
					t.Fatalf("%d prefixes: ends(%s, %s) = %b, want %b", n, prev, a, got, in)
				}
			}
			prev, prevIn = a, want
			if want {
				hits++
			}
		}
		if hits == 0 {
			t.Fatalf("%d prefixes: no address inside: the test checks nothing", n)
		}
	}
}
