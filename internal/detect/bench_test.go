package detect_test

import (
	"fmt"

	"golang.org/x/sys/unix"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/flow"
)

// bigCustomers is a /12 of customer addresses (1M hosts) for load tests.
var bigCustomers = append([]netip.Prefix{netip.MustParsePrefix("44.0.0.0/12")}, customers...)

func bigIn(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{44, byte(i >> 16 & 0x0f), byte(i >> 8), byte(i)})
}

// mix builds a realistic record mix over hosts internal addresses covering
// secs seconds: web serving, outbound client connections, DNS lookups,
// NetFlow records, background scans hitting customers, and a few abusers
// (a scanner, a flooder, a spammer) among them.
func mix(n, hosts, secs int) []flow.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	var c capture
	for len(c.recs) < n {
		at := time.Duration(rng.Int64N(int64(secs) * int64(time.Second)))
		h := bigIn(rng.IntN(hosts))
		x := ext(256 + rng.IntN(100000))
		cp := uint16(32768 + rng.IntN(28000))
		switch k := rng.IntN(100); {
		case k < 35: // web serving (sFlow 1:100 samples of both directions)
			c.sflow(at, 100, x, cp, h, 443, flow.ProtoTCP, pshAck, 600)
			c.sflow(at+ms, 100, h, 443, x, cp, flow.ProtoTCP, pshAck, 1400)
		case k < 50: // outbound client connections (pcap)
			c.pkt(at, h, cp, x, 443, flow.ProtoTCP, syn, 74)
			c.pkt(at+20*ms, x, 443, h, cp, flow.ProtoTCP, synAck, 74)
			c.pkt(at+21*ms, h, cp, x, 443, flow.ProtoTCP, ack, 66)
			c.pkt(at+40*ms, x, 443, h, cp, flow.ProtoTCP, pshAck, 1400)
		case k < 60: // DNS lookups
			r := ext(256 + rng.IntN(8))
			c.pkt(at, h, cp, r, 53, flow.ProtoUDP, 0, 80)
			c.pkt(at+5*ms, r, 53, h, cp, flow.ProtoUDP, 0, 200)
		case k < 85: // NetFlow records of both directions, up to 60 s
			d := time.Duration(rng.IntN(60)) * time.Second
			p := uint64(1 + rng.IntN(5000))
			c.netflow(at, at+d, h, cp, x, 443, flow.ProtoTCP, synAck|flow.TCPPsh|flow.TCPFin, p, p*900)
			c.netflow(at, at+d, x, 443, h, cp, flow.ProtoTCP, synAck|flow.TCPPsh|flow.TCPFin, p, p*100)
		case k < 92: // internet background scans hitting customers
			c.pkt(at, x, cp, h, uint16(rng.IntN(65536)), flow.ProtoTCP, syn, 60)
			c.pkt(at+ms, h, 0, x, cp, flow.ProtoTCP, rstAck, 54)
		case k < 95: // a scanner
			c.pkt(at, bigIn(7), 40000, ext(256+rng.IntN(60000)), 22, flow.ProtoTCP, syn, 60)
		case k < 98: // a flooder (sFlow 1:1000)
			c.sflow(at, 1000, bigIn(8), cp, ext(5), uint16(rng.IntN(65536)), flow.ProtoUDP, 0, 1024)
		default: // a spammer
			c.pkt(at, bigIn(9), cp, ext(7000+rng.IntN(500)), 25, flow.ProtoTCP, syn, 60)
		}
	}
	return c.sorted()[:n]
}

// BenchmarkEngine runs every detector over the mix, for 100 to 100k active
// internal addresses, through Records in batches of 512 as ingest and
// analyze hand them over. Each batch is first copied into one reused buffer,
// as the decoders write records into a recycled batch, so the records are in
// cache and the 300 MB source array is not streamed from memory; the copy is
// outside the measured CPU time. records/s is wall-clock (copy included,
// inflated on a busy machine); records/cpu-s divides by the CPU time of the
// thread while it runs Records, which is what one core delivers.
//
//	go test -run '^$' -bench BenchmarkEngine -benchtime 4000000x ./internal/detect/
func BenchmarkEngine(b *testing.B) {
	for _, hosts := range []int{100, 1000, 10000, 100000} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) { benchEngine(b, hosts) })
	}
}

func threadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchEngine(b *testing.B, hosts int) {
	const n, secs, batch = 1 << 20, 600, 512
	recs := mix(n, hosts, secs)
	conf := detect.Defaults()
	findings := 0
	e, err := detect.New(conf, detect.Dependencies{Networks: detect.NewPrefixes(bigCustomers), OnFinding: func(detect.Finding) { findings++ }})
	if err != nil {
		b.Fatal(err)
	}
	// one warm-up pass: host table and state reach steady state
	for i := range recs {
		e.Record(&recs[i])
	}
	// The mix's construction leaves garbage: collect it now, so that no
	// collection of the 300 MB record array runs on the other core (and
	// stops this goroutine for stack scans) while the engine is measured.
	runtime.GC()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	shift := time.Duration(secs) * time.Second
	var cpu time.Duration
	buf := make([]flow.Record, 0, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		b.StopTimer()
		for j := range recs { // next pass: the same traffic, secs later
			recs[j].Start = recs[j].Start.Add(shift)
			recs[j].End = recs[j].End.Add(shift)
		}
		m := min(n, b.N-i)
		b.StartTimer()
		for j := 0; j < m; j += batch { // as ingest and analyze hand them over
			buf = append(buf[:0], recs[j:min(j+batch, m)]...)
			c0 := threadCPU()
			e.Records(buf)
			cpu += threadCPU() - c0
		}
		i += m
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "records/cpu-s")
	b.ReportMetric(float64(findings), "findings")
}

// TestMemoryMillionHosts: one million active internal addresses, each serving
// web clients, looking up DNS (a contact), receiving NetFlow-reported
// traffic, logging in to a bastion host elsewhere over SSH (a login port:
// the attack detector's brute-force gate), asking a cloud metadata service at
// 169.254.169.254 (a private destination) and sending one mail through a
// relay (an SMTP contact), must keep the engine's heap under 1 GiB.
func TestMemoryMillionHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds state for one million hosts")
	}
	const hosts = 1 << 20
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	e, err := detect.New(detect.Defaults(), detect.Dependencies{Networks: detect.NewPrefixes(bigCustomers), OnFinding: func(detect.Finding) {}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var r flow.Record
	records := 0
	feed := func(at time.Duration, src netip.Addr, sp uint16, dst netip.Addr, dp uint16, proto, flags uint8, pk uint64, format flow.Format) {
		ts := t0.Add(at)
		r = flow.Record{Start: ts, End: ts, Format: format, SamplingRate: 1, SrcAddr: src, DstAddr: dst,
			SrcPort: sp, DstPort: dp, Proto: proto, TCPFlags: flags, Packets: pk, Bytes: pk * 500}
		e.Record(&r)
		records++
	}
	for round := 0; round < 2; round++ {
		for i := 0; i < hosts; i++ {
			h := bigIn(i)
			at := time.Duration(round)*60*time.Second + time.Duration(i)*50*time.Microsecond
			x := ext(256 + i%100000)
			feed(at, x, 40000, h, 443, flow.ProtoTCP, pshAck, 3, flow.FormatSFlow5)
			feed(at, h, 443, x, 40000, flow.ProtoTCP, pshAck, 3, flow.FormatSFlow5)
			feed(at, h, 50000+uint16(round), ext(256+i%8), 53, flow.ProtoUDP, 0, 1, flow.FormatPcap)
			feed(at, ext(256+i%8), 53, h, 50000+uint16(round), flow.ProtoUDP, 0, 1, flow.FormatPcap)
			for k := range 4 { // SSH connections: client-side NetFlow records
				feed(at, h, 40000+uint16(round*4+k), ext(300+i%50), 22, flow.ProtoTCP, synAck|flow.TCPPsh|flow.TCPFin, 12, flow.FormatNetFlow9)
			}
			feed(at, h, 41000+uint16(round), netip.AddrFrom4([4]byte{169, 254, 169, 254}), 80, flow.ProtoTCP, synAck|flow.TCPPsh|flow.TCPFin, 6, flow.FormatNetFlow9)
			if round == 0 { // a cron mail through the provider's relay
				feed(at, h, 42000, ext(400+i%4), 25, flow.ProtoTCP, syn, 1, flow.FormatPcap)
			}
		}
	}
	elapsed := time.Since(start)
	if got := e.Stats().Hosts; got != hosts {
		t.Fatalf("hosts with state = %d, want %d", got, hosts)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	inuse := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("%d hosts, %d records in %s: heap in use %d MiB (%d bytes/host)", hosts, records, elapsed, inuse>>20, inuse/hosts)
	if inuse > 1<<30 {
		t.Errorf("heap in use %d MiB for %d hosts, want < 1024 MiB", inuse>>20, hosts)
	}
	runtime.KeepAlive(e)
}

// BenchmarkDetectors measures the engine alone and each detector alone over
// the same mix (10k hosts), to see where a record's time goes.
//
//	go test -run '^$' -bench BenchmarkDetectors -benchtime 1000000x ./internal/detect/
func BenchmarkDetectors(b *testing.B) {
	recs := mix(1<<20, 10000, 600)
	for _, name := range []string{"engine-only", "packet_limit", "netscan", "attack", "spam", "incorrect_network_config"} {
		b.Run(name, func(b *testing.B) {
			conf := detect.Defaults()
			conf.PacketLimit.Enabled = name == "packet_limit"
			conf.Netscan.Enabled = name == "netscan"
			conf.Attack.Enabled = name == "attack"
			conf.Spam.Enabled = name == "spam"
			conf.IncorrectNetworkConfig.Enabled = name == "incorrect_network_config"
			e, err := detect.New(conf, detect.Dependencies{Networks: detect.NewPrefixes(bigCustomers), OnFinding: func(detect.Finding) {}})
			if err != nil {
				b.Fatal(err)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for i := range recs {
				e.Record(&recs[i])
			}
			for j := range recs {
				recs[j].Start = recs[j].Start.Add(600 * time.Second)
				recs[j].End = recs[j].End.Add(600 * time.Second)
			}
			n := min(b.N, len(recs))
			b.ReportAllocs()
			b.ResetTimer()
			c0 := threadCPU()
			for i := 0; i < n; i++ {
				e.Record(&recs[i])
			}
			b.ReportMetric(float64(n)/(threadCPU()-c0).Seconds(), "records/cpu-s")
		})
	}
}
