package collect

import (
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/decode"
	"padlock/internal/decode/netflow"
	"padlock/internal/decode/packet"
	"padlock/internal/decode/sflow"
	"padlock/internal/flow"
)

// exportPayloads returns the UDP payloads of a capture of export datagrams
// (the decoders' testdata, made by real exporters).
func exportPayloads(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		var rec flow.Record
		p, err := packet.ParsePayload(uint32(r.LinkType()), data, &rec)
		if err != nil || rec.Proto != flow.ProtoUDP || len(p) == 0 {
			continue
		}
		out = append(out, append([]byte(nil), p...))
	}
	if len(out) == 0 {
		t.Fatalf("%s: no UDP payloads", path)
	}
	return out
}

// directCount decodes the payloads with a fresh decoder, as the collector's
// reference: how many records per format one exporter's datagrams yield.
func directCount(dec decode.Decoder, payloads [][]byte) map[flow.Format]int {
	got := map[flow.Format]int{}
	sink := flow.SinkFunc(func(r *flow.Record) { got[r.Format]++ })
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	for _, p := range payloads {
		_, _ = dec.Decode(from, p, time.Now(), sink)
	}
	return got
}

// formatSink counts records by format and checks what a consumer relies on.
// The collector calls one shared sink from every socket goroutine, hence
// the mutex.
type formatSink struct {
	mu     sync.Mutex
	counts [numFormats]int64
	bad    int64
}

func (s *formatSink) count(f flow.Format) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[f]
}

func (s *formatSink) Record(r *flow.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[r.Format]++
	if r.SamplingRate == 0 || !r.SrcAddr.IsValid() || !r.DstAddr.IsValid() || r.Packets == 0 {
		s.bad++
	}
}

// TestRealExportsOverUDP sends the datagrams softflowd (NetFlow v5, v9,
// IPFIX) and pmacct's sfprobe (sFlow v5) exported, as captured with
// tcpdump, to the collector over 127.0.0.1 and
// checks that every record a direct decode yields reaches the sink and the
// metric the bench reads, interleaved with garbage that is counted and
// dropped.
func TestRealExportsOverUDP(t *testing.T) {
	nf := func() decode.Decoder { return netflow.New(netflow.Configuration{}) }
	sf := func() decode.Decoder { return sflow.New(sflow.Configuration{}) }
	for _, tc := range []struct {
		file   string
		format flow.Format
		dec    func() decode.Decoder
	}{
		{"netflow/testdata/softflowd-v5.pcap", flow.FormatNetFlow5, nf},
		{"netflow/testdata/softflowd-v9.pcap", flow.FormatNetFlow9, nf},
		{"netflow/testdata/softflowd-ipfix.pcap", flow.FormatIPFIX, nf},
		{"sflow/testdata/pmacct-sfprobe.pcap", flow.FormatSFlow5, sf},
	} {
		format := tc.format
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			payloads := exportPayloads(t, filepath.Join("..", "decode", tc.file))
			want := directCount(tc.dec(), payloads)
			if want[format] == 0 {
				t.Fatalf("direct decode of %s gives no %s records: %v", tc.file, format, want)
			}
			t.Logf("%d datagrams, %d %s records", len(payloads), want[format], format)
			sink := &formatSink{}
			reg := prometheus.NewPedanticRegistry()
			c, addr := startCollector(t, Configuration{NetFlow: "127.0.0.1:0", Sockets: 2}, Dependencies{
				Decoders: Decoders{NetFlow: nf, SFlow: sf}, // any port takes any format
				Sink:     sink, Registerer: reg,
			})
			// One connected socket = one exporter, so its templates and
			// data meet in the same socket's decoder.
			conn := send(t, addr)
			for i, p := range payloads {
				if _, err := conn.Write(p); err != nil {
					t.Fatal(err)
				}
				if i%3 == 0 { // garbage in between changes nothing
					if _, err := conn.Write([]byte{0, 9, 0, 1}); err != nil {
						t.Fatal(err)
					}
				}
			}
			eventually(t, "all datagrams", func() bool {
				return c.Totals().Received == uint64(len(payloads)+(len(payloads)+2)/3)
			})
			eventually(t, "all records", func() bool { return sink.count(format) == int64(want[format]) })
			if sink.bad != 0 {
				t.Errorf("%d records without addresses, packets or sampling rate", sink.bad)
			}
			if v := sample(t, reg, "padlock_flow_records_decoded_total", "proto="+format.String()); v != float64(want[format]) {
				t.Errorf("padlock_flow_records_decoded_total{proto=%s} = %v, want %d", format, v, want[format])
			}
			if got := c.Totals().ErrorsBy("truncated"); got != uint64((len(payloads)+2)/3) {
				t.Errorf("truncated errors = %d, want one per garbage datagram (%d)", got, (len(payloads)+2)/3)
			}
		})
	}
}

// BenchmarkCollectorLoopbackSoftflowd replays softflowd's exports (templates
// and data) over 127.0.0.1 through the real NetFlow decoder; records/s is
// bounded by the in-process sender on a 2-core machine, the flowgen run in
// bench/run-padlock.sh is the real measure.
func BenchmarkCollectorLoopbackSoftflowd(b *testing.B) {
	for _, name := range []string{"softflowd-v5.pcap", "softflowd-v9.pcap", "softflowd-ipfix.pcap"} {
		b.Run(name, func(b *testing.B) {
			payloads := exportPayloads(b, filepath.Join("..", "decode", "netflow", "testdata", name))
			benchLoopback(b, func() decode.Decoder { return netflow.New(netflow.Configuration{}) }, payloads)
		})
	}
}
