package collect

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"padlock/internal/flow"
)

func needRootAndIP(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("ip")
	if os.Geteuid() == 0 && err == nil {
		return
	}
	msg := "live capture test needs root and iproute2 (ip) to create network namespaces"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// recSink keeps copies of the records.
type recSink struct {
	mu   sync.Mutex
	recs []flow.Record
}

func (s *recSink) Record(r *flow.Record) {
	s.mu.Lock()
	s.recs = append(s.recs, *r)
	s.mu.Unlock()
}

func (s *recSink) snapshot() []flow.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]flow.Record(nil), s.recs...)
}

// TestLiveCaptureInNamespace sends UDP between two network namespaces joined
// by a veth pair (198.51.100.1 -> 198.51.100.2) and captures on the far end:
// every datagram in and every ICMP error out becomes one record with the
// right addresses, ports, ICMP type and direction.
func TestLiveCaptureInNamespace(t *testing.T) {
	needRootAndIP(t)
	a := fmt.Sprintf("pl-collect-%d-a", os.Getpid())
	b := fmt.Sprintf("pl-collect-%d-b", os.Getpid())
	run(t, "ip", "netns", "add", a)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", a).Run() })
	run(t, "ip", "netns", "add", b)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", b).Run() })
	run(t, "ip", "-n", a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", b)
	run(t, "ip", "-n", a, "addr", "add", "198.51.100.1/24", "dev", "veth0")
	run(t, "ip", "-n", b, "addr", "add", "198.51.100.2/24", "dev", "veth1")
	run(t, "ip", "-n", a, "link", "set", "veth0", "up")
	run(t, "ip", "-n", b, "link", "set", "veth1", "up")

	sink := &recSink{}
	logs := &lockedBuffer{}
	c, err := New(Configuration{Capture: CaptureConfiguration{Interface: "veth1"}}, Dependencies{Sink: sink, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// The AF_PACKET socket belongs to the namespace of the thread that
	// creates it, so Start runs in namespace b.
	inNS(t, b, func() {
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
		if strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("errors logged by a normal start and stop:\n%s", logs)
		}
	})

	// Three UDP datagrams from namespace a; b answers each with ICMP port
	// unreachable (rate-limited by the kernel, so at least one).
	inNS(t, a, func() {
		// Unconnected, so the ICMP errors do not fail the next write.
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("198.51.100.1"), Port: 40000})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for range 3 {
			if _, err := conn.WriteToUDP([]byte("padlock-10"), &net.UDPAddr{IP: net.ParseIP("198.51.100.2"), Port: 9999}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	src, dst := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	var req, rep int
	eventually(t, "3 UDP datagrams in and an ICMP port unreachable out", func() bool {
		req, rep = 0, 0
		for _, r := range sink.snapshot() {
			switch {
			case r.Proto == flow.ProtoUDP && r.SrcAddr == src && r.DstAddr == dst && r.SrcPort == 40000 && r.DstPort == 9999 && r.InIf != 0:
				req++
				if r.Bytes != 52 { // 14 Ethernet + 20 IP + 8 UDP + 10
					t.Errorf("UDP frame of %d bytes, want 52", r.Bytes)
				}
			case r.Proto == flow.ProtoICMP && r.SrcAddr == dst && r.DstAddr == src && r.DstPort == 3<<8|3 && r.OutIf != 0:
				rep++
			}
		}
		return req == 3 && rep >= 1
	})
	for _, r := range sink.snapshot() {
		if r.Format != flow.FormatPcap || r.SamplingRate != 1 || r.Packets != 1 || r.Bytes == 0 || r.HeaderLength == 0 || r.Start.IsZero() {
			t.Errorf("record %+v: want format pcap, sampling 1, 1 packet, bytes, header, time", r)
			break
		}
	}
	if exps := c.Exporters(); len(exps) != 1 || exps[0].Format != flow.FormatPcap || exps[0].Records < 4 {
		t.Errorf("exporters = %+v", exps)
	}
}

// inNS runs f on a thread moved into the named namespace: sockets created
// there belong to that namespace.
func inNS(t *testing.T, name string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(err) // never leave a thread in the wrong namespace
		}
	}()
	f()
}
