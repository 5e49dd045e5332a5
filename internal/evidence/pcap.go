package evidence

import (
	"fmt"
	"io"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"padlock/internal/flow"
)

// Pcap writes the records that carry header bytes as a pcap file (link type
// Ethernet, snap length flow.MaxHeader, original length FrameLength), at
// most l.MaxPacketLines packets, and returns how many it wrote. Records
// without header bytes (flow records) have no packet to write and are
// skipped; a file with zero packets is still a valid pcap.
func Pcap(w io.Writer, recs []flow.Record, l Limits) (int, error) {
	return writePcap(w, recs, l)
}

func writePcap(w io.Writer, recs []flow.Record, l Limits) (int, error) {
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(flow.MaxHeader, layers.LinkTypeEthernet); err != nil {
		return 0, fmt.Errorf("write pcap header: %w", err)
	}
	if max := l.packets(); len(recs) > max {
		recs = recs[:max]
	}
	n := 0
	for i := range recs {
		r := &recs[i]
		hdr := r.HeaderBytes()
		if len(hdr) == 0 {
			continue
		}
		orig := max(int(r.FrameLength), len(hdr))
		ci := gopacket.CaptureInfo{Timestamp: r.Start, CaptureLength: len(hdr), Length: orig}
		if err := pw.WritePacket(ci, hdr); err != nil {
			return n, fmt.Errorf("write pcap packet %d: %w", n, err)
		}
		n++
	}
	return n, nil
}
