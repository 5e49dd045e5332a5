package collect

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"padlock/internal/decode/netflow"
	"padlock/internal/decode/sflow"
)

// FuzzHandle feeds arbitrary datagrams through a socket worker's decode
// path with the real decoders: it must never panic past the recover, and
// the counters must agree with what reached the sink.
func FuzzHandle(f *testing.F) {
	for _, file := range []string{"netflow/testdata/softflowd-v5.pcap", "netflow/testdata/softflowd-v9.pcap",
		"netflow/testdata/softflowd-ipfix.pcap", "sflow/testdata/pmacct-sfprobe.pcap"} {
		for _, p := range exportPayloads(f, filepath.Join("..", "decode", file)) {
			f.Add(p)
		}
	}
	f.Add([]byte{0, 9, 0, 1})
	c, err := New(Configuration{}, Dependencies{Sink: &countSink{}, Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	from := netip.MustParseAddrPort("127.0.0.1:9999")
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		sink := &countSink{}
		c.mu.Lock()
		c.work = c.work[:0]
		w := c.newWorker("fuzz", "", 0)
		c.mu.Unlock()
		w.sink = sink
		w.netflow = netflow.New(netflow.Configuration{})
		w.sflow = sflow.New(sflow.Configuration{})
		w.handle(from, b, len(b), now)
		tot := c.Totals()
		var dropped uint64
		for _, d := range tot.Dropped {
			dropped += d
		}
		if got := tot.RecordsTotal(); got != uint64(sink.n.Load()) {
			t.Fatalf("records counted %d, sink got %d", got, sink.n.Load())
		}
		if dropped > 1 || (dropped == 1 && sink.n.Load() != 0) {
			t.Fatalf("dropped %d with %d records", dropped, sink.n.Load())
		}
		if tot.DroppedBy("panic") != 0 {
			t.Fatalf("a decoder panicked on %x", b)
		}
	})
}
