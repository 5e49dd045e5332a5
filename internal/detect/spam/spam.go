// Package spam is the spam detector: an internal address opening SMTP
// connections (port 25 by default) to many distinct mail servers within a
// window. Mail a server receives and its replies are never counted; each
// distinct destination counts once however many connections it gets.
// It imports internal/flow and internal/detect/detector only.
//
// What counts as contact with a mail server: on unsampled data a
// connection attempt (a SYN without ACK: one packet, or a flow record of an
// attempt) or a NetFlow/IPFIX record of a client connection (from a local
// port above the SMTP port) that carries SYN or no TCP flags at all (some
// exporters export none). On sampled data (sampling rate above 1) a
// session's SYN is rarely the packet sampled — at 1:1000 about one
// session in a thousand — so there any packet or flow record the host
// sends from its client port to a watched port is contact: its
// destination is a mail server the host talks to just as well.
//
// State: every host that contacts a watched port has a 4-byte reference in
// a dense array. Until it has contacted `gate` distinct mail servers
// within the window (min_destinations/16, at least 1; 6 by default) its
// contacts are kept, exactly, in a log shared by all hosts: a ring of
// 44-byte entries, one per host and mail server, linked per host, that
// grows up to 65536 entries (2.9 MB) and reuses its oldest entries. A
// host that sends a mail now and then thus costs its 4 bytes and a log
// entry, however long it stays active. At its gate-th distinct mail server
// the host gets a table of mail servers (an open-addressing table, 32
// bytes per slot, capped at max_destinations) seeded with its logged
// contacts; stale entries are dropped when room is needed, and the whole
// table is dropped once all its entries are stale (it then passes the
// gate again).
//
// The verdict stays exact: the contacts before the gate are in the table
// too. Only when more than 65536 contacts of hosts below their gate arrive
// within one window can a host's logged contacts be overwritten before it
// reaches its gate. A host that finds its entries overwritten and still
// has another live mail server gets its table at once (so the log turning
// over faster than a slow spammer reaches its gate cannot keep it below
// the gate); it misses at most gate-1 of its first destinations (5 by
// default), so its count is a lower bound, never more than the mail
// servers it contacted: a host needs at most gate-1 more destinations to
// be reported. Hosts that mail one relay never get a table this way.
package spam

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"padlock/internal/detect/detector"
	"padlock/internal/flow"
)

// Configuration of the spam detector (YAML under detect.spam).
type Configuration struct {
	// Enabled turns the detector on. Default true.
	Enabled bool `yaml:"enabled"`
	// Window is the period destinations are counted over. Default 300s.
	Window detector.Duration `yaml:"window"`
	// MinDestinations is the number of distinct mail servers within the
	// window that makes spam. Default 100.
	MinDestinations int `yaml:"min_destinations"`
	// Ports are the SMTP ports watched. Default [25].
	Ports []uint16 `yaml:"ports"`
	// MinSamples is the number of contact records (as received, not
	// scaled by the sampling rate) to the distinct mail servers counted
	// that the verdict needs. On unsampled data a contact record is a
	// connection attempt or a flow record of a connection; on sampled data
	// it is a sampled packet (or flow record) sent to a watched port from
	// a client port. Each mail server counted has at least one, so a value
	// up to min_destinations is always met when min_destinations is;
	// above it, the verdict also needs repeated contacts. Default 100.
	MinSamples uint64 `yaml:"min_samples"`
	// MaxDestinations caps the mail servers tracked per host; at least
	// twice min_destinations. Default 1024.
	MaxDestinations int `yaml:"max_destinations"`
}

// Defaults returns the documented defaults.
func Defaults() Configuration {
	return Configuration{
		Enabled: true, Window: detector.Duration(300 * time.Second), MinDestinations: 100,
		Ports: []uint16{25}, MinSamples: 100, MaxDestinations: 1024,
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
	if len(c.Ports) == 0 {
		errs = append(errs, errors.New("ports: must not be empty"))
	}
	if c.MaxDestinations < 2*c.MinDestinations || c.MaxDestinations > 1<<20 {
		errs = append(errs, errors.New("max_destinations: must be between 2×min_destinations and 1048576"))
	}
	return errors.Join(errs...)
}

// Rule is the rule name of this detector's findings.
const Rule = "spam.smtp_fanout"

type server struct {
	dst   detector.Key16
	first uint32
	last  uint32
	conns uint32
	port  uint16 // the SMTP port last used to it
}

// logged is a log entry: a contact of a host below its gate.
type logged struct {
	server
	seq  uint32 // sequence number; the entry is valid for the reference seq only
	prev uint32 // the host's previous entry (sequence number), 0: none
	host uint32
}

const (
	// stateBit marks a host reference as an index into states; without it
	// a reference is the sequence number of the host's newest log entry.
	stateBit = 1 << 31
	logMin   = 256
	logMax   = 1 << 16
)

type hostState struct {
	tab     []server
	n       int
	host    uint32
	idx     uint32 // index in Detector.states
	last    uint32 // newest contact (s): the table is stale when last+window has passed
	port    uint16
	muted   int64
	maxRate uint32
	rateAt  uint32 // the last second a record had maxRate
	// wait is the number of contacts still missing when the last look at
	// the verdict found min_destinations but too few contact records
	// (min_samples above min_destinations): after that many more, repeated
	// contacts included, the verdict is looked at again. 0: none pending.
	wait uint64
	// again: the host was reported in this episode; from muted on, its
	// repeated contacts have the verdict looked at too (once a second at
	// most: looked is the last second they did), so that a bot cycling
	// through the same mail servers, none of them ever new again, is
	// reported again after the rearm period
	again   bool
	looked  uint32
	samples *detector.Samples
}

// Detector is the spam detector.
type Detector struct {
	conf   Configuration
	env    detector.Env
	w      uint32
	gate   int // distinct mail servers within the window before a host gets a table
	ports  [1024]uint64
	refs   []uint32 // per host: 0, stateBit|index in states, or the seq of its newest log entry
	states []*hostState
	free   []uint32 // unused indexes in states
	pool   []*hostState
	log    []logged // ring, indexed by seq modulo its length
	seq    uint32   // next log sequence number, 1..stateBit-1
	sweep  int64    // event time (ns) of the next sweep for stale tables
	tmp    []server
}

// New returns the detector; conf must be valid.
func New(conf Configuration, env detector.Env) *Detector {
	d := &Detector{conf: conf, env: env, w: uint32(conf.Window.Seconds()), gate: max(1, conf.MinDestinations/16), seq: 1}
	for _, p := range conf.Ports {
		d.ports[p/64] |= 1 << (p % 64)
	}
	return d
}

// contact reports whether a record a host sends to a watched TCP port is
// contact with the mail server there (see the package comment).
func contact(r *flow.Record, o *detector.Orientation) bool {
	if detector.IsSYNOnly(r) {
		return true
	}
	if !detector.IsClientSide(o.LocalPort, o.RemotePort) {
		return false
	}
	return r.SamplingRate > 1 || detector.IsFlow(r) && (r.TCPFlags&flow.TCPSyn != 0 || r.TCPFlags == 0)
}

// Observe implements detector.Detector.
func (d *Detector) Observe(r *flow.Record, o *detector.Orientation) {
	if o.Dir != detector.Out || r.Proto != flow.ProtoTCP || d.ports[o.RemotePort/64]&(1<<(o.RemotePort%64)) == 0 {
		return
	}
	if !contact(r, o) {
		return
	}
	for int(o.Host) >= len(d.refs) {
		d.refs = append(d.refs, 0)
	}
	sec := uint32(o.End / 1e9)
	// a flow record's contact began at its start (a tarpitted session's
	// record ends a minute later): the mail server's line and the
	// finding's first_seen say so, as netscan dates its probes
	from := min(uint32(o.Start/1e9), sec)
	dst := o.Remote.As16()
	var s *hostState
	if ref := d.refs[o.Host]; ref&stateBit != 0 {
		s = d.states[ref&^stateBit]
		if s.last+d.w <= sec { // every entry is stale: start over at the gate
			d.drop(s)
			s = nil
		}
	}
	if s == nil {
		if s = d.admit(o.Host, &dst, o.RemotePort, from, sec); s == nil {
			return
		}
	}
	// maxRate is the highest sampling rate of the host's records within
	// about the last window: a rate older than that gives way, so that a
	// finding does not carry the rate of an earlier episode.
	if rate := detector.Rate(r); rate > s.maxRate || s.rateAt+d.w <= sec {
		s.maxRate, s.rateAt = rate, sec
	} else if rate == s.maxRate {
		s.rateAt = max(s.rateAt, sec)
	}
	isNew := d.insert(s, &dst, o.RemotePort, from, sec)
	if s.samples != nil {
		s.samples.Add(r)
	}
	due := false
	if s.wait > 0 { // each contact adds at most one live contact record
		s.wait--
		due = s.wait == 0
	}
	if !isNew && !due {
		if !s.again || o.End < s.muted || sec == s.looked {
			return
		}
		s.looked = sec
	}
	if s.n < d.conf.MinDestinations/2 {
		return
	}
	if s.samples == nil {
		s.samples = detector.NewSamples(d.env.EvidencePackets).Within(int64(d.w) * 1e9)
		var conns uint64 // the connection records before this one: the dump says they were left out
		for i := range s.tab {
			conns += uint64(s.tab[i].conns)
		}
		s.samples.Missed(max(conns, 1) - 1)
		s.samples.Add(r)
	}
	s.port = o.RemotePort
	if s.n < d.conf.MinDestinations || o.End < s.muted {
		return
	}
	var n int
	var conns uint64
	for i := range s.tab {
		if c := &s.tab[i]; c.conns > 0 && c.last+d.w > sec {
			n++
			conns += uint64(c.conns)
		}
	}
	if n < d.conf.MinDestinations || conns < d.conf.MinSamples {
		if n >= d.conf.MinDestinations {
			s.wait = d.conf.MinSamples - conns
		}
		return
	}
	s.muted = o.End + 1e9
	if !d.env.Reporter.Armed(o.Addr, Rule, detector.DirOut, o.End) {
		s.muted = max(s.muted, d.env.Reporter.Rearmed(o.Addr, Rule, detector.DirOut))
		return
	}
	d.env.Reporter.Report(d.finding(s, o, sec, n, conns))
	s.again = true
	s.muted = max(s.muted, d.env.Reporter.Rearmed(o.Addr, Rule, detector.DirOut))
	// The next finding for the host (after the engine's rearm period)
	// carries evidence of its own: its dump starts empty and its sampling
	// rate is that of its own records.
	s.samples.Reset()
	s.maxRate, s.wait = 0, 0
}

// admit passes a contact of a host without a table through the gate. A
// contact to a mail server the host's log holds within the window updates
// that entry. A contact to another one returns the host's new table, seeded
// with the logged contacts, when it is the gate-th distinct mail server
// within the window; before that it is logged and admit returns nil.
// Entries that went stale are unlinked from the host's chain on the way.
func (d *Detector) admit(h uint32, dst *detector.Key16, port uint16, from, sec uint32) *hostState {
	n, cut := 0, false
	link := &d.refs[h]
	// The chain holds at most gate-1 live entries and those that went
	// stale since the last walk; the bound only guards against a cycle.
	for steps := 0; *link != 0 && steps < 4*d.gate+64; steps++ {
		e := d.entry(*link, h)
		if e == nil { // overwritten: the rest of the chain is older still
			*link = 0
			cut = true
			break
		}
		if e.last+d.w <= sec {
			*link = e.prev
			continue
		}
		if e.dst == *dst {
			e.first, e.last = min(e.first, from), max(e.last, sec)
			e.conns++
			e.port = port
			return nil
		}
		n++
		link = &e.prev
	}
	// A chain cut by the log turning over (more hosts below their gate
	// than it holds) would keep a host that needs longer than the log's
	// turnover to reach its gate below it forever: a host that lost
	// entries and still has another live mail server besides this one gets
	// its table now.
	if n+1 < d.gate && (!cut || n == 0) {
		d.push(h, dst, port, from, sec)
		return nil
	}
	s := d.newState(h)
	for seq, steps := d.refs[h], 0; seq != 0 && steps < 4*d.gate+64; steps++ {
		e := d.entry(seq, h)
		if e == nil {
			break
		}
		if e.last+d.w > sec {
			d.seed(s, &e.server, sec)
		}
		seq = e.prev
	}
	d.refs[h] = stateBit | s.idx
	return s
}

// entry returns the log entry of host h with sequence number seq, nil when
// it was overwritten.
func (d *Detector) entry(seq, h uint32) *logged {
	if len(d.log) == 0 {
		return nil
	}
	if e := &d.log[seq&uint32(len(d.log)-1)]; e.seq == seq && e.host == h {
		return e
	}
	return nil
}

// push logs a contact of host h to a new mail server as its newest entry.
func (d *Detector) push(h uint32, dst *detector.Key16, port uint16, from, sec uint32) {
	if len(d.log) == 0 {
		d.log = make([]logged, logMin)
	}
	seq := d.seq
	e := &d.log[seq&uint32(len(d.log)-1)]
	if e.seq != 0 && e.last+d.w > sec && len(d.log) < logMax { // the oldest entry is live: grow
		d.growLog()
		e = &d.log[seq&uint32(len(d.log)-1)]
	}
	*e = logged{server: server{dst: *dst, first: from, last: sec, conns: 1, port: port}, seq: seq, prev: d.refs[h], host: h}
	d.refs[h] = seq
	if d.seq++; d.seq == stateBit {
		d.seq = 1
	}
}

// growLog doubles the log. It holds the last len(log) sequence numbers,
// which keep distinct places in a ring twice as long.
func (d *Detector) growLog() {
	n := make([]logged, 2*len(d.log))
	mask := uint32(len(n) - 1)
	for i := range d.log {
		if e := &d.log[i]; e.seq != 0 {
			n[e.seq&mask] = *e
		}
	}
	d.log = n
}

// newState gives host h an empty table.
func (d *Detector) newState(h uint32) *hostState {
	var s *hostState
	if n := len(d.pool); n > 0 {
		s = d.pool[n-1]
		d.pool = d.pool[:n-1]
	} else {
		s = &hostState{tab: make([]server, 8)}
	}
	s.host = h
	if n := len(d.free); n > 0 {
		s.idx = d.free[n-1]
		d.free = d.free[:n-1]
		d.states[s.idx] = s
	} else {
		s.idx = uint32(len(d.states))
		d.states = append(d.states, s)
	}
	return s
}

// drop removes a host's table; the host passes the gate again. Small
// tables are kept for reuse.
func (d *Detector) drop(s *hostState) {
	d.refs[s.host] = 0
	d.states[s.idx] = nil
	d.free = append(d.free, s.idx)
	if len(s.tab) <= 64 && len(d.pool) < 256 {
		clear(s.tab)
		*s = hostState{tab: s.tab}
		d.pool = append(d.pool, s)
	}
}

// seed puts a logged contact into a new table.
func (d *Detector) seed(s *hostState, c *server, sec uint32) {
	if (s.n+1)*4 > len(s.tab)*3 {
		d.rehash(s, 2*len(s.tab), sec)
	}
	mask := len(s.tab) - 1
	i := int(detector.Hash16(&c.dst, 25)) & mask
	for ; s.tab[i].conns != 0; i = (i + 1) & mask {
		if t := &s.tab[i]; t.dst == c.dst {
			t.first, t.last = min(t.first, c.first), max(t.last, c.last)
			t.conns += c.conns
			return
		}
	}
	s.tab[i] = *c
	s.n++
	s.last = max(s.last, c.last)
}

func (d *Detector) finding(s *hostState, o *detector.Orientation, sec uint32, n int, conns uint64) detector.Finding {
	var probes []detector.Probe
	first, last := ^uint32(0), uint32(0)
	for i := range s.tab {
		c := &s.tab[i]
		if c.conns == 0 || c.last+d.w <= sec {
			continue
		}
		at := detector.SeenIn(c.first, c.last, sec, d.w)
		first, last = min(first, at), max(last, c.last)
		probes = append(probes, detector.Probe{Time: time.Unix(int64(at), 0).UTC(), Src: o.Addr,
			Dst: detector.AddrFrom16(c.dst), DstPort: c.port, Proto: flow.ProtoTCP})
	}
	slices.SortFunc(probes, func(x, y detector.Probe) int {
		return cmp.Or(x.Time.Compare(y.Time), x.Dst.Compare(y.Dst))
	})
	f := detector.Finding{
		Kind: detector.KindSpam, Direction: detector.DirOut, InternalIP: o.Addr, Rule: Rule,
		Measured: float64(n), Threshold: float64(d.conf.MinDestinations), Unit: "destinations",
		FirstSeen: time.Unix(int64(first), 0).UTC(), LastSeen: time.Unix(int64(last), 0).UTC(),
		SamplingRate: max(s.maxRate, 1), Samples: conns, Port: s.port,
		Detail: fmt.Sprintf("SMTP connections to %d distinct mail servers within %s", n, d.conf.Window.D()),
	}
	if m := d.env.EvidenceProbes; len(probes) > m {
		f.ProbesOmitted = len(probes) - m
		probes = probes[:m]
	}
	f.Probes = probes
	// the dump shows the finding's window only
	f.Packets, f.PacketsOmitted = s.samples.CopySince((int64(sec) - int64(d.w) + 1) * 1e9)
	return f
}

func (d *Detector) insert(s *hostState, dst *detector.Key16, port uint16, from, sec uint32) bool {
	s.last = max(s.last, sec)
	mask := len(s.tab) - 1
	i := int(detector.Hash16(dst, 25)) & mask
	for ; s.tab[i].conns != 0; i = (i + 1) & mask {
		if c := &s.tab[i]; c.dst == *dst {
			isNew := c.last+d.w <= sec
			if isNew {
				c.first, c.conns = from, 0
			}
			c.first = min(c.first, from)
			c.last = max(c.last, sec)
			c.conns++
			c.port = port
			return isNew
		}
	}
	if (s.n+1)*4 > len(s.tab)*3 {
		size := len(s.tab)
		if s.n+1 <= d.conf.MaxDestinations {
			size *= 2
		}
		d.rehash(s, size, sec)
		if (s.n+1)*4 > len(s.tab)*3 {
			return false // full of live destinations: the verdict is long proven
		}
		return d.insert(s, dst, port, from, sec)
	}
	s.tab[i] = server{dst: *dst, first: from, last: sec, conns: 1, port: port}
	s.n++
	return true
}

func (d *Detector) rehash(s *hostState, size int, sec uint32) {
	d.tmp = append(d.tmp[:0], s.tab...)
	if size != len(s.tab) {
		s.tab = make([]server, size)
	} else {
		clear(s.tab)
	}
	s.n = 0
	mask := size - 1
	for _, c := range d.tmp {
		if c.conns == 0 || c.last+d.w <= sec {
			continue
		}
		i := int(detector.Hash16(&c.dst, 25)) & mask
		for s.tab[i].conns != 0 {
			i = (i + 1) & mask
		}
		s.tab[i] = c
		s.n++
	}
}

// Tick implements detector.Detector: every quarter window it drops the
// tables whose entries are all stale.
func (d *Detector) Tick(now int64) {
	if now < d.sweep {
		return
	}
	d.sweep = now + int64(max(d.w/4, 1))*1e9
	sec := uint32(now / 1e9)
	for _, s := range d.states {
		if s != nil && s.last+d.w <= sec {
			d.drop(s)
		}
	}
}

// Flush implements detector.Detector; spam fires as soon as proven.
func (d *Detector) Flush() {}

// Forget implements detector.Detector.
func (d *Detector) Forget(host uint32) {
	if int(host) >= len(d.refs) {
		return
	}
	if ref := d.refs[host]; ref&stateBit != 0 {
		d.drop(d.states[ref&^stateBit])
	}
	d.refs[host] = 0
}
