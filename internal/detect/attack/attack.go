// Package attack is the network_attack detector: attacks sent from an
// internal address towards one external target — UDP, SYN, other TCP (ACK,
// RST, FIN, PSH/ACK, NULL, flag soup) and ICMP floods, brute force (many
// new connections to one target's login port that the target does not
// refuse) and
// reflection/amplification (a service on the internal address answering,
// with many more bytes than it receives, towards one target). It imports
// internal/flow and internal/detect/detector only.
//
// State: every host carries a 28-byte gate counting candidate traffic in
// tumbling windows. A host whose candidates reach a sixteenth of a
// threshold gets a table of `targets` slots (space-saving: a new target
// replaces the quietest slot), each with six buckets of window/6 seconds.
// The sum of the six buckets is traffic inside the last window, so a
// verdict is a proof; a flow record lasting several seconds is spread over
// them. A flood must last about a window plus the gate's share of it
// before it is proven. A UDP stream the target answers with one packet in
// ten or more is a conversation (QUIC, VPN tunnels), not a flood — unless
// it goes to a request/response service of the reflection port list (DNS,
// NTP, SNMP, memcached, ...) or SIP: a query flood against an open
// resolver is answered packet for packet and is still a flood. Such streams are
// counted per target and port, others per target.
//
// TCP other than connection attempts is most of a server's traffic, so it
// passes a gate of its own first: per host, one candidate target that
// takes at least a third of the host's TCP packets (a weighted majority
// vote), 16 bytes a host; only the candidate's packets reach a target
// table. A TCP stream the target answers with one packet in two hundred
// or more (a bulk upload's ACKs, a download's data) is a conversation; RSTs
// are no answers, as a flood's victim resets every segment of a
// connection it does not know.
package attack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unsafe"

	"padlock/internal/detect/detector"
	"padlock/internal/flow"
)

// BruteForce configures the brute-force rule.
type BruteForce struct {
	// Enabled turns the rule on. Default true.
	Enabled bool `yaml:"enabled"`
	// Ports are the login ports watched. Default [21, 22, 23, 445, 3389,
	// 5900]: remote logins. Database and mailbox ports (1433, 3306, 5432,
	// 110, 143) are left out on purpose: an application that opens a
	// connection per request (PHP and MySQL, webmail and IMAP) makes 100
	// new connections a minute to one server without any abuse, and flow
	// data cannot tell a failed login from a successful one.
	Ports []uint16 `yaml:"ports"`
	// MinConnections is the number of new connections to one target's login
	// port within the window that makes brute force (SYN packets scaled by
	// sampling, a SYN the kernel retransmits from the same port counted
	// once; one per flow record of a connection). Where the target refuses
	// more connections (RST) than it accepts (SYN-ACK), the attempts count
	// only by twice the accepted share: a client in a restart loop against
	// a closed port makes no login attempt. Resets count as refusals up to
	// the attempts not accepted: an accepted connection's own resets (a
	// server aborting a failed login) refuse nothing. Default 100.
	MinConnections uint64 `yaml:"min_connections"`
}

// Reflection configures the reflection/amplification rule.
type Reflection struct {
	// Enabled turns the rule on. Default true.
	Enabled bool `yaml:"enabled"`
	// Ports are the UDP service ports abused for amplification (the
	// request/response services of US-CERT's TA14-017A list and later
	// vectors: CoAP, ARD, Ubiquiti discovery, DVRs). Default [17, 19, 53,
	// 69, 111, 123, 137, 161, 389, 520, 1434, 1900, 3283, 3702, 5353, 5683,
	// 10001, 11211, 27015, 27960, 37810].
	Ports []uint16 `yaml:"ports"`
	// MinPPS is the packet rate from one service port to one target that,
	// with MinRatio, makes reflection. Default 1000.
	MinPPS uint64 `yaml:"min_pps"`
	// MinRatio is the bytes sent to the target per byte received from it
	// (requests, usually spoofed). Default 20: DNSSEC answers are about ten
	// times their queries, so an authoritative server answering a busy
	// resolver reaches 10; abused amplifiers reach 30 (DNS ANY, SSDP) to
	// thousands (NTP monlist, memcached).
	MinRatio float64 `yaml:"min_ratio"`
}

// Configuration of the attack detector (YAML under detect.attack).
type Configuration struct {
	// Enabled turns the detector on. Default true.
	Enabled bool `yaml:"enabled"`
	// Window is the sliding window, whole seconds >= 6s. Default 60s.
	Window detector.Duration `yaml:"window"`
	// MinPPS is the packet rate towards one target (UDP, SYN, other TCP
	// the target does not answer, or ICMP of any type but replies) that
	// makes a flood. Default 50000.
	MinPPS uint64 `yaml:"min_pps"`
	// MinSamples is the number of samples a verdict needs: for floods and
	// reflection sampled packets as received (one per sFlow sample or
	// captured packet, a flow record's packets divided by its sampling
	// rate: an unsampled NetFlow record of one flood flow counts every
	// packet), for brute force connection records.
	// Default 10.
	MinSamples uint64 `yaml:"min_samples"`
	// Targets is the number of targets tracked per suspicious host. Default 8.
	Targets    int        `yaml:"targets"`
	BruteForce BruteForce `yaml:"brute_force"`
	Reflection Reflection `yaml:"reflection"`
}

// Defaults returns the documented defaults.
func Defaults() Configuration {
	return Configuration{
		Enabled:    true,
		Window:     detector.Duration(60 * time.Second),
		MinPPS:     50000,
		MinSamples: 10,
		Targets:    8,
		BruteForce: BruteForce{Enabled: true, MinConnections: 100,
			Ports: []uint16{21, 22, 23, 445, 3389, 5900}},
		Reflection: Reflection{Enabled: true, MinPPS: 1000, MinRatio: 20,
			Ports: []uint16{17, 19, 53, 69, 111, 123, 137, 161, 389, 520, 1434, 1900, 3283, 3702, 5353, 5683, 10001, 11211, 27015, 27960, 37810}},
	}
}

// Validate checks the configuration; errors name the key.
func (c Configuration) Validate() error {
	var errs []error
	if w := c.Window.D(); w < 6*time.Second || w%time.Second != 0 {
		errs = append(errs, fmt.Errorf("window: must be whole seconds >= 6s, got %s", w))
	}
	if c.MinPPS == 0 {
		errs = append(errs, errors.New("min_pps: must be > 0"))
	}
	if c.Targets < 1 || c.Targets > 64 {
		errs = append(errs, errors.New("targets: must be between 1 and 64"))
	}
	if c.BruteForce.MinConnections == 0 {
		errs = append(errs, errors.New("brute_force.min_connections: must be > 0"))
	}
	if c.Reflection.MinPPS == 0 {
		errs = append(errs, errors.New("reflection.min_pps: must be > 0"))
	}
	if c.Reflection.MinRatio < 1 {
		errs = append(errs, errors.New("reflection.min_ratio: must be >= 1"))
	}
	return errors.Join(errs...)
}

// Classes of attack traffic and their rules.
const (
	classUDP = iota
	classSYN
	classICMP
	classBrute
	classReflect
	classTCP // TCP other than connection attempts (SYN without ACK)
	nClasses
)

var rules = [nClasses]string{"attack.udp_flood", "attack.syn_flood", "attack.icmp_flood", "attack.brute_force", "attack.reflection", "attack.tcp_flood"}

// Rule names, exported for tests and documentation.
const (
	RuleUDPFlood   = "attack.udp_flood"
	RuleSYNFlood   = "attack.syn_flood"
	RuleICMPFlood  = "attack.icmp_flood"
	RuleBruteForce = "attack.brute_force"
	RuleReflection = "attack.reflection"
	RuleTCPFlood   = "attack.tcp_flood"
)

const nb = 6

type slot struct {
	target  detector.Key16
	port    uint16
	class   uint8
	flags   uint8  // TCP flood: the flags of the packets counted since the last finding
	head    uint32 // bucket number
	pk      [nb]uint64
	by      [nb]uint64 // bytes sent; brute force: connections the target accepted (SYN-ACK)
	fl      [nb]uint32
	sm      [nb]uint32 // samples: sampled packets as received
	in      [nb]uint64 // received from the target: bytes (reflection), packets (UDP flood), packets but RSTs (TCP flood), refused connections (brute force: RST)
	first   int64
	last    int64
	maxRate uint32
	// lports are the host's ports of the latest distinct connections a
	// brute-force slot counted (lport: the next to overwrite): a SYN from
	// one of them is the kernel retransmitting an attempt the target did
	// not answer (Linux sends up to seven SYNs in a minute), not a new
	// connection
	lport   uint8
	lports  [lportsKept]uint16
	muted   int64
	due     int64 // a flood verdict waits for answers until this event time (ns); 0: none
	samples *detector.Samples
}

// lportsKept is how many connection attempts in flight at once a
// brute-force slot tells retransmissions of apart (12: the slot stays in
// its allocation size class of 288 bytes).
const lportsKept = 12

// retransmitted reports whether a connection from the host's port lport
// was counted already; if not, it remembers lport.
func (sl *slot) retransmitted(lport uint16) bool {
	for _, p := range sl.lports {
		if p == lport && lport != 0 {
			return true
		}
	}
	sl.lports[sl.lport] = lport
	sl.lport = (sl.lport + 1) % lportsKept
	return false
}

type hostState struct{ slots []slot }

// Detector is the attack detector.
type Detector struct {
	conf  Configuration
	env   detector.Env
	w     int64 // window seconds
	bw    int64 // bucket width seconds
	login [65536 / 64]uint64
	amp   [65536 / 64]uint64 // reflection.ports while reflection is enabled
	// services are reflection.ports whether or not reflection is enabled,
	// and SIP: request/response UDP services, a stream to which has a
	// slot of its own per port, where answers make no conversation (a DNS
	// query flood, a SIP flood)
	services [65536 / 64]uint64
	gates    *detector.Hosts // the gate: AttackGen, AttackCur, AttackPrev; counts are floods (packets), brute (connections), reflection (packets)
	hosts    []*hostState
	pool     []*hostState
	gateAt   [3]uint64
	limit    [nClasses]uint64 // per-class verdict threshold on the window sum
	waiting  []waiting        // UDP and TCP flood verdicts that wait for answers (slot.due)
	tcp      []tcpGate        // per host: the TCP flood gate
	tcpWin   uint32           // the TCP gate's window in units of 2^30 ns
	answers  uint64           // a flow record of TCP answers this big (window share) is kept for a TCP slot still to come
	now      int64            // event time at the last tick (ns)
	// early are answers of TCP flow records that came before the record
	// of the stream they answer, which the hosts' gates could not keep
	// (a gate keeps one target's; a second big inbound record, a
	// download's, displaces them): a ring, looked up when a TCP slot is
	// made. NetFlow exports a minute's records in its cache's order, so
	// an upload's answers may be followed by other records of the host's
	// before the upload's own.
	early   [earlyKept]earlyAnswers
	earlyAt int
}

// earlyAnswers are answers (packets but RSTs, a window's share) from the
// target with key key32 to host, in a flow record ending at end.
type earlyAnswers struct {
	end  int64
	host uint32
	key  uint32
	ans  uint32
}

// earlyKept is how many early answers the ring holds: only flow records
// of TCP answers at a flood's scale (d.answers) whose target has no slot
// reach it, and the stream's own record follows within the same export.
const earlyKept = 1024

// keepEarly keeps answers a host's gate gives up in the ring.
func (d *Detector) keepEarly(host, key, ans uint32, end int64) {
	if ans == 0 {
		return
	}
	d.early[d.earlyAt] = earlyAnswers{end: end, host: host, key: key, ans: ans}
	d.earlyAt = (d.earlyAt + 1) % earlyKept
}

// claimEarly adds the ring's answers from the new TCP slot's target to
// the host, within a window of end, to the slot. A host's index that is
// reused belonged to a host idle for host_expiry, at least a window.
func (d *Detector) claimEarly(sl *slot, host, key uint32, end int64) {
	for i := range d.early {
		if e := &d.early[i]; e.host == host && e.key == key && e.ans > 0 && e.end > end-d.w*1e9 {
			sl.in[sl.head%nb] += uint64(e.ans)
			e.ans = 0
		}
	}
}

// waiting names a slot whose UDP or TCP flood verdict waits for answers.
type waiting struct {
	host   uint32
	target detector.Key16
	due    int64 // the slot's due when the verdict began to wait (a later wait of the slot has its own entry)
	class  uint8
	ripe   bool // the wait is over: decided at the next tick, after the record that ended it
}

// tcpGate is a host's gate for TCP other than connection attempts: a
// server's TCP goes to thousands of targets, and a target table would
// churn through them. One candidate target (a hash of its address) and
// its packets less half the packets to other targets (a weighted majority
// vote: a target with more than a third of the host's TCP packets stays
// the candidate), halved each window. Once its count reaches the flood
// gate (a sixteenth of the threshold), the candidate's packets are
// counted in a target slot; other targets' only where they have one.
type tcpGate struct {
	until uint32 // when the gate's window ends (2^30 ns units; the counts are halved then)
	key   uint32 // the candidate target's hash
	n     uint32 // the candidate's packets, less half of the others'
	ans   uint32 // packets but RSTs from the candidate in flow records before its slot was made (NetFlow exports a conversation's two records in either order)
}

// tcpConversation is how many TCP packets to a target make a flood for
// each packet back from it other than RSTs: a receiver acknowledges every
// second segment, or one in 20-60 with receive offload at line rate (a
// 10 Gbit/s backup), one in 128 or fewer with BIG TCP's larger
// aggregates or ACK thinning; a flood's victim answers with RSTs or
// nothing (a challenge ACK to an RST is rate-limited to two a second per
// socket). Under 1:1000 sampling the answers of a 1:80 receiver fell
// under one in a hundred often enough for a finding an hour; one in two
// hundred leaves that margin.
const tcpConversation = 200

// sip is SIP's port: a request/response service like those of
// reflection.ports, which every request answers (100 Trying, 401), so an
// INVITE or REGISTER flood is answered packet for packet; not an
// amplifier, so not among reflection.ports.
const sip = 5060

// answerWait is how long, in event time, a UDP flood verdict that a flow
// record proved waits for the target's answers: NetFlow and IPFIX export
// the two directions of a conversation as two records, together but in
// either order, so the answers of a tunnel can follow the record that
// proves its packet rate — and where the two directions cross different
// routers, the answers' exporter expires and sends its records on its
// own schedule, seconds after the other's (which move event time on
// meanwhile). A flood proven by a record of a minute is reported ten
// seconds of event time after the record arrived (its end, or event time
// at the last tick where that is later: a record sent at its inactive
// timeout).
const answerWait = 10e9

// New returns the detector; conf must be valid.
func New(conf Configuration, env detector.Env) *Detector {
	d := &Detector{conf: conf, env: env, w: conf.Window.Seconds(), gates: env.Hosts}
	if d.gates == nil {
		d.gates = &detector.Hosts{}
	}
	// six buckets of window/6 whole seconds: a window that is no multiple
	// of 6 s is rounded down to one, and thresholds and rates are taken
	// over that (100 s: buckets of 16 s, 96 s, min_pps times 96)
	d.bw = max(1, d.w/nb)
	d.w = d.bw * nb
	if conf.BruteForce.Enabled {
		for _, p := range conf.BruteForce.Ports {
			d.login[p/64] |= 1 << (p % 64)
		}
	}
	for _, p := range append([]uint16{sip}, conf.Reflection.Ports...) {
		d.services[p/64] |= 1 << (p % 64)
		if conf.Reflection.Enabled {
			d.amp[p/64] |= 1 << (p % 64)
		}
	}
	flood := conf.MinPPS * uint64(d.w)
	refl := conf.Reflection.MinPPS * uint64(d.w)
	d.limit = [nClasses]uint64{flood, flood, flood, conf.BruteForce.MinConnections, refl, flood}
	d.answers = max(1, flood/tcpConversation/2)
	d.tcpWin = uint32(max(1, d.w*1e9>>30))
	d.gateAt = [3]uint64{max(1, flood/16), max(1, conf.BruteForce.MinConnections/16), max(1, refl/16)}
	return d
}

func has(set *[1024]uint64, p uint16) bool { return set[p/64]&(1<<(p%64)) != 0 }

// clientSocket reports whether a UDP record from localPort to remotePort
// is a client's: the local port in the dynamic range from which operating
// systems pick a client socket's port (Linux 32768-60999, Windows and the
// IANA range 49152-65535) and the remote port a well-known service's (a
// QUIC upload to 443 from port 37810, a DVR's reflection port, is no DVR
// answering). A reflector's victim at a well-known port is then missed by
// the reflection rule for the reflection ports from 32768 up (37810 by
// default); the UDP flood rule still sees the stream.
func clientSocket(localPort, remotePort uint16) bool { return localPort >= 32768 && remotePort < 1024 }

// Observe implements detector.Detector.
func (d *Detector) Observe(r *flow.Record, o *detector.Orientation) {
	if o.Dir == detector.In {
		d.ObserveHost(r, o, nil)
		return
	}
	d.ObserveHost(r, o, d.gates.At(o.Host))
}

// ObserveHost is Observe with the host's record already at hand (the
// engine's fast path).
func (d *Detector) ObserveHost(r *flow.Record, o *detector.Orientation, hr *detector.Host) {
	if o.Dir == detector.In {
		switch r.Proto {
		case flow.ProtoUDP:
			d.inbound(r, o)
		case flow.ProtoTCP:
			if r.Packets >= d.answers || int(o.Host) < len(d.hosts) && d.hosts[o.Host] != nil {
				d.inboundTCP(r, o) // answers to a slot, or a big flow record of answers
			}
		}
		return
	}
	class, brute := -1, false
	var conns uint64
	switch r.Proto {
	case flow.ProtoUDP:
		if o.LocalPort == 0 && o.RemotePort == 0 && d.fragment(r, o) {
			return
		}
		if has(&d.amp, o.LocalPort) && o.RemotePort != o.LocalPort && !clientSocket(o.LocalPort, o.RemotePort) {
			class = classReflect
		} else {
			class = classUDP
		}
	case flow.ProtoTCP:
		if r.TCPFlags&(flow.TCPSyn|flow.TCPAck|flow.TCPRst|flow.TCPFin) == flow.TCPSyn {
			// a connection attempt (ECN's ECE/CWR, PSH and URG aside); SYN
			// with FIN or RST is no attempt but the flag soup of a TCP flood
			class = classSYN
			if has(&d.login, o.RemotePort) {
				brute = true
				conns = r.Packets
				if detector.IsFlow(r) {
					conns = uint64(detector.Rate(r))
				}
			}
		} else {
			// the TCP gate, its common case inline: a record to another
			// target than the host's candidate, which outweighs it
			if k := key32(o.Remote); int(o.Host) < len(d.tcp) && d.tcp[o.Host].key != k && uint64(d.tcp[o.Host].n) > r.Packets/2 {
				d.tcp[o.Host].n -= uint32(r.Packets / 2)
			} else {
				d.tcpFlood(r, o, k)
			}
			if r.TCPFlags&flow.TCPSyn != 0 && detector.IsFlow(r) && has(&d.login, o.RemotePort) && detector.IsClientSide(o.LocalPort, o.RemotePort) {
				// a flow record of a connection, with its SYN: under packet
				// sampling 1:N a connection's record carries SYN when its SYN
				// was sampled, so it stands for N connections, as an sFlow
				// sample of a SYN does
				brute, conns = true, uint64(detector.Rate(r))
			}
		}
	case flow.ProtoICMP, flow.ProtoICMPv6:
		// any type but replies (an inbound ping flood's victim answers
		// it): BlackNurse floods with destination-unreachable messages,
		// and a server's own ICMP errors are capped by its kernel
		// (Linux: 1,000 a second)
		if !icmpReply(r) {
			class = classICMP
		}
	}
	if class < 0 && !brute {
		return
	}
	s := d.hostState(r, o, hr, class, conns)
	if s == nil {
		return
	}
	if class >= 0 {
		port := uint16(0)
		switch {
		case class == classReflect:
			port = o.LocalPort
		case class == classUDP && has(&d.services, o.RemotePort):
			// a request/response service (DNS, NTP, ...): a stream to it
			// has its own slot, where answers make no conversation
			port = o.RemotePort
		}
		d.add(s, r, o, uint8(class), port, r.Packets)
	}
	if brute {
		d.add(s, r, o, classBrute, o.RemotePort, conns)
	}
}

// hostState passes the record through the host's gate and returns its
// target table once the host is suspicious.
func (d *Detector) hostState(r *flow.Record, o *detector.Orientation, g *detector.Host, class int, conns uint64) *hostState {
	if int(o.Host) < len(d.hosts) && d.hosts[o.Host] != nil {
		return d.hosts[o.Host]
	}
	gen := uint32(o.End/1e9/d.w) + 1
	if gen != g.AttackGen {
		if gen == g.AttackGen+1 {
			g.AttackPrev = g.AttackCur
		} else {
			g.AttackPrev = [3]uint32{}
		}
		g.AttackCur = [3]uint32{}
		g.AttackGen = gen
	}
	gi, v := 0, r.Packets
	switch {
	case class == classReflect:
		gi = 2
	case class < 0 || (conns > 0 && class == classSYN):
		gi, v = 1, conns
	}
	g.AttackCur[gi] = uint32(min(uint64(g.AttackCur[gi])+v, 0xffffffff))
	if uint64(g.AttackCur[gi])+uint64(g.AttackPrev[gi]) < d.gateAt[gi] {
		return nil
	}
	for int(o.Host) >= len(d.hosts) {
		d.hosts = append(d.hosts, nil)
	}
	s := d.table()
	d.hosts[o.Host] = s
	return s
}

// table returns an empty target table.
func (d *Detector) table() *hostState {
	if n := len(d.pool); n > 0 {
		s := d.pool[n-1]
		d.pool = d.pool[:n-1]
		return s
	}
	return &hostState{} // slots grow up to Targets: most suspicious hosts have one target
}

func (d *Detector) find(s *hostState, target *detector.Key16, class uint8, port uint16) *slot {
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.class == class && sl.port == port && sl.target == *target {
			return sl
		}
	}
	return nil
}

func (sl *slot) advance(b uint32) {
	if b <= sl.head {
		return
	}
	if b-sl.head >= nb {
		sl.pk, sl.by, sl.fl, sl.sm, sl.in = [nb]uint64{}, [nb]uint64{}, [nb]uint32{}, [nb]uint32{}, [nb]uint64{}
	} else {
		for x := sl.head + 1; x <= b; x++ {
			i := x % nb
			sl.pk[i], sl.by[i], sl.fl[i], sl.sm[i], sl.in[i] = 0, 0, 0, 0, 0
		}
	}
	sl.head = b
}

func sum[T uint32 | uint64](a *[nb]T) uint64 {
	var s uint64
	for _, v := range a {
		s += uint64(v)
	}
	return s
}

// newSlot takes a slot for (target, class, port), which the host has none
// for: a new one while there are fewer than Targets, then the quietest
// (space-saving).
func (d *Detector) newSlot(s *hostState, target *detector.Key16, class uint8, port uint16, o *detector.Orientation) *slot {
	b := uint32(o.End / 1e9 / d.bw)
	var q *slot
	if len(s.slots) < d.conf.Targets {
		s.slots = append(s.slots, slot{})
		q = &s.slots[len(s.slots)-1]
	} else {
		qs := ^uint64(0)
		for i := range s.slots {
			x := &s.slots[i]
			x.advance(b)
			if v := sum(&x.pk); v < qs {
				q, qs = x, v
			}
		}
	}
	smp := q.samples
	if smp != nil {
		smp.Reset()
	}
	*q = slot{target: *target, port: port, class: class, head: b, first: o.Start, samples: smp}
	return q
}

// fragment adds a non-first fragment of a UDP datagram (no UDP header, so
// no ports) that the host sends to a target it answers from a reflection
// port to that slot, and reports whether there was one: an amplified
// answer larger than one packet is mostly such fragments (a 4 KB DNS
// answer is three packets, of which only the first carries port 53).
func (d *Detector) fragment(r *flow.Record, o *detector.Orientation) bool {
	if int(o.Host) >= len(d.hosts) || d.hosts[o.Host] == nil {
		return false
	}
	s := d.hosts[o.Host]
	target := o.Remote.As16()
	for i := range s.slots {
		if sl := &s.slots[i]; sl.class == classReflect && sl.target == target {
			d.add(s, r, o, classReflect, sl.port, r.Packets)
			return true
		}
	}
	return false
}

// tcpFlood passes an outbound TCP record other than a connection attempt
// to target k (key32) through the host's TCP gate, and counts it in a
// slot once its target is a candidate past the gate. ObserveHost has
// handled the common case, a record to another target than the candidate
// that outweighs it (the count is not rolled then: it is halved, or
// cleared, before it is next compared with the gate).
func (d *Detector) tcpFlood(r *flow.Record, o *detector.Orientation, k uint32) {
	if int(o.Host) >= len(d.tcp) {
		d.growTCP(o.Host)
	}
	g := &d.tcp[o.Host]
	if t := uint32(o.End >> 30); t >= g.until {
		d.roll(g, t)
	}
	switch {
	case k == g.key:
		g.n = uint32(min(uint64(g.n)+r.Packets, 0xffffffff))
		if uint64(g.n) >= d.gateAt[0] {
			d.tcpCandidate(r, o, g)
		}
	case uint64(g.n) > r.Packets/2: // after a roll
		g.n -= uint32(r.Packets / 2)
	default:
		d.keepEarly(o.Host, g.key, g.ans, o.End) // answers to the candidate it displaces
		g.key, g.n, g.ans = k, uint32(min(r.Packets, 0xffffffff)), 0
		if uint64(g.n) >= d.gateAt[0] { // a flow record of a flood's minute
			d.tcpCandidate(r, o, g)
		}
	}
}

// tcpCandidate counts a record of the host's TCP candidate, past the
// gate, in its slot.
func (d *Detector) tcpCandidate(r *flow.Record, o *detector.Orientation, g *tcpGate) {
	for int(o.Host) >= len(d.hosts) {
		d.hosts = append(d.hosts, nil)
	}
	if d.hosts[o.Host] == nil {
		d.hosts[o.Host] = d.table()
	}
	s := d.hosts[o.Host]
	target := o.Remote.As16()
	sl := d.find(s, &target, classTCP, 0)
	if sl == nil {
		sl = d.newSlot(s, &target, classTCP, 0, o)
		d.claimEarly(sl, o.Host, g.key, o.End)
	}
	if g.ans > 0 {
		// answers whose flow record came first
		sl.in[sl.head%nb] += uint64(g.ans)
		g.ans = 0
	}
	d.count(sl, r, o, r.Packets)
}

func (d *Detector) growTCP(host uint32) {
	d.tcp = append(d.tcp, make([]tcpGate, max(int(host)+1, 2*len(d.tcp), 64)-len(d.tcp))...)
}

// TCPLine appends the address of what a TCP record of the host reads
// (but a connection attempt), for the engine's batch path to prefetch
// ahead of the records as it does netscan's HostLine: for an outbound
// record the host's TCP gate, for an inbound one its target table's
// pointer (whether there is a slot its answers count for). At a hundred
// thousand hosts and more both arrays are out of cache.
func (d *Detector) TCPLine(addrs []uintptr, host uint32, inbound bool) []uintptr {
	if inbound {
		if int(host) < len(d.hosts) {
			return append(addrs, uintptr(unsafe.Pointer(&d.hosts[host])))
		}
		return addrs
	}
	if int(host) < len(d.tcp) {
		return append(addrs, uintptr(unsafe.Pointer(&d.tcp[host])))
	}
	return addrs
}

// roll starts the gate's next window at t (units of 2^30 ns, about a
// second: a shift, not a division, per record).
func (d *Detector) roll(g *tcpGate, t uint32) {
	if t < g.until+d.tcpWin {
		g.n, g.ans = g.n/2, g.ans/2
	} else {
		g.n, g.ans = 0, 0
	}
	g.until = t + d.tcpWin
}

// key32 folds an address into the TCP gate's candidate key.
func key32(a netip.Addr) uint32 {
	k := a.As16()
	x := binary.LittleEndian.Uint64(k[:8]) ^ binary.LittleEndian.Uint64(k[8:])
	return uint32(x) ^ uint32(x>>32)
}

func (d *Detector) add(s *hostState, r *flow.Record, o *detector.Orientation, class uint8, port uint16, n uint64) {
	target := o.Remote.As16()
	sl := d.find(s, &target, class, port)
	if sl == nil {
		sl = d.newSlot(s, &target, class, port, o)
	}
	d.count(sl, r, o, n)
}

// count adds n, counted of r, to the slot and decides on its window.
func (d *Detector) count(sl *slot, r *flow.Record, o *detector.Orientation, n uint64) {
	class, port := sl.class, sl.port
	if class == classBrute && sl.retransmitted(o.LocalPort) {
		return // the same connection attempt again: no new connection
	}
	if sl.due != 0 && o.End >= sl.due {
		// the stream's next record after a verdict's wait: decided on the
		// window the verdict was about, before this record moves it on
		d.settle(sl, o.Host)
	}
	b := uint32(o.End / 1e9 / d.bw)
	if b+nb <= sl.head {
		return // older than the window
	}
	sl.advance(b)
	i := b % nb
	by, smp := r.Bytes, detector.SampledPackets(r)
	switch class {
	case classBrute:
		by = 0
		if r.TCPFlags&flow.TCPAck != 0 {
			// a flow record of a connection whose SYN-ACK the host
			// acknowledged: the target accepted it
			by = n
		}
	case classTCP:
		sl.flags |= r.TCPFlags
	}
	if s0, s1 := o.Start/1e9, o.End/1e9; s1 > s0 && class != classBrute {
		// a flow record lasting several seconds (NetFlow's active timeout
		// is often 30 minutes): its packets are spread over its seconds,
		// and those before the window are not counted, nor their samples
		n, by = d.spread(sl.head, s0, s1, n, &sl.pk), d.spread(sl.head, s0, s1, by, &sl.by)
		from := (int64(sl.head) + 1 - nb) * d.bw // the window's first second
		smp = detector.SampledShare(r, uint64(s1-max(s0, from)+1), uint64(s1-s0+1))
	}
	sl.pk[i] += n
	sl.by[i] += by
	sl.fl[i]++
	sl.sm[i] = uint32(min(uint64(sl.sm[i])+smp, 0xffffffff))
	sl.first, sl.last = min(sl.first, o.Start), max(sl.last, o.End)
	if rate := detector.Rate(r); rate > sl.maxRate {
		sl.maxRate = rate
	}
	total := sum(&sl.pk)
	lim := d.limit[class]
	target := sl.target
	if total*2 >= lim {
		if sl.samples == nil {
			sl.samples = detector.NewSamples(d.env.EvidencePackets).Within(d.w * 1e9)
			sl.samples.Missed(sum(&sl.fl) - 1) // the slot's records before this one
		}
		sl.samples.Add(r)
	}
	if o.End < sl.muted || total < lim || (class != classBrute && total == lim) || sl.due != 0 {
		return
	}
	if (class == classUDP && port == 0 || class == classTCP) && detector.IsFlow(r) {
		// proven by a flow record: the target's answers, if any, may be
		// in a record of the same export still to come (the stream's next
		// record or a tick decides: see decide). The wait runs from the
		// record's arrival in event time, which is its end only for a
		// record the exporter sent at once (active timeout, FIN): one
		// sent at its inactive timeout ends 15 s and more before, and
		// the answers' record of a second exporter follows it
		sl.due = max(o.End, d.now) + answerWait
		d.waiting = append(d.waiting, waiting{host: o.Host, target: target, due: sl.due, class: class})
		return
	}
	d.evaluate(sl, o.Host, o.End)
}

// spread adds to the buckets before the last (into, whose newest bucket
// is head) the shares of v, a count of a record lasting from second s0 to
// s1 (evenly per second, rounded so that the shares of all seconds add up
// to v), and returns the share of the record's last bucket, which the
// caller adds. Shares of buckets older than the window are dropped.
func (d *Detector) spread(head uint32, s0, s1 int64, v uint64, into *[nb]uint64) uint64 {
	secs := uint64(s1 - s0 + 1)
	share := func(from, to int64) uint64 { // v's share of seconds from..to
		return detector.MulDiv(v, uint64(to-s0+1), secs) - detector.MulDiv(v, uint64(from-s0), secs)
	}
	b1 := s1 / d.bw
	for b := max(s0/d.bw, int64(head)-nb+1, 0); b < b1; b++ {
		into[b%nb] += share(max(b*d.bw, s0), b*d.bw+d.bw-1)
	}
	return share(max(b1*d.bw, s0), s1)
}

// conversation is how many packets to a target make a UDP flood for each
// packet back from it: a bulk transfer over QUIC or a VPN tunnel at flood
// rates is answered by one acknowledgement every two to ten packets, a
// flood by nothing (ICMP errors, rate-limited, do not count).
const conversation = 10

// inbound counts UDP from a target: answers to a UDP stream, requests to
// an amplifier.
func (d *Detector) inbound(r *flow.Record, o *detector.Orientation) {
	if int(o.Host) >= len(d.hosts) || d.hosts[o.Host] == nil {
		if !detector.IsFlow(r) || d.windowShare(r, o) < d.gateAt[0] {
			return
		}
		// a flow record of answers at a flood's scale, before the
		// host sent anything suspicious: the record of the other
		// direction, which makes the host suspicious, may follow; keep
		// the answers for it
		for int(o.Host) >= len(d.hosts) {
			d.hosts = append(d.hosts, nil)
		}
		d.hosts[o.Host] = d.table()
	}
	target := o.Remote.As16()
	if has(&d.services, o.LocalPort) && !clientSocket(o.LocalPort, o.RemotePort) {
		// a request to the host's own service (DNS, NTP, ...), no answer
		// to a stream of the host's
		if has(&d.amp, o.LocalPort) { // requests to an amplifier: bytes
			if sl := d.find(d.hosts[o.Host], &target, classReflect, o.LocalPort); sl != nil {
				d.received(sl, o, r.Bytes)
			}
		}
		return
	}
	sl := d.find(d.hosts[o.Host], &target, classUDP, 0) // answers to a UDP stream: packets
	if sl == nil && detector.IsFlow(r) && d.windowShare(r, o) >= d.gateAt[0] {
		sl = d.newSlot(d.hosts[o.Host], &target, classUDP, 0, o)
	}
	if sl != nil {
		d.received(sl, o, r.Packets)
	}
}

// reset reports whether a TCP record is a reset and nothing else (RST,
// RST/ACK): the kernel's answer to a segment of a connection it does not
// know (a flood's) or to a connection attempt to a closed port. A flow
// record with data, SYN or FIN as well is a connection's that ended in a
// reset.
func reset(r *flow.Record) bool {
	return r.TCPFlags&flow.TCPRst != 0 && r.TCPFlags&(flow.TCPSyn|flow.TCPFin|flow.TCPPsh|flow.TCPUrg) == 0
}

// ackedReset reports whether a flow record from a target that looks like
// resets (RST/ACK) holds acknowledgements too: a receiver's ACKs of the
// host's segments and the reset that ended the connection, aggregated in
// one NetFlow/IPFIX record of several packets. A flood's victim answers a
// segment that carries ACK with a bare RST, never RST/ACK (RFC 9293
// 3.10.7.1): where every segment the host sent the target carried ACK
// (ACK with PSH, FIN or the connection's SYN; no RST, no URG), a record of
// RST/ACK is no victim's. The slot's flags are those segments' ORed, so
// a flood mixing ACK segments with segments without ACK from one port is
// missed where its victim's resets share one flow record.
func ackedReset(r *flow.Record, sl *slot) bool {
	return r.TCPFlags&flow.TCPAck != 0 && detector.IsFlow(r) && detector.SampledPackets(r) > 1 &&
		sl.flags&(flow.TCPAck|flow.TCPRst|flow.TCPUrg) == flow.TCPAck
}

// inboundTCP counts TCP from a target: packets but RSTs answer a TCP
// stream to it; a login port's SYN-ACK accepts a connection, its RST
// refuses one.
func (d *Detector) inboundTCP(r *flow.Record, o *detector.Orientation) {
	rst := reset(r)
	if int(o.Host) < len(d.hosts) && d.hosts[o.Host] != nil {
		s := d.hosts[o.Host]
		target := o.Remote.As16()
		found := false
		for i := range s.slots {
			sl := &s.slots[i]
			if sl.target != target {
				continue
			}
			switch {
			case sl.class == classTCP && (!rst || ackedReset(r, sl)):
				d.received(sl, o, r.Packets)
				found = true
			case sl.class == classBrute && sl.port == o.RemotePort:
				d.answered(sl, r, o)
			}
		}
		if found {
			return
		}
	}
	if rst || r.Packets < d.answers || !detector.IsFlow(r) {
		return
	}
	// a flow record of answers at a flood's scale whose stream has no
	// slot: the record of the other direction, which may make one, may
	// follow; the gate keeps the answers for it (also a host's first
	// record: its gate is made)
	v := d.windowShare(r, o)
	if v < d.answers {
		return
	}
	if int(o.Host) >= len(d.tcp) {
		d.growTCP(o.Host)
	}
	g := &d.tcp[o.Host]
	if t := uint32(o.End >> 30); t >= g.until {
		d.roll(g, t)
	}
	if k := key32(o.Remote); k == g.key {
		g.ans = uint32(min(uint64(g.ans)+v, 0xffffffff))
	} else if uint64(g.n) < v {
		d.keepEarly(o.Host, g.key, g.ans, o.End) // the answers it displaces
		g.key, g.n, g.ans = k, 0, uint32(min(v, 0xffffffff))
	} else {
		d.keepEarly(o.Host, k, uint32(min(v, 0xffffffff)), o.End)
	}
}

// answered counts a login port's answer to the host's connection
// attempts: a SYN-ACK (or a flow record with SYN and ACK) accepts one, a
// reset refuses one; scaled by sampling, as the attempts are.
func (d *Detector) answered(sl *slot, r *flow.Record, o *detector.Orientation) {
	var into *[nb]uint64
	switch {
	case r.TCPFlags&(flow.TCPSyn|flow.TCPAck) == flow.TCPSyn|flow.TCPAck:
		into = &sl.by
	case reset(r):
		into = &sl.in
	default:
		return
	}
	b := uint32(o.End / 1e9 / d.bw)
	if b+nb <= sl.head {
		return
	}
	sl.advance(b)
	into[b%nb] += uint64(detector.Rate(r))
}

// windowShare returns r's packets within a window (a record of 30
// minutes brings a sixth of its packets to a window of 5).
func (d *Detector) windowShare(r *flow.Record, o *detector.Orientation) uint64 {
	secs := o.End/1e9 - o.Start/1e9 + 1
	if secs <= d.w {
		return r.Packets
	}
	return detector.MulDiv(r.Packets, uint64(d.w), uint64(secs))
}

// received adds v, counted from the target, to the slot's in buckets.
func (d *Detector) received(sl *slot, o *detector.Orientation, v uint64) {
	b := uint32(o.End / 1e9 / d.bw)
	if b+nb <= sl.head {
		return
	}
	sl.advance(b)
	if s0, s1 := o.Start/1e9, o.End/1e9; s1 > s0 { // as add spreads what it counts
		v = d.spread(sl.head, s0, s1, v, &sl.in)
	}
	sl.in[b%nb] += v
}

func (d *Detector) evaluate(sl *slot, host uint32, now int64) {
	flows, samples := sum(&sl.fl), sum(&sl.sm)
	if sl.class == classBrute {
		samples = flows // connections
	}
	if samples < d.conf.MinSamples {
		return
	}
	by := sum(&sl.by)
	in := sum(&sl.in)
	pk := sum(&sl.pk)
	if sl.class == classReflect && float64(by) < d.conf.Reflection.MinRatio*float64(in) {
		return
	}
	if sl.class == classUDP && sl.port == 0 && in*conversation >= pk {
		return // answered: a conversation, not a flood
	}
	if sl.class == classTCP && in*tcpConversation >= pk {
		return // answered other than by resets: a conversation, not a flood
	}
	attempts := pk
	if sl.class == classBrute {
		// only attempts the target did not accept can be refused: resets
		// beyond them are accepted connections' own (a server aborting
		// the connection after a failed login, then resetting the
		// client's segment still in flight)
		in = min(in, pk-min(by, pk))
	}
	if sl.class == classBrute && in > by {
		// the target refused more connections than it accepted: a
		// client retrying a closed port is no brute force. Attempts
		// count by twice the accepted share (a brute force whose
		// connections end in resets keeps them all); sampled attempts
		// and answers are sampled alike, so the share holds under
		// sampling
		pk = detector.MulDiv(pk, 2*by, by+in)
		if pk < d.conf.BruteForce.MinConnections {
			return
		}
	}
	sl.muted = now + 1e9
	addr := d.env.Reporter.Addr(host)
	rule := rules[sl.class]
	if !d.env.Reporter.Armed(addr, rule, detector.DirOut, now) {
		return
	}
	target := detector.AddrFrom16(sl.target)
	span := d.bw * nb
	f := detector.Finding{
		Kind:         detector.KindAttack,
		Direction:    detector.DirOut,
		InternalIP:   addr,
		Rule:         rule,
		FirstSeen:    detector.Time(max(sl.first, (int64(sl.head)+1-nb)*d.bw*1e9)),
		LastSeen:     detector.Time(sl.last),
		SamplingRate: max(sl.maxRate, 1),
		Samples:      samples,
		Remote:       target,
		Port:         sl.port,
	}
	c := detector.Counters{Packets: pk, Bytes: by, Flows: flows}
	summary := &detector.Summary{
		Direction: detector.DirOut, Internal: addr, Window: time.Duration(span) * time.Second,
		Sum: c, Externals: []detector.External{{Addr: target, Counters: c}},
	}
	pps := float64(pk) / float64(d.w)
	switch sl.class {
	case classBrute:
		f.Measured, f.Threshold, f.Unit = float64(pk), float64(d.conf.BruteForce.MinConnections), "connections"
		f.Detail = fmt.Sprintf("%d new connections to %s port %d within %ds", pk, target, sl.port, span)
		if in > 0 {
			f.Detail += fmt.Sprintf(" (%d attempts: %d accepted, %d refused with a reset)", attempts, by, in)
		}
	case classReflect:
		f.Measured, f.Threshold, f.Unit = pps, float64(d.conf.Reflection.MinPPS), "packets/s"
		ratio := "no requests seen"
		if in > 0 {
			ratio = fmt.Sprintf("%.1f bytes sent per byte received", float64(by)/float64(in))
		}
		f.Detail = fmt.Sprintf("UDP port %d answers %d packets/s to %s (%s)", sl.port, uint64(pps), target, ratio)
		summary.ThresholdPPS = d.conf.Reflection.MinPPS
		f.Summary = summary
	default:
		f.Measured, f.Threshold, f.Unit = pps, float64(d.conf.MinPPS), "packets/s"
		var what string
		if sl.class == classTCP {
			what = "TCP " + flagNames(sl.flags)
			sl.flags = 0 // the next finding names its own
		} else {
			what = [...]string{"UDP", "TCP SYN", "ICMP"}[sl.class]
		}
		f.Detail = fmt.Sprintf("%s flood of %d packets/s to %s", what, uint64(pps), target)
		if sl.port != 0 {
			f.Detail += fmt.Sprintf(" port %d", sl.port)
		}
		summary.ThresholdPPS = d.conf.MinPPS
		f.Summary = summary
	}
	if sl.samples != nil {
		f.Packets, f.PacketsOmitted = sl.samples.CopySince((int64(sl.head) + 1 - nb) * d.bw * 1e9)
	}
	d.env.Reporter.Report(f)
	sl.maxRate = 0 // the next finding (after the rearm period) shows its own sampling rate
}

// flagNames names TCP flags as a flood's finding shows them: "ACK",
// "PSH/ACK", "RST", "FIN", "NULL" (none), "FIN/SYN/RST/PSH/ACK/URG".
func flagNames(f uint8) string {
	if f == 0 {
		return "NULL"
	}
	var b strings.Builder
	for _, x := range []struct {
		bit  uint8
		name string
	}{{flow.TCPFin, "FIN"}, {flow.TCPSyn, "SYN"}, {flow.TCPRst, "RST"}, {flow.TCPPsh, "PSH"}, {flow.TCPAck, "ACK"}, {flow.TCPUrg, "URG"}, {flow.TCPEce, "ECE"}, {flow.TCPCwr, "CWR"}} {
		if f&x.bit != 0 {
			if b.Len() > 0 {
				b.WriteByte('/')
			}
			b.WriteString(x.name)
		}
	}
	return b.String()
}

// icmpReply reports whether an ICMP or ICMPv6 record answers a request
// the remote sent: echo, timestamp, information and address mask
// replies; ICMPv6 echo replies, MLD reports, neighbour advertisements and
// node information replies.
func icmpReply(r *flow.Record) bool {
	switch t := r.DstPort >> 8; r.Proto {
	case flow.ProtoICMP:
		return t == 0 || t == 14 || t == 16 || t == 18
	case flow.ProtoICMPv6:
		return t == 129 || t == 131 || t == 136 || t == 140 || t == 143
	}
	return false
}

// Tick implements detector.Detector: UDP and TCP flood verdicts that waited for
// answers long enough are decided.
func (d *Detector) Tick(now int64) {
	d.now = max(d.now, now)
	d.decide(now, false)
}

// Flush implements detector.Detector: verdicts still waiting for answers
// are decided on what was seen.
func (d *Detector) Flush() { d.decide(1<<63-1, true) }

// decide decides the verdicts whose wait is over. The engine ticks before
// it observes the record that moved event time on, which may be the
// answers' own record: a verdict whose wait ends at a tick is decided at
// the next one (at the end of the input, at once).
func (d *Detector) decide(now int64, final bool) {
	keep := d.waiting[:0]
	for _, w := range d.waiting {
		if int(w.host) >= len(d.hosts) || d.hosts[w.host] == nil {
			continue // forgotten
		}
		sl := d.find(d.hosts[w.host], &w.target, w.class, 0)
		if sl == nil || sl.due != w.due {
			continue // decided, or replaced by another target
		}
		if !final && (sl.due > now || !w.ripe) {
			w.ripe = sl.due <= now
			keep = append(keep, w)
			continue
		}
		d.settle(sl, w.host)
	}
	d.waiting = keep
}

// settle ends the wait of a slot's UDP or TCP flood verdict and decides it
// on the slot's window as it stands (its answers counted), as of its last
// record.
func (d *Detector) settle(sl *slot, host uint32) {
	sl.due = 0
	if sum(&sl.pk) > d.limit[sl.class] {
		d.evaluate(sl, host, sl.last)
	}
}

// Forget implements detector.Detector.
func (d *Detector) Forget(host uint32) {
	if int(host) < len(d.gates.H) {
		g := &d.gates.H[host]
		g.AttackGen, g.AttackCur, g.AttackPrev = 0, [3]uint32{}, [3]uint32{}
	}
	if int(host) < len(d.tcp) {
		d.tcp[host] = tcpGate{}
	}
	if int(host) < len(d.hosts) && d.hosts[host] != nil {
		s := d.hosts[host]
		d.hosts[host] = nil
		clear(s.slots)
		s.slots = s.slots[:0]
		d.pool = append(d.pool, s)
	}
}

// Suspicious returns the number of hosts with a target table (for metrics).
func (d *Detector) Suspicious() int {
	n := 0
	for _, s := range d.hosts {
		if s != nil {
			n++
		}
	}
	return n
}
