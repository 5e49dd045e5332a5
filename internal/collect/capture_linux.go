package collect

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"padlock/internal/decode/packet"
	"padlock/internal/flow"
)

// captureSocket is an AF_PACKET socket bound to one interface.
type captureSocket struct {
	file    *os.File
	rc      syscall.RawConn
	fd      int
	ifindex int
	rcvbuf  int
}

func (s *captureSocket) Close() error { return s.file.Close() }

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openCapture opens a raw AF_PACKET socket on the interface, in the network
// namespace of the calling thread.
func openCapture(conf CaptureConfiguration, rcvbuf int) (*captureSocket, error) {
	ifi, err := net.InterfaceByName(conf.Interface)
	if err != nil {
		return nil, err
	}
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket (needs CAP_NET_RAW): %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind to %s: %w", conf.Interface, err)
	}
	granted := setRcvbuf(fd, rcvbuf)
	f := os.NewFile(uintptr(fd), "packet:"+conf.Interface)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &captureSocket{file: f, rc: rc, fd: fd, ifindex: ifi.Index, rcvbuf: granted}, nil
}

// runCapture turns every captured packet into one record (sampling rate 1,
// the first snaplen bytes kept as header).
func (w *worker) runCapture(s *captureSocket) {
	conf := w.c.conf
	r := newBatchReader(s.rc, conf.Batch, conf.Capture.Snaplen, unix.MSG_TRUNC)
	var rec flow.Record
	var statsNext time.Time
	exp := w.statsFor(netip.Addr{}, flow.FormatPcap)
	for {
		n, err := r.read()
		if err != nil {
			if !w.c.stopping.Load() {
				w.c.log.Error("reading from capture socket failed; capture stops", "interface", w.addr, "error", err.Error())
			}
			return
		}
		now := w.c.deps.Clock.Now()
		w.received.Add(uint64(n))
		for i := range n {
			ifindex, pkttype, hatype := r.linkLayer(i)
			if ifindex != s.ifindex { // queued between socket() and bind()
				continue
			}
			data := r.payload(i)
			length := r.length(i)
			exp.datagrams.Add(1)
			exp.bytes.Add(uint64(length))
			exp.lastSeen.Store(now.UnixNano())
			lt := uint32(packet.LinkEthernet)
			if hatype == unix.ARPHRD_NONE || hatype == unix.ARPHRD_PPP {
				lt = packet.LinkRaw
			}
			rec = flow.Record{}
			// A packet cut by the snap length still gives a record with
			// what was parsed; anything else is an error.
			if err := w.parsePacket(lt, data, &rec); err != nil && !(packet.IsTruncated(err) && length > len(data)) {
				ci := causeIndex(err)
				exp.errors[ci].Add(1)
				exp.dropped.Add(1)
				if ci == causePanic {
					w.dropped[dropPanic].Add(1)
				} else {
					w.dropped[dropDecodeError].Add(1)
				}
				w.logError(now, netip.Addr{}, flow.FormatPcap, err)
				continue
			}
			rec.Format = flow.FormatPcap
			rec.Start, rec.End = now, now
			rec.SamplingRate = 1
			rec.Packets, rec.SampledPackets = 1, 1
			rec.Bytes, rec.SampledBytes = uint64(length), uint64(length)
			rec.FrameLength = uint32(length)
			rec.ObservationDomain = uint32(s.ifindex)
			if pkttype == unix.PACKET_OUTGOING {
				rec.OutIf = uint32(s.ifindex)
			} else {
				rec.InIf = uint32(s.ifindex)
			}
			packet.SetHeader(lt, data, &rec)
			w.sink.Record(&rec)
			exp.records.Add(1)
		}
		if now.After(statsNext) { // kernel drops; reading the statistics resets them
			statsNext = now.Add(time.Second)
			if st, err := unix.GetsockoptTpacketStats(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil && st.Drops > 0 {
				w.dropped[dropSocketBuffer].Add(uint64(st.Drops))
			}
		}
	}
}

func (w *worker) parsePacket(lt uint32, data []byte, r *flow.Record) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError{p: p}
		}
	}()
	return packet.Parse(lt, data, r)
}
