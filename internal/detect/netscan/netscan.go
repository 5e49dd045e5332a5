// Package netscan is the netscan detector: an internal address that
// initiates contact with many distinct destinations on one port
// (horizontal) or many ports on one destination (vertical) within a window.
// It imports internal/flow and internal/detect/detector only.
//
// A probe is contact the internal address initiates: TCP SYN without ACK
// (or nmap's FIN and Xmas probes: neither SYN, ACK nor RST; its NULL
// probe, a captured or sampled header with no flags; its Maimon probe, a
// bare FIN+ACK — no options, no payload, from the host's higher port —
// to a destination and port the host has no contact with, which the
// remote's ACK or FIN answers when it was a close; its ACK and window
// probes, a bare ACK to such a destination, once the destination refuses
// it with a RST, on unsampled data: see crafted and refused), UDP to
// a service port (not a reply from a low source port to a high one),
// ICMP/ICMPv6 echo request. Replies (SYN-ACK, RST, ICMP errors, echo
// replies, UDP answers of a local service) are never probes. A contact is
// answered when the handshake completes (an outbound ACK without RST, or a
// NetFlow/IPFIX record of a whole client connection), when the destination
// sends data back (inbound ACK+PSH), a UDP answer or an echo reply.
// Traffic between a service port of the host (below 1024) and a remote
// ephemeral port (1024 and up) is the service talking to its clients: UDP
// sent that way is never a probe, and such records answer nothing — they
// are dismissed without a lookup, so a busy web server costs the detector
// nearly nothing — unless the host itself sent TCP probes from a service
// port within the window (an active-mode FTP server opening data
// connections, nmap -g 80): then they are looked up like any other. Answered
// contacts weigh against a verdict: a port (or destination) with more than
// max_answered_ratio of its contacts answered is not scanned, and only
// unanswered contacts count towards min_destinations/min_ports. So a
// crawler, a mail server, a DNS resolver or a busy web server (whose
// traffic is replies) is not a scanner. A flow record's answer may come
// before its probe's record (export order) and still answers it; a UDP
// packet from a remote the host has no contact with (a client of a game
// or VPN server on a high port) leaves an answered contact too, so the
// host's reply is no probe, and so does an echo reply whose request's
// record comes later (two taps or agents whose times differ). UDP
// between the same well-known port at both ends (NTP, IKE), UDP without
// ports (later fragments) and UDP to traceroute's ports are no probes.
// Contacts to private, CGNAT and bogon destinations are left to
// incorrect_network_config, unless they are customers' addresses too.
//
// A scan of many ports in random order fills the contact table before any
// one port has min_destinations: when the table fills with live contacts,
// the host is asked for a horizontal verdict across every port of the
// protocol (reported with port 0).
//
// When the counts first prove a scan, the verdict waits answer_grace of
// event time for answers still in flight, then fires if it still holds (at
// the end of the input it fires at once). The rule that fired (horizontal
// or vertical) is then not evaluated again for the host until the engine's
// rearm period for it ends: the engine would suppress it anyway, and a
// scanner that keeps going would otherwise have its table walked every
// second. The other rule stays live.
//
// State per host is an open-addressing table of contacts (32 bytes each,
// at most half full, starting at 4 slots, capped at max_contacts live contacts; stale contacts
// older than the window are dropped when room is needed, then answered ones,
// which are counted on (see dropCounts)).
// Once a host has trigger-many unanswered contacts it also keeps counters of
// them by port and by destination hash (bounds), so that a new contact
// walks the table only when its counters make a verdict possible.
// On sampled data (sFlow) the reply to a sampled probe is rarely sampled
// itself, so a client of many peers — a resolver querying thousands of
// authoritative servers, ping monitoring, an NTP client of a large pool —
// shows as thousands of unanswered contacts. There the answers are weighed
// by port as well: for each host with sampled UDP or echo probes the
// detector counts, per remote UDP port (echo as one class per ICMP
// version, in at most four classes per host, 96 bytes), the sampled probes
// that open a contact and the sampled answers the host receives from that
// port (UDP from it, echo replies; a remote whose contact is answered
// already counts once) over the last half to whole window. A port whose
// sampled answers are more than max_answered_ratio of its sampled probes
// (at least 32 of them, or half of min_destinations if lower) is answered
// in aggregate: its contacts count as answered — no horizontal verdict on
// it, left out of the verdict across ports, dropped first from a full
// table — while a scan of random targets, few of which answer, keeps its
// verdict. Sampled UDP between high ports at both ends is also counted by
// the host's own port (protoLocal): a service on a high port that replies
// to clients whose requests were sampled separately sends from a port
// answered in aggregate, and opens no contacts. TCP and vertical verdicts
// are weighed by contact only, and so is unsampled data; a sampled
// segment of an established TCP connection (an acknowledgement without
// SYN or RST) answers its contact, and for a host with a few dozen
// unanswered contacts leaves an answered one where there was none (the
// connection's SYN was not sampled), so a crawler's sampled data weighs
// against the few contacts its sampled SYNs open. The thresholds count
// sampled contacts unscaled.
package netscan

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"time"
	"unsafe"

	"padlock/internal/detect/detector"
	"padlock/internal/flow"
)

// Configuration of the netscan detector (YAML under detect.netscan).
type Configuration struct {
	// Enabled turns the detector on. Default true.
	Enabled bool `yaml:"enabled"`
	// Window is the period contacts are counted over. Default 300s.
	Window detector.Duration `yaml:"window"`
	// MinDestinations is the number of distinct unanswered destinations on
	// one port that makes a horizontal scan. Default 250.
	MinDestinations int `yaml:"min_destinations"`
	// MinPorts is the number of distinct unanswered ports on one
	// destination that makes a vertical scan. Default 100.
	MinPorts int `yaml:"min_ports"`
	// MaxAnsweredRatio: a port (horizontal) or destination (vertical) whose
	// contacts are answered in a larger fraction is not scanned; on sampled
	// data, neither is a UDP port (or echo) whose sampled answers are more
	// than this fraction of its sampled probes. Default 0.2.
	MaxAnsweredRatio float64 `yaml:"max_answered_ratio"`
	// AnswerGrace is the event time a verdict waits for answers still in
	// flight before it fires. Default 5s.
	AnswerGrace detector.Duration `yaml:"answer_grace"`
	// MinSamples is the number of probe records (as received, unscaled) the
	// verdict's contacts must add up to. Default 100.
	MinSamples uint64 `yaml:"min_samples"`
	// MaxProbesPerContact: contacts that got more probe records than this on
	// average (unscaled) are traffic, not probes — a flood to random ports
	// is left to the attack detector. Default 4.
	MaxProbesPerContact float64 `yaml:"max_probes_per_contact"`
	// MaxContacts caps the live contacts tracked per host; it must be at
	// least twice the larger threshold. Default 4096.
	MaxContacts int `yaml:"max_contacts"`
}

// Defaults returns the documented defaults.
func Defaults() Configuration {
	return Configuration{
		Enabled:             true,
		Window:              detector.Duration(300 * time.Second),
		MinDestinations:     250,
		MinPorts:            100,
		MaxAnsweredRatio:    0.2,
		AnswerGrace:         detector.Duration(5 * time.Second),
		MinSamples:          100,
		MaxContacts:         4096,
		MaxProbesPerContact: 4,
	}
}

// Validate checks the configuration; errors name the key.
func (c Configuration) Validate() error {
	var errs []error
	if c.Window.D() < time.Second {
		errs = append(errs, errors.New("window: must be >= 1s"))
	}
	if c.MinDestinations < 1 {
		errs = append(errs, errors.New("min_destinations: must be >= 1"))
	}
	if c.MinPorts < 1 {
		errs = append(errs, errors.New("min_ports: must be >= 1"))
	}
	if c.MaxAnsweredRatio < 0 || c.MaxAnsweredRatio > 1 {
		errs = append(errs, errors.New("max_answered_ratio: must be between 0 and 1"))
	}
	if c.MaxProbesPerContact < 1 {
		errs = append(errs, errors.New("max_probes_per_contact: must be >= 1"))
	}
	if c.AnswerGrace < 0 {
		errs = append(errs, errors.New("answer_grace: must be >= 0"))
	}
	if c.MaxContacts < 2*max(c.MinDestinations, c.MinPorts) || c.MaxContacts > 1<<20 {
		errs = append(errs, fmt.Errorf("max_contacts: must be between 2×max(min_destinations, min_ports) and 1048576, got %d", c.MaxContacts))
	}
	return errors.Join(errs...)
}

// Rules of this detector's findings.
const (
	RuleHorizontal = "netscan.horizontal"
	RuleVertical   = "netscan.vertical"
)

const (
	fUsed     = 1
	fAnswered = 2
	fPeer     = 4 // the remote spoke first (UDP): no probe, and left out of a verdict's counts
	fDropped  = 8 // made again after a full table dropped it answered: counted in dropCounts already
	// fAwait: opened by a bare ACK (nmap's ACK or window scan, -sA/-sW),
	// which a segment of a connection whose SYN the window did not see
	// looks like: no probe (answered and a remote's, as fPeer) until the
	// destination refuses it with a RST (see refused); any other answer
	// from it clears the mark, and so does anything but a bare ACK the
	// host sends it (data, a FIN, a SYN, a keepalive's byte): the host's
	// ACK answered the remote's own segment from before the contact (its
	// FIN, its data) and the host went on with the connection the remote
	// had closed or forgotten — an HTTP client's request into a keep-alive
	// connection the server is closing, a late close after the server's
	// FIN_WAIT_2 timed out — whose RST refuses that segment, not a probe.
	// nmap's ACK and window probes are a bare ACK alone, their retries the
	// same
	fAwait = 16
	// fClose: opened by a bare FIN+ACK (nmap's Maimon probe, or the close
	// of a connection whose SYN the window did not see), which a RST with
	// ACK answers (see closeReset)
	fClose = 32
)

type contact struct {
	dst   detector.Key16
	first uint32 // unix seconds
	last  uint32
	port  uint16
	hits  uint16 // probe records, saturating (a TCP retransmission is none: see lport)
	proto uint8
	flags uint8
	// lport is the host's port of the last probe: a SYN from the same port
	// to the same destination and port is the kernel retransmitting one
	// connection attempt (Linux sends 7 SYNs to a silent target), which
	// does not make the contact traffic (max_probes_per_contact)
	lport uint16
}

type pending struct {
	at       int64 // ns deadline; 0: none
	vertical bool
	anyPort  bool // horizontal over every port of proto (a full table of a multi-port scan)
	dst      detector.Key16
	port     uint16
	proto    uint8
}

// hostState is kept in a dense array indexed by host; the fields a probe
// or an answer reads come first (one cache line), the verdict's after.
// TestHostStateLayout holds it to two whole cache lines.
type hostState struct {
	tab       []contact
	n         int32
	open      int32 // unanswered contacts (stale ones included until a rehash)
	host      uint32
	maxRate   uint32
	used      bool
	queued    bool
	fullUntil uint32  // the table was found full; no room before this second
	agg       uint32  // 1 + index of the host's aggPorts in Detector.agg; 0: none (pend.at ends the first cache line)
	pend      pending // pend.at is the last field of the first cache line
	samples   *detector.Samples
	evalSkip  int32
	anyAt     uint32    // event second before which a full table is not asked across ports again
	muted     [2]uint32 // event second from which a horizontal [0] / vertical [1] verdict is evaluated again
	drops     uint32    // 1 + index of the host's dropCounts in Detector.drops; 0: none
	bound     *bounds   // nil until open first reaches the trigger
}

// bounds are upper bounds of a host's unanswered contacts on one port and
// to one destination: each counter holds the unanswered contacts whose
// protocol and port (or destination) hash to it, stale ones included until
// the next rehash. A verdict needs min_destinations unanswered contacts on
// the new contact's port or min_ports to its destination, so while neither
// counter reaches its threshold the table walk of evaluate cannot succeed
// and is skipped: a host with many open contacts (a mail server's
// unanswered SMTP attempts, say) no longer walks its whole table for each
// new client connection. TestBoundsNeverHideAScan holds the skip to
// evaluate's verdicts.
//
// The counters only help while a full table (max_contacts) spread over
// them stays well below the thresholds, so there are enough of them for
// four times max_contacts / min(min_destinations, min_ports) (256 of each
// kind by default: 16 contacts per counter for a full table against
// thresholds of 100 and 250), and destinations are hashed with a full
// mixer (IPv4 addresses differ only in a few bytes). Once a host's verdict
// for one rule is muted (see hostState.muted), a counter at its threshold
// by chance would make every new contact walk the table.
type bounds struct {
	bits uint8   // log2 of the counters of each kind
	c    []int32 // the counters by port, then by destination
}

// boundBits returns log2 of the counters per kind for conf (64 to 4,096).
func boundBits(conf Configuration) uint8 {
	want := 4 * conf.MaxContacts / max(1, min(conf.MinDestinations, conf.MinPorts))
	bits := uint8(6)
	for bits < 12 && 1<<bits < want {
		bits++
	}
	return bits
}

func (b *bounds) port(port uint16, proto uint8) *int32 {
	return &b.c[(uint32(proto)<<16|uint32(port))*0x9e3779b1>>(32-b.bits)]
}

func (b *bounds) dst(dst *detector.Key16) *int32 {
	return &b.c[1<<b.bits+int(detector.Hash16(dst, 0)>>(64-b.bits))]
}

// newBounds counts the host's unanswered contacts into fresh bounds.
func (d *Detector) newBounds(s *hostState) *bounds {
	b := &bounds{bits: d.boundBits, c: make([]int32, 2<<d.boundBits)}
	for k := range s.tab {
		if c := &s.tab[k]; c.flags&(fUsed|fAnswered) == fUsed {
			*b.port(c.port, c.proto)++
			*b.dst(&c.dst)++
		}
	}
	return b
}

// unanswered counts contact c as one more (delta 1) or one fewer (-1)
// unanswered contact of the host.
func (s *hostState) unanswered(c *contact, delta int32) {
	s.open += delta
	if b := s.bound; b != nil {
		*b.port(c.port, c.proto) += delta
		*b.dst(&c.dst) += delta
	}
}

// Which verdicts an evaluation may reach (see hostState.muted).
const (
	ruleH uint8 = 1 << iota // horizontal
	ruleV                   // vertical
)

// rules returns the verdicts that are not muted at event second sec.
func (s *hostState) rules(sec uint32) uint8 {
	var r uint8
	if sec >= s.muted[0] {
		r |= ruleH
	}
	if sec >= s.muted[1] {
		r |= ruleV
	}
	return r
}

// possible reports whether the host's bounds allow one of the verdicts in
// rules about a new contact (evaluate's horizontal check on its port,
// vertical on its destination).
func (d *Detector) possible(b *bounds, dst *detector.Key16, port uint16, proto uint8, rules uint8) bool {
	if rules&ruleH != 0 && int(*b.port(port, proto)) >= d.conf.MinDestinations {
		return true
	}
	return rules&ruleV != 0 && proto != flow.ProtoICMP && proto != flow.ProtoICMPv6 && int(*b.dst(dst)) >= d.conf.MinPorts
}

// aggPorts are a host's sampled UDP and echo probes and the sampled
// answers it receives, counted by class: UDP by remote port, ICMP and
// ICMPv6 echo each as one class (port 0). On sampled data (sFlow) the
// answer to a sampled probe is itself sampled only once in sampling-rate
// times, so a client of many peers — a resolver querying thousands of
// authoritative servers on port 53, ping monitoring, an NTP client of a
// large pool — shows thousands of unanswered contacts although every one
// was answered. Its sampled answers, from other peers than the sampled
// probes went to, still come in as often as its probes go out: a class
// whose sampled answers are more than max_answered_ratio of its sampled
// probes is answered in aggregate (aggAnswered), and its contacts count as
// answered (no horizontal verdict on its port, left out of the verdict
// across ports and dropped first from a full table), while a scan of
// random targets, few of which answer, keeps its verdict.
//
// A probe counts when it opens a contact (or finds the table full); an
// answer counts unless it comes from a remote whose contact is answered
// already: a busy peer (the host's own resolver, answering every lookup)
// counts once on each side and does not hide a scan of the same port.
// Only hosts with sampled probes have the counts, in aggSlots slots: a
// probe of a new class takes the free slot or the one with the fewest
// probes, so the classes a host uses most stay; answers of a class without
// a slot are not counted. Counts tumble in two generations of half the
// window (the current and the one before), so they span the last half
// window to whole window.
type aggPorts [aggSlots]aggSlot

const aggSlots = 4

type aggSlot struct {
	port    uint16
	proto   uint8 // 0: free
	gen     uint32
	probes  [2]uint32 // in generation gen [0] and the one before [1]
	answers [2]uint32
}

// counts returns the slot's probes and answers of the two generations up
// to generation g.
func (a *aggSlot) counts(g uint32) (probes, answers uint32) {
	switch {
	case g <= a.gen:
		return a.probes[0] + a.probes[1], a.answers[0] + a.answers[1]
	case g == a.gen+1:
		return a.probes[0], a.answers[0]
	}
	return 0, 0
}

// add counts probes and answers in generation g: the current one (made
// current if later) or the one before; older ones are past counting.
func (a *aggSlot) add(g, probes, answers uint32) {
	a.roll(g)
	i := 0
	if g < a.gen {
		if g+1 < a.gen {
			return
		}
		i = 1
	}
	a.probes[i] += probes
	a.answers[i] += answers
}

// roll makes generation g (if later) the slot's current one.
func (a *aggSlot) roll(g uint32) {
	if g <= a.gen {
		return
	}
	if g == a.gen+1 {
		a.probes[1], a.answers[1] = a.probes[0], a.answers[0]
	} else {
		a.probes[1], a.answers[1] = 0, 0
	}
	a.probes[0], a.answers[0], a.gen = 0, 0, g
}

// aggregated reports whether a probe or answer (TCP, UDP or ICMP echo) is
// counted in aggPorts: sampled UDP and echo.
func aggregated(r *flow.Record) bool {
	return r.Proto != flow.ProtoTCP && r.SamplingRate > 1
}

// protoLocal is the aggPorts class of sampled UDP between a local port and
// remote ports, both 1024 and up, counted by the local port: a service on
// a high port (a game server's 27015, a tracker, STUN) replies to
// thousands of clients' random ports, and under sampling the client's
// request is rarely sampled with the reply, so every reply reads as a new
// unanswered contact, none of whose remote ports reach aggMin. Its
// sampled requests still come in to the local port as often as its
// replies go out: a local port whose sampled inbound is more than
// max_answered_ratio of its sampled outbound is answered in aggregate, and
// what the host sends from it opens no contact. A scanner's port gets back
// only the answers of the targets that answer, which keep a scan's
// verdict below max_answered_ratio anyway.
const protoLocal = 0xff

// highPorts reports whether a UDP record between the host's port and the
// remote's is of a protoLocal class: sampled, both ports 1024 and up.
func highPorts(r *flow.Record, o *detector.Orientation) bool {
	return r.Proto == flow.ProtoUDP && r.SamplingRate > 1 && o.LocalPort >= 1024 && o.RemotePort >= 1024
}

// aggProbe counts a sampled probe of the host.
func (d *Detector) aggProbe(s *hostState, port uint16, proto uint8, sec uint32) {
	if s.agg == 0 {
		d.agg = append(d.agg, aggPorts{})
		s.agg = uint32(len(d.agg))
	}
	g := sec / d.aggGen
	d.agg[s.agg-1].slot(port, proto, g).add(g, 1, 0)
}

// slot returns the class's slot; a class without one takes the free slot
// or the one with the fewest probes in the generations up to g.
func (slots *aggPorts) slot(port uint16, proto uint8, g uint32) *aggSlot {
	for i := range slots {
		if a := &slots[i]; a.port == port && a.proto == proto {
			return a
		}
	}
	least, fewest := 0, ^uint32(0)
	for i := range slots {
		if n, _ := slots[i].counts(g); n < fewest {
			least, fewest = i, n
		}
	}
	slots[least] = aggSlot{port: port, proto: proto, gen: g}
	return &slots[least]
}

// find returns the class's slot, nil if it has none.
func (slots *aggPorts) find(port uint16, proto uint8) *aggSlot {
	for i := range slots {
		if a := &slots[i]; a.port == port && a.proto == proto {
			return a
		}
	}
	return nil
}

// aggAnswer counts a sampled answer the host received from port. Answers
// from private destinations are not counted, as probes to them are not:
// the host's resolver at a private address answering its lookups does
// not answer a scan of port 53.
func (d *Detector) aggAnswer(o *detector.Orientation, port uint16, proto uint8) {
	if int(o.Host) >= len(d.hosts) || d.hosts[o.Host].agg == 0 {
		return
	}
	if a := d.agg[d.hosts[o.Host].agg-1].find(port, proto); a != nil {
		if !o.RemoteInternal && d.env.Private != nil && d.env.Private(o.Remote) {
			return
		}
		a.add(uint32(o.End/1e9)/d.aggGen, 0, 1)
	}
}

// aggAnswered reports whether the host's sampled probes of the class are
// answered in aggregate at event second sec: at least aggMin probes, and
// answers more than max_answered_ratio of them (as a port's contacts).
func (d *Detector) aggAnswered(s *hostState, port uint16, proto uint8, sec uint32) bool {
	if s.agg == 0 {
		return false
	}
	if a := d.agg[s.agg-1].find(port, proto); a != nil {
		p, n := a.counts(sec / d.aggGen)
		return p >= d.aggMin && float64(n) > d.conf.MaxAnsweredRatio*float64(p)
	}
	return false
}

// dropCounts are the answered contacts a host's full table dropped
// (makeRoom drops answered contacts first, to keep a scan's evidence), so
// that they still weigh in the answered share of its horizontal verdicts:
// a peer-to-peer node (a BitTorrent DHT node) reaching more peers in a
// window than max_contacts, most of which answer, would otherwise keep
// its unanswered contacts of the whole window against the answered ones of
// the last minutes, and read as a scanner. They are counted by the
// generation (an eighth of the window) of the contact's last second, and a
// verdict counts the generations that reach into its window, as it counts
// the table's fresh contacts: per port (dropPorts slots, the ports with
// the most drops staying) for a verdict on one port, per protocol for the
// verdict across ports. Each contact counts once: one dropped, made again
// and dropped again within the window is marked (dropCounts.seen, fDropped;
// see countedDropped). Contacts of a class answered in aggregate and
// contacts of remotes that spoke first are left out, as the verdicts leave
// them out. Vertical verdicts are not weighed: a full table of one
// destination's ports is a scan in any case.
type dropCounts struct {
	ports  [dropPorts]dropSlot
	protos [4]dropSlot // port 0: every port of the protocol
	// seen are the key hashes of the contacts dropped, a bit each, in two
	// halves of the window (seen[0]: half window seenGen, seen[1]: the
	// one before, as aggPorts' generations): a dropped contact
	// made again (the host reaching the same server every few seconds) is
	// marked fDropped, not counted again when dropped again, and left out
	// of the verdicts' counts while answered — each contact counts once.
	seen    [2][dropSeenWords]uint64
	seenGen uint32
}

// dropPorts port slots: more ports than max_contacts / min_destinations
// (16 by default) cannot each hold a horizontal verdict.
const dropPorts = 16

// dropSeenWords is the size of dropCounts.seen's halves (8,192 bits).
const dropSeenWords = 128

// seenBit returns the word and bit of key hash h in dropCounts.seen.
func seenBit(h uint64) (int, uint64) {
	i := (h >> 40) % (dropSeenWords * 64)
	return int(i / 64), 1 << (i % 64)
}

// rollSeen makes generation g (half windows) the current half of seen.
func (dc *dropCounts) rollSeen(g uint32) {
	switch {
	case g == dc.seenGen:
	case g == dc.seenGen+1:
		dc.seen[1], dc.seen[0] = dc.seen[0], [dropSeenWords]uint64{}
		dc.seenGen = g
	case g > dc.seenGen:
		dc.seen = [2][dropSeenWords]uint64{}
		dc.seenGen = g
	}
}

// wasDropped reports whether a contact of key hash h was dropped answered
// within the last half to whole window.
func (d *Detector) wasDropped(s *hostState, h uint64, sec uint32) bool {
	if s.drops == 0 {
		return false
	}
	dc := &d.drops[s.drops-1]
	dc.rollSeen(sec / d.aggGen)
	w, b := seenBit(h)
	return (dc.seen[0][w]|dc.seen[1][w])&b != 0
}

// dropGens generations of an eighth of the window cover any window.
const dropGens = 9

type dropSlot struct {
	port  uint16
	proto uint8            // 0: free
	top   uint32           // generation of n[0]
	n     [dropGens]uint32 // n[i]: contacts last seen in generation top-i
}

// add counts one contact last seen in generation g.
func (a *dropSlot) add(g uint32) {
	if g > a.top {
		shift := min(g-a.top, dropGens)
		copy(a.n[shift:], a.n[:dropGens-shift])
		clear(a.n[:shift])
		a.top = g
	}
	if i := a.top - g; i < dropGens {
		a.n[i]++
	}
}

// since returns the contacts counted in generations from lo on.
func (a *dropSlot) since(lo uint32) uint32 {
	var n uint32
	for i := uint32(0); i < dropGens && a.top >= lo+i; i++ {
		n += a.n[i]
	}
	return n
}

// dropSlotOf returns the class's slot among slots; a class without one
// takes the slot with the fewest contacts from generation lo on (a free
// one has none).
func dropSlotOf(slots []dropSlot, port uint16, proto uint8, lo uint32) *dropSlot {
	least, fewest := 0, ^uint32(0)
	for i := range slots {
		a := &slots[i]
		if a.port == port && a.proto == proto {
			return a
		}
		if n := a.since(lo); n < fewest {
			least, fewest = i, n
		}
	}
	slots[least] = dropSlot{port: port, proto: proto}
	return &slots[least]
}

// dropGen returns the drop-count generation of event second sec, and the
// first generation reaching into the window that ends at sec.
func (d *Detector) dropGen(sec uint32) (g, lo uint32) {
	glen := max(1, (d.w+7)/8) // rounded up: dropGens generations span any window
	return sec / glen, (max(sec+1, d.w) - d.w) / glen
}

// dropAnswered counts the answered contacts that makeRoom is about to
// drop at second sec (keep tells which it keeps).
func (d *Detector) dropAnswered(s *hostState, sec uint32, agg *aggKeys, keep func(*contact) bool) {
	_, lo := d.dropGen(sec)
	for k := range s.tab {
		c := &s.tab[k]
		if c.flags&(fUsed|fAnswered|fPeer|fDropped) != fUsed|fAnswered || !d.fresh(c, sec) || agg.has(c) || keep(c) {
			continue
		}
		if s.drops == 0 {
			d.drops = append(d.drops, dropCounts{})
			s.drops = uint32(len(d.drops))
		}
		dc := &d.drops[s.drops-1]
		g, _ := d.dropGen(c.last)
		dropSlotOf(dc.ports[:], c.port, c.proto, lo).add(g)
		dropSlotOf(dc.protos[:], 0, c.proto, lo).add(g)
		dc.rollSeen(sec / d.aggGen)
		w, b := seenBit(detector.Hash16(&c.dst, uint32(c.proto)<<16|uint32(c.port)))
		dc.seen[0][w] |= b
	}
}

// countedDropped reports whether contact c is counted in its host's
// dropCounts already (answered, made again after a full table dropped it
// answered): a horizontal verdict, which adds the drop counts, leaves it
// out of the table's count.
func countedDropped(c *contact) bool {
	return c.flags&(fAnswered|fDropped) == fAnswered|fDropped
}

// droppedAnswered returns the answered contacts of port and proto (port
// -1: of every port of proto) the host's full table dropped that were
// last seen in the window ending at sec.
func (d *Detector) droppedAnswered(s *hostState, port int, proto uint8, sec uint32) int {
	if s.drops == 0 {
		return 0
	}
	slots, key := d.drops[s.drops-1].ports[:], uint16(port)
	if port < 0 {
		slots, key = d.drops[s.drops-1].protos[:], 0
	}
	_, lo := d.dropGen(sec)
	for i := range slots {
		if a := &slots[i]; a.port == key && a.proto == proto {
			return int(a.since(lo))
		}
	}
	return 0
}

// aggKeys are classes answered in aggregate, as proto<<16|port, first;
// the rest 0.
type aggKeys [aggSlots]uint32

// answeredPorts returns the host's classes answered in aggregate at sec.
func (d *Detector) answeredPorts(s *hostState, sec uint32) aggKeys {
	var k aggKeys
	if s.agg == 0 {
		return k
	}
	n := 0
	for i := range d.agg[s.agg-1] {
		if a := &d.agg[s.agg-1][i]; a.proto != 0 && d.aggAnswered(s, a.port, a.proto, sec) {
			k[n] = uint32(a.proto)<<16 | uint32(a.port)
			n++
		}
	}
	return k
}

// has reports whether contact c is of a class answered in aggregate.
func (k *aggKeys) has(c *contact) bool {
	if k[0] == 0 {
		return false // none: the usual case
	}
	key := uint32(c.proto)<<16 | uint32(c.port)
	for _, x := range k {
		if x == key {
			return true
		}
	}
	return false
}

// Detector is the netscan detector.
type Detector struct {
	conf       Configuration
	env        detector.Env
	w          uint32
	trigger    int
	evalEvery  int
	hosts      []hostState
	queue      []uint32 // hosts with a pending verdict
	scratchBuf []contact
	filters    *detector.Hosts // ScanFilter and ScanService of each host
	boundBits  uint8           // see bounds
	agg        []aggPorts      // sampled probes and answers by port of the hosts with sampled probes (hostState.agg)
	drops      []dropCounts    // answered contacts dropped by the hosts' full tables (hostState.drops)
	aggGen     uint32          // seconds of one generation of aggPorts' counts: half the window
	aggMin     uint32          // sampled probes a port needs before its answers count (see aggAnswered)
	walks      uint64          // evaluations (table walks), for tests
	now        int64
	noBounds   bool // tests: evaluate without asking the bounds first
}

// New returns the detector; conf must be valid.
func New(conf Configuration, env detector.Env) *Detector {
	t := min(conf.MinDestinations, conf.MinPorts)
	d := &Detector{conf: conf, env: env, w: uint32(conf.Window.Seconds()), trigger: t, evalEvery: max(1, t/64), filters: env.Hosts,
		boundBits: boundBits(conf), aggGen: max(1, uint32(conf.Window.Seconds())/2),
		aggMin: uint32(max(1, min(32, conf.MinDestinations/2)))}
	if d.filters == nil {
		d.filters = &detector.Hosts{}
	}
	return d
}

// state returns the host's state, nil if it has none and create is false.
// The pointer is valid until the next state(_, true).
func (d *Detector) state(host uint32, create bool) *hostState {
	if int(host) < len(d.hosts) {
		if s := &d.hosts[host]; s.used {
			return s
		}
	}
	if !create {
		return nil
	}
	if int(host) >= len(d.hosts) {
		d.hosts = append(d.hosts, make([]hostState, int(host)+1-len(d.hosts))...)
	}
	s := &d.hosts[host]
	if s.tab == nil {
		s.tab = make([]contact, 4)
	}
	s.used, s.host = true, host
	hr := d.filters.At(host)
	hr.ScanFilter, hr.ScanService = [3]uint32{}, 0
	return s
}

// Observe implements detector.Detector.
func (d *Detector) Observe(r *flow.Record, o *detector.Orientation) {
	if o.Dir == detector.Out {
		d.outbound(r, o)
	} else {
		d.inbound(r, o)
	}
}

func (d *Detector) outbound(r *flow.Record, o *detector.Orientation) {
	var port uint16
	answered, await := false, false
	var closing uint8 // fClose for a Maimon probe
	switch r.Proto {
	case flow.ProtoTCP:
		switch {
		case detector.IsSYNOnly(r):
			port = o.RemotePort
		case r.TCPFlags&flow.TCPAck != 0 && r.TCPFlags&flow.TCPRst == 0:
			if r.TCPFlags&flow.TCPSyn != 0 && detector.IsFlow(r) && detector.IsClientSide(o.LocalPort, o.RemotePort) {
				port, answered = o.RemotePort, true // a whole client connection
			} else if r.TCPFlags == flow.TCPFin|flow.TCPAck && crafted(r, o) {
				// nmap's Maimon probe (-sM), or the close of a connection
				// whose SYN the window did not see: the remote's ACK or
				// FIN answers the latter (inbound), a probe gets a RST or
				// nothing. A close of a connection in the table finds its
				// contact answered already
				port, closing = o.RemotePort, fClose
			} else {
				// the handshake may complete a contact; most such records
				// are a server's replies, dismissed by their ports or by
				// the filter
				if localService(o) && !d.serviceProbes(o.Host, o.End) {
					return
				}
				dst := o.Remote.As16()
				if d.maybe(o.Host, detector.Hash16(&dst, uint32(flow.ProtoTCP)<<16|uint32(o.RemotePort))) {
					if s := d.state(o.Host, false); s != nil {
						if c, _ := d.answer(s, dst, o.RemotePort, flow.ProtoTCP, false); c != nil {
							if c.flags&fAwait != 0 && (r.TCPFlags != flow.TCPAck || !crafted(r, o)) {
								c.flags &^= fAwait // the host went on with a connection (see fAwait)
							}
							return
						}
					}
				}
				if r.TCPFlags != flow.TCPAck || r.SamplingRate > 1 || !crafted(r, o) {
					return
				}
				// a bare ACK to a destination the host has no contact
				// with: nmap's ACK or window scan (-sA, -sW), or a segment
				// of a connection whose SYN the window did not see; it is
				// a probe once the destination refuses it (fAwait)
				port, await = o.RemotePort, true
			}
		case stealthProbe(r):
			port = o.RemotePort
		case r.TCPFlags == 0 && nullProbe(r):
			port = o.RemotePort
		default:
			return
		}
	case flow.ProtoUDP:
		if localService(o) || peerService(o) || o.LocalPort == 0 && o.RemotePort == 0 || traceroute(o.RemotePort) {
			return // a local service answering; a peer protocol; a later fragment (no ports); traceroute
		}
		port = o.RemotePort
	case flow.ProtoICMP, flow.ProtoICMPv6:
		if !detector.IsEchoRequest(r) {
			return
		}
	default:
		return
	}
	if !o.RemoteInternal && d.env.Private != nil && d.env.Private(o.Remote) { // private customers (CGNAT) can be scanned
		return
	}
	s := d.state(o.Host, true)
	d.checkPending(s, o.Host, o.End)
	sec := uint32(o.End / 1e9)
	if highPorts(r, o) {
		d.aggProbe(s, o.LocalPort, protoLocal, sec)
		if d.aggAnswered(s, o.LocalPort, protoLocal, sec) {
			return // replies of a service on a high port (see protoLocal)
		}
	}
	if rate := detector.Rate(r); rate > s.maxRate {
		s.maxRate = rate
	}
	dst := o.Remote.As16()
	fullUntil := s.fullUntil
	c, isNew := d.insertFrom(s, &dst, port, r.Proto, min(uint32(o.Start/1e9), sec), sec)
	if c == nil {
		if aggregated(r) {
			d.aggProbe(s, port, r.Proto, sec)
		}
		if s.fullUntil != fullUntil && sec >= s.anyAt && s.pend.at == 0 && s.rules(sec)&ruleH != 0 {
			s.anyAt = sec + max(1, d.w/16) // a churning table refills often: ask at most this often
			// the table just filled up with live contacts: a scan of many
			// ports in random order (masscan -p1-100) fills it before any
			// one port has enough destinations, so ask across ports
			d.propose(s, o, pending{anyPort: true, dst: dst, port: port, proto: r.Proto}, ruleH)
		}
		return
	}
	if isNew && await {
		c.flags |= fAnswered | fPeer | fAwait // a probe once refused
	} else if !isNew && c.flags&fAwait != 0 {
		c.flags &^= fAwait // no bare ACK: the host went on with a connection (see fAwait)
	} else if isNew && !answered {
		c.flags |= closing
		s.unanswered(c, 1)
		if aggregated(r) {
			d.aggProbe(s, port, r.Proto, sec)
		}
	}
	if localService(o) {
		d.filters.At(o.Host).ScanService = sec
	}
	if answered {
		if c.flags&fAnswered == 0 && !isNew {
			s.unanswered(c, -1)
		}
		c.flags |= fAnswered
	} else if c.hits < 0xffff && (isNew || r.Proto != flow.ProtoTCP || c.lport != o.LocalPort) {
		c.hits++
	}
	c.lport = o.LocalPort
	if s.samples != nil && !answered {
		s.samples.Add(r)
	}
	if !isNew || answered || int(s.open) < d.trigger {
		return
	}
	if s.samples == nil {
		s.samples = detector.NewSamples(d.env.EvidencePackets).Within(int64(d.w) * 1e9)
		var probes uint64 // the probe records before this one: the dump says they were left out
		for k := range s.tab {
			probes += uint64(s.tab[k].hits)
		}
		s.samples.Missed(max(probes, 1) - 1)
		s.samples.Add(r)
	}
	s.evalSkip++
	rules := s.rules(sec)
	if int(s.evalSkip) < d.evalEvery || rules == 0 || s.pend.at != 0 {
		return
	}
	s.evalSkip = 0
	if s.bound == nil {
		s.bound = d.newBounds(s) // the host reached the trigger: counted from now on
	}
	if s.agg != 0 && rules&ruleH != 0 && d.aggAnswered(s, port, r.Proto, sec) {
		// the port's peers answer (sampled data): no horizontal verdict,
		// and no table walk for it
		if rules &^= ruleH; rules == 0 {
			return
		}
	}
	if !d.noBounds && !d.possible(s.bound, &dst, port, r.Proto, rules) {
		return
	}
	d.propose(s, o, pending{dst: dst, port: port, proto: r.Proto}, rules)
}

// propose evaluates p and, when it holds, makes it the host's pending
// verdict, confirmed after answer_grace (answers may still be in flight).
func (d *Detector) propose(s *hostState, o *detector.Orientation, p pending, rules uint8) {
	if ok, _ := d.evaluate(s, &p, uint32(o.End/1e9), rules); ok {
		p.at = o.End + d.conf.AnswerGrace.D().Nanoseconds()
		s.pend = p
		if !s.queued {
			s.queued = true
			d.queue = append(d.queue, o.Host)
		}
	}
}

func (d *Detector) inbound(r *flow.Record, o *detector.Orientation) {
	var port uint16
	answer := true
	switch r.Proto {
	case flow.ProtoTCP:
		f := r.TCPFlags
		if localService(o) && !d.serviceProbes(o.Host, o.End) {
			return
		}
		// only data answers a contact; a SYN-ACK or RST is a reply the
		// traffic dump of a suspected scanner shows, nothing more. A
		// sample (sFlow) of an acknowledgement without SYN or RST is of an
		// established connection too: most segments of a transfer carry no
		// PSH, and a sample is of one segment
		answer = f&(flow.TCPAck|flow.TCPRst) == flow.TCPAck && (f&flow.TCPPsh != 0 || f&flow.TCPSyn == 0)
		port = o.RemotePort
	case flow.ProtoUDP:
		if localService(o) && !d.serviceProbes(o.Host, o.End) {
			return
		}
		if highPorts(r, o) {
			d.aggAnswer(o, o.LocalPort, protoLocal) // a request to, or answer of, the local port
		}
		port = o.RemotePort
	case flow.ProtoICMP, flow.ProtoICMPv6:
		if !detector.IsEchoReply(r) {
			return
		}
	default:
		return
	}
	dst := o.Remote.As16()
	// A flow record's answer may come before the record of what it
	// answers: an exporter writes the two directions' records in the order
	// its cache expires them, often the same pass. Such an answer leaves an
	// answered contact for the probe record to find.
	early := answer && detector.IsFlow(r)
	// A UDP packet from a remote the host has no contact with is a client
	// speaking first — of a game or VPN server on a high port (players
	// send from 27005 to 27015, WireGuard peers from 51820), a DHT peer —
	// and leaves an answered contact, so the host's reply opens none.
	// An echo reply from a remote the host has no contact with answers a
	// request whose record is still to come: the two directions captured
	// at two taps, or sampled by two agents, whose times differ by more
	// than the round trip (a ping monitor's replies would otherwise leave
	// every request unanswered); it leaves such a contact too.
	// Only hosts that netscan follows already: background UDP scans reach
	// every address, and a host's first reply costs one contact at most.
	remoteFirst := !early && r.Proto != flow.ProtoTCP // UDP, or an echo reply: the remote spoke first
	// A sample of a TCP connection's data (sFlow) answers it as a flow
	// record does, and likewise may come without its SYN: a connection's
	// SYN is sampled once in sampling-rate times, its data far more often,
	// so a client of many servers (a crawler) would show only the contacts
	// of its few sampled SYNs, most of them unanswered. Its sampled data
	// leaves answered contacts, which weigh against a verdict on the port:
	// only for hosts with a few dozen unanswered contacts, so that the
	// million clients of a network seen through sFlow do not each keep a
	// table of the servers they download from.
	sampledData := answer && r.Proto == flow.ProtoTCP && r.SamplingRate > 1
	var s *hostState
	if d.maybe(o.Host, detector.Hash16(&dst, uint32(r.Proto)<<16|uint32(port))) {
		s = d.state(o.Host, false)
	}
	if s == nil {
		if aggregated(r) {
			d.aggAnswer(o, port, r.Proto)
		}
		if early {
			d.answerFirst(d.state(o.Host, true), dst, port, r.Proto, uint32(o.End/1e9), answeredBy(r, o))
		} else if sampledData {
			if s = d.state(o.Host, false); s != nil && d.keepsAnswers(s) {
				d.answerFirst(s, dst, port, r.Proto, uint32(o.End/1e9), answeredBy(r, o))
			}
		} else if remoteFirst {
			if s = d.state(o.Host, false); s != nil {
				d.answerFirst(s, dst, port, r.Proto, uint32(o.End/1e9), fAnswered|fPeer)
			}
		}
		return
	}
	if s.samples != nil {
		// the host is suspected and this comes from a remote it
		// contacted: the dump shows both directions, as the help page
		// promises ("all (incoming and outgoing) connections")
		s.samples.Add(r)
	}
	if !answer {
		if r.Proto == flow.ProtoTCP && r.TCPFlags&(flow.TCPRst|flow.TCPSyn) == flow.TCPRst {
			if r.TCPFlags&flow.TCPAck != 0 {
				d.closeReset(s, &dst, port)
			} else if r.TCPFlags&(flow.TCPFin|flow.TCPPsh) == 0 && r.SamplingRate <= 1 && d.refused(s, &dst, port) {
				d.evaluateRefused(s, r, o, &dst, port)
			}
		}
		return
	}
	c, once := d.answer(s, dst, port, r.Proto, true)
	found := c != nil
	if (once || !found) && aggregated(r) {
		// a remote whose contact is answered already counts once: a
		// busy peer (the host's own resolver) does not answer a port
		d.aggAnswer(o, port, r.Proto)
	}
	if !found && (early || sampledData && d.keepsAnswers(s)) {
		d.answerFirst(s, dst, port, r.Proto, uint32(o.End/1e9), answeredBy(r, o))
	} else if !found && remoteFirst {
		d.answerFirst(s, dst, port, r.Proto, uint32(o.End/1e9), fAnswered|fPeer)
	}
}

// keepsAnswers reports whether a sampled TCP answer that finds no contact
// leaves one for the host: only with a few dozen unanswered contacts (see
// inbound).
func (d *Detector) keepsAnswers(s *hostState) bool { return int(s.open) >= d.trigger/8 }

// answeredBy returns the flags of the answered contact that a flow
// record's or sample's answer leaves when it finds none: a connection the
// remote began — the host on the lower port, serving it (clients of a
// service on 8443) — is a remote's contact (fPeer), which answers nothing
// the host began and does not weigh against a scan of the host's.
func answeredBy(r *flow.Record, o *detector.Orientation) uint8 {
	if r.Proto != flow.ProtoICMP && r.Proto != flow.ProtoICMPv6 && o.LocalPort < o.RemotePort {
		return fAnswered | fPeer
	}
	return fAnswered
}

// answerFirst records an answer that came before its probe record as an
// answered contact (flags: fAnswered, and fPeer for a remote that spoke
// first).
func (d *Detector) answerFirst(s *hostState, dst detector.Key16, port uint16, proto uint8, sec uint32, flags uint8) {
	if c, isNew := d.insert(s, &dst, port, proto, sec); c != nil && isNew {
		c.flags |= flags
	}
}

// stealthProbe reports whether a TCP record is of nmap's FIN or Xmas
// scans (-sF, -sX): flags, but neither SYN nor ACK nor RST, which no
// segment of a connection lacks (every one after the SYN carries ACK). A
// record without flags is left out: some exporters send none, a later
// fragment has no TCP header and a header cut short (a small snap
// length) none of its flags; nullProbe tells a NULL scan's (-sN) packets
// by their header.
func stealthProbe(r *flow.Record) bool {
	return r.TCPFlags != 0 && r.TCPFlags&(flow.TCPSyn|flow.TCPAck|flow.TCPRst) == 0
}

// nullProbe reports whether a TCP record without flags is nmap's NULL
// scan (-sN): a segment no TCP stack sends. Only a packet whose captured
// header (pcap, sFlow) holds the TCP flags, and shows them zero, is one: a
// flow record without flags is of an exporter that sends none, a header
// cut short or a later fragment has no flags to show.
func nullProbe(r *flow.Record) bool {
	hl, _, flags, ok := tcpShape(r)
	return ok && hl >= 20 && flags == 0
}

// crafted reports whether a FIN+ACK or ACK record from the host has the
// shape of nmap's Maimon, ACK and window probes (-sM, -sA, -sW), as a
// client: from the host's higher port to the remote's lower one (nmap
// sends from a port above 33000; a server's segments to its clients go
// the other way), a TCP header without options and no payload (a Linux
// or BSD stack's segments carry timestamps, segments of data a payload).
// A packet (pcap, sFlow) is judged by its captured header, none without
// one; an unsampled flow record by its size: at most 4 packets (a probe
// and nmap's retries) of 40 bytes each (60 over IPv6).
func crafted(r *flow.Record, o *detector.Orientation) bool {
	if o.RemotePort >= o.LocalPort {
		return false
	}
	if !detector.IsFlow(r) {
		hl, payload, _, ok := tcpShape(r)
		return ok && hl == 20 && payload == 0
	}
	size := uint64(40)
	if !o.Remote.Is4() && !o.Remote.Is4In6() {
		size = 60
	}
	return r.SamplingRate <= 1 && r.SampledPackets >= 1 && r.SampledPackets <= 4 && r.SampledBytes <= r.SampledPackets*size
}

// tcpShape reads a TCP packet's captured header (Ethernet, up to two VLAN
// tags, IPv4 or IPv6 without extension headers): the TCP header's length,
// the payload's (from the IP length, not the bytes captured) and the
// flags. ok is false when the header does not reach the TCP flags (none
// captured, cut short, a later fragment) or is not TCP.
func tcpShape(r *flow.Record) (hlen, payload int, flags uint8, ok bool) {
	h := r.Header[:min(int(r.HeaderLength), flow.MaxHeader)]
	off := 12
	for range 3 {
		if len(h) < off+2 {
			return 0, 0, 0, false
		}
		if t := binary.BigEndian.Uint16(h[off:]); t != 0x8100 && t != 0x88a8 && t != 0x9100 {
			break
		}
		off += 4
	}
	if len(h) < off+2 {
		return 0, 0, 0, false
	}
	ip := off + 2
	var tcp, iplen int
	switch binary.BigEndian.Uint16(h[off:]) {
	case 0x0800:
		if len(h) < ip+20 || h[ip]>>4 != 4 || h[ip+9] != flow.ProtoTCP || binary.BigEndian.Uint16(h[ip+6:])&0x1fff != 0 {
			return 0, 0, 0, false
		}
		ihl := int(h[ip]&0xf) * 4
		tcp, iplen = ip+ihl, int(binary.BigEndian.Uint16(h[ip+2:]))-ihl
	case 0x86dd:
		if len(h) < ip+40 || h[ip+6] != flow.ProtoTCP {
			return 0, 0, 0, false
		}
		tcp, iplen = ip+40, int(binary.BigEndian.Uint16(h[ip+4:]))
	default:
		return 0, 0, 0, false
	}
	if len(h) < tcp+14 {
		return 0, 0, 0, false
	}
	hlen = int(h[tcp+12]>>4) * 4
	return hlen, iplen - hlen, h[tcp+13], true
}

// localService reports whether the record is between a service on the
// internal host (a port below 1024) and a client (an ephemeral port): its
// requests and replies, which answer nothing the host initiated unless
// the host itself probes from service ports (serviceProbes).
func localService(o *detector.Orientation) bool {
	return serviceTraffic(o.LocalPort, o.RemotePort)
}

// peerService reports whether the record is UDP between the same
// well-known port at both ends: a peer protocol (NTP servers answering
// ntpd clients, which send from 123; IKE on 500), whose requests arrive
// before the host's answers and never open a contact. A scan sent from
// the port it scans (nmap -g 123 -p 123) is missed; the replies of a busy
// NTP server are not taken for one.
func peerService(o *detector.Orientation) bool {
	return o.LocalPort == o.RemotePort && o.LocalPort < 1024
}

// traceroute reports whether a UDP destination port is in traceroute's
// range (33434 and the 100 after it): its probes are answered by routers'
// time-exceeded messages from other addresses, which answer no contact,
// so path monitoring to a few hundred targets would read as a scan.
func traceroute(port uint16) bool { return port >= 33434 && port <= 33534 }

// serviceTraffic is localService by the two ports (the host's, the remote's).
func serviceTraffic(localPort, remotePort uint16) bool {
	return localPort < 1024 && remotePort >= 1024
}

// serviceProbes reports whether the host initiated contact from a service
// port to an ephemeral port within the window (an active-mode FTP server's
// data connections, nmap -g 80): only then can a local service's traffic
// answer a contact and must be looked up.
func (d *Detector) serviceProbes(host uint32, end int64) bool {
	if int(host) >= len(d.filters.H) {
		return false
	}
	last := d.filters.H[host].ScanService
	return last != 0 && last+d.w > uint32(end/1e9)
}

// answer marks the contact answered and returns it (nil if there is
// none); first reports whether it was unanswered until now.
// An answer from the remote (inbound) also clears fAwait: the bare ACK
// was of a connection.
func (d *Detector) answer(s *hostState, dst detector.Key16, port uint16, proto uint8, inbound bool) (c *contact, first bool) {
	i := d.find(s, &dst, port, proto)
	if i < 0 {
		return nil, false
	}
	c = &s.tab[i]
	if inbound {
		c.flags &^= fAwait
	}
	if c.flags&fAnswered == 0 {
		c.flags |= fAnswered
		s.unanswered(c, -1)
		return c, true
	}
	return c, false
}

// refused makes the contact of a bare ACK (fAwait) that the destination
// refused with a RST, and answered nothing else, a probe: nmap's ACK and
// window scans (-sA, -sW) get a RST from every host that is up, while a
// segment of a live connection gets data or an ACK back. Unsampled data
// only: on sampled data the RST of a sampled probe is itself rarely
// sampled, and an established connection's sampled ACK is as bare.
// Only a RST without ACK refuses (see closeReset). It reports whether
// the contact became a probe.
func (d *Detector) refused(s *hostState, dst *detector.Key16, port uint16) bool {
	if i := d.find(s, dst, port, flow.ProtoTCP); i >= 0 && s.tab[i].flags&fAwait != 0 {
		c := &s.tab[i]
		c.flags &^= fAwait | fAnswered | fPeer
		s.unanswered(c, 1)
		return true
	}
	return false
}

// evaluateRefused asks for a verdict on a bare ACK's contact that its
// refusal made a probe, as outbound asks on a new probe: an ACK scan's
// refusals may all come after its probes (a fast scan whose remotes' RST
// records an exporter sends in a later export, or another exporter sends),
// and no probe after them would ask. r is the refusal.
func (d *Detector) evaluateRefused(s *hostState, r *flow.Record, o *detector.Orientation, dst *detector.Key16, port uint16) {
	if int(s.open) < d.trigger || s.pend.at != 0 {
		return
	}
	if s.samples == nil { // the evidence dump, from the refusal that made the host a suspect (see outbound)
		s.samples = detector.NewSamples(d.env.EvidencePackets).Within(int64(d.w) * 1e9)
		s.samples.Add(r)
	}
	sec := uint32(o.End / 1e9)
	rules := s.rules(sec)
	if s.evalSkip++; int(s.evalSkip) < d.evalEvery || rules == 0 {
		return
	}
	s.evalSkip = 0
	if s.bound == nil {
		s.bound = d.newBounds(s)
	}
	if !d.noBounds && !d.possible(s.bound, dst, port, flow.ProtoTCP, rules) {
		return
	}
	d.propose(s, o, pending{dst: *dst, port: port, proto: flow.ProtoTCP}, rules)
}

// closeReset takes a RST with ACK from the remote: it answers a bare
// FIN+ACK's contact (fClose) and clears a bare ACK's mark (fAwait). The
// RST that refuses a segment carrying ACK — a Maimon, ACK or window probe
// — carries no ACK (RFC 9293 takes its sequence number from the segment's
// acknowledgement; Linux, BSD and Windows stacks answer so), while a RST
// with ACK is a connection's abortive close (a server's SO_LINGER 0, a
// load balancer's idle timeout), and in a flow record the remote's
// acknowledgements, of the close among them, and its RST together.
// A SYN, FIN, NULL or Xmas probe's refusal carries ACK, and answers none:
// their contacts have neither mark.
func (d *Detector) closeReset(s *hostState, dst *detector.Key16, port uint16) {
	if i := d.find(s, dst, port, flow.ProtoTCP); i >= 0 && s.tab[i].flags&(fClose|fAwait) != 0 {
		c := &s.tab[i]
		c.flags &^= fAwait
		if c.flags&(fClose|fAnswered) == fClose {
			c.flags |= fAnswered
			s.unanswered(c, -1)
		}
	}
}

// mark sets the filter bit of a key hash. The filters live in the shared
// host record (detector.Host.ScanFilter, 12 bytes per host) so that most
// inbound records — replies to nothing the host initiated — are dismissed
// without touching the host's table.
func (d *Detector) mark(host uint32, h uint64) {
	w, b := filterBit(h)
	d.filters.At(host).ScanFilter[w] |= b
}

func (d *Detector) maybe(host uint32, h uint64) bool {
	w, b := filterBit(h)
	return int(host) < len(d.filters.H) && d.filters.H[host].ScanFilter[w]&b != 0
}

// filterBit maps a key hash to one of the filter's 96 bits (from the
// hash's high half; the contact table indexes with the low bits).
func filterBit(h uint64) (word int, bit uint32) {
	i := (h >> 32) * 96 >> 32
	return int(i >> 5), 1 << (i & 31)
}

func (d *Detector) find(s *hostState, dst *detector.Key16, port uint16, proto uint8) int {
	if s.n == 0 {
		return -1
	}
	h := detector.Hash16(dst, uint32(proto)<<16|uint32(port))
	if !d.maybe(s.host, h) {
		return -1
	}
	mask := len(s.tab) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		c := &s.tab[i]
		if c.flags&fUsed == 0 {
			return -1
		}
		if c.port == port && c.proto == proto && c.dst == *dst {
			return i
		}
	}
}

// insert finds or adds a contact; nil when the table is full.
func (d *Detector) insert(s *hostState, dst *detector.Key16, port uint16, proto uint8, sec uint32) (*contact, bool) {
	return d.insertFrom(s, dst, port, proto, sec, sec)
}

// insertFrom is insert for a record lasting from second from to sec (a
// flow record of several probes): a new contact's first probe is at from.
func (d *Detector) insertFrom(s *hostState, dst *detector.Key16, port uint16, proto uint8, from, sec uint32) (*contact, bool) {
	if i := d.find(s, dst, port, proto); i >= 0 {
		c := &s.tab[i]
		if c.last+d.w <= sec {
			// stale contact seen again: it counts as new in this window
			if c.flags&fAnswered == 0 {
				s.unanswered(c, -1) // counted again by the caller
			}
			c.first, c.last, c.hits, c.flags = from, sec, 0, fUsed
			return c, true
		}
		c.last = max(c.last, sec)
		return c, false
	}
	if !fits(int(s.n+1), len(s.tab)) {
		if sec < s.fullUntil {
			return nil, false
		}
		if !d.makeRoom(s, sec) {
			// full of live contacts (a scan in progress, long proven):
			// try again when some may have gone stale (once then, not
			// put off by every contact refused until then)
			s.fullUntil = sec + max(1, d.w/16)
			return nil, false
		}
	}
	mask := len(s.tab) - 1
	h := detector.Hash16(dst, uint32(proto)<<16|uint32(port))
	d.mark(s.host, h)
	i := int(h) & mask
	for s.tab[i].flags&fUsed != 0 {
		i = (i + 1) & mask
	}
	flags := uint8(fUsed)
	if d.wasDropped(s, h, sec) {
		flags |= fDropped
	}
	s.tab[i] = contact{dst: *dst, first: from, last: sec, port: port, proto: proto, flags: flags}
	s.n++
	return &s.tab[i], true
}

func (d *Detector) fresh(c *contact, sec uint32) bool {
	return c.flags&fUsed != 0 && c.last+d.w > sec
}

// makeRoom drops stale contacts, grows the table, or drops answered
// contacts, in that order of preference. Tables stay at most half full.
func (d *Detector) makeRoom(s *hostState, sec uint32) bool {
	live := 0
	for k := range s.tab {
		if d.fresh(&s.tab[k], sec) {
			live++
		}
	}
	if (live+1)*4 <= len(s.tab) {
		d.rehash(s, len(s.tab), func(c *contact) bool { return d.fresh(c, sec) })
		return true
	}
	if live+1 <= d.conf.MaxContacts {
		d.rehash(s, len(s.tab)*2, func(c *contact) bool { return d.fresh(c, sec) })
		return true
	}
	grace := uint32(d.conf.AnswerGrace.Seconds())
	agg := d.answeredPorts(s, sec) // their contacts count as answered (sampled data)
	keep := func(c *contact) bool {
		return d.fresh(c, sec) && (c.flags&fAnswered == 0 && !agg.has(c) || c.last+grace > sec)
	}
	kept := 0
	for k := range s.tab {
		if c := &s.tab[k]; c.flags&fUsed != 0 && keep(c) {
			kept++
		}
	}
	if kept+1 > d.conf.MaxContacts || !fits(kept+1, len(s.tab)) {
		return false // a scan's live contacts: dropping the rest would not make room
	}
	d.dropAnswered(s, sec, &agg, keep)
	d.rehash(s, len(s.tab), keep)
	return true
}

// fits reports whether a table of size slots may hold n contacts: at most
// half full, so that probe sequences stay short — but the small tables of
// the many hosts with a handful of contacts (a resolver, a time server, a
// package mirror, a mail relay) up to three quarters, where a probe
// sequence cannot grow long: 3 contacts in 4 slots, 6 in 8.
func fits(n, size int) bool {
	if size <= 8 {
		return n*4 <= size*3
	}
	return n*2 <= size
}

func (d *Detector) rehash(s *hostState, size int, keep func(*contact) bool) {
	old := s.tab
	if size != len(old) {
		s.tab = make([]contact, size)
	} else {
		// reuse: copy live entries aside in a scratch slice
		tmp := d.scratch(len(old))
		copy(tmp, old)
		old = tmp
		clear(s.tab)
	}
	s.n, s.open = 0, 0
	if s.bound != nil {
		clear(s.bound.c)
	}
	d.filters.At(s.host).ScanFilter = [3]uint32{}
	mask := len(s.tab) - 1
	for k := range old {
		c := &old[k]
		if c.flags&fUsed == 0 || !keep(c) {
			continue
		}
		h := detector.Hash16(&c.dst, uint32(c.proto)<<16|uint32(c.port))
		d.mark(s.host, h)
		i := int(h) & mask
		for s.tab[i].flags&fUsed != 0 {
			i = (i + 1) & mask
		}
		s.tab[i] = *c
		s.n++
		if c.flags&fAnswered == 0 {
			s.unanswered(&s.tab[i], 1)
		}
	}
}

func (d *Detector) scratch(n int) []contact {
	if cap(d.scratchBuf) < n {
		d.scratchBuf = make([]contact, n)
	}
	return d.scratchBuf[:n]
}

// evaluate counts the contacts of p's port (horizontal) and destination
// (vertical) and reports whether either verdict of rules proves a scan;
// p.vertical tells which.
func (d *Detector) evaluate(s *hostState, p *pending, sec uint32, rules uint8) (bool, uint64) {
	if p.anyPort {
		return d.evaluateAnyPort(s, p, sec, rules)
	}
	if s.agg != 0 && rules&ruleH != 0 && d.aggAnswered(s, p.port, p.proto, sec) {
		// the port's peers answer in aggregate (sampled data): all its
		// contacts count as answered, no horizontal verdict
		rules &^= ruleH
		if rules == 0 || p.proto == flow.ProtoICMP || p.proto == flow.ProtoICMPv6 {
			return false, 0
		}
	}
	d.walks++
	var hn, ha, vn, va int
	var hhits, vhits uint64
	for k := range s.tab {
		c := &s.tab[k]
		if !d.fresh(c, sec) || c.flags&fPeer != 0 {
			continue // a remote's contact
		}
		ans := c.flags&fAnswered != 0
		if c.port == p.port && c.proto == p.proto && !countedDropped(c) {
			hn++
			if ans {
				ha++
			} else {
				hhits += uint64(c.hits)
			}
		}
		if c.dst == p.dst && c.proto != flow.ProtoICMP && c.proto != flow.ProtoICMPv6 {
			vn++
			if ans {
				va++
			} else {
				vhits += uint64(c.hits)
			}
		}
	}
	if dn := d.droppedAnswered(s, int(p.port), p.proto, sec); dn > 0 {
		hn, ha = hn+dn, ha+dn
	}
	r, mp := d.conf.MaxAnsweredRatio, d.conf.MaxProbesPerContact
	if rules&ruleH != 0 && hn-ha >= d.conf.MinDestinations && float64(ha) <= r*float64(hn) && hhits >= d.conf.MinSamples &&
		float64(hhits) <= mp*float64(hn-ha) {
		p.vertical = false
		return true, hhits
	}
	if rules&ruleV != 0 && p.proto != flow.ProtoICMP && p.proto != flow.ProtoICMPv6 &&
		vn-va >= d.conf.MinPorts && float64(va) <= r*float64(vn) && vhits >= d.conf.MinSamples &&
		float64(vhits) <= mp*float64(vn-va) {
		p.vertical = true
		return true, vhits
	}
	return false, 0
}

func (d *Detector) checkPending(s *hostState, host uint32, now int64) {
	if s.pend.at != 0 && now >= s.pend.at { // inlined: every probe asks
		d.confirmDue(s, host, now, false)
	}
}

// confirmDue confirms the host's pending verdict once its grace is over,
// as of the time it was proposed (the contacts it counted may have aged
// out of the window by a late now: the next records of an input that
// continues a day later), and the verdict that confirm proposes after it
// when that is due too. At the end of the input (final) they are
// confirmed without waiting for their grace.
func (d *Detector) confirmDue(s *hostState, host uint32, now int64, final bool) {
	for range 3 { // the pending verdict, then at most one per rule
		if s.pend.at == 0 || !final && now < s.pend.at {
			return
		}
		at := s.pend.at - d.grace()
		d.confirm(s, host, max(now, at), at)
	}
}

func (d *Detector) grace() int64 { return d.conf.AnswerGrace.D().Nanoseconds() }

// confirm re-evaluates a pending verdict at event time now and fires it.
// The verdict's rule is then muted for the host until the engine would
// report it again (its rearm period; at least a second): a scanner that
// was reported and keeps scanning is not re-evaluated — its whole contact
// table walked twice — every second of the rearm period only to be
// suppressed. The other rule stays live.
//
// New contacts are not evaluated while a verdict is pending; when some
// were not, confirm then looks again at the host's most contacted port
// and destination and proposes what they prove (a vertical scan that nmap
// ran within the grace of a horizontal one), due answer_grace after the
// last contact. The caller confirms that in turn (confirmDue, Flush).
func (d *Detector) confirm(s *hostState, host uint32, now, at int64) {
	p := s.pend
	s.pend.at = 0
	sec := uint32(at / 1e9)
	if ok, _ := d.evaluate(s, &p, sec, s.rules(uint32(now/1e9))); ok {
		rule, ri := RuleHorizontal, 0
		if p.vertical {
			rule, ri = RuleVertical, 1
		}
		addr := d.env.Reporter.Addr(host)
		if d.env.Reporter.Armed(addr, rule, detector.DirOut, now) {
			d.env.Reporter.Report(d.finding(s, addr, &p, rule, sec))
		}
		until := d.env.Reporter.Rearmed(addr, rule, detector.DirOut)
		s.muted[ri] = max(uint32(now/1e9)+1, uint32((until+1e9-1)/1e9))
	}
	if s.evalSkip == 0 {
		return
	}
	s.evalSkip = 0
	last := d.lastContact(s)
	if q, ok := d.candidate(s, last, s.rules(max(last, uint32(now/1e9)))); ok {
		q.at = int64(last)*1e9 + d.grace()
		s.pend = q
	}
}

// lastContact returns the second of the host's latest contact.
func (d *Detector) lastContact(s *hostState) uint32 {
	var last uint32
	for k := range s.tab {
		if c := &s.tab[k]; c.flags&fUsed != 0 {
			last = max(last, c.last)
		}
	}
	return last
}

// evaluateAnyPort is the horizontal verdict over every port of p.proto:
// min_destinations distinct unanswered destinations, the answered share
// and the probe counts as for one port.
func (d *Detector) evaluateAnyPort(s *hostState, p *pending, sec uint32, rules uint8) (bool, uint64) {
	if rules&ruleH == 0 {
		return false, 0
	}
	d.walks++
	// distinct unanswered destinations, counted from below: the bits of a
	// 4,096-bit map their hashes set (colliding destinations set one bit)
	var seen [64]uint64
	agg := d.answeredPorts(s, sec) // ports whose peers answer in aggregate (sampled data) are left out
	n, a, hits := d.tally(s, sec, true, func(c *contact) bool { return c.proto == p.proto && !agg.has(c) }, func(c *contact) {
		lo, hi := binary.LittleEndian.Uint64(c.dst[8:]), binary.LittleEndian.Uint64(c.dst[:8])
		h := (lo ^ hi*0xff51afd7ed558ccd) * 0x9e3779b97f4a7c15 >> 52 // 12 bits
		seen[h>>6] |= 1 << (h & 63)
	})
	dn := d.droppedAnswered(s, -1, p.proto, sec)
	n, a = n+dn, a+dn
	dsts := 0
	for _, w := range seen {
		dsts += bits.OnesCount64(w)
	}
	r, mp := d.conf.MaxAnsweredRatio, d.conf.MaxProbesPerContact
	ok := dsts >= d.conf.MinDestinations && float64(a) <= r*float64(n) && hits >= d.conf.MinSamples && float64(hits) <= mp*float64(n-a)
	return ok, hits
}

// tally walks the fresh contacts that match: it counts them, the answered
// ones and the probe records of the others, and calls probe for each
// unanswered one (the verdict paths that are no hot path: a verdict's
// evidence, a full table).
func (d *Detector) tally(s *hostState, sec uint32, horizontal bool, match func(*contact) bool, probe func(*contact)) (n, a int, hits uint64) {
	for k := range s.tab {
		c := &s.tab[k]
		if !d.fresh(c, sec) || c.flags&fPeer != 0 || horizontal && countedDropped(c) || !match(c) {
			continue // a remote's contact, or one a horizontal verdict counts in dropCounts
		}
		n++
		if c.flags&fAnswered != 0 {
			a++
			continue
		}
		hits += uint64(c.hits)
		probe(c)
	}
	return n, a, hits
}

func (d *Detector) finding(s *hostState, addr netip.Addr, p *pending, rule string, sec uint32) detector.Finding {
	var probes []detector.Probe
	first, last := ^uint32(0), uint32(0)
	var agg aggKeys
	if p.anyPort {
		agg = d.answeredPorts(s, sec) // as evaluateAnyPort
	}
	match := func(c *contact) bool {
		if p.vertical {
			return c.dst == p.dst && c.proto != flow.ProtoICMP && c.proto != flow.ProtoICMPv6
		}
		if p.anyPort {
			return c.proto == p.proto && !agg.has(c)
		}
		return c.port == p.port && c.proto == p.proto
	}
	n, a, hits := d.tally(s, sec, !p.vertical, match, func(c *contact) {
		at := detector.SeenIn(c.first, c.last, sec, d.w)
		first, last = min(first, at), max(last, c.last)
		probes = append(probes, detector.Probe{
			Time: time.Unix(int64(at), 0).UTC(), Src: addr,
			Dst: detector.AddrFrom16(c.dst), DstPort: c.port, Proto: c.proto,
		})
	})
	if !p.vertical { // the answered contacts a full table dropped (as evaluate)
		port := int(p.port)
		if p.anyPort {
			port = -1
		}
		dn := d.droppedAnswered(s, port, p.proto, sec)
		n, a = n+dn, a+dn
	}
	slices.SortFunc(probes, func(x, y detector.Probe) int {
		return cmp.Or(x.Time.Compare(y.Time), x.Dst.Compare(y.Dst), cmp.Compare(x.DstPort, y.DstPort))
	})
	f := detector.Finding{
		Kind:         detector.KindNetscan,
		Direction:    detector.DirOut,
		InternalIP:   addr,
		Rule:         rule,
		Measured:     float64(n - a),
		FirstSeen:    time.Unix(int64(first), 0).UTC(),
		LastSeen:     time.Unix(int64(last), 0).UTC(),
		SamplingRate: max(s.maxRate, 1),
		Samples:      hits,
	}
	what := map[uint8]string{flow.ProtoTCP: "TCP", flow.ProtoUDP: "UDP", flow.ProtoICMP: "ICMP echo", flow.ProtoICMPv6: "ICMPv6 echo"}[p.proto]
	if p.vertical {
		f.Threshold, f.Unit = float64(d.conf.MinPorts), "ports"
		f.Remote = detector.AddrFrom16(p.dst)
		f.Detail = fmt.Sprintf("probes to %d ports of %s within %s (%d answered)", n-a, f.Remote, d.conf.Window.D(), a)
	} else {
		f.Threshold, f.Unit = float64(d.conf.MinDestinations), "destinations"
		f.Port = p.port
		if p.anyPort {
			f.Port = 0
			dsts, ports := map[netip.Addr]bool{}, map[uint16]bool{}
			for _, pr := range probes {
				dsts[pr.Dst], ports[pr.DstPort] = true, true
			}
			f.Measured = float64(len(dsts))
			f.Detail = fmt.Sprintf("%s to %d hosts on %d ports within %s (%d of %d contacts answered; more contacts than the %d tracked)",
				what, len(dsts), len(ports), d.conf.Window.D(), a, n, d.conf.MaxContacts)
		} else if p.proto == flow.ProtoICMP || p.proto == flow.ProtoICMPv6 {
			f.Detail = fmt.Sprintf("%s to %d hosts within %s (%d answered)", what, n-a, d.conf.Window.D(), a)
		} else {
			f.Detail = fmt.Sprintf("%s to %d hosts on port %d within %s (%d answered)", what, n-a, p.port, d.conf.Window.D(), a)
		}
	}
	if m := d.env.EvidenceProbes; len(probes) > m {
		f.ProbesOmitted = len(probes) - m
		probes = probes[:m]
	}
	f.Probes = probes
	if s.samples != nil {
		f.Packets, f.PacketsOmitted = s.samples.Copy()
		// the highest sampling rate of the records kept since the host
		// came near a verdict — its probes — not of all it ever sent (an
		// hour of client traffic through another exporter, say)
		var rate uint32
		for i := range f.Packets {
			if r := &f.Packets[i]; r.Proto == p.proto {
				rate = max(rate, detector.Rate(r))
			}
		}
		if rate > 0 {
			f.SamplingRate = rate
		}
	}
	return f
}

// Tick implements detector.Detector: confirms verdicts whose grace is over.
func (d *Detector) Tick(now int64) {
	d.now = now
	keep := d.queue[:0]
	for _, h := range d.queue {
		s := d.state(h, false)
		if s == nil || s.pend.at == 0 {
			if s != nil {
				s.queued = false
			}
			continue
		}
		if d.confirmDue(s, h, now, false); s.pend.at == 0 {
			s.queued = false
			continue
		}
		keep = append(keep, h)
	}
	d.queue = keep
}

// Flush implements detector.Detector: pending verdicts fire without
// waiting, and hosts whose last evaluations were skipped (evalEvery > 1,
// thresholds of 128 and more) are evaluated once more, so that a scan
// crossing its threshold on a skipped contact at the end of the input is
// still found.
func (d *Detector) Flush() {
	if d.evalEvery > 1 {
		for h := range d.hosts {
			if s := &d.hosts[h]; s.used && s.evalSkip > 0 && s.pend.at == 0 && int(s.open) >= d.trigger {
				d.flushSkipped(s, uint32(h))
			}
		}
	}
	for _, h := range d.queue {
		s := d.state(h, false)
		if s == nil {
			continue
		}
		d.confirmDue(s, h, d.now, true)
		s.queued = false
	}
	d.queue = d.queue[:0]
}

// flushSkipped evaluates a host whose last evaluations were skipped (at
// the end of the input), and confirms what its candidate proves.
func (d *Detector) flushSkipped(s *hostState, host uint32) {
	now := max(d.now, int64(d.lastContact(s))*1e9) // the last tick; the host's last contact may be later
	sec := uint32(now / 1e9)
	if p, ok := d.candidate(s, sec, s.rules(sec)); ok {
		p.at = now
		s.pend = p
		s.evalSkip = 0
		d.confirm(s, host, now, now)
	}
}

// candidate evaluates, for a host whose evaluations were skipped, its most
// contacted port and destination among fresh unanswered contacts at sec,
// and returns the first verdict of rules that holds.
func (d *Detector) candidate(s *hostState, sec uint32, rules uint8) (pending, bool) {
	if rules == 0 {
		return pending{}, false
	}
	type portKey struct {
		port  uint16
		proto uint8
	}
	ports, dsts := map[portKey]int{}, map[detector.Key16]int{}
	var best [2]pending
	var most [2]int
	agg := d.answeredPorts(s, sec)
	for k := range s.tab {
		c := &s.tab[k]
		if !d.fresh(c, sec) || c.flags&fAnswered != 0 {
			continue
		}
		// a port whose peers answer in aggregate has no horizontal
		// verdict (evaluate): not the port to ask
		if pk := (portKey{c.port, c.proto}); !agg.has(c) {
			if ports[pk]++; ports[pk] > most[0] {
				most[0], best[0] = ports[pk], pending{dst: c.dst, port: c.port, proto: c.proto}
			}
		}
		if dsts[c.dst]++; dsts[c.dst] > most[1] {
			most[1], best[1] = dsts[c.dst], pending{dst: c.dst, port: c.port, proto: c.proto}
		}
	}
	for i, p := range best {
		if most[i] == 0 {
			continue
		}
		if ok, _ := d.evaluate(s, &p, sec, rules); ok {
			return p, true
		}
	}
	return pending{}, false
}

// Forget implements detector.Detector.
func (d *Detector) Forget(host uint32) {
	s := d.state(host, false)
	if s == nil {
		return
	}
	if int(host) < len(d.filters.H) {
		d.filters.H[host].ScanFilter, d.filters.H[host].ScanService = [3]uint32{}, 0
	}
	if len(s.tab) > 64 {
		s.tab = make([]contact, 4)
	} else {
		clear(s.tab)
	}
	if s.agg != 0 {
		d.agg[s.agg-1] = aggPorts{} // kept for the host's index
	}
	if s.drops != 0 {
		d.drops[s.drops-1] = dropCounts{}
	}
	*s = hostState{tab: s.tab, agg: s.agg, drops: s.drops}
}

// HostLine appends the address of the host's state line that a record
// reads (the engine's batch path prefetches it ahead of the records, see
// detect.Engine.Records). Records of a local service (see localService;
// port is the remote end's, localPort the host's) are left out, as in
// ContactLine: they read only the shared host record.
func (d *Detector) HostLine(addrs []uintptr, host uint32, port, localPort uint16) []uintptr {
	if int(host) < len(d.hosts) && !serviceTraffic(localPort, port) {
		return append(addrs, uintptr(unsafe.Pointer(&d.hosts[host])))
	}
	return addrs
}

// ContactLine appends the address of the contact slot a record between
// the host (local port) and remote (proto, remote port) would look up or
// fill first. Records of a local service (see localService) are left out:
// Observe looks them up only for the rare host that probes from service
// ports, which then merely misses the prefetch.
func (d *Detector) ContactLine(addrs []uintptr, host uint32, remote *detector.Key16, proto uint8, port, localPort uint16) []uintptr {
	if int(host) >= len(d.hosts) || serviceTraffic(localPort, port) {
		return addrs
	}
	s := &d.hosts[host]
	if len(s.tab) == 0 {
		return addrs
	}
	h := detector.Hash16(remote, uint32(proto)<<16|uint32(port))
	return append(addrs, uintptr(unsafe.Pointer(&s.tab[int(h)&(len(s.tab)-1)])))
}
