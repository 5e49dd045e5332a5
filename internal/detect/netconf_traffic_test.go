package detect_test

import (
	"net/netip"
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/detect/netconf"
	"padlock/internal/flow"
)

// Link chatter that never leaves the customer's link is no
// incorrect_network_config: the limited broadcast (a DHCP client
// rebinding, LAN sync, the provider's DHCP server answering), link-local
// multicast (a gateway's VRRP) and ICMPv6 to a link-local address (echo
// replies to the router's link-local pings), each 30 times over 5 minutes.
func TestLinkChatterIsNoMisconfiguration(t *testing.T) {
	bcast := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	cases := map[string]func(c *capture, at time.Duration){
		"DHCPREQUEST to 255.255.255.255": func(c *capture, at time.Duration) {
			c.pkt(at, in(40), 68, bcast, 67, flow.ProtoUDP, 0, 342)
		},
		"LAN sync to 255.255.255.255:17500": func(c *capture, at time.Duration) {
			c.pkt(at, in(41), 17500, bcast, 17500, flow.ProtoUDP, 0, 200)
		},
		"the provider's DHCP server to broadcast": func(c *capture, at time.Duration) {
			c.pkt(at, netip.MustParseAddr("198.51.100.1"), 67, bcast, 68, flow.ProtoUDP, 0, 342)
		},
		"a gateway's VRRP to 224.0.0.18": func(c *capture, at time.Duration) {
			c.pkt(at, netip.MustParseAddr("198.51.100.2"), 0, netip.MustParseAddr("224.0.0.18"), 0, 112, 0, 60)
		},
		"an echo reply to the router's fe80::1": func(c *capture, at time.Duration) {
			c.icmp(at, in6(43), netip.MustParseAddr("fe80::1"), 129, 64)
		},
		"a neighbour solicitation to a ULA neighbour": func(c *capture, at time.Duration) {
			c.icmp(at, in6(45), netip.MustParseAddr("fd00::1"), 135, 72)
		},
	}
	for name, b := range cases {
		var c capture
		for i := range 30 {
			b(&c, time.Duration(i)*10*time.Second)
		}
		if got := run(t, detect.Defaults(), nil, c.sorted()); len(got) > 0 {
			t.Errorf("%s: %v", name, verdicts(got))
		}
	}
	// a customer's own routed traffic to a private address still is one
	var c capture
	for i := range 30 {
		c.pkt(time.Duration(i)*time.Second, in(44), uint16(30000+i), netip.MustParseAddr("10.0.0.2"), 53, flow.ProtoUDP, 0, 70)
	}
	if got := run(t, detect.Defaults(), nil, c.sorted()); len(got) != 1 || got[0].Rule != netconf.RulePrivateDestination {
		t.Errorf("DNS to 10.0.0.2: %v, want one private_destination", verdicts(got))
	}
}

// Random spoofing for 30 minutes (20 packets/s, a new source each) is one
// episode: reported under one source address, again only after the rearm
// period (15 minutes), not once a window under another random address.
func TestRandomSpoofingIsOneEpisode(t *testing.T) {
	var c capture
	for i := range 30 * 60 * 20 {
		a := netip.AddrFrom4([4]byte{byte(11 + i%200), byte(i >> 8), byte(i), byte(i * 7)})
		c.pkt(time.Duration(i)*50*ms, a, uint16(i), ext(7), 80, flow.ProtoTCP, syn, 60)
	}
	got := run(t, detect.Defaults(), nil, c.sorted())
	if len(got) != 2 {
		t.Fatalf("%d findings in 30 minutes, want 2 (rearm 15 minutes): %v", len(got), verdicts(got))
	}
	if got[0].Source != got[1].Source || got[1].FirstSeen.Sub(got[0].FirstSeen) < 15*time.Minute {
		t.Errorf("findings under %s at %s and %s at %s: want one source, 15 minutes apart",
			got[0].Source, got[0].FirstSeen.Sub(t0), got[1].Source, got[1].FirstSeen.Sub(t0))
	}
}

// A customer's server (its MAC in the inventory) sending packets with a
// source that is nobody's to another customer at the same edge spoofs, as
// it does towards the internet; traffic from the router's MAC to a
// customer does not.
func TestSpoofingTowardsANeighbour(t *testing.T) {
	nets := detect.NewPrefixes([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/25"), netip.MustParsePrefix("203.0.113.128/25")})
	macA, router := flow.MAC{0x02, 0, 0, 0, 0, 0x0a}, flow.MAC{0x02, 0, 0, 0, 0, 0xfe}
	nets.AddMAC(macA, "203.0.113.0/25")
	var c capture
	for i := range 50 {
		c.pkt(time.Duration(i)*ms, netip.MustParseAddr("198.18.5.5"), 1234, in(200), 80, flow.ProtoTCP, syn, 60)
		c.recs[len(c.recs)-1].SrcMAC = macA
		c.pkt(time.Duration(i)*ms, ext(9), 443, in(201), 40000+uint16(i), flow.ProtoTCP, pshAck, 1400)
		c.recs[len(c.recs)-1].SrcMAC = router
	}
	got := run(t, detect.Defaults(), nets, c.sorted())
	if len(got) != 1 || got[0].Rule != netconf.RuleSpoofedSource || got[0].Source != netip.MustParseAddr("198.18.5.5") || got[0].MAC != macA {
		t.Errorf("findings %v, want one spoofed_source 198.18.5.5 from MAC %s", verdicts(got), macA)
	}
}
