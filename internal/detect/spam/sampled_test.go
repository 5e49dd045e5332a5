package spam_test

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"padlock/internal/detect/detector"
	"padlock/internal/detect/detector/detectortest"
	"padlock/internal/detect/spam"
	"padlock/internal/flow"
)

var (
	spammer   = netip.MustParseAddr("203.0.113.25")
	ourMX     = netip.MustParseAddr("203.0.113.26")
	neighbour = netip.MustParseAddr("203.0.113.27")
	mta       = netip.MustParseAddr("203.0.113.28")
	webServer = netip.MustParseAddr("203.0.113.80")
)

// host6 is the h-th internal IPv6 host.
func host6(h int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 12: byte(h >> 8), 13: byte(h), 15: 1})
}

// mxAddr is the i-th external mail server (distinct for i < 1<<17).
func mxAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, byte(18 + i>>16&1), byte(i >> 8), byte(i)})
}

// sessions is an SMTP delivery of mails (one session each, `rate` sessions a
// second, to mail server mx(i)) from src as sFlow at 1:sampling sees it:
// each of a session's 16 client packets (SYN, ACKs, the message, QUIT, FIN)
// is sampled with probability 1/sampling. Only the client's packets are
// built: the server's answers go to an ephemeral port and never count.
func sessions(rng *rand.Rand, src netip.Addr, at time.Time, mails, rate, sampling int, mx func(int) netip.Addr) []flow.Record {
	var recs []flow.Record
	for i := 0; i < mails; i++ {
		start := at.Add(time.Duration(i) * time.Second / time.Duration(rate))
		for k := 0; k < 16; k++ {
			if rng.IntN(sampling) != 0 {
				continue
			}
			flags := uint8(flow.TCPAck)
			switch k {
			case 0:
				flags = flow.TCPSyn
			case 15:
				flags = flow.TCPFin | flow.TCPAck
			case 5, 6, 7, 8, 9, 10:
				flags = flow.TCPPsh | flow.TCPAck
			}
			ts := start.Add(time.Duration(k) * 30 * time.Millisecond)
			recs = append(recs, flow.Record{Start: ts, End: ts, Format: flow.FormatSFlow5, SamplingRate: uint32(sampling),
				SrcAddr: src, SrcPort: uint16(32768 + i%28000), DstAddr: mx(i), DstPort: 25, Proto: flow.ProtoTCP, TCPFlags: flags,
				Packets: uint64(sampling), Bytes: uint64(sampling) * 400, SampledPackets: 1, SampledBytes: 400})
		}
	}
	slices.SortStableFunc(recs, func(a, b flow.Record) int { return a.Start.Compare(b.Start) })
	return recs
}

// TestSampledSpambot: a spambot delivers 40 mails a second to 12,000
// distinct mail servers in five minutes, seen through sFlow at 1:1000.
// Only about a dozen of its SYNs are sampled, but about 190 of its client
// packets to about 180 distinct mail servers: that is the verdict.
func TestSampledSpambot(t *testing.T) {
	recs := sessions(rand.New(rand.NewPCG(7, 7)), spammer, t0, 12000, 40, 1000, mxAddr)
	syns, distinct := 0, map[netip.Addr]bool{}
	for i := range recs {
		distinct[recs[i].DstAddr] = true
		if recs[i].TCPFlags == flow.TCPSyn {
			syns++
		}
	}
	t.Logf("%d sampled client packets, %d SYNs, %d distinct mail servers", len(recs), syns, len(distinct))
	if syns >= 100 || len(distinct) < 150 {
		t.Fatalf("the scenario is not what it says: %d sampled SYNs, %d distinct mail servers", syns, len(distinct))
	}
	r := detectortest.NewRecorder()
	r.Feed(spam.New(spam.Defaults(), r.Env()), recs)
	if len(r.Findings) == 0 {
		t.Fatal("no finding for the sampled spambot")
	}
	f := r.Findings[0]
	if f.Rule != spam.Rule || f.InternalIP != spammer || f.SamplingRate != 1000 || f.Port != 25 {
		t.Errorf("finding %s %s sampling rate %d port %d, want %s %s 1000 25", f.Rule, f.InternalIP, f.SamplingRate, f.Port, spam.Rule, spammer)
	}
	if f.Measured != 100 || len(f.Probes) != 100 || f.Samples < 100 {
		t.Errorf("first finding: measured %v, %d mail servers listed, %d samples; want 100, 100, >= 100", f.Measured, len(f.Probes), f.Samples)
	}
	if d := f.LastSeen.Sub(f.FirstSeen); d >= 300*time.Second {
		t.Errorf("finding spans %s, more than the window", d)
	}
	if len(f.Packets) == 0 {
		t.Error("finding without a traffic dump")
	}
}

// TestSampledBusyMTA: a legitimate mail server delivers 200 mails a second,
// all to the 20 mail servers of a few big providers, seen at 1:1000:
// thousands of sampled contacts, never more than 20 distinct mail servers.
func TestSampledBusyMTA(t *testing.T) {
	recs := sessions(rand.New(rand.NewPCG(8, 8)), mta, t0, 200*900, 200, 1000, func(i int) netip.Addr { return mxAddr(i % 20) })
	r := detectortest.NewRecorder()
	d := spam.New(spam.Defaults(), r.Env())
	r.Feed(d, recs)
	if len(r.Findings) != 0 {
		t.Fatalf("%d findings for a mail server delivering to 20 mail servers; first: %s", len(r.Findings), r.Findings[0].Detail)
	}
	t.Logf("%d sampled client packets: no finding", len(recs))
}

// TestFlowsWithoutFlags: exporters that send no TCP flags (tcpControlBits
// absent: 0) still report a client connection to port 25 per record.
func TestFlowsWithoutFlags(t *testing.T) {
	for _, format := range []flow.Format{flow.FormatNetFlow5, flow.FormatNetFlow9, flow.FormatIPFIX} {
		t.Run(format.String(), func(t *testing.T) {
			var recs []flow.Record
			for i := 0; i < 300; i++ {
				ts := t0.Add(time.Duration(i) * 500 * time.Millisecond)
				recs = append(recs, flow.Record{Start: ts, End: ts.Add(2 * time.Second), Format: format, SamplingRate: 1,
					SrcAddr: spammer, SrcPort: uint16(40000 + i), DstAddr: mxAddr(i), DstPort: 25, Proto: flow.ProtoTCP,
					Packets: 16, Bytes: 6000})
			}
			r := detectortest.NewRecorder()
			r.Feed(spam.New(spam.Defaults(), r.Env()), recs)
			if len(r.Findings) == 0 {
				t.Fatal("no finding for 300 distinct mail servers in flow records without TCP flags")
			}
			if f := r.Findings[0]; f.Measured != 100 || f.SamplingRate != 1 || f.Samples != 100 {
				t.Errorf("measured %v, sampling rate %d, samples %d; want 100, 1, 100", f.Measured, f.SamplingRate, f.Samples)
			}
		})
	}
}

// TestInboundMail: a mail server of ours receiving mail from 300 distinct
// senders — its own packets go from port 25 to the senders' ephemeral
// ports — is no spammer, sampled or not, with or without TCP flags.
func TestInboundMail(t *testing.T) {
	for _, tt := range []struct {
		name     string
		format   flow.Format
		sampling uint32
		flags    uint8
	}{
		{"sFlow 1:1000", flow.FormatSFlow5, 1000, flow.TCPAck | flow.TCPPsh},
		{"pcap", flow.FormatPcap, 1, flow.TCPAck},
		{"NetFlow without flags", flow.FormatNetFlow9, 1, 0},
		{"sampled IPFIX", flow.FormatIPFIX, 100, flow.TCPSyn | flow.TCPAck | flow.TCPFin},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var recs []flow.Record
			for i := 0; i < 300; i++ {
				ts := t0.Add(time.Duration(i) * 500 * time.Millisecond)
				in := flow.Record{Start: ts, End: ts, Format: tt.format, SamplingRate: tt.sampling, SrcAddr: mxAddr(i), SrcPort: uint16(40000 + i),
					DstAddr: ourMX, DstPort: 25, Proto: flow.ProtoTCP, TCPFlags: tt.flags, Packets: 1, Bytes: 500}
				out := in
				out.SrcAddr, out.SrcPort, out.DstAddr, out.DstPort = in.DstAddr, in.DstPort, in.SrcAddr, in.SrcPort
				recs = append(recs, in, out)
			}
			r := detectortest.NewRecorder()
			r.Feed(spam.New(spam.Defaults(), r.Env()), recs)
			if len(r.Findings) != 0 {
				t.Fatalf("finding for a mail server receiving mail: %s", r.Findings[0].Detail)
			}
		})
	}
}

// TestGateKeepsFirstContacts: hosts below the gate keep their contacts in
// a log shared by all hosts; a host that crosses min_destinations among a
// thousand others that each send a few mails is reported with exactly its
// mail servers and connections.
func TestGateKeepsFirstContacts(t *testing.T) {
	var recs []flow.Record
	add := func(at time.Duration, src netip.Addr, sp uint16, dst netip.Addr) {
		ts := t0.Add(at)
		recs = append(recs, flow.Record{Start: ts, End: ts, Format: flow.FormatPcap, SamplingRate: 1, SrcAddr: src, SrcPort: sp,
			DstAddr: dst, DstPort: 25, Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn, Packets: 1, Bytes: 60})
	}
	for i := 0; i < 100; i++ {
		at := time.Duration(i) * time.Second
		for h := 0; h < 1000; h++ { // others: 5 mail servers each, below the gate (6)
			add(at+time.Duration(h)*time.Millisecond, host6(h), uint16(40000+i), mxAddr(h%7+i%5))
		}
		for k := 0; k < 2; k++ { // the spammer: two connections to each of 100 mail servers
			add(at+time.Duration(500+k)*time.Millisecond, netip.MustParseAddr("2001:db8:1::25"), uint16(50000+2*i+k), mxAddr(1000+i))
		}
	}
	r := detectortest.NewRecorder()
	r.Feed(spam.New(spam.Defaults(), r.Env()), recs)
	if len(r.Findings) == 0 {
		t.Fatal("no finding")
	}
	for _, f := range r.Findings {
		if f.InternalIP != netip.MustParseAddr("2001:db8:1::25") {
			t.Fatalf("finding for %s", f.InternalIP)
		}
	}
	f := r.Findings[0]
	if f.Measured != 100 || len(f.Probes) != 100 || f.Samples != 199 {
		t.Errorf("measured %v, %d mail servers listed, %d samples; want 100, 100, 199", f.Measured, len(f.Probes), f.Samples)
	}
}

// TestLogOverflowIsLowerBound: when the shared log of contacts below the
// gate overflows (more than 65536 such contacts within a window), a host's
// first contacts may be lost: its count then stays a lower bound and it is
// reported at most gate-1 (5) mail servers later.
func TestLogOverflowIsLowerBound(t *testing.T) {
	me := netip.MustParseAddr("203.0.113.25")
	var recs []flow.Record
	add := func(ts time.Time, src netip.Addr, dst netip.Addr) {
		recs = append(recs, flow.Record{Start: ts, End: ts, Format: flow.FormatPcap, SamplingRate: 1, SrcAddr: src, SrcPort: 40000,
			DstAddr: dst, DstPort: 25, Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn, Packets: 1, Bytes: 60})
	}
	for i := 0; i < 5; i++ {
		add(t0, me, mxAddr(i))
	}
	for h := 0; h < 20000; h++ { // 100,000 contacts of hosts below the gate
		for i := 0; i < 5; i++ {
			add(t0.Add(time.Second), host6(h), mxAddr(i))
		}
	}
	for i := 5; i < 200; i++ {
		add(t0.Add(2*time.Second), me, mxAddr(i))
	}
	r := detectortest.NewRecorder()
	r.Feed(spam.New(spam.Defaults(), r.Env()), recs)
	if len(r.Findings) == 0 {
		t.Fatal("no finding")
	}
	f := r.Findings[0]
	// reported at the 100th to the 105th mail server, never counting more than it contacted
	if f.Measured != 100 || len(f.Probes) != 100 {
		t.Fatalf("measured %v with %d mail servers listed, want 100", f.Measured, len(f.Probes))
	}
	last := f.Probes[len(f.Probes)-1].Dst
	seen := 0
	for i := 0; i < 200; i++ {
		if mxAddr(i) == last {
			seen = i + 1
		}
	}
	for _, p := range f.Probes {
		if p.Dst.Compare(last) > 0 {
			t.Fatalf("mail server %s listed after the last one contacted, %s", p.Dst, last)
		}
	}
	if seen < 100 || seen > 105 {
		t.Errorf("reported after %d mail servers, want 100 to 105", seen)
	}
	t.Logf("reported after %d mail servers (its first 5 were lost in the overflowing log)", seen)
}

// TestTablesDropped: a host that mails its smarthost all day never gets a
// table of mail servers; one that contacted 20 loses its table once they
// are all older than the window.
func TestTablesDropped(t *testing.T) {
	r := detectortest.NewRecorder()
	d := spam.New(spam.Defaults(), r.Env())
	rec := func(at time.Duration, src netip.Addr, dst netip.Addr) {
		ts := t0.Add(at)
		r.Record(d, &flow.Record{Start: ts, End: ts, Format: flow.FormatPcap, SamplingRate: 1, SrcAddr: src, SrcPort: 40000,
			DstAddr: dst, DstPort: 25, Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn, Packets: 1, Bytes: 60})
		d.Tick(ts.UnixNano())
	}
	for i := 0; i < 20; i++ {
		rec(time.Duration(i)*time.Second, neighbour, mxAddr(i))
	}
	for m := 0; m < 24*60; m++ {
		rec(time.Duration(m)*time.Minute, webServer, mxAddr(7)) // its smarthost
		if n := d.Tables(); m == 1 && n != 1 || n > 1 {
			t.Fatalf("minute %d: %d tables (the smarthost's sender must have none)", m, n)
		}
	}
	if n := d.Tables(); n != 0 {
		t.Errorf("%d tables a day later, want 0", n)
	}
}

// TestMemoryOneMailPerHost: a million hosts that each send one mail (a web
// server's cron job) must not each hold a table of mail servers: a few
// bytes per host at most.
func TestMemoryOneMailPerHost(t *testing.T) {
	if testing.Short() {
		t.Skip("a million hosts")
	}
	const hosts = 1 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d := spam.New(spam.Defaults(), detectortest.NewRecorder().Env())
	var r flow.Record
	for i := 0; i < hosts; i++ {
		ts := t0.Add(time.Duration(i) * 100 * time.Microsecond)
		a := netip.AddrFrom4([4]byte{44, byte(i >> 16), byte(i >> 8), byte(i)})
		mx := mxAddr(i % 1000)
		r = flow.Record{Start: ts, End: ts, Format: flow.FormatPcap, SamplingRate: 1, SrcAddr: a, SrcPort: 40000,
			DstAddr: mx, DstPort: 25, Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn, Packets: 1, Bytes: 60}
		d.Observe(&r, &detector.Orientation{Dir: detector.Out, Host: uint32(i), Addr: a, Remote: mx, LocalPort: 40000, RemotePort: 25,
			Start: ts.UnixNano(), End: ts.UnixNano()})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perHost := (int64(after.HeapInuse) - int64(before.HeapInuse)) / hosts
	t.Logf("%d hosts with one SMTP connection each: %d bytes/host", hosts, perHost)
	if perHost > 16 {
		t.Errorf("%d bytes per host with one SMTP connection, want at most 16", perHost)
	}
	runtime.KeepAlive(d)
}
