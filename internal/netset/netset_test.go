package netset

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// The filter agrees with an exact prefix check on random addresses in and
// around its prefixes: never "not in" for a contained address, never "in"
// for one outside.
func TestV4FilterAgreesWithPrefixes(t *testing.T) {
	pfx := []netip.Prefix{
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("44.0.0.0/12"),
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("198.51.100.7/32"),
		netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	var f V4Filter
	for _, p := range pfx {
		f.Add(p)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]int{}
	for range 200000 {
		var v uint32
		switch rng.IntN(3) {
		case 0: // anywhere
			v = rng.Uint32()
		default: // near a prefix
			p := pfx[rng.IntN(len(pfx)-1)]
			v = Uint32(p.Addr()) + uint32(rng.IntN(1<<21)) - 1<<20
		}
		b := [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
		a := netip.AddrFrom4(b)
		want := false
		for _, p := range pfx {
			want = want || p.Contains(a)
		}
		in, maybe := f.Check(v)
		switch {
		case in && !want:
			t.Fatalf("%s: filter says in, no prefix contains it", a)
		case !maybe && want:
			t.Fatalf("%s: filter says out, a prefix contains it", a)
		case in:
			seen["in"]++
		case !maybe:
			seen["out"]++
		default:
			seen["look"]++
		}
	}
	if seen["in"] == 0 || seen["out"] == 0 || seen["look"] == 0 {
		t.Errorf("answers %v: every kind should occur", seen)
	}
	if _, maybe := f.Check(Uint32(netip.MustParseAddr("8.8.8.8"))); maybe {
		t.Error("8.8.8.8 maybe in: its /16 holds no prefix")
	}
}

func TestV4FilterWholeInternet(t *testing.T) {
	var f V4Filter
	f.Add(netip.MustParsePrefix("0.0.0.0/0"))
	if in, _ := f.Check(0xfffffffe); !in {
		t.Error("0.0.0.0/0 does not contain 255.255.255.254")
	}
}
