package detect

import (
	"net/netip"
	"unsafe"

	"padlock/internal/detect/detector"
	"padlock/internal/flow"
)

// warmGroup is how many records Records prepares at a time: enough for
// their cache misses to overlap, few enough that what they fetched is still
// in L1/L2 when the records run.
const warmGroup = 16

// warmHosts is the number of active hosts from which Records warms: below
// it the state of every host fits in the core's caches and warming would
// only add work (BenchmarkEngine on the 2-core AMD guest, medians of
// interleaved runs: no gain at 1,000 hosts, 40 % at 10,000, 65 % at
// 100,000; see docs/performance.md).
const warmHosts = 4096

// warmLines is the most cache lines warm prefetches per record in one
// pass (pass 2, a record with both ends internal: per end the host
// record's two lines and netscan's state).
const warmLines = 6

// warmState is Records' scratch space for one group.
type warmState struct {
	in   [warmGroup]uint8               // ownership of each record's ends
	host [warmGroup][2]uint32           // host index of source, destination end (NoHost: none yet)
	key  [warmGroup][2]detector.Key16   // the other end of each internal end
	port [warmGroup][2]uint16           // the other end's port (0 for ICMP)
	loc  [warmGroup][2]uint16           // the internal end's port
	addr [warmGroup * warmLines]uintptr // what one pass prefetches
}

// Records runs a batch of records through every detector, with the same
// results as calling Record on each in order. It is the fast path: with
// tens of thousands of active hosts nearly every record's state (host
// index slot, host record, netscan contact slot) is a cache miss, and one
// record's misses each wait for the previous. Records first walks a small
// group of records doing nothing but those lookups, in three passes (host
// index slots, then host records and netscan state, then netscan contact
// slots), each prefetching the cache lines the next needs, so that the
// processor has all the group's misses of a pass in flight at once; then
// it runs the group, whose state is now in cache (only with warmHosts or
// more active hosts, where fewer do not fit in cache, and on amd64 and
// arm64, which have the prefetch instruction in assembly). The
// warming passes only read; the host indexes they find are used by the
// group's records until one of them triggers an expiry sweep (which may
// drop hosts and reuse their indexes); a host the group itself creates was
// not found there and is looked up again.
func (e *Engine) Records(b []flow.Record) {
	if !prefetching || e.hosts.len() < warmHosts {
		for i := range b {
			e.record(&b[i], inUnknown, &noHint)
		}
		return
	}
	for len(b) > 0 {
		g := b[:min(len(b), warmGroup)]
		e.warm(g)
		sweeps := e.sweeps
		for i := range g {
			// the warming pass's host indexes hold until a record of the
			// group moves event time over an expiry sweep, which may drop
			// hosts and hand their indexes to new ones
			hint := &e.ws.host[i]
			if e.sweeps != sweeps {
				hint = &noHint
			}
			e.record(&g[i], e.ws.in[i], hint)
		}
		b = b[len(g):]
	}
}

func (e *Engine) ownership(src, dst netip.Addr) uint8 {
	if e.pfx != nil {
		return e.pfx.ends(src, dst)
	}
	var in uint8
	if e.nets.Internal(src) {
		in |= inSrc
	}
	if e.nets.Internal(dst) {
		in |= inDst
	}
	return in
}

func (e *Engine) warm(g []flow.Record) {
	w := &e.ws
	addr := w.addr[:0]
	// pass 1: ownership, and the host index slots of the internal ends
	for i := range g {
		r := &g[i]
		w.host[i] = [2]uint32{detector.NoHost, detector.NoHost}
		if !r.SrcAddr.IsValid() || !r.DstAddr.IsValid() {
			w.in[i] = 0
			continue
		}
		src, dst := r.SrcAddr.Unmap(), r.DstAddr.Unmap()
		in := e.ownership(src, dst)
		w.in[i] = in
		if in&inSrc != 0 {
			addr = e.hosts.slotAddr(addr, src)
		}
		if in&inDst != 0 {
			addr = e.hosts.slotAddr(addr, dst)
		}
	}
	prefetch(addr)
	addr = addr[:0]
	// pass 2: the host indexes and the remote ends' keys; the host records
	// (first line and the direction's packet meter) and netscan's state
	hot := e.hot.H
	for i := range g {
		r := &g[i]
		if w.in[i]&inSrc != 0 {
			if h, ok := e.hosts.get(r.SrcAddr.Unmap()); ok {
				w.host[i][0] = h
			}
		}
		if w.in[i]&inDst != 0 {
			if h, ok := e.hosts.get(r.DstAddr.Unmap()); ok {
				w.host[i][1] = h
			}
		}
		for k, h := range w.host[i] {
			if int(h) >= len(hot) {
				continue
			}
			hr := &hot[h]
			addr = append(addr, uintptr(unsafe.Pointer(hr)), uintptr(unsafe.Pointer(&hr.Meter[k][0])))
			remote, port, loc := r.DstAddr, r.DstPort, r.SrcPort
			if k == 1 {
				remote, port, loc = r.SrcAddr, r.SrcPort, r.DstPort
			}
			if r.Proto == flow.ProtoICMP || r.Proto == flow.ProtoICMPv6 {
				port = 0
			}
			w.key[i][k] = remote.Unmap().As16()
			w.port[i][k] = port
			w.loc[i][k] = loc
			if e.netscan != nil {
				addr = e.netscan.HostLine(addr, h, port, loc)
			}
		}
	}
	prefetch(addr)
	addr = addr[:0]
	// pass 3: the netscan contact slot each end's key hashes to, and what
	// attack reads for TCP (see TCPLine; a connection attempt the host
	// makes reads nothing there)
	for i := range g {
		r := &g[i]
		for k, h := range w.host[i] {
			if h == detector.NoHost {
				continue
			}
			if e.netscan != nil {
				addr = e.netscan.ContactLine(addr, h, &w.key[i][k], r.Proto, w.port[i][k], w.loc[i][k])
			}
			if e.attack != nil && r.Proto == flow.ProtoTCP && (k == 1 || r.TCPFlags&(flow.TCPSyn|flow.TCPAck|flow.TCPRst|flow.TCPFin) != flow.TCPSyn) {
				addr = e.attack.TCPLine(addr, h, k == 1)
			}
		}
	}
	prefetch(addr)
}
