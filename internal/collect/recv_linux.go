package collect

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of recvmmsg(2); Go's alignment adds the
// trailing padding the kernel expects on 64-bit.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

var ctrlSpace = unix.CmsgSpace(4) // one SO_RXQ_OVFL uint32

// batchReader reads up to len(msgs) datagrams per recvmmsg call into
// preallocated buffers. Nothing is allocated per read.
type batchReader struct {
	rc    syscall.RawConn
	flags uintptr
	msgs  []mmsghdr
	iov   []unix.Iovec
	names []unix.RawSockaddrAny
	ctrl  []byte
	bufs  [][]byte
	err   error
	got   int
	fn    func(fd uintptr) bool // r.syscall, bound once
}

func newBatchReader(rc syscall.RawConn, batch, size int, flags int) *batchReader {
	r := &batchReader{
		rc:    rc,
		flags: uintptr(flags),
		msgs:  make([]mmsghdr, batch),
		iov:   make([]unix.Iovec, batch),
		names: make([]unix.RawSockaddrAny, batch),
		ctrl:  make([]byte, batch*ctrlSpace),
		bufs:  make([][]byte, batch),
	}
	r.fn = r.syscall
	for i := range r.msgs {
		r.bufs[i] = make([]byte, size)
		r.iov[i].Base = &r.bufs[i][0]
		r.iov[i].SetLen(size)
		h := &r.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iov[i]
		h.SetIovlen(1)
		h.Control = &r.ctrl[i*ctrlSpace]
	}
	return r
}

// read blocks (in the netpoller) until at least one datagram is there and
// returns how many were read.
func (r *batchReader) read() (int, error) {
	for i := range r.msgs {
		h := &r.msgs[i].hdr
		h.Namelen = unix.SizeofSockaddrAny
		h.SetControllen(ctrlSpace)
		h.Flags = 0
		r.msgs[i].n = 0
	}
	r.err, r.got = nil, 0
	err := r.rc.Read(r.fn)
	if err != nil {
		return 0, err
	}
	return r.got, r.err
}

// syscall is the RawConn.Read callback (bound once in r.fn, so that no
// closure is allocated per read).
func (r *batchReader) syscall(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)), r.flags, 0, 0)
		switch e {
		case 0:
			r.got = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			r.err = e
			return true
		}
	}
}

// length is the real length of datagram i (with MSG_TRUNC semantics it can
// exceed the buffer).
func (r *batchReader) length(i int) int { return int(r.msgs[i].n) }

// payload is the part of datagram i that fits the buffer.
func (r *batchReader) payload(i int) []byte {
	return r.bufs[i][:min(int(r.msgs[i].n), len(r.bufs[i]))]
}

func (r *batchReader) truncated(i int) bool { return r.msgs[i].hdr.Flags&unix.MSG_TRUNC != 0 }

// from is the UDP source of datagram i.
func (r *batchReader) from(i int) netip.AddrPort {
	sa := &r.names[i]
	switch sa.Addr.Family {
	case unix.AF_INET:
		s := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(s.Addr), binary.BigEndian.Uint16(p[:]))
	case unix.AF_INET6:
		s := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(s.Addr), binary.BigEndian.Uint16(p[:]))
	}
	return netip.AddrPort{}
}

// linkLayer is the AF_PACKET source of packet i: interface index, packet
// type (PACKET_HOST, PACKET_OUTGOING, ...) and ARP hardware type.
func (r *batchReader) linkLayer(i int) (ifindex int, pkttype uint8, hatype uint16) {
	s := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&r.names[i]))
	return int(s.Ifindex), s.Pkttype, s.Hatype
}

// overflow returns the socket's cumulative drop count carried by datagram
// i (SO_RXQ_OVFL), if the kernel attached one.
func (r *batchReader) overflow(i int) (uint32, bool) {
	h := &r.msgs[i].hdr
	if int(h.Controllen) < unix.CmsgLen(4) {
		return 0, false
	}
	c := r.ctrl[i*ctrlSpace : (i+1)*ctrlSpace]
	hdr := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	if hdr.Level != unix.SOL_SOCKET || hdr.Type != unix.SO_RXQ_OVFL {
		return 0, false
	}
	return *(*uint32)(unsafe.Pointer(&c[unix.CmsgLen(0)])), true
}

// udpSocket is one bound UDP socket of a listener.
type udpSocket struct {
	conn   *net.UDPConn
	rc     syscall.RawConn
	local  string
	rcvbuf int
}

func (s *udpSocket) Close() error { return s.conn.Close() }

// setRcvbuf asks for n bytes of receive buffer, forcing past
// net.core.rmem_max when allowed (CAP_NET_ADMIN), and returns what the
// kernel granted.
func setRcvbuf(fd int, n int) int {
	if n > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	}
	got, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	return got
}

// openUDP binds one SO_REUSEPORT socket to ap (an invalid address means all
// addresses, dual stack).
func openUDP(ctx context.Context, ap netip.AddrPort, rcvbuf int) (*udpSocket, error) {
	var granted int
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil {
				serr = fmt.Errorf("SO_REUSEPORT: %w", serr)
				return
			}
			granted = setRcvbuf(int(fd), rcvbuf)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
		})
		return errors.Join(err, serr)
	}}
	network, address := "udp", fmt.Sprintf(":%d", ap.Port())
	if a := ap.Addr(); a.IsValid() {
		network = "udp4"
		if a.Is6() && !a.Is4In6() {
			network = "udp6"
		}
		address = netip.AddrPortFrom(a.Unmap(), ap.Port()).String()
	}
	pc, err := lc.ListenPacket(ctx, network, address)
	if err != nil {
		return nil, err
	}
	conn := pc.(*net.UDPConn)
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &udpSocket{conn: conn, rc: rc, local: conn.LocalAddr().String(), rcvbuf: granted}, nil
}

// runUDP is the goroutine of one UDP socket: read a batch, decode each
// datagram in place, repeat until the socket is closed.
func (w *worker) runUDP(s *udpSocket) {
	conf := w.c.conf
	r := newBatchReader(s.rc, conf.Batch, conf.MaxDatagram, 0)
	var lastOvfl uint32
	for {
		n, err := r.read()
		if err != nil {
			if !w.c.stopping.Load() && !errors.Is(err, net.ErrClosed) {
				w.c.log.Error("reading from socket failed; listener stops", "listener", w.name, "address", s.local, "error", err.Error())
			}
			return
		}
		now := w.c.deps.Clock.Now()
		w.received.Add(uint64(n))
		for i := range n {
			l := r.length(i)
			if r.truncated(i) && l <= conf.MaxDatagram {
				l = conf.MaxDatagram + 1 // the kernel cut it; the real length is unknown
			}
			w.handle(r.from(i), r.payload(i), l, now)
		}
		if o, ok := r.overflow(n - 1); ok && o != lastOvfl {
			w.dropped[dropSocketBuffer].Add(uint64(o - lastOvfl))
			lastOvfl = o
		}
	}
}
