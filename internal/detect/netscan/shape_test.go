package netscan

import (
	"testing"

	"padlock/internal/flow"
)

// tcpShape reads the TCP header out of a captured frame only where the
// capture holds it: behind VLAN tags, over IPv6, not in a later fragment
// or a header cut short (whose flags read zero, and are no NULL probe).
func TestTCPShape(t *testing.T) {
	v4 := func(frag uint16, tcp ...byte) []byte {
		b := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00,
			0x45, 0, 0, byte(20 + 20 + 5), 0, 0, byte(frag >> 8), byte(frag), 64, flow.ProtoTCP, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}
		return append(b, tcp...)
	}
	tcp := []byte{0xaf, 0xc8, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x11, 4, 0, 0, 0, 0, 0}
	vlan := append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x00, 0, 7}, v4(0, tcp...)[12:]...)
	v6 := append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, flow.ProtoTCP, 64}, make([]byte, 32)...)
	v6 = append(v6, tcp...)
	for _, tc := range []struct {
		name          string
		frame         []byte
		hlen, payload int
		flags         uint8
		ok            bool
	}{
		{"IPv4, 5 bytes of payload", v4(0x4000, tcp...), 20, 5, 0x11, true},
		{"behind a VLAN tag", vlan, 20, 5, 0x11, true},
		{"IPv6", v6, 20, 0, 0x11, true},
		{"a later fragment", v4(0x0010, tcp...), 0, 0, 0, false},
		{"cut short before the flags", v4(0, tcp[:13]...), 0, 0, 0, false},
		{"no header", nil, 0, 0, 0, false},
	} {
		var r flow.Record
		r.SetHeader(tc.frame)
		hlen, payload, flags, ok := tcpShape(&r)
		if ok != tc.ok || ok && (hlen != tc.hlen || payload != tc.payload || flags != tc.flags) {
			t.Errorf("%s: got %d %d %#x %v, want %d %d %#x %v", tc.name, hlen, payload, flags, ok, tc.hlen, tc.payload, tc.flags, tc.ok)
		}
	}
}
