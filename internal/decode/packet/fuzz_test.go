package packet

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"padlock/internal/decode"
	"padlock/internal/flow"
)

// FuzzParse feeds arbitrary bytes to every link type. Seeds are the packets
// of the real captures under ../pcapfile/testdata (when present) and a few
// built ones.
func FuzzParse(f *testing.F) {
	f.Add(uint32(LinkEthernet), build(f, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 2}))
	f.Add(uint32(LinkRaw), build(f, ip6(layers.IPProtocolIPv6HopByHop), rawExt(layers.IPProtocolUDP, 8), &layers.UDP{SrcPort: 1, DstPort: 2}))
	files, _ := filepath.Glob("../pcapfile/testdata/*.pcap")
	for _, name := range files {
		fh, err := os.Open(name)
		if err != nil {
			continue
		}
		r, err := pcapgo.NewReader(fh)
		if err == nil {
			for i := 0; i < 50; i++ {
				data, _, err := r.ReadPacketData()
				if err != nil {
					break
				}
				f.Add(uint32(r.LinkType()), data)
			}
		}
		fh.Close()
	}
	f.Fuzz(func(t *testing.T, link uint32, data []byte) {
		var r flow.Record
		payload, err := ParsePayload(link, data, &r)
		if err != nil && !errors.Is(err, decode.ErrTruncated) && !errors.Is(err, decode.ErrMalformed) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if len(payload) > 0 {
			start := uintptr(unsafe.Pointer(&payload[0]))
			lo := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
			if start < lo || start+uintptr(len(payload)) > lo+uintptr(len(data)) {
				t.Fatalf("payload is not inside the packet")
			}
		}
		SetHeader(link, data, &r)
		if int(r.HeaderLength) > flow.MaxHeader {
			t.Fatalf("HeaderLength %d", r.HeaderLength)
		}
	})
}
