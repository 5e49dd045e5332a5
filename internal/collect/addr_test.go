package collect

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	"padlock/internal/decode"
)

// TestListenFamilies checks the exporter address the collector reports on
// IPv6 and IPv4 listeners (loopback only: tests never bind all addresses).
func TestListenFamilies(t *testing.T) {
	for _, tc := range []struct {
		listen, sendNet, sendTo, want string
	}{
		{"[::1]:0", "udp6", "::1", "::1"},
		{"127.0.0.1:0", "udp4", "127.0.0.1", "127.0.0.1"},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			sink := &countSink{}
			c, addr := startCollector(t, Configuration{NetFlow: tc.listen, Sockets: 1}, Dependencies{
				Decoders: Decoders{NetFlow: func() decode.Decoder { return fakeDecoder{} }},
				Sink:     sink,
			})
			to, err := net.ResolveUDPAddr(tc.sendNet, net.JoinHostPort(tc.sendTo, strconv.Itoa(addr.Port)))
			if err != nil {
				t.Fatal(err)
			}
			conn, err := net.DialUDP(tc.sendNet, nil, to)
			if err != nil {
				t.Skipf("no %s here: %v", tc.sendNet, err)
			}
			defer conn.Close()
			if _, err := conn.Write(v5(7, 0)); err != nil {
				t.Fatal(err)
			}
			eventually(t, "7 records", func() bool { return sink.n.Load() == 7 })
			exps := c.Exporters()
			if len(exps) != 1 || exps[0].Exporter != netip.MustParseAddr(tc.want) {
				t.Errorf("exporters = %+v, want %s", exps, tc.want)
			}
		})
	}
}
