// Package spam is the spam detector: an internal address opening SMTP
// connections (port 25 by default) to many distinct mail servers within a
// window. Mail a server receives and its replies are never counted; each
// distinct destination counts once however many connections it gets.
// It imports internal/flow and internal/detect/detector only.
//
// State exists only for hosts that open SMTP connections: an open-addressing
// table of mail servers (28 bytes each) capped at max_destinations; stale
// entries are dropped when room is needed.
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
	// MinSamples is the number of connection records (as received) the
	// verdict needs. Default 100.
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

type hostState struct {
	tab     []server
	n       int
	port    uint16
	muted   int64
	maxRate uint32
	samples *detector.Samples
}

// Detector is the spam detector.
type Detector struct {
	conf  Configuration
	env   detector.Env
	w     uint32
	ports [1024]uint64
	hosts []*hostState
	tmp   []server
}

// New returns the detector; conf must be valid.
func New(conf Configuration, env detector.Env) *Detector {
	d := &Detector{conf: conf, env: env, w: uint32(conf.Window.Seconds())}
	for _, p := range conf.Ports {
		d.ports[p/64] |= 1 << (p % 64)
	}
	return d
}

// Observe implements detector.Detector.
func (d *Detector) Observe(r *flow.Record, o *detector.Orientation) {
	if o.Dir != detector.DirOut || r.Proto != flow.ProtoTCP || d.ports[o.RemotePort/64]&(1<<(o.RemotePort%64)) == 0 {
		return
	}
	if !detector.IsSYNOnly(r) && !(r.TCPFlags&flow.TCPSyn != 0 && detector.IsFlow(r) && detector.IsClientSide(o.LocalPort, o.RemotePort)) {
		return
	}
	for int(o.Host) >= len(d.hosts) {
		d.hosts = append(d.hosts, nil)
	}
	s := d.hosts[o.Host]
	if s == nil {
		s = &hostState{tab: make([]server, 4)}
		d.hosts[o.Host] = s
	}
	if rate := detector.Rate(r); rate > s.maxRate {
		s.maxRate = rate
	}
	sec := uint32(o.End / 1e9)
	dst := o.Remote.As16()
	isNew := d.insert(s, &dst, o.RemotePort, sec)
	if s.samples != nil {
		s.samples.Add(r)
	}
	if !isNew || s.n < d.conf.MinDestinations/2 {
		return
	}
	if s.samples == nil {
		s.samples = detector.NewSamples(d.env.EvidencePackets)
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
		return
	}
	s.muted = o.End + 1e9
	if !d.env.Reporter.Armed(o.Addr, Rule, detector.DirOut, o.End) {
		return
	}
	d.env.Reporter.Report(d.finding(s, o, sec, n, conns))
}

func (d *Detector) finding(s *hostState, o *detector.Orientation, sec uint32, n int, conns uint64) detector.Finding {
	var probes []detector.Probe
	first, last := ^uint32(0), uint32(0)
	for i := range s.tab {
		c := &s.tab[i]
		if c.conns == 0 || c.last+d.w <= sec {
			continue
		}
		first, last = min(first, c.first), max(last, c.last)
		probes = append(probes, detector.Probe{Time: time.Unix(int64(c.first), 0).UTC(), Src: o.Addr,
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
	f.Packets, f.PacketsOmitted = s.samples.Copy()
	return f
}

func (d *Detector) insert(s *hostState, dst *detector.Key16, port uint16, sec uint32) bool {
	mask := len(s.tab) - 1
	i := int(detector.Hash16(dst, 25)) & mask
	for ; s.tab[i].conns != 0; i = (i + 1) & mask {
		if c := &s.tab[i]; c.dst == *dst {
			isNew := c.last+d.w <= sec
			if isNew {
				c.first, c.conns = sec, 0
			}
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
		return d.insert(s, dst, port, sec)
	}
	s.tab[i] = server{dst: *dst, first: sec, last: sec, conns: 1, port: port}
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

// Tick implements detector.Detector.
func (d *Detector) Tick(int64) {}

// Flush implements detector.Detector; spam fires as soon as proven.
func (d *Detector) Flush() {}

// Forget implements detector.Detector.
func (d *Detector) Forget(host uint32) {
	if int(host) < len(d.hosts) {
		d.hosts[host] = nil
	}
}
