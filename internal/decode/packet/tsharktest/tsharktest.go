// Package tsharktest lets decoder tests compare their records with what
// tshark (Wireshark) decodes from the same capture file, field by field. It
// is imported only by tests; it runs the tshark binary and parses its JSON.
package tsharktest

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"padlock/internal/flow"
)

// Need skips the test when tshark is missing, or fails it when CI is set.
func Need(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tshark is required in CI: apt-get install tshark")
		}
		t.Skip("tshark not installed")
	}
}

// Tree is one node of tshark's JSON dissection (tshark -T json
// --no-duplicate-keys): values are strings, nested Trees, or lists of them.
type Tree map[string]any

// Frames runs tshark on file (IP reassembly off, so that every frame is
// dissected alone as padlock sees it) and returns the "layers" tree of each
// frame.
func Frames(t testing.TB, file string, extra ...string) []Tree {
	t.Helper()
	Need(t)
	args := append([]string{"-r", file, "-T", "json", "--no-duplicate-keys",
		"-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"}, extra...)
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark %v: %v", args, err)
	}
	var pkts []struct {
		Source struct {
			Layers Tree `json:"layers"`
		} `json:"_source"`
	}
	if err := json.Unmarshal(out, &pkts); err != nil {
		t.Fatalf("tshark json: %v", err)
	}
	frames := make([]Tree, len(pkts))
	for i, p := range pkts {
		frames[i] = p.Source.Layers
	}
	return frames
}

// Sub returns the child tree under key (the first one if tshark listed
// several), or nil.
func (t Tree) Sub(key string) Tree {
	switch v := t[key].(type) {
	case map[string]any:
		return v
	case []any:
		if len(v) > 0 {
			if m, ok := v[0].(map[string]any); ok {
				return m
			}
		}
	}
	return nil
}

// Str returns the string under key (the first of several), or "".
func (t Tree) Str(key string) string {
	switch v := t[key].(type) {
	case string:
		return v
	case []any:
		if len(v) > 0 {
			if s, ok := v[0].(string); ok {
				return s
			}
		}
	}
	return ""
}

// Uint parses the number under key (decimal or 0x hex); 0 when absent.
func (t Tree) Uint(key string) uint64 {
	n, _ := strconv.ParseUint(t.Str(key), 0, 64)
	return n
}

// Has reports whether key is present.
func (t Tree) Has(key string) bool { _, ok := t[key]; return ok }

// Find returns the first subtree, depth first, that holds key.
func (t Tree) Find(key string) Tree {
	if t == nil {
		return nil
	}
	if t.Has(key) {
		return t
	}
	for _, v := range t {
		for _, m := range asTrees(v) {
			if f := m.Find(key); f != nil {
				return f
			}
		}
	}
	return nil
}

// Children returns the subtrees whose key starts with prefix (tshark names
// sFlow samples "Flow sample, seq N"), in no particular order.
func (t Tree) Children(prefix string) map[string]Tree {
	out := map[string]Tree{}
	for k, v := range t {
		if strings.HasPrefix(k, prefix) {
			for i, m := range asTrees(v) {
				out[fmt.Sprintf("%s#%d", k, i)] = m
			}
		}
	}
	return out
}

func asTrees(v any) []Tree {
	switch v := v.(type) {
	case map[string]any:
		return []Tree{v}
	case []any:
		var out []Tree
		for _, e := range v {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// Packet is what tshark says about the packet headers: the fields that
// packet.Parse fills in, in flow.Record form.
type Packet struct {
	SrcMAC, DstMAC   flow.MAC
	VLAN             uint16
	SrcAddr, DstAddr netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
	TCPFlags         uint8
}

// Of returns the Packet fields of r.
func Of(r *flow.Record) Packet {
	return Packet{r.SrcMAC, r.DstMAC, r.VLAN, r.SrcAddr, r.DstAddr, r.Proto, r.SrcPort, r.DstPort, r.TCPFlags}
}

func mac(s string) flow.MAC {
	var m flow.MAC
	for i, part := range strings.Split(s, ":") {
		if i < 6 {
			n, _ := strconv.ParseUint(part, 16, 8)
			m[i] = byte(n)
		}
	}
	return m
}

func addr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}

// Expect builds the expected Packet from a tree holding the dissected layers
// of one packet (a frame's layers, or an sFlow header_tree).
func Expect(l Tree) Packet {
	var p Packet
	if eth := l.Sub("eth"); eth != nil {
		p.SrcMAC, p.DstMAC = mac(eth.Str("eth.src")), mac(eth.Str("eth.dst"))
	}
	if sll := l.Sub("sll"); sll != nil && sll.Has("sll.src.eth") {
		p.SrcMAC = mac(sll.Str("sll.src.eth"))
	}
	if ad := l.Sub("ieee8021ad"); ad != nil { // 802.1ad outer tag of QinQ
		p.VLAN = uint16(ad.Uint("ieee8021ad.id"))
	} else if vlan := l.Sub("vlan"); vlan != nil {
		p.VLAN = uint16(vlan.Uint("vlan.id"))
	}
	if ip := l.Sub("ip"); ip != nil {
		p.SrcAddr, p.DstAddr = addr(ip.Str("ip.src")), addr(ip.Str("ip.dst"))
		p.Proto = uint8(ip.Uint("ip.proto"))
	} else if ip6 := l.Sub("ipv6"); ip6 != nil {
		p.SrcAddr, p.DstAddr = addr(ip6.Str("ipv6.src")), addr(ip6.Str("ipv6.dst"))
		p.Proto = ipv6Proto(ip6)
	}
	switch {
	case l.Sub("tcp") != nil && p.SrcAddr.IsValid():
		tcp := l.Sub("tcp")
		p.SrcPort, p.DstPort = uint16(tcp.Uint("tcp.srcport")), uint16(tcp.Uint("tcp.dstport"))
		p.TCPFlags = uint8(tcp.Uint("tcp.flags"))
	case l.Sub("udp") != nil && p.SrcAddr.IsValid():
		udp := l.Sub("udp")
		p.SrcPort, p.DstPort = uint16(udp.Uint("udp.srcport")), uint16(udp.Uint("udp.dstport"))
	case l.Sub("icmp") != nil:
		icmp := l.Sub("icmp")
		p.DstPort = uint16(icmp.Uint("icmp.type")<<8 | icmp.Uint("icmp.code"))
	case l.Sub("icmpv6") != nil:
		icmp := l.Sub("icmpv6")
		p.DstPort = uint16(icmp.Uint("icmpv6.type")<<8 | icmp.Uint("icmpv6.code"))
	}
	return p
}

// ipv6Proto follows the chain of extension headers tshark dissected.
func ipv6Proto(ip6 Tree) uint8 {
	next := ip6.Uint("ipv6.nxt")
	for range 8 {
		var key string
		switch next {
		case 0:
			key = "ipv6.hopopts.nxt"
		case 43:
			key = "ipv6.routing.nxt"
		case 44:
			key = "ipv6.fraghdr.nxt"
		case 60:
			key = "ipv6.dstopts.nxt"
		default:
			return uint8(next)
		}
		h := ip6.Find(key)
		if h == nil {
			return uint8(next)
		}
		next = h.Uint(key)
	}
	return uint8(next)
}
