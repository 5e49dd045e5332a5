package detect_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/detect/netscan"
	"padlock/internal/evidence"
	"padlock/internal/flow"
)

// seg describes a TCP segment as a stack or nmap sends it: its flags,
// the bytes of TCP options (12: a Linux or BSD stack's timestamps; 0: nmap's
// crafted probes, and Windows, which sends no timestamps), its payload and
// its window.
type seg struct {
	flags   uint8
	opts    int
	payload int
	win     uint16
}

// frame returns the Ethernet frame of the segment (IPv4 or IPv6 by the
// addresses), as pcap captures it and sFlow samples its header.
func frame(src netip.Addr, sp uint16, dst netip.Addr, dp uint16, s seg) []byte {
	tcpLen := 20 + s.opts
	b := make([]byte, 14, 14+40+tcpLen+s.payload)
	b[0], b[6] = 2, 2
	if src.Is4() {
		binary.BigEndian.PutUint16(b[12:], 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+tcpLen+s.payload))
		binary.BigEndian.PutUint16(ip[6:], 0x4000)
		ip[8], ip[9] = 64, flow.ProtoTCP
		s4, d4 := src.As4(), dst.As4()
		copy(ip[12:], s4[:])
		copy(ip[16:], d4[:])
		b = append(b, ip...)
	} else {
		binary.BigEndian.PutUint16(b[12:], 0x86dd)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(tcpLen+s.payload))
		ip[6], ip[7] = flow.ProtoTCP, 64
		s16, d16 := src.As16(), dst.As16()
		copy(ip[8:], s16[:])
		copy(ip[24:], d16[:])
		b = append(b, ip...)
	}
	tcp := make([]byte, tcpLen+s.payload)
	binary.BigEndian.PutUint16(tcp[0:], sp)
	binary.BigEndian.PutUint16(tcp[2:], dp)
	binary.BigEndian.PutUint32(tcp[4:], 0x1234567)
	tcp[12], tcp[13] = byte(tcpLen/4)<<4, s.flags
	binary.BigEndian.PutUint16(tcp[14:], s.win)
	for i := 20; i < tcpLen; i++ {
		tcp[i] = 1 // NOP
	}
	return append(b, tcp...)
}

// wire adds one TCP packet with its header bytes: captured (rate 1, pcap)
// or an sFlow sample at 1:rate.
func (c *capture) wire(at time.Duration, rate uint32, src netip.Addr, sp uint16, dst netip.Addr, dp uint16, s seg) {
	f := frame(src, sp, dst, dp, s)
	if rate <= 1 {
		c.pkt(at, src, sp, dst, dp, flow.ProtoTCP, s.flags, len(f))
	} else {
		c.sflow(at, rate, src, sp, dst, dp, flow.ProtoTCP, s.flags, len(f))
	}
	r := &c.recs[len(c.recs)-1]
	r.SetHeader(f)
	r.FrameLength = uint32(len(f))
}

var (
	finAck  = uint8(flow.TCPFin | flow.TCPAck)
	rstOnly = uint8(flow.TCPRst)
	// nmap's crafted probes: no options, no payload, window 1024
	nmapNull   = seg{0, 0, 0, 1024}
	nmapMaimon = seg{finAck, 0, 0, 1024}
	nmapACK    = seg{ack, 0, 0, 1024}
	rstReply   = seg{rstOnly, 0, 0, 0}
	rstAckRep  = seg{rstAck, 0, 0, 0}
)

// findingOf returns host i's finding of rule, nil if none.
func findingOf(fs []detect.Finding, i int, rule string) *detect.Finding {
	for k := range fs {
		if fs[k].InternalIP == in(i) && fs[k].Rule == rule {
			return &fs[k]
		}
	}
	return nil
}

// nmap's NULL scan (-sN) sends segments without any flag, which no TCP
// stack sends; closed ports answer RST. A captured or sampled packet whose
// header shows the flags zero is a probe; a record without flags (an
// exporter that sends none, a header cut short) still is none (see
// TestStealthScansAreProbes).
func TestNullScanIsProbed(t *testing.T) {
	var c capture
	for i := range 400 { // horizontal, port 22, one in four closed
		at := time.Duration(i) * 20 * ms
		c.wire(at, 1, in(120), 45000, ext(256+i), 22, nmapNull)
		if i%4 == 0 {
			c.wire(at+3*ms, 1, ext(256+i), 22, in(120), 45000, rstAckRep)
		}
	}
	for p := 1; p <= 1000; p++ { // vertical, every port closed
		at := time.Duration(p) * 2 * ms
		c.wire(at, 1, in(121), 45001, ext(121), uint16(p), nmapNull)
		c.wire(at+ms, 1, ext(121), uint16(p), in(121), 45001, rstAckRep)
	}
	for i := range 600 { // over IPv6, sampled 1:10 by sFlow
		c.wire(time.Duration(i)*200*ms, 10, in6(122), 51000, ext6(i), 443, nmapNull)
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	if f := findingOf(fs, 120, netscan.RuleHorizontal); f == nil || f.Port != 22 || f.Measured != 400 {
		t.Errorf("NULL scan of port 22 over 400 hosts (100 refusing): want a horizontal finding of 400 destinations, got %v", verdicts(fs))
	}
	if f := findingOf(fs, 121, netscan.RuleVertical); f == nil || f.Remote != ext(121) {
		t.Errorf("NULL scan of 1,000 ports of one host not reported: %v", verdicts(fs))
	}
	ok := false
	for _, f := range fs {
		ok = ok || f.InternalIP == in6(122) && f.Rule == netscan.RuleHorizontal && f.Port == 443 && f.SamplingRate == 10
	}
	if !ok {
		t.Errorf("sampled NULL scan over IPv6 not reported: %v", verdicts(fs))
	}
}

// nmap's Maimon scan (-sM) sends FIN+ACK, as the close of a connection
// does, to destinations the host has no connection with: from its port
// above 33000, with no options and no payload. Every target that is up
// answers RST (BSD stacks drop it at open ports), the rest nothing. It is
// a probe in captures, in sFlow samples and in NetFlow records of one
// 40-byte packet; the netscan log names each probe's destination and port.
func TestMaimonScanIsProbed(t *testing.T) {
	var c capture
	for i := range 400 { // horizontal, port 80, pcap
		at := time.Duration(i) * 20 * ms
		c.wire(at, 1, in(123), 52000, ext(256+i), 80, nmapMaimon)
		if i%4 == 0 {
			c.wire(at+3*ms, 1, ext(256+i), 80, in(123), 52000, rstReply)
		}
		if i%8 == 0 { // nmap retries the silent ones: the same probe again
			c.wire(at+time.Second, 1, in(123), 52000, ext(256+i), 80, nmapMaimon)
		}
	}
	for p := 1; p <= 1000; p++ { // vertical, every port refused
		at := time.Duration(p) * 2 * ms
		c.wire(at, 1, in(124), 52001, ext(124), uint16(p), nmapMaimon)
		c.wire(at+ms, 1, ext(124), uint16(p), in(124), 52001, rstReply)
	}
	for i := range 400 { // NetFlow: one 40-byte packet each, the refusal's record first
		at := time.Duration(i) * 20 * ms
		if i%3 == 0 {
			c.netflow(at, at, ext(256+i), 3389, in(125), 48000, flow.ProtoTCP, rstOnly, 1, 40)
		}
		c.netflow(at, at, in(125), 48000, ext(256+i), 3389, flow.ProtoTCP, finAck, 1, 40)
	}
	for i := range 600 { // sFlow 1:10
		c.wire(time.Duration(i)*200*ms, 10, in(126), 60000, ext(256+i), 21, nmapMaimon)
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	f := findingOf(fs, 123, netscan.RuleHorizontal)
	if f == nil || f.Port != 80 || f.Measured != 400 || f.Samples != 400 {
		t.Fatalf("Maimon scan of port 80 over 400 hosts: want a horizontal finding of 400 destinations from 400 probes, got %v", verdicts(fs))
	}
	var log strings.Builder
	if err := evidence.NetscanLog(&log, *f, evidence.Limits{}); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("Fri Nov 13 18:14:27 2026: 203.0.113.123 =>%19s:   80\n", ext(256)); !strings.Contains(log.String(), want) {
		t.Errorf("netscan log lacks the first probe's line %q:\n%s", want, log.String()[:min(600, log.Len())])
	}
	if !rulesOf(fs, 124)[netscan.RuleVertical] {
		t.Errorf("Maimon scan of 1,000 ports of one host not reported: %v", verdicts(fs))
	}
	if !rulesOf(fs, 125)[netscan.RuleHorizontal] {
		t.Errorf("Maimon scan of port 3389 in NetFlow not reported: %v", verdicts(fs))
	}
	if !rulesOf(fs, 126)[netscan.RuleHorizontal] {
		t.Errorf("Maimon scan of port 21 sampled 1:10 not reported: %v", verdicts(fs))
	}
}

// Closes are no Maimon probes. A web server on 8443 (a Windows one: its
// segments carry no timestamps) closes the connections of 1,000 clients
// and of one client that reconnects 300 times: from its service port to
// the clients' ephemeral ports. A Windows client closes the pooled,
// idle connections to 400 servers whose SYNs are older than the window
// (or were never seen: padlock restarted); each server acknowledges, some
// closed first. A Linux client's closes to 400 servers that went away get
// no answer, but carry timestamps. In NetFlow the idle closes are records
// of one 40-byte packet, the servers' answers records of their own; a
// whole connection's record (SYN, PSH and FIN) is no probe either.
func TestClosesAreNoMaimonProbes(t *testing.T) {
	var c capture
	for i := range 1000 {
		at := time.Duration(i) * 100 * ms
		c.wire(at, 1, in(127), 8443, ext(256+i), uint16(50000+i%10000), seg{finAck, 0, 0, 1026})
		c.wire(at+ms, 1, ext(256+i), uint16(50000+i%10000), in(127), 8443, seg{ack, 0, 0, 513})
	}
	for k := range 300 {
		at := time.Duration(k) * 500 * ms
		c.wire(at, 1, in(127), 8443, ext(9), uint16(40000+k), seg{finAck, 0, 0, 1026})
		c.wire(at+ms, 1, ext(9), uint16(40000+k), in(127), 8443, seg{finAck, 0, 0, 513})
	}
	for i := range 400 {
		at := time.Duration(i) * 300 * ms
		cp := uint16(50000 + i)
		if i%2 == 0 { // the client closes first
			c.wire(at, 1, in(128), cp, ext(256+i), 443, seg{finAck, 0, 0, 1026})
			c.wire(at+20*ms, 1, ext(256+i), 443, in(128), cp, seg{ack, 12, 0, 501})
			c.wire(at+21*ms, 1, ext(256+i), 443, in(128), cp, seg{finAck, 12, 0, 501})
			c.wire(at+22*ms, 1, in(128), cp, ext(256+i), 443, seg{ack, 0, 0, 1026})
		} else { // the server does
			c.wire(at, 1, ext(256+i), 443, in(128), cp, seg{finAck, 12, 0, 501})
			c.wire(at+ms, 1, in(128), cp, ext(256+i), 443, seg{ack, 0, 0, 1026})
			c.wire(at+2*ms, 1, in(128), cp, ext(256+i), 443, seg{finAck, 0, 0, 1026})
			c.wire(at+22*ms, 1, ext(256+i), 443, in(128), cp, seg{ack, 12, 0, 501})
		}
		c.wire(at, 1, in(129), cp, ext(256+i), 5432, seg{finAck, 12, 0, 501}) // Linux, servers gone
		c.wire(at+time.Second, 1, in(129), cp, ext(256+i), 5432, seg{finAck, 12, 0, 501})
	}
	for i := range 400 {
		at := time.Duration(i) * 300 * ms
		cp := uint16(50000 + i)
		c.netflow(at, at, in(130), cp, ext(256+i), 443, flow.ProtoTCP, finAck, 1, 40)
		if i%2 == 0 {
			c.netflow(at, at+20*ms, ext(256+i), 443, in(130), cp, flow.ProtoTCP, finAck, 2, 104)
		} else { // exported first
			c.netflow(at-time.Second, at-time.Second, ext(256+i), 443, in(130), cp, flow.ProtoTCP, finAck, 2, 104)
		}
		c.netflow(at, at+2*time.Second, in(137), uint16(30000+i), ext(5000+i), 443, flow.ProtoTCP, syn|pshAck|flow.TCPFin, 12, 2000)
		c.netflow(at, at+2*time.Second, ext(5000+i), 443, in(137), uint16(30000+i), flow.ProtoTCP, synAck|flow.TCPPsh|flow.TCPFin, 14, 14000)
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	silent(t, fs, map[int]string{
		127: "a Windows web server on 8443 closing its clients' connections",
		128: "a Windows client closing idle connections to 400 servers",
		129: "a Linux client's closes to 400 servers that went away",
		130: "a client's idle closes in NetFlow",
		137: "whole connections in NetFlow",
	})
}

// sampledWindowsConnection adds the sFlow samples (with their headers) of
// one HTTPS connection of a Windows client: segments without timestamps,
// so its ACKs and its close are as bare as nmap's probes.
func sampledWindowsConnection(c *capture, rng *rand.Rand, rate int, at time.Duration, client netip.Addr, cp uint16, server netip.Addr, segs int) {
	type p struct {
		out bool
		s   seg
	}
	pk := []p{{true, seg{syn, 12, 0, 64240}}, {false, seg{synAck, 12, 0, 65535}}, {true, seg{ack, 0, 0, 1026}}, {true, seg{pshAck, 0, 400, 1026}}}
	for k := range segs {
		f := uint8(ack)
		if k == segs-1 {
			f = pshAck
		}
		pk = append(pk, p{false, seg{f, 0, 1400, 501}})
		if k%2 == 1 {
			pk = append(pk, p{true, seg{ack, 0, 0, 1026}})
		}
	}
	pk = append(pk, p{true, seg{finAck, 0, 0, 1026}}, p{false, seg{finAck, 0, 0, 501}}, p{true, seg{ack, 0, 0, 1026}})
	for j, x := range pk {
		if rng.IntN(rate) != 0 {
			continue
		}
		t := at + time.Duration(j)*2*ms
		if x.out {
			c.wire(t, uint32(rate), client, cp, server, 443, x.s)
		} else {
			c.wire(t, uint32(rate), server, 443, client, cp, x.s)
		}
	}
}

// nmap's ACK and window scans (-sA, -sW; the same probe, they differ in
// how nmap reads the answer) send a bare ACK, as most segments of an
// established connection are; every host that is up refuses it with a
// RST. A bare ACK to a destination the host has no contact with is a
// probe once the destination refuses it, on unsampled data (captures,
// NetFlow); 400 of 1,000 hosts refusing is a horizontal scan, 1,000
// refused ports of one host a vertical one. A Windows client's
// connections older than the window (bare ACKs out, data in, some reset
// by the server later) are no scan, and neither are the sampled bare ACKs
// of a Windows crawler (sFlow), some of whose connections a server resets.
func TestACKScanIsProbedOnceRefused(t *testing.T) {
	var c capture
	for i := range 1000 { // 40% of the hosts up
		at := time.Duration(i) * 20 * ms
		c.wire(at, 1, in(131), 41000, ext(256+i), 80, nmapACK)
		if i%5 < 2 {
			c.wire(at+3*ms, 1, ext(256+i), 80, in(131), 41000, rstReply)
		}
	}
	for p := 1; p <= 1000; p++ {
		at := time.Duration(p) * 2 * ms
		c.wire(at, 1, in(132), 41001, ext(132), uint16(p), seg{ack, 0, 0, 2048})
		c.wire(at+ms, 1, ext(132), uint16(p), in(132), 41001, rstReply)
	}
	for i := range 1000 { // NetFlow, the refusals' records after the probes'
		at := time.Duration(i) * 20 * ms
		c.netflow(at, at, in(133), 41002, ext(256+i), 443, flow.ProtoTCP, ack, 1, 40)
		if i%5 < 2 {
			c.netflow(at+time.Second, at+time.Second, ext(256+i), 443, in(133), 41002, flow.ProtoTCP, rstOnly, 1, 40)
		}
	}
	for i := range 500 { // established connections, no SYN in the window
		at := time.Duration(i) * 200 * ms
		cp := uint16(50000 + i)
		c.wire(at, 1, in(134), cp, ext(256+i), 443, seg{ack, 0, 0, 1026})
		c.wire(at+20*ms, 1, ext(256+i), 443, in(134), cp, seg{pshAck, 0, 1400, 501})
		c.wire(at+21*ms, 1, in(134), cp, ext(256+i), 443, seg{ack, 0, 0, 1026})
		if i%2 == 0 {
			c.wire(at+30*time.Second, 1, ext(256+i), 443, in(134), cp, rstReply)
		}
		// TCP keepalives in NetFlow: one packet, answered by an ACK
		c.netflow(at, at, in(135), cp, ext(256+i), 8883, flow.ProtoTCP, ack, 1, 40)
		c.netflow(at+20*ms, at+20*ms, ext(256+i), 8883, in(135), cp, flow.ProtoTCP, ack, 1, 40)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 100 * 300 { // a Windows crawler, 100 sites a second, sampled 1:100
		at := time.Duration(i) * 10 * ms
		server := ext(256 + i%20000)
		sampledWindowsConnection(&c, rng, 100, at, in(136), uint16(32768+i%28000), server, 11)
		if i%3 == 0 && rng.IntN(100) == 0 {
			c.wire(at+50*ms, 100, server, 443, in(136), uint16(32768+i%28000), rstReply)
		}
	}
	fs := run(t, detect.Defaults(), nil, c.sorted())
	f := findingOf(fs, 131, netscan.RuleHorizontal)
	if f == nil || f.Port != 80 || f.Measured < 250 || f.Measured > 400 || int(f.Measured) != len(f.Probes)+f.ProbesOmitted {
		t.Fatalf("ACK scan of port 80 over 1,000 hosts, 400 refusing: want a horizontal finding of the refused destinations, got %v", verdicts(fs))
	}
	for _, p := range f.Probes { // the log lists the refused probes
		i := int(p.Dst.As4()[2])<<8 | int(p.Dst.As4()[3])
		if p.DstPort != 80 || i%5 >= 2 {
			t.Errorf("probe line %s:%d is not of a refused probe", p.Dst, p.DstPort)
			break
		}
	}
	if !rulesOf(fs, 132)[netscan.RuleVertical] {
		t.Errorf("window scan of 1,000 ports of one host not reported: %v", verdicts(fs))
	}
	if !rulesOf(fs, 133)[netscan.RuleHorizontal] {
		t.Errorf("ACK scan of port 443 in NetFlow not reported: %v", verdicts(fs))
	}
	silent(t, fs, map[int]string{
		134: "a Windows client's connections older than the window",
		135: "TCP keepalives in NetFlow",
		136: "a Windows crawler sampled 1:100",
	})
}
