package detect_test

import (
	"net/netip"
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/flow"
)

// threeServers is an inventory of three customers' servers, each with its
// MAC: A holds 203.0.113.0/25, B 203.0.113.128/26 and own 203.0.113.192/26.
func threeServers() (nets *detect.Prefixes, macA, macB, own flow.MAC) {
	nets = detect.NewPrefixes([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/25"),
		netip.MustParsePrefix("203.0.113.128/26"), netip.MustParsePrefix("203.0.113.192/26")})
	macA, macB, own = flow.MAC{2, 0, 0, 0, 0, 0xa}, flow.MAC{2, 0, 0, 0, 0, 0xb}, flow.MAC{2, 0, 0, 0, 0, 0xc}
	nets.AddMAC(macA, "203.0.113.0/25")
	nets.AddMAC(macB, "203.0.113.128/26")
	nets.AddMAC(own, "203.0.113.192/26")
	return nets, macA, macB, own
}

// An address of one customer's server used by another customer's server
// (its MAC in the inventory) is reported naming that server; when, an
// hour later, a third customer's server misuses the same address, the
// second finding must name the third server's MAC and owner, not the
// first's (whose owner would be blamed for someone else's fault).
func TestForeignAddressNamesTheCurrentSender(t *testing.T) {
	nets, macA, macB, own := threeServers()
	var c capture
	send := func(at time.Duration, mac flow.MAC) {
		c.pkt(at, in(200), 40000, ext(5), 443, flow.ProtoTCP, syn, 60)
		c.recs[len(c.recs)-1].SrcMAC = mac
	}
	for s := 0; s < 2*3600; s += 30 { // the address's own server, all along
		send(time.Duration(s)*time.Second, own)
	}
	for i := range 20 {
		send(time.Duration(i)*time.Second+ms, macA)
		send(time.Hour+time.Duration(i)*time.Second+ms, macB)
	}
	got := run(t, detect.Defaults(), nets, c.sorted())
	if len(got) != 2 {
		t.Fatalf("findings %v, want two foreign_address", verdicts(got))
	}
	for i, want := range []struct {
		mac   flow.MAC
		owner string
	}{{macA, "203.0.113.0/25"}, {macB, "203.0.113.128/26"}} {
		if f := got[i]; f.Rule != "incorrect_network_config.foreign_address" || f.MAC != want.mac || f.Owner != want.owner {
			t.Errorf("finding %d: %s MAC %s owner %s, want foreign_address MAC %s owner %s", i, f.Rule, f.MAC, f.Owner, want.mac, want.owner)
		}
	}
}

// Two exporters see a server's DNS queries to 10.0.0.2 leaving a public
// interface (ECMP over two routers); the second exports 3 s behind the
// first, so records arrive with time going back and forth by 3 s. The
// finding must span every record it counts: first_seen at the earliest
// (97 s), last_seen at the latest (104 s) — not a last_seen before its
// own first_seen.
func TestPrivateDestinationSpanWithLaggingExporter(t *testing.T) {
	var c capture
	for i := range 5 {
		at := time.Duration(100+i) * time.Second
		c.pkt(at, in(44), 30000, netip.MustParseAddr("10.0.0.2"), 53, flow.ProtoUDP, 0, 70)
		c.pkt(at-3*time.Second, in(44), 30001, netip.MustParseAddr("10.0.0.2"), 53, flow.ProtoUDP, 0, 70)
	}
	got := run(t, detect.Defaults(), nil, c.recs) // in arrival order
	if len(got) != 1 || got[0].Rule != "incorrect_network_config.private_destination" {
		t.Fatalf("findings %v, want one private_destination", verdicts(got))
	}
	f := got[0]
	if first, last := f.FirstSeen.Sub(t0), f.LastSeen.Sub(t0); first != 97*time.Second || last != 104*time.Second {
		t.Errorf("finding spans %s .. %s, want 1m37s .. 1m44s", first, last)
	}
}

// Docker's default bridge leaking out unmasqueraded on two customers'
// servers at once: both send from 172.17.0.2, each from its own MAC. The
// finding naming server X (12 records in a minute) must be made of X's
// records only: counted towards X's min_samples and shown in X's dump,
// server Y's packets (6 records, below min_samples alone) are another
// customer's traffic, not evidence against X.
func TestSameBogonSourceFromTwoServersIsNotMerged(t *testing.T) {
	src := netip.MustParseAddr("172.17.0.2")
	macX, macY := flow.MAC{2, 0, 0, 0, 0, 0x1}, flow.MAC{2, 0, 0, 0, 0, 0x2}
	var c capture
	for i := range 12 {
		c.pkt(time.Duration(i)*5*time.Second, src, 40000, ext(9), 443, flow.ProtoTCP, syn, 60)
		c.recs[len(c.recs)-1].SrcMAC = macX
		if i%2 == 0 {
			c.pkt(time.Duration(i)*5*time.Second+ms, src, 51000, ext(10), 53, flow.ProtoUDP, 0, 70)
			c.recs[len(c.recs)-1].SrcMAC = macY
		}
	}
	got := run(t, detect.Defaults(), nil, c.sorted())
	if len(got) != 1 || got[0].Rule != "incorrect_network_config.spoofed_source" || got[0].Source != src || got[0].MAC != macX {
		t.Fatalf("findings %v, want one spoofed_source %s from MAC %s", verdicts(got), src, macX)
	}
	f := got[0]
	for _, p := range f.Packets {
		if p.SrcMAC != macX {
			t.Errorf("the dump against %s shows a packet of %s: %s > %s", macX, p.SrcMAC, p.SrcAddr, p.DstAddr)
		}
	}
	if f.Measured != 10 || f.Samples != 10 || f.LastSeen.Sub(t0) != 45*time.Second {
		t.Errorf("finding counts %v records (%d samples) up to %s, want X's 10 up to 45s", f.Measured, f.Samples, f.LastSeen.Sub(t0))
	}
}

// Packets with private sources reach servers from the internet (a remote
// router's NAT leaking 192.168.x.y, unfiltered upstream). A web server
// answers such SYNs with SYN-ACKs, retransmitted five times; a DNS
// server answers queries from spoofed 10.x sources; a host answers
// pings and sends port unreachables back. Every answer goes to a private
// destination, but the server originated nothing: its configuration is
// fine, and it must not be reported. The same servers opening
// connections to a private address still are.
func TestAnswersToPrivateSourcesAreNoMisconfiguration(t *testing.T) {
	cases := map[string]func(c *capture){
		"SYN-ACKs to leaked NAT clients": func(c *capture) {
			for k := range 3 {
				cl := netip.AddrFrom4([4]byte{192, 168, 1, byte(5 + k)})
				at := time.Duration(k) * 50 * time.Second
				c.pkt(at, cl, 51000+uint16(k), in(50), 443, flow.ProtoTCP, syn, 60)
				for _, rt := range []int{0, 1, 3, 7, 15, 31} {
					c.pkt(at+time.Duration(rt)*time.Second+ms, in(50), 443, cl, 51000+uint16(k), flow.ProtoTCP, synAck, 60)
				}
			}
		},
		"DNS answers to spoofed 10.x": func(c *capture) {
			for k := range 15 {
				cl := netip.AddrFrom4([4]byte{10, 20, 0, byte(k + 1)})
				c.pkt(time.Duration(k)*5*time.Second, cl, 33000+uint16(k), in(51), 53, flow.ProtoUDP, 0, 70)
				c.pkt(time.Duration(k)*5*time.Second+ms, in(51), 53, cl, 33000+uint16(k), flow.ProtoUDP, 0, 300)
			}
		},
		"RSTs, port unreachables and echo replies": func(c *capture) {
			for k := range 15 {
				cl := netip.AddrFrom4([4]byte{172, 16, 0, byte(k + 1)})
				at := time.Duration(k) * 5 * time.Second
				c.pkt(at, in(52), 0, cl, 0, flow.ProtoTCP, rstAck, 54)
				c.icmp(at+ms, in(52), cl, 3, 70)
				c.icmp(at+2*ms, in(52), cl, 0, 84)
			}
		},
	}
	for name, b := range cases {
		var c capture
		b(&c)
		if got := run(t, detect.Defaults(), nil, c.sorted()); len(got) > 0 {
			t.Errorf("%s: %v", name, verdicts(got))
		}
	}
	// a server that itself connects to private addresses still is reported
	var c capture
	for k := range 12 {
		c.pkt(time.Duration(k)*5*time.Second, in(50), 40000+uint16(k), netip.MustParseAddr("192.168.1.10"), 3306, flow.ProtoTCP, syn, 60)
	}
	if got := run(t, detect.Defaults(), nil, c.sorted()); len(got) != 1 || got[0].Rule != "incorrect_network_config.private_destination" {
		t.Errorf("connections to 192.168.1.10:3306: %v, want one private_destination", verdicts(got))
	}
}

// Server A spoofs random sources (a DDoS, 50 packets/s for 20 minutes);
// two minutes in, server B's Docker bridge starts leaking 172.17.0.2 (a
// packet a second). Both are cases of their own: B must be reported
// under 172.17.0.2 with its MAC within seconds, not merged into A's
// random-spoofing episode (under one of A's random addresses, muted by
// its rearm) until A stops.
func TestFixedLeakDuringRandomSpoofing(t *testing.T) {
	macA, macB := flow.MAC{2, 0, 0, 0, 0, 0xa}, flow.MAC{2, 0, 0, 0, 0, 0xb}
	leak := netip.MustParseAddr("172.17.0.2")
	var c capture
	for i := range 20 * 60 * 50 {
		a := netip.AddrFrom4([4]byte{byte(11 + i%200), byte(i >> 8), byte(i), byte(i * 7)})
		c.pkt(time.Duration(i)*20*ms, a, uint16(i), ext(7), 80, flow.ProtoTCP, syn, 60)
		c.recs[len(c.recs)-1].SrcMAC = macA
	}
	for s := 120; s < 20*60; s++ {
		c.pkt(time.Duration(s)*time.Second+5*ms, leak, 40000, ext(8), 443, flow.ProtoTCP, syn, 60)
		c.recs[len(c.recs)-1].SrcMAC = macB
	}
	var b []detect.Finding
	for _, f := range run(t, detect.Defaults(), nil, c.sorted()) {
		if f.MAC == macB || f.Source == leak {
			b = append(b, f)
		}
	}
	if len(b) == 0 {
		t.Fatal("the leak of 172.17.0.2 from server B is not reported")
	}
	if f := b[0]; f.Source != leak || f.MAC != macB || f.LastSeen.Sub(t0) > 140*time.Second {
		t.Errorf("first finding about B: source %s MAC %s at %s, want %s from %s by 2m20s", f.Source, f.MAC, f.LastSeen.Sub(t0), leak, macB)
	}
}

// A corrected inventory takes effect: a server's new MAC, registered to
// the wrong server, makes the server's own traffic a foreign_address
// finding; the staff fix the record after that first finding, and the
// server, sending all along for an hour, is not reported again after the
// rearm period (the inventory's answer was cached per host for good, so
// the fixed server was reported every 15 minutes). Without the fix it is.
func TestForeignAddressAfterTheInventoryIsFixed(t *testing.T) {
	for _, fix := range []bool{true, false} {
		nets := detect.NewPrefixes([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/25"), netip.MustParsePrefix("203.0.113.128/26")})
		mac := flow.MAC{2, 0, 0, 0, 0, 0xd}
		nets.AddMAC(mac, "203.0.113.0/25") // wrong: the server is 203.0.113.130
		var got []detect.Finding
		e, err := detect.New(detect.Defaults(), detect.Dependencies{Networks: nets, OnFinding: func(f detect.Finding) {
			got = append(got, f)
			if fix {
				nets.AddMAC(mac, "203.0.113.128/26")
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
		for i := range 360 {
			at := t0.Add(time.Duration(i) * 10 * time.Second)
			r := flow.Record{Start: at, End: at, Format: flow.FormatPcap, SamplingRate: 1, SrcMAC: mac,
				SrcAddr: in(130), DstAddr: ext(5), SrcPort: uint16(40000 + i), DstPort: 443, Proto: flow.ProtoTCP,
				TCPFlags: syn, Packets: 1, Bytes: 60, SampledPackets: 1, SampledBytes: 60}
			e.Record(&r)
		}
		e.Flush()
		for _, f := range got {
			if f.Rule != "incorrect_network_config.foreign_address" {
				t.Errorf("fix %v: %v", fix, verdicts(got))
			}
		}
		if fix && len(got) != 1 {
			t.Errorf("fixed after the first finding: %d findings, want 1", len(got))
		}
		if !fix && len(got) < 3 {
			t.Errorf("never fixed: %d findings in an hour, want one per rearm period", len(got))
		}
	}
}

// Re-arm is per sender. Two customers' servers leak Docker's 172.17.0.2
// unmasqueraded five minutes apart, and two servers misuse a third
// server's address five minutes apart, all inside the re-arm period
// (15 minutes by default): each server is its own case and must be
// reported, the second not silenced by the first one's finding. The same
// server again inside the period still is silenced.
func TestRearmIsPerSendingServer(t *testing.T) {
	nets, macA, macB, _ := threeServers()
	docker := netip.MustParseAddr("172.17.0.2")
	var c capture
	burst := func(from time.Duration, src netip.Addr, mac flow.MAC) {
		for i := range 20 {
			c.pkt(from+time.Duration(i)*time.Second, src, 40000, ext(5+i), 443, flow.ProtoTCP, syn, 60)
			c.recs[len(c.recs)-1].SrcMAC = mac
		}
	}
	burst(0, docker, macA)
	burst(5*time.Minute, docker, macB)
	burst(10*time.Minute, docker, macA) // A again: inside its own period
	burst(0, in(200), macA)
	burst(5*time.Minute, in(200), macB)
	burst(10*time.Minute, in(200), macB) // B again: inside its own period
	got := run(t, detect.Defaults(), nets, c.sorted())
	type key struct {
		rule string
		mac  flow.MAC
	}
	n := map[key]int{}
	for _, f := range got {
		n[key{f.Rule, f.MAC}]++
	}
	want := map[key]int{
		{"incorrect_network_config.spoofed_source", macA}:  1,
		{"incorrect_network_config.spoofed_source", macB}:  1,
		{"incorrect_network_config.foreign_address", macA}: 1,
		{"incorrect_network_config.foreign_address", macB}: 1,
	}
	if len(n) != len(want) || len(got) != 4 {
		t.Fatalf("findings %v, want one spoofed_source and one foreign_address for each of MAC %s and %s", verdicts(got), macA, macB)
	}
	for k, v := range want {
		if n[k] != v {
			t.Errorf("%s from %s: %d findings, want %d", k.rule, k.mac, n[k], v)
		}
	}
}
