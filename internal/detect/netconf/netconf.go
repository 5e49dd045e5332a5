// Package netconf is the incorrect_network_config detector. It imports
// internal/flow and internal/detect/detector only. Rules:
//
//   - incorrect_network_config.spoofed_source: a record where neither end is
//     internal — at a customer-facing edge the source belongs to no customer
//     (spoofed or misconfigured) — or a record to a customer whose source
//     belongs to no customer, sent from a MAC the inventory gives a
//     customer's server. Reported per source address (Finding.Source) and
//     MAC (Finding.MAC: two servers leaking the same private source are
//     two cases) for the first 256 distinct sources of a window; further
//     sources (random spoofing) are reported together under the first of
//     them, per MAC they were sent from (another server's leak that
//     starts meanwhile is a case of its own).
//   - incorrect_network_config.foreign_address: an internal source address
//     sent from a MAC that the inventory assigns to another owner than the
//     address (where the data carries MACs; Finding.MAC and Finding.Owner
//     name the sender).
//   - incorrect_network_config.private_destination: an internal address
//     sending to private, CGNAT or bogon destinations (private_destinations)
//     on a public interface — a misconfiguration hint, e.g. P2P software.
//     These records are never netscan probes. Answers (SYN-ACKs, resets,
//     a service's UDP replies, ICMP replies and errors) to packets that
//     reached the host from private sources are not counted: the host
//     originated nothing.
//
// Each rule needs min_samples records within the window before it fires.
package netconf

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"padlock/internal/detect/detector"
	"padlock/internal/flow"
)

// Configuration of the incorrect_network_config detector (YAML under
// detect.incorrect_network_config).
type Configuration struct {
	// Enabled turns the detector on. Default true.
	Enabled bool `yaml:"enabled"`
	// Window is the period records are counted over. Default 300s.
	Window detector.Duration `yaml:"window"`
	// MinSamples is the number of records a rule needs within the window.
	// Default 10.
	MinSamples uint64 `yaml:"min_samples"`
	// PrivateDestinations are the ranges that never are legitimate
	// destinations on a public interface. Default: 0.0.0.0/8, 10.0.0.0/8,
	// 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12,
	// 192.168.0.0/16, 240.0.0.0/4, fc00::/7, fe80::/10. The documentation and
	// benchmarking ranges are left out on purpose: labs and tests use them
	// as public addresses.
	PrivateDestinations []netip.Prefix `yaml:"private_destinations"`
}

// DefaultPrivate is the default of PrivateDestinations.
var DefaultPrivate = []string{"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.168.0.0/16", "240.0.0.0/4", "fc00::/7", "fe80::/10"}

// Defaults returns the documented defaults.
func Defaults() Configuration {
	c := Configuration{Enabled: true, Window: detector.Duration(300 * time.Second), MinSamples: 10}
	for _, p := range DefaultPrivate {
		c.PrivateDestinations = append(c.PrivateDestinations, netip.MustParsePrefix(p))
	}
	return c
}

// Validate checks the configuration; errors name the key.
func (c Configuration) Validate() error {
	var errs []error
	if c.Window.D() < time.Second {
		errs = append(errs, errors.New("window: must be >= 1s"))
	}
	if c.MinSamples < 1 {
		errs = append(errs, errors.New("min_samples: must be >= 1"))
	}
	for i, p := range c.PrivateDestinations {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("private_destinations[%d]: invalid prefix", i))
		}
	}
	return errors.Join(errs...)
}

// Rules of this detector's findings.
const (
	RuleSpoofedSource      = "incorrect_network_config.spoofed_source"
	RuleForeignAddress     = "incorrect_network_config.foreign_address"
	RulePrivateDestination = "incorrect_network_config.private_destination"
)

// PrivateSet is a fast membership test for PrivateDestinations: a table of
// first bytes filters before the prefixes are tried.
type PrivateSet struct {
	first4, first6 [256]bool
	pfx            []netip.Prefix
}

// NewPrivateSet builds the set.
func NewPrivateSet(pfx []netip.Prefix) *PrivateSet {
	s := &PrivateSet{}
	for _, p := range pfx {
		p = p.Masked()
		s.pfx = append(s.pfx, p)
		tab, b0 := &s.first6, p.Addr().As16()[0]
		if p.Addr().Is4() {
			tab, b0 = &s.first4, p.Addr().As4()[0]
		}
		bits := min(p.Bits(), 8)
		for i := 0; i < 256; i++ {
			if bits == 0 || i>>(8-bits) == int(b0)>>(8-bits) {
				tab[i] = true
			}
		}
	}
	return s
}

// Contains reports whether a is in the set.
func (s *PrivateSet) Contains(a netip.Addr) bool {
	if a.Is4() {
		if !s.first4[a.As4()[0]] {
			return false
		}
	} else if a.Is4In6() {
		return s.Contains(a.Unmap())
	} else if !s.first6[a.As16()[0]] {
		return false
	}
	for _, p := range s.pfx {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Networks is what the detector needs to know about owners.
type Networks interface {
	Owner(addr netip.Addr) (owner string, ok bool)
	MACOwner(mac flow.MAC) (owner string, ok bool)
}

type counter struct {
	first, last int64
	recs        uint64
	maxRate     uint32
	muted       int64
	distinct    int
	seen        [4]detector.Key16 // first distinct remotes/sources (exact up to 4); seen[0] is the first
	mac         flow.MAC
	owner       string
	samples     *detector.Samples
}

// foreignKey is a source that belongs to no customer and the MAC it was
// sent from: two servers leaking the same private source (Docker's
// 172.17.0.2) are two cases, each with its own records and evidence.
type foreignKey struct {
	src detector.Key16
	mac flow.MAC
}

// overflow is the counter of the sources beyond the table's that one MAC
// sent. src is the first source of its episode (random spoofing, until
// a window without it): its findings' source and rearm key, so one
// episode is one case, not one per window under another random address.
type overflow struct {
	mac flow.MAC
	src netip.Addr
	c   *counter
}

const maxOverflows = 8

type macOwned struct {
	mac          flow.MAC
	owned, valid bool
	at           int64 // ns: event time of the lookup (see macRecheck)
}

type macCache struct {
	mac      flow.MAC
	mismatch bool
	valid    bool
	at       int64 // ns: event time of the lookup (see macRecheck)
}

// macRecheck is how long (event time) an answer of the inventory about a
// MAC is reused: a corrected inventory (a server's new MAC, an address
// moved to another server) takes effect within it, instead of a cached
// mismatch reporting the fixed server again.
const macRecheck = int64(60 * time.Second)

// SameOwner reports whether an address held by addrOwner may be sent from
// a MAC held by macOwner: the same holder, or a holder the address's
// contains ("customer:7" holds "customer:7/server:12": a customer's
// standalone address may be used by any of its servers, a server's
// address only by that server).
func SameOwner(addrOwner, macOwner string) bool {
	return addrOwner == macOwner || strings.HasPrefix(macOwner, addrOwner) && macOwner[len(addrOwner)] == '/'
}

// Detector is the incorrect_network_config detector.
type Detector struct {
	conf    Configuration
	env     detector.Env
	nets    Networks
	w       int64
	private map[uint32]*counter
	foreign map[foreignKey]*counter
	// overflows count the sources beyond the first 256, per MAC they
	// were sent from (a server spoofing random sources fills the table;
	// another server's fixed leak that starts meanwhile is a case of its
	// own, not part of the first one's episode); at most maxOverflows,
	// further MACs share the last
	overflows []overflow
	mismatch  map[uint32]*counter
	macs      []macCache
	// inMACs are the last source MACs of records to an internal address
	// and whether a customer's server owns them (an edge's inbound traffic
	// comes from one or two router MACs: asked once, not per record)
	inMACs [2]macOwned
	inNext int
}

// New returns the detector; conf must be valid. nets may be nil (no owner
// inventory: foreign_address never fires).
func New(conf Configuration, env detector.Env, nets Networks) *Detector {
	return &Detector{conf: conf, env: env, nets: nets, w: conf.Window.D().Nanoseconds(),
		private: map[uint32]*counter{}, foreign: map[foreignKey]*counter{}, mismatch: map[uint32]*counter{}}
}

// count adds r to c (resetting it when its window is over) and reports
// whether c now proves its rule.
func (d *Detector) count(c *counter, r *flow.Record, start, end int64, other netip.Addr) bool {
	// a record counts while it starts within the window (first .. first +
	// window): a NetFlow record of a long-lived flow, longer than the
	// window, would otherwise open a new window each time
	if c.recs > 0 && start-c.first > d.w {
		// a new window: the counts start again; who sent (MAC, owner)
		// and the muting stay
		*c = counter{samples: c.samples, muted: c.muted, mac: c.mac, owner: c.owner}
		if c.samples != nil {
			c.samples.Reset()
		}
	}
	if c.samples == nil && c.recs+1 >= max(d.conf.MinSamples/2, 1) {
		// kept from halfway to a verdict: most counters (a host that once
		// asked a metadata service) never get there
		c.samples = detector.NewSamples(d.env.EvidencePackets).Within(d.w)
		c.samples.Missed(c.recs)
	}
	if c.recs == 0 || start < c.first { // a second exporter may lag
		c.first = start
	}
	c.recs++
	c.last = max(c.last, end)
	c.maxRate = max(c.maxRate, detector.Rate(r))
	k := other.As16()
	known := false
	for i := 0; i < min(c.distinct, len(c.seen)); i++ {
		if c.seen[i] == k {
			known = true
			break
		}
	}
	if !known {
		if c.distinct < len(c.seen) {
			c.seen[c.distinct] = k
		}
		c.distinct++ // beyond 4 this counts records of unseen remotes: an upper estimate
	}
	if c.samples != nil {
		c.samples.Add(r)
	}
	return c.recs >= d.conf.MinSamples && end >= c.muted
}

func (d *Detector) finding(c *counter, rule string, end int64) detector.Finding {
	f := detector.Finding{
		Kind: detector.KindIncorrectConf, Direction: detector.DirOut, Rule: rule,
		Measured: float64(c.recs), Threshold: float64(d.conf.MinSamples), Unit: "records",
		FirstSeen: detector.Time(c.first), LastSeen: detector.Time(c.last),
		SamplingRate: max(c.maxRate, 1), Samples: c.recs,
	}
	f.Packets, f.PacketsOmitted = c.samples.Copy()
	c.muted = end + 1e9
	return f
}

// first1 is the first remote (or, for the overflow counter, source) of
// the window.
func (c *counter) first1() netip.Addr { return detector.AddrFrom16(c.seen[0]) }

func distinct(c *counter) string {
	if c.distinct > len(c.seen) {
		return fmt.Sprintf("more than %d", len(c.seen))
	}
	return fmt.Sprint(c.distinct)
}

// neighbourDiscovery reports whether r is ICMPv6 router or neighbour
// discovery (types 133 to 137), which a host sends to its neighbours'
// unicast addresses too (a ULA neighbour's reachability check).
func neighbourDiscovery(r *flow.Record) bool {
	t := r.DstPort >> 8
	return r.Proto == flow.ProtoICMPv6 && t >= 133 && t <= 137
}

// onLink reports whether a record to dst never leaves the link it was sent
// on, so that no destination or source of it is routed anywhere: the
// limited broadcast 255.255.255.255 (DHCP, LAN discovery), link-local
// multicast (224.0.0.0/24: VRRP, OSPF; ff02::/16), IPv6 neighbour
// discovery to any address and, for ICMPv6, a link-local destination (the
// router's echo requests from its link-local address answered from a
// global one).
func onLink(r *flow.Record, dst netip.Addr) bool {
	return dst == limitedBroadcast || dst.IsLinkLocalMulticast() || neighbourDiscovery(r) ||
		r.Proto == flow.ProtoICMPv6 && dst.IsLinkLocalUnicast()
}

// answers reports whether r, which an internal host sends, answers a
// packet the remote sent: a TCP reset, a TCP segment with ACK from the
// host's (lower) service port, UDP from a well-known port to a higher
// one, an ICMP echo reply or error. Packets with private sources reach
// servers from the internet (a remote NAT leaking, spoofing), and the
// server's SYN-ACKs, answers and port unreachables then go to a private
// destination: the server originated nothing, its configuration is fine.
func answers(r *flow.Record, o *detector.Orientation) bool {
	switch r.Proto {
	case flow.ProtoTCP:
		return r.TCPFlags&flow.TCPRst != 0 || r.TCPFlags&flow.TCPAck != 0 && o.LocalPort < o.RemotePort
	case flow.ProtoUDP:
		return o.LocalPort < 1024 && o.RemotePort >= 1024
	case flow.ProtoICMP:
		t := r.DstPort >> 8
		return t == 0 || t == 3 || t == 4 || t == 5 || t == 11 || t == 12
	case flow.ProtoICMPv6:
		t := r.DstPort >> 8
		return t < 128 || t == 129
	}
	return false
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// Observe implements detector.Detector.
func (d *Detector) Observe(r *flow.Record, o *detector.Orientation) {
	if o.Dir != detector.Out {
		// a record to a customer from a source that is nobody's, sent
		// from a MAC the inventory gives a customer's server: that server
		// spoofs (towards another customer of the same edge), as a record
		// where neither end is internal shows
		if !r.SrcMAC.IsZero() && !o.RemoteInternal && d.nets != nil && d.customerMAC(r.SrcMAC, o.End) {
			d.ObserveForeign(r, o.Start, o.End)
		}
		return
	}
	// a private remote that is a customer's address (CGNAT subscribers of
	// the provider's own, in the customer list) is no misconfiguration,
	// nor is IPv6 neighbour discovery with the router's link-local address
	if !o.RemoteInternal && d.env.Private != nil && d.env.Private(o.Remote) && !onLink(r, o.Remote.Unmap()) && !answers(r, o) {
		c := d.private[o.Host]
		if c == nil {
			c = &counter{}
			d.private[o.Host] = c
		}
		if d.count(c, r, o.Start, o.End, o.Remote) && d.env.Reporter.Armed(o.Addr, RulePrivateDestination, detector.DirOut, o.End) {
			f := d.finding(c, RulePrivateDestination, o.End)
			f.InternalIP, f.Remote = o.Addr, c.first1()
			f.Detail = fmt.Sprintf("%d records to private/bogon destinations (%s distinct, e.g. %s) leave a public interface", c.recs, distinct(c), f.Remote)
			d.env.Reporter.Report(f)
		}
	}
	if d.nets == nil || r.SrcMAC.IsZero() {
		return
	}
	for int(o.Host) >= len(d.macs) {
		d.macs = append(d.macs, macCache{})
	}
	mc := &d.macs[o.Host]
	var macOwner string
	if !mc.valid || mc.mac != r.SrcMAC || o.End-mc.at > macRecheck {
		mc.valid, mc.mac, mc.mismatch, mc.at = true, r.SrcMAC, false, o.End
		a, ok1 := d.nets.MACOwner(r.SrcMAC)
		b, ok2 := d.nets.Owner(o.Addr)
		mc.mismatch = ok1 && ok2 && !SameOwner(b, a)
		macOwner = a
	}
	if !mc.mismatch {
		return
	}
	c := d.mismatch[o.Host]
	if c == nil {
		if macOwner == "" {
			macOwner, _ = d.nets.MACOwner(r.SrcMAC)
		}
		c = &counter{mac: r.SrcMAC, owner: macOwner}
		d.mismatch[o.Host] = c
	} else if c.mac != r.SrcMAC && (c.recs == 0 || o.Start-c.first > d.w) {
		// a new window names its own sender, as ObserveForeign's do: the
		// server that misused the address before may not be the one now
		if macOwner == "" {
			macOwner, _ = d.nets.MACOwner(r.SrcMAC)
		}
		c.mac, c.owner = r.SrcMAC, macOwner
	}
	if d.count(c, r, o.Start, o.End, o.Remote) && d.env.Reporter.ArmedMAC(o.Addr, c.mac, RuleForeignAddress, detector.DirOut, o.End) {
		f := d.finding(c, RuleForeignAddress, o.End)
		f.InternalIP, f.MAC, f.Owner = o.Addr, c.mac, c.owner
		ipOwner, _ := d.nets.Owner(o.Addr)
		f.Detail = fmt.Sprintf("address %s (assigned to %s) sent from MAC %s (assigned to %s)", o.Addr, ipOwner, c.mac, c.owner)
		d.env.Reporter.Report(f)
	}
}

// customerMAC reports whether the inventory assigns mac to an owner.
func (d *Detector) customerMAC(mac flow.MAC, now int64) bool {
	slot := d.inNext
	for i := range d.inMACs {
		if c := &d.inMACs[i]; c.valid && c.mac == mac {
			if now-c.at <= macRecheck {
				return c.owned
			}
			slot = i // asked again in its own place
			break
		}
	}
	_, owned := d.nets.MACOwner(mac)
	d.inMACs[slot] = macOwned{mac: mac, owned: owned, valid: true, at: now}
	if slot == d.inNext {
		d.inNext = (d.inNext + 1) % len(d.inMACs)
	}
	return owned
}

// ObserveForeign implements detector.ForeignObserver. Sources that only
// exist on the link — unspecified (a DHCP client without an address, IPv6
// duplicate address detection) and link-local (router and neighbour
// solicitations, APIPA) — and records that never leave the link (see
// onLink: the provider's DHCP server answering by broadcast, a gateway's
// VRRP) are ordinary link chatter at a customer-facing edge: they cannot
// be routed, so they spoof nobody.
func (d *Detector) ObserveForeign(r *flow.Record, start, end int64) {
	// IPv4-mapped ends are reported (and checked against protected) as
	// the IPv4 addresses they are
	from, to := r.SrcAddr.Unmap(), r.DstAddr.Unmap()
	if from.IsUnspecified() || from.IsLinkLocalUnicast() || onLink(r, to) {
		return
	}
	k := foreignKey{from.As16(), r.SrcMAC}
	c := d.foreign[k]
	src, over := from, false
	if c == nil {
		if len(d.foreign) >= 256 {
			o := d.overflowOf(r.SrcMAC, from)
			c, src, over = o.c, o.src, true
		} else {
			c = &counter{mac: r.SrcMAC}
			d.foreign[k] = c
		}
	}
	if c.recs == 0 || (over && start-c.first > d.w) { // a new window, as count opens it
		c.mac = r.SrcMAC
	}
	// for an overflow counter, distinct counts sources; otherwise destinations
	other := to
	if over {
		other = from
	}
	if !d.count(c, r, start, end, other) || !d.env.Reporter.ArmedMAC(src, c.mac, RuleSpoofedSource, detector.DirOut, end) {
		return
	}
	f := d.finding(c, RuleSpoofedSource, end)
	f.Source, f.MAC = src, c.mac
	if over {
		f.Detail = fmt.Sprintf("%d records from %s distinct source addresses that belong to no customer (spoofed), e.g. %s", c.recs, distinct(c), c.first1())
	} else {
		f.Remote = c.first1()
		f.Detail = fmt.Sprintf("%d records from %s, which belongs to no customer, to %s destinations (e.g. %s)", c.recs, src, distinct(c), f.Remote)
	}
	d.env.Reporter.Report(f)
}

// Tick implements detector.Detector: drops counters idle for a window.
func (d *Detector) Tick(now int64) {
	for k, c := range d.foreign {
		if now-c.last > d.w {
			delete(d.foreign, k)
		}
	}
	for i := 0; i < len(d.overflows); {
		if now-d.overflows[i].c.last > d.w {
			d.overflows[i] = d.overflows[len(d.overflows)-1]
			d.overflows = d.overflows[:len(d.overflows)-1]
			continue
		}
		i++
	}
}

// overflowOf returns the overflow counter of the sources mac sent, made
// with from as its first source when there is none.
func (d *Detector) overflowOf(mac flow.MAC, from netip.Addr) *overflow {
	for i := range d.overflows {
		if d.overflows[i].mac == mac {
			return &d.overflows[i]
		}
	}
	if n := len(d.overflows); n >= maxOverflows {
		return &d.overflows[n-1]
	}
	d.overflows = append(d.overflows, overflow{mac: mac, src: from, c: &counter{}})
	return &d.overflows[len(d.overflows)-1]
}

// Flush implements detector.Detector; the rules fire as soon as proven.
func (d *Detector) Flush() {}

// Forget implements detector.Detector.
func (d *Detector) Forget(host uint32) {
	delete(d.private, host)
	delete(d.mismatch, host)
	if int(host) < len(d.macs) {
		d.macs[host] = macCache{}
	}
}
