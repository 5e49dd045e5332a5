package inventory

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func p(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestIndexLongestPrefix(t *testing.T) {
	x := Build([]Entry{
		{Prefix: p("0.0.0.0/0"), CustomerID: 9, Type: ProductAddress, ProductID: 90},
		{Prefix: p("198.51.100.0/24"), CustomerID: 1, Type: ProductAddress, ProductID: 10},
		{Prefix: p("198.51.100.128/25"), CustomerID: 2, Type: ProductAddress, ProductID: 20},
		{Prefix: p("198.51.100.200/32"), CustomerID: 3, Type: ProductServer, ProductID: 30},
		{Prefix: p("2001:db8::/32"), CustomerID: 4, Type: ProductAddress, ProductID: 40},
		{Prefix: p("2001:db8:1::/48"), CustomerID: 5, Type: ProductServer, ProductID: 50},
		{Prefix: p("2001:db8:1:0:8000::/65"), CustomerID: 6, Type: ProductServer, ProductID: 60},
		{Prefix: p("2001:db8:1::1/128"), CustomerID: 7, Type: ProductServer, ProductID: 70},
	})
	for _, tc := range []struct {
		ip   string
		want int64 // ProductID, 0 = none
	}{
		{"198.51.100.1", 10}, {"198.51.100.127", 10}, {"198.51.100.128", 20}, {"198.51.100.200", 30},
		{"198.51.100.201", 20}, {"::ffff:198.51.100.200", 30}, {"8.8.8.8", 90}, {"198.51.101.1", 90},
		{"2001:db8:2::1", 40}, {"2001:db8:1::2", 50}, {"2001:db8:1::1", 70}, {"2001:db8:1:0:8000::1", 60},
		{"2001:db9::1", 0}, {"fe80::1%eth0", 0},
	} {
		e, ok := x.Lookup(netip.MustParseAddr(tc.ip))
		if tc.want == 0 {
			if ok && tc.ip != "fe80::1%eth0" {
				t.Errorf("Lookup(%s) = %+v, want none", tc.ip, e)
			}
			continue
		}
		if !ok || e.ProductID != tc.want {
			t.Errorf("Lookup(%s) = %+v %v, want product %d", tc.ip, e, ok, tc.want)
		}
	}
	if e, ok := x.LookupPrefix(p("198.51.100.128/26")); !ok || e.ProductID != 20 {
		t.Errorf("LookupPrefix(/26) = %+v %v, want the /25", e, ok)
	}
	if e, ok := x.LookupPrefix(p("198.51.0.0/16")); !ok || e.ProductID != 90 {
		t.Errorf("LookupPrefix(/16) = %+v %v, want the default", e, ok)
	}
	if got := x.Prefixes(ProductServer, 30); len(got) != 1 || got[0] != p("198.51.100.200/32") {
		t.Errorf("Prefixes = %v", got)
	}
	if x.Len() != 8 {
		t.Errorf("Len = %d", x.Len())
	}
	var nilIndex *Index
	if _, ok := nilIndex.Lookup(netip.MustParseAddr("1.2.3.4")); ok {
		t.Error("nil index found something")
	}
}

// TestIndexMatchesLinearScan compares the index with a brute-force longest
// prefix match over random prefixes and addresses.
func TestIndexMatchesLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var entries []Entry
	seen := map[netip.Prefix]bool{}
	for i := 0; len(entries) < 3000; i++ {
		var a netip.Addr
		var bits int
		if i%2 == 0 {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], 0xC6000000|r.Uint32()&0x00FFFFFF) // 198.0.0.0/8
			a, bits = netip.AddrFrom4(b), 8+r.IntN(25)
		} else {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:], 0x20010db800000000|r.Uint64()&0xFFFFFFFF)
			binary.BigEndian.PutUint64(b[8:], r.Uint64())
			a, bits = netip.AddrFrom16(b), 32+r.IntN(97)
		}
		pf := netip.PrefixFrom(a, bits).Masked()
		if seen[pf] {
			continue
		}
		seen[pf] = true
		entries = append(entries, Entry{Prefix: pf, CustomerID: int64(i), ProductID: int64(i)})
	}
	x := Build(entries)
	for i := 0; i < 20000; i++ {
		var a netip.Addr
		if i%2 == 0 {
			e := entries[r.IntN(len(entries))]
			a = e.Prefix.Addr()
			if a.Is4() {
				b := a.As4()
				b[3] ^= byte(r.IntN(256))
				a = netip.AddrFrom4(b)
			} else {
				b := a.As16()
				b[15] ^= byte(r.IntN(256))
				b[10] ^= byte(r.IntN(4))
				a = netip.AddrFrom16(b)
			}
		} else {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], r.Uint32())
			a = netip.AddrFrom4(b)
		}
		var best Entry
		found := false
		for _, e := range entries {
			if e.Prefix.Contains(a) && (!found || e.Prefix.Bits() > best.Prefix.Bits()) {
				best, found = e, true
			}
		}
		got, ok := x.Lookup(a)
		if ok != found || ok && got.ProductID != best.ProductID {
			t.Fatalf("Lookup(%s) = %+v %v, linear scan %+v %v", a, got, ok, best, found)
		}
	}
}

// BenchmarkLookup measures lookups in an inventory of 100,000 IPv4 hosts,
// 10,000 IPv4 subnets and 50,000 IPv6 /64s, half of them hits.
func BenchmarkLookup(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	var entries []Entry
	for i := 0; i < 100000; i++ {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0A000000|uint32(i))
		entries = append(entries, Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32), ProductID: int64(i)})
	}
	for i := 0; i < 10000; i++ {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x64000000|uint32(i)<<8)
		entries = append(entries, Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 24+i%5), ProductID: int64(i)}.masked())
	}
	for i := 0; i < 50000; i++ {
		var a [16]byte
		binary.BigEndian.PutUint64(a[:], 0x2a01000000000000|uint64(i)<<16)
		entries = append(entries, Entry{Prefix: netip.PrefixFrom(netip.AddrFrom16(a), 64), ProductID: int64(i)})
	}
	x := Build(entries)
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		e := entries[r.IntN(len(entries))]
		a := e.Prefix.Addr()
		if i%2 == 1 { // a miss
			if a.Is4() {
				a = netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
			} else {
				a = netip.MustParseAddr("2001:db8::1")
			}
		}
		addrs[i] = a
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		x.Lookup(addrs[i&4095])
	}
}

func (e Entry) masked() Entry { e.Prefix = e.Prefix.Masked(); return e }

func BenchmarkBuild(b *testing.B) {
	var entries []Entry
	for i := 0; i < 100000; i++ {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0A000000|uint32(i))
		entries = append(entries, Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 32), ProductID: int64(i)})
	}
	for b.Loop() {
		Build(entries)
	}
}
