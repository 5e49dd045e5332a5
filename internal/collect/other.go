//go:build !linux

package collect

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

var errUnsupported = errors.New("live collection needs Linux (recvmmsg, SO_REUSEPORT, AF_PACKET)")

type udpSocket struct {
	conn   *net.UDPConn
	local  string
	rcvbuf int
}

func (s *udpSocket) Close() error { return nil }

func openUDP(context.Context, netip.AddrPort, int) (*udpSocket, error) { return nil, errUnsupported }

func (w *worker) runUDP(*udpSocket) {}

type captureSocket struct{ rcvbuf int }

func (s *captureSocket) Close() error { return nil }

func openCapture(CaptureConfiguration, int) (*captureSocket, error) { return nil, errUnsupported }

func (w *worker) runCapture(*captureSocket) {}
