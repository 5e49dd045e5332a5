package detect_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/detect"
	"padlock/internal/flow"
)

const ms = time.Millisecond

// nmapSYN is `nmap -sS -p22` over n hosts: SYN each, the few open ones
// answer SYN-ACK (nmap resets), closed ones RST, most are silent.
func nmapSYN(c *capture, scanner netip.Addr, n int, dst func(int) netip.Addr, port uint16) {
	for i := 0; i < n; i++ {
		at := time.Duration(i) * 20 * ms
		d := dst(i)
		c.pkt(at, scanner, 40000+uint16(i%2), d, port, flow.ProtoTCP, syn, 58)
		switch {
		case i%33 == 0: // open
			c.pkt(at+3*ms, d, port, scanner, 40000+uint16(i%2), flow.ProtoTCP, synAck, 58)
			c.pkt(at+4*ms, scanner, 40000+uint16(i%2), d, port, flow.ProtoTCP, rst, 54)
		case i%5 == 0: // closed
			c.pkt(at+3*ms, d, port, scanner, 40000+uint16(i%2), flow.ProtoTCP, rstAck, 54)
		}
	}
}

// nmapPorts is `nmap -sS -p1-n` against one host: most ports closed (RST).
func nmapPorts(c *capture, scanner, target netip.Addr, n int) {
	for p := 1; p <= n; p++ {
		at := time.Duration(p) * 2 * ms
		c.pkt(at, scanner, 51000, target, uint16(p), flow.ProtoTCP, syn, 58)
		if p == 22 || p == 80 {
			c.pkt(at+ms, target, uint16(p), scanner, 51000, flow.ProtoTCP, synAck, 58)
			c.pkt(at+2*ms, scanner, 51000, target, uint16(p), flow.ProtoTCP, rst, 54)
		} else {
			c.pkt(at+ms, target, uint16(p), scanner, 51000, flow.ProtoTCP, rstAck, 54)
		}
	}
}

// masscan sends SYNs at a high rate to random hosts, its own source port.
func masscan(c *capture, scanner netip.Addr, n int, port uint16) {
	for i := 0; i < n; i++ {
		c.pkt(time.Duration(i)*100*time.Microsecond, scanner, 61000, ext((i*7919)%60000+256), port, flow.ProtoTCP, syn, 60)
	}
}

// webServer answers many clients on 443.
func webServer(c *capture, server netip.Addr, clients int) {
	for i := 0; i < clients; i++ {
		c.tcpSession(time.Duration(i)*30*ms, ext(i%60000+256), 30000+uint16(i), server, 443)
	}
}

// crawler fetches from many sites, each connection answered.
func crawler(c *capture, bot netip.Addr, sites int, dst func(int) netip.Addr) {
	for i := 0; i < sites; i++ {
		c.tcpSession(time.Duration(i)*200*ms, bot, 35000+uint16(i), dst(i), 443)
	}
}

// resolver queries many authoritative servers, each answering.
func resolver(c *capture, r netip.Addr, servers int) {
	for i := 0; i < servers; i++ {
		at := time.Duration(i) * 100 * ms
		sp := 20000 + uint16(i*13)
		c.pkt(at, r, sp, ext(i+300), 53, flow.ProtoUDP, 0, 80)
		c.pkt(at+20*ms, ext(i+300), 53, r, sp, flow.ProtoUDP, 0, 300)
	}
}

// dnsServer answers many clients' queries.
func dnsServer(c *capture, s netip.Addr, clients int) {
	for i := 0; i < clients; i++ {
		at := time.Duration(i) * 10 * ms
		c.pkt(at, ext(i+400), 40000+uint16(i), s, 53, flow.ProtoUDP, 0, 80)
		c.pkt(at+ms, s, 53, ext(i+400), 40000+uint16(i), flow.ProtoUDP, 0, 200)
	}
}

// smtpServer receives mail and relays it to a few mail exchangers.
func smtpServer(c *capture, s netip.Addr) {
	for i := 0; i < 200; i++ {
		c.tcpSession(time.Duration(i)*500*ms, ext(i+1000), 40000+uint16(i), s, 25)
	}
	for i := 0; i < 20; i++ {
		c.tcpSession(time.Duration(i)*3*time.Second, s, 45000+uint16(i), ext(i+5000), 25)
	}
}

// spamBot delivers to many distinct mail exchangers, answered.
func spamBot(c *capture, s netip.Addr, mx int) {
	for i := 0; i < mx; i++ {
		c.tcpSession(time.Duration(i)*400*ms, s, 46000+uint16(i), ext(i+7000), 25)
	}
}

// udpFloodSampled is a UDP flood at pps seen through sFlow at 1:rate.
func udpFloodSampled(c *capture, src, target netip.Addr, pps, rate int, secs int) {
	per := pps / rate
	for s := 0; s < secs; s++ {
		for k := 0; k < per; k++ {
			at := time.Duration(s)*time.Second + time.Duration(k)*time.Second/time.Duration(per)
			c.sflow(at, uint32(rate), src, 55000+uint16(k), target, 1+uint16(k*97), flow.ProtoUDP, 0, 1024)
		}
	}
}

func TestScenarios(t *testing.T) {
	web, bot, res, dns, mail, spammer := in(80), in(81), in(82), in(83), in(84), in(85)
	tests := []struct {
		name  string
		build func(c *capture)
		conf  func(*detect.Configuration)
		want  []verdict
	}{
		{name: "nmap SYN scan of port 22", build: func(c *capture) { nmapSYN(c, in(10), 400, ext, 22) },
			want: []verdict{{Rule: "netscan.horizontal", Dir: "out", Internal: "203.0.113.10", Port: 22}}},
		{name: "nmap scan of 1000 ports of one host", build: func(c *capture) { nmapPorts(c, in(11), ext(9), 1000) },
			want: []verdict{{Rule: "netscan.vertical", Dir: "out", Internal: "203.0.113.11", Remote: "198.51.100.9"}}},
		{name: "masscan of port 80", build: func(c *capture) { masscan(c, in(12), 20000, 80) },
			want: []verdict{{Rule: "netscan.horizontal", Dir: "out", Internal: "203.0.113.12", Port: 80}}},
		{name: "IPv6 SYN scan", build: func(c *capture) { nmapSYN(c, in6(10), 400, ext6, 22) },
			want: []verdict{{Rule: "netscan.horizontal", Dir: "out", Internal: in6(10).String(), Port: 22}}},
		{name: "ping sweep", build: func(c *capture) {
			for i := 0; i < 300; i++ {
				c.icmp(time.Duration(i)*10*ms, in(13), ext(i+256), 8, 84)
			}
		}, want: []verdict{{Rule: "netscan.horizontal", Dir: "out", Internal: "203.0.113.13"}}},
		{name: "busy web server is no scanner", build: func(c *capture) { webServer(c, web, 3000) }},
		{name: "crawler with answered connections", build: func(c *capture) { crawler(c, bot, 1200, func(i int) netip.Addr { return ext(i + 256) }) }},
		{name: "IPv6 crawler", build: func(c *capture) { crawler(c, in6(81), 600, ext6) }},
		{name: "DNS resolver", build: func(c *capture) { resolver(c, res, 2000) }},
		{name: "DNS server", build: func(c *capture) { dnsServer(c, dns, 5000) }},
		{name: "SMTP server", build: func(c *capture) { smtpServer(c, mail) }},
		{name: "NTP server answering ntpd clients (123 to 123)", build: func(c *capture) {
			for i := 0; i < 400; i++ {
				at := time.Duration(i) * 10 * ms
				c.pkt(at, ext(i+400), 123, dns, 123, flow.ProtoUDP, 0, 90)
				c.pkt(at+ms, dns, 123, ext(i+400), 123, flow.ProtoUDP, 0, 90)
			}
		}},
		{name: "DNS server with fragmented answers", build: func(c *capture) {
			for i := 0; i < 400; i++ { // the later fragments carry no ports
				at := time.Duration(i) * 10 * ms
				c.pkt(at, ext(i+400), 40000, dns, 53, flow.ProtoUDP, 0, 80)
				c.pkt(at+ms, dns, 53, ext(i+400), 40000, flow.ProtoUDP, 0, 1500)
				c.pkt(at+ms, dns, 0, ext(i+400), 0, flow.ProtoUDP, 0, 900)
			}
		}},
		{name: "traceroute to 300 targets is no scan", build: func(c *capture) {
			for i := 0; i < 300; i++ { // traceroute -q1: one probe per hop, time-exceeded from routers
				for h := 1; h <= 12; h++ {
					at := time.Duration(i)*time.Second + time.Duration(h)*5*ms
					c.pkt(at, in(73), 45000, ext(i+256), uint16(33433+h), flow.ProtoUDP, 0, 60)
					from, typ := netip.AddrFrom4([4]byte{198, 51, 100, byte(200 + h)}), uint16(11<<8)
					if h == 12 {
						from, typ = ext(i+256), 3<<8|3
					}
					c.pkt(at+2*ms, from, 0, in(73), typ, flow.ProtoICMP, 0, 88)
				}
			}
		}},
		{name: "masscan of 50 ports over 2,000 hosts in random order", build: func(c *capture) {
			rng := rand.New(rand.NewPCG(3, 4))
			for i := 0; i < 6000; i++ { // more contacts than the table holds, fewer than 250 on any one port
				x := rng.IntN(100000)
				c.pkt(time.Duration(i)*ms, in(14), 61000, ext(x%2000+256), uint16(8000+x/2000), flow.ProtoTCP, syn, 60)
			}
		}, want: []verdict{{Rule: "netscan.horizontal", Dir: "out", Internal: "203.0.113.14"}}},
		{name: "UDP scan of port 123", build: func(c *capture) {
			for i := 0; i < 400; i++ {
				c.pkt(time.Duration(i)*10*ms, in(13), 50000, ext(i+400), 123, flow.ProtoUDP, 0, 76)
			}
		}, want: []verdict{{Rule: "netscan.horizontal", Dir: "out", Internal: "203.0.113.13", Port: 123}}},
		{name: "spam fan-out", build: func(c *capture) { spamBot(c, spammer, 150) },
			want: []verdict{{Rule: "spam.smtp_fanout", Dir: "out", Internal: "203.0.113.85", Port: 25}}},
		{name: "UDP flood through sFlow 1:1000", build: func(c *capture) { udpFloodSampled(c, in(20), ext(77), 150000, 1000, 90) },
			want: []verdict{{Rule: "attack.udp_flood", Dir: "out", Internal: "203.0.113.20", Remote: "198.51.100.77"}}},
		{name: "IPv6 UDP flood through sFlow 1:1000", build: func(c *capture) { udpFloodSampled(c, in6(20), ext6(77), 150000, 1000, 90) },
			want: []verdict{{Rule: "attack.udp_flood", Dir: "out", Internal: in6(20).String(), Remote: ext6(77).String()}}},
		{name: "NetFlow records of 30 minutes are spread, not piled on their end", build: func(c *capture) {
			for i := 0; i < 12; i++ { // 12 streams of 300 packets/s to one host: 3,600 pps, 30 min active timeout
				c.netflow(0, 1800*time.Second, in(24), 40000+uint16(i), ext(81), 9000, flow.ProtoUDP, 0, 300*1800, 300*1800*1200)
			}
		}},
		{name: "UDP flood in NetFlow records of a minute", build: func(c *capture) {
			for m := 0; m < 3; m++ { // 12 streams of 5,000 packets/s: 60,000 pps
				for i := 0; i < 12; i++ {
					c.netflow(time.Duration(m)*time.Minute, time.Duration(m+1)*time.Minute-time.Second, in(25), 40000+uint16(i), ext(82), 9000, flow.ProtoUDP, 0, 300000, 300000*512)
				}
			}
		}, want: []verdict{{Rule: "attack.udp_flood", Dir: "out", Internal: "203.0.113.25", Remote: "198.51.100.82"}}},
		{name: "a bulk download over QUIC at flood rates is no flood", build: func(c *capture) {
			for i := 0; i < 120*55; i++ { // 55,000 packets/s out, an ACK back for every second one, sFlow 1:1000
				at := time.Duration(i) * time.Second / 55
				c.sflow(at, 1000, in(64), 443, ext(35), 51234, flow.ProtoUDP, 0, 1350)
				if i%2 == 0 {
					c.sflow(at+ms, 1000, ext(35), 51234, in(64), 443, flow.ProtoUDP, 0, 60)
				}
			}
		}},
		{name: "a DNS query flood the resolver answers is still a flood", build: func(c *capture) {
			for i := 0; i < 120*60; i++ { // 60,000 queries/s to one resolver, each answered, sFlow 1:1000
				at := time.Duration(i) * time.Second / 60
				c.sflow(at, 1000, in(65), 40000+uint16(i%20000), ext(36), 53, flow.ProtoUDP, 0, 70)
				c.sflow(at+ms, 1000, ext(36), 53, in(65), 40000+uint16(i%20000), flow.ProtoUDP, 0, 120)
			}
		}, want: []verdict{{Rule: "attack.udp_flood", Dir: "out", Internal: "203.0.113.65", Remote: "198.51.100.36", Port: 53}}},
		{name: "a DNS query flood is a flood with reflection detection off too", conf: func(c *detect.Configuration) {
			c.Attack.Reflection.Enabled = false
		}, build: func(c *capture) {
			for i := 0; i < 120*60; i++ {
				at := time.Duration(i) * time.Second / 60
				c.sflow(at, 1000, in(65), 40000+uint16(i%20000), ext(36), 53, flow.ProtoUDP, 0, 70)
				c.sflow(at+ms, 1000, ext(36), 53, in(65), 40000+uint16(i%20000), flow.ProtoUDP, 0, 120)
			}
		}, want: []verdict{{Rule: "attack.udp_flood", Dir: "out", Internal: "203.0.113.65", Remote: "198.51.100.36", Port: 53}}},
		{name: "SYN flood", build: func(c *capture) {
			for i := 0; i < 70*60000; i += 1000 { // 60k SYN/s, sampled 1:1000
				c.sflow(time.Duration(i)*time.Second/60000, 1000, in(21), uint16(i), ext(78), 80, flow.ProtoTCP, syn, 60)
			}
		}, want: []verdict{{Rule: "attack.syn_flood", Dir: "out", Internal: "203.0.113.21", Remote: "198.51.100.78", Port: 0}}},
		{name: "ICMP flood", build: func(c *capture) {
			for i := 0; i < 70*60000; i += 500 {
				c.sflow(time.Duration(i)*time.Second/60000, 500, in(22), 0, ext(79), 8<<8, flow.ProtoICMP, 0, 84)
			}
		}, want: []verdict{{Rule: "attack.icmp_flood", Dir: "out", Internal: "203.0.113.22", Remote: "198.51.100.79"}}},
		{name: "SSH brute force", build: func(c *capture) {
			for i := 0; i < 150; i++ {
				c.tcpSession(time.Duration(i)*300*ms, in(23), 50000+uint16(i), ext(80), 22)
			}
		}, want: []verdict{{Rule: "attack.brute_force", Dir: "out", Internal: "203.0.113.23", Remote: "198.51.100.80", Port: 22}}},
		{name: "an application connecting to its database per request is no brute force", build: func(c *capture) {
			for i := 0; i < 540; i++ { // PHP and MySQL, 3 requests/s
				c.tcpSession(time.Duration(i)*time.Second/3, in(60), uint16(35000+i), ext(33), 3306)
				c.tcpSession(time.Duration(i)*time.Second/3, in(61), uint16(35000+i), ext(34), 143) // webmail and IMAP
			}
		}},
		{name: "a few SSH logins are no brute force", build: func(c *capture) {
			for i := 0; i < 20; i++ {
				c.tcpSession(time.Duration(i)*3*time.Second, in(23), 50000+uint16(i), ext(80), 22)
			}
		}},
		{name: "DNS reflection", build: func(c *capture) {
			for i := 0; i < 70*2000; i += 10 { // 2000 spoofed ANY queries/s, 3000-byte answers, sFlow 1:10
				at := time.Duration(i) * time.Second / 2000
				c.sflow(at, 10, ext(99), 4444, in(53), 53, flow.ProtoUDP, 0, 80)
				c.sflow(at+ms/10, 10, in(53), 53, ext(99), 4444, flow.ProtoUDP, 0, 3000)
			}
		}, want: []verdict{{Rule: "attack.reflection", Dir: "out", Internal: "203.0.113.53", Remote: "198.51.100.99", Port: 53}}},
		{name: "NetFlow records spread over 60s exceed the packet limit", build: func(c *capture) {
			for m := 0; m < 5; m++ {
				for f := 0; f < 10; f++ { // 10 flows of 15k pps each minute: 150k pps
					from := time.Duration(m) * time.Minute
					c.netflow(from, from+59*time.Second, in(30), 40000+uint16(f), ext(6), 5000, flow.ProtoUDP, 0, 900000, 900000*512)
				}
			}
		}, conf: func(c *detect.Configuration) { c.Attack.Enabled = false },
			want: []verdict{{Rule: "packet_limit.pps", Dir: "out", Internal: "203.0.113.30"}}},
		{name: "inbound flood on a victim through sFlow", build: func(c *capture) {
			for s := 0; s < 320; s++ {
				for k := 0; k < 150; k++ { // 150k pps at 1:1000 from many sources
					c.sflow(time.Duration(s)*time.Second+time.Duration(k)*time.Second/150, 1000, ext((s*150+k)%5000+256), 123, in(31), 80, flow.ProtoUDP, 0, 468)
				}
			}
		}, want: []verdict{{Rule: "packet_limit.pps", Dir: "in", Internal: "203.0.113.31"}}},
		{name: "protected address is reported marked", build: func(c *capture) { nmapSYN(c, in(1), 400, ext, 23) },
			want: []verdict{{Rule: "netscan.horizontal", Dir: "out", Internal: "203.0.113.1", Port: 23, Protected: true}}},
		{name: "spoofed single source", build: func(c *capture) {
			for i := 0; i < 50; i++ {
				c.pkt(time.Duration(i)*ms, netip.MustParseAddr("198.18.5.5"), 1234, ext(7), 80, flow.ProtoTCP, syn, 60)
			}
		}, want: []verdict{{Rule: "incorrect_network_config.spoofed_source", Dir: "out", Remote: "198.51.100.7", Source: "198.18.5.5"}}},
		{name: "random spoofed sources (hping3 --rand-source)", build: func(c *capture) {
			for i := 0; i < 2000; i++ {
				c.pkt(time.Duration(i)*ms, ext(i*31%60000+256), uint16(i), ext(7), 80, flow.ProtoTCP, syn, 60)
			}
		}, want: []verdict{{Rule: "incorrect_network_config.spoofed_source", Dir: "out", Source: ext(256*31%60000 + 256).String()}}},
		{name: "link-local chatter on the customer side is no spoofing", build: func(c *capture) {
			for i := 0; i < 50; i++ { // DHCP discovers, IPv6 router and neighbour solicitations, APIPA
				at := time.Duration(i) * 100 * ms
				c.pkt(at, netip.IPv4Unspecified(), 68, netip.AddrFrom4([4]byte{255, 255, 255, 255}), 67, flow.ProtoUDP, 0, 342)
				c.pkt(at, netip.MustParseAddr("fe80::5054:ff:fe12:3456"), 0, netip.MustParseAddr("ff02::2"), 0, flow.ProtoICMPv6, 0, 70)
				c.pkt(at, netip.IPv6Unspecified(), 0, netip.MustParseAddr("ff02::1:ff12:3456"), 0, flow.ProtoICMPv6, 0, 78)
				c.pkt(at, netip.MustParseAddr("169.254.10.20"), 5353, netip.MustParseAddr("224.0.0.251"), 5353, flow.ProtoUDP, 0, 120)
			}
		}, want: nil},
		{name: "P2P to private destinations is no netscan", build: func(c *capture) {
			for i := 0; i < 400; i++ {
				c.pkt(time.Duration(i)*10*ms, in(40), 6881, netip.AddrFrom4([4]byte{192, 168, byte(i / 200), byte(i)}), 6881, flow.ProtoUDP, 0, 120)
			}
		}, want: []verdict{{Rule: "incorrect_network_config.private_destination", Dir: "out", Internal: "203.0.113.40", Remote: "192.168.0.0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c capture
			tt.build(&c)
			conf := detect.Defaults()
			if tt.conf != nil {
				tt.conf(&conf)
			}
			got := run(t, conf, nil, c.sorted())
			if diff := cmp.Diff(tt.want, verdicts(got)); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
				for _, f := range got {
					t.Logf("%s %s measured=%v threshold=%v samples=%d: %s", f.Rule, f.InternalIP, f.Measured, f.Threshold, f.Samples, f.Detail)
				}
			}
		})
	}
}

// TestSpoofedSourceAcrossWindows: a spoofed source that keeps sending is
// reported again after each rearm period, every time with the MAC it sent
// from (a new window used to wipe it), as the IPv4 address it is even when
// the records carry it IPv4-mapped, and marked protected when it is in a
// protected prefix.
func TestSpoofedSourceAcrossWindows(t *testing.T) {
	mac := flow.MAC{0x3a, 0x4e, 0xb1, 0x9f, 0xf4, 0xe9}
	var c capture
	for i := 0; i < 700; i++ {
		c.pkt(time.Duration(i)*time.Second, netip.MustParseAddr("::ffff:198.18.5.5"), 1234, ext(7), 80, flow.ProtoTCP, syn, 60)
		c.recs[len(c.recs)-1].SrcMAC = mac
	}
	conf := detect.Defaults()
	conf.Rearm = detect.Duration(time.Minute)
	var got []detect.Finding
	e, err := detect.New(conf, detect.Dependencies{Networks: detect.NewPrefixes(customers),
		Protected: []netip.Prefix{netip.MustParsePrefix("198.18.5.0/24")},
		OnFinding: func(f detect.Finding) { got = append(got, f) }})
	if err != nil {
		t.Fatal(err)
	}
	e.Records(c.sorted())
	e.Flush()
	if len(got) < 3 {
		t.Fatalf("%d findings over 700 s with a rearm of 1 min, want several", len(got))
	}
	for i, f := range got {
		if f.Rule != "incorrect_network_config.spoofed_source" || f.Source.String() != "198.18.5.5" || f.MAC != mac || !f.Protected {
			t.Errorf("finding %d: %s source %s MAC %s protected %v, want spoofed_source 198.18.5.5 from %s, protected", i, f.Rule, f.Source, f.MAC, f.Protected, mac)
		}
	}
}

// TestLongRecordsToPrivateDestination: NetFlow records of a long-lived flow
// to a private address, each longer than the window, still add up to a
// finding (each used to open a new window and reset the count).
func TestLongRecordsToPrivateDestination(t *testing.T) {
	var c capture
	for i := 0; i < 30; i++ {
		end := 400*time.Second + time.Duration(i)*time.Second
		c.netflow(end-400*time.Second, end, in(40), 50000, netip.MustParseAddr("10.1.2.3"), 445, flow.ProtoTCP, synAck|flow.TCPPsh, 100, 100*800)
	}
	got := verdicts(run(t, detect.Defaults(), nil, c.sorted()))
	want := []verdict{{Rule: "incorrect_network_config.private_destination", Dir: "out", Internal: "203.0.113.40", Remote: "10.1.2.3"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}

// TestPrivateDestinationEvidenceCountsEveryRecord: netconf keeps sample
// records only from halfway to a verdict (a million hosts that each asked
// a metadata service once must stay small); the records before are not in
// the dump, and the dump must say so.
func TestPrivateDestinationEvidenceCountsEveryRecord(t *testing.T) {
	var c capture
	for i := 0; i < 10; i++ {
		c.pkt(time.Duration(i)*time.Second, in(40), 50000, netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 161, flow.ProtoUDP, 0, 80)
	}
	got := run(t, detect.Defaults(), nil, c.sorted())
	if len(got) != 1 {
		t.Fatalf("%d findings, want one private_destination", len(got))
	}
	f := got[0]
	if n := uint64(len(f.Packets) + f.PacketsOmitted); n != f.Samples || len(f.Packets) == 0 {
		t.Errorf("dump of %d records and %d left out, for %d records counted", len(f.Packets), f.PacketsOmitted, f.Samples)
	}
}

// TestFlowAnswersBeforeTheirQueries: an exporter writes the two directions
// of a flow in the order its cache expires them, so a resolver's answer
// records may come before its query records. The answers must still count:
// a resolver is no scanner. A UDP scan whose answers are ICMP errors
// (which answer nothing) is still one.
func TestFlowAnswersBeforeTheirQueries(t *testing.T) {
	var c capture
	for i := 0; i < 400; i++ {
		at := time.Duration(i) * 100 * ms
		sp := 20000 + uint16(i*13)
		c.netflow(at+20*ms, at+20*ms, ext(i+300), 53, in(22), sp, flow.ProtoUDP, 0, 1, 300) // the answer first
		c.netflow(at, at, in(22), sp, ext(i+300), 53, flow.ProtoUDP, 0, 1, 80)
		c.netflow(at+20*ms, at+20*ms, ext(i+300), 0, in(23), 3<<8|3, flow.ProtoICMP, 0, 1, 56) // port unreachable first
		c.netflow(at, at, in(23), sp, ext(i+300), 161, flow.ProtoUDP, 0, 1, 80)
	}
	got := verdicts(run(t, detect.Defaults(), nil, c.recs)) // in export order, not sorted
	want := []verdict{{Rule: "netscan.horizontal", Dir: "out", Internal: "203.0.113.23", Port: 161}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}

// TestCGNATSubscribersAreNoPrivateDestination: with the provider's own
// CGNAT range among the customers, a web server answering those
// subscribers talks to private addresses that are customers: no
// misconfiguration. A customer sending to a private address that is not a
// customer's still is one.
func TestCGNATSubscribersAreNoPrivateDestination(t *testing.T) {
	var c capture
	for i := 0; i < 20; i++ {
		c.tcpSession(time.Duration(i)*3*time.Second, netip.AddrFrom4([4]byte{100, 64, 0, byte(i + 1)}), uint16(40000+i), in(80), 443)
		c.pkt(time.Duration(i)*time.Second, in(81), 50000, netip.AddrFrom4([4]byte{10, 9, 9, byte(i + 1)}), 445, flow.ProtoTCP, syn, 60)
	}
	nets := detect.NewPrefixes(append([]netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")}, customers...))
	got := verdicts(run(t, detect.Defaults(), nets, c.sorted()))
	want := []verdict{{Rule: "incorrect_network_config.private_destination", Dir: "out", Internal: "203.0.113.81", Remote: "10.9.9.1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}

// TestVictimThatFloodsToo: a server flooded from outside that also floods
// someone gets both findings; the rearm period of one direction does not
// silence the other (the victim's inbound finding feeds the blackhole, the
// outbound one the lock), in either order.
func TestVictimThatFloodsToo(t *testing.T) {
	for _, outFirst := range []bool{false, true} {
		var c capture
		inFrom, outFrom := 0, 120
		if outFirst {
			inFrom, outFrom = 120, 0
		}
		for s := 0; s < 900; s++ {
			for k := 0; k < 150; k++ { // 150k pps at 1:1000 each way
				at := time.Duration(s)*time.Second + time.Duration(k)*time.Second/150
				if s >= inFrom {
					c.sflow(at, 1000, ext(k+256), 123, in(31), 80, flow.ProtoUDP, 0, 468)
				}
				if s >= outFrom {
					c.sflow(at+ms/2, 1000, in(31), 40000, ext(k+600), 9000, flow.ProtoUDP, 0, 468)
				}
			}
		}
		conf := detect.Defaults()
		conf.Attack.Enabled = false
		dirs := map[string]bool{}
		for _, f := range run(t, conf, nil, c.sorted()) {
			if f.Rule == "packet_limit.pps" {
				dirs[string(f.Direction)] = true
			}
		}
		if !dirs["in"] || !dirs["out"] {
			t.Errorf("outbound first %v: packet_limit findings in directions %v, want in and out", outFirst, dirs)
		}
	}
}

// TestHighPortUDPServiceIsNoScanner: a UDP service on a high port
// answering 600 clients in 60 s — players sending from 27005 to a game
// server on 27015, DHT peers from 6881, WireGuard peers from 51820 — is no
// horizontal scanner: its clients spoke first.
func TestHighPortUDPServiceIsNoScanner(t *testing.T) {
	for _, ports := range [][2]uint16{{27005, 27015}, {6881, 51413}, {51820, 51820}} {
		var c capture
		for i := 0; i < 600; i++ {
			at := time.Duration(i) * 100 * ms
			c.pkt(at, ext(i+300), ports[0], in(100), ports[1], flow.ProtoUDP, 0, 110)
			c.pkt(at+15*ms, in(100), ports[1], ext(i+300), ports[0], flow.ProtoUDP, 0, 330)
		}
		for _, f := range run(t, detect.Defaults(), nil, c.sorted()) {
			t.Errorf("clients on %d, service on %d: %s %v/%v %s", ports[0], ports[1], f.Rule, f.Measured, f.Threshold, f.Detail)
		}
	}
}

// TestNeighbourDiscoveryIsNoPrivateDestination: a server sending neighbour
// solicitations from its global address to the router's fe80::1 every 5 s
// for 10 minutes sends to no "private destination".
func TestNeighbourDiscoveryIsNoPrivateDestination(t *testing.T) {
	var c capture
	router := netip.MustParseAddr("fe80::1")
	for i := 0; i < 120; i++ {
		c.pkt(time.Duration(i)*5*time.Second, in6(100), 0, router, 135<<8, flow.ProtoICMPv6, 0, 86)
		c.pkt(time.Duration(i)*5*time.Second+ms, router, 0, in6(100), 136<<8, flow.ProtoICMPv6, 0, 86)
	}
	for _, f := range run(t, detect.Defaults(), nil, c.sorted()) {
		t.Errorf("%s %s: %s", f.Rule, f.InternalIP, f.Detail)
	}
}
