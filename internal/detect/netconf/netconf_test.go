package netconf

import (
	"net/netip"
	"testing"
)

func TestPrivateSet(t *testing.T) {
	s := NewPrivateSet(Defaults().PrivateDestinations)
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "172.16.0.1": true, "172.32.0.1": false, "192.168.1.1": true,
		"100.64.0.1": true, "100.128.0.1": false, "127.0.0.1": true, "169.254.1.1": true,
		"0.1.2.3": true, "240.0.0.1": true, "8.8.8.8": false,
		"203.0.113.5": false, "198.51.100.7": false, "198.18.0.1": false, // test ranges stay public
		"fd00::1": true, "fe80::1": true, "2001:db8::1": false, "2a01::1": false,
		"::ffff:10.0.0.1": true,
	} {
		if got := s.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: %v, want %v", addr, got, want)
		}
	}
}
