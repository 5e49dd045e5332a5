package collect

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

// benchLoopback sends b.N datagrams (round-robin from dgrams) over
// 127.0.0.1 from two source sockets to a collector with the given decoder
// and reports decoded records/s and the share lost.
func benchLoopback(b *testing.B, newDec func() decode.Decoder, dgrams [][]byte) {
	var n atomic.Int64
	c, err := New(Configuration{NetFlow: "127.0.0.1:0", Sockets: 2, ReceiveBuffer: 64 << 20}, Dependencies{
		Decoders: Decoders{NetFlow: newDec, SFlow: newDec},
		NewSink: func(int) flow.Sink {
			var local int64
			return flow.SinkFunc(func(*flow.Record) {
				local++
				if local&1023 == 0 {
					n.Add(1024)
				}
			})
		},
		Logger: quietLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer c.Stop(context.Background())
	to, _ := net.ResolveUDPAddr("udp", c.Listeners()[0].Address)
	var conns []*net.UDPConn
	for range 2 {
		conn, err := net.DialUDP("udp4", nil, to)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		// Whole cycles per source socket, so each exporter sends its
		// templates before its data.
		if _, err := conns[(i/len(dgrams))&1].Write(dgrams[i%len(dgrams)]); err != nil {
			b.Fatal(err)
		}
	}
	// Wait until the collector stops making progress.
	last := int64(-1)
	for {
		time.Sleep(50 * time.Millisecond)
		cur := int64(c.Totals().RecordsTotal())
		if cur == last {
			break
		}
		last = cur
	}
	el := time.Since(start)
	b.StopTimer()
	tot := c.Totals()
	b.ReportMetric(float64(tot.RecordsTotal())/el.Seconds(), "records/s")
	b.ReportMetric(100*float64(uint64(b.N)-tot.Received)/float64(b.N), "%lost")
}

// BenchmarkCollectorLoopbackOverhead measures the collector itself (recvmmsg,
// classification, accounting, sink calls) with a decoder that only emits
// the records a v5 header announces.
func BenchmarkCollectorLoopbackOverhead(b *testing.B) {
	benchLoopback(b, func() decode.Decoder { return fakeDecoder{} }, [][]byte{v5(30, 0)})
}
