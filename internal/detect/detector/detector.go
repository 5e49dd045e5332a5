// Package detector defines what a padlock detector is: the Detector
// interface the engine (package detect) drives, the Orientation of a record
// as seen from its internal end, the Reporter a detector hands findings to,
// the Finding it reports, and small building blocks every detector shares
// (Duration, Samples, address keys). It imports only the standard library
// and internal/flow; it must not import the detectors or the engine.
package detector

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"time"

	"padlock/internal/flow"
)

// NoHost is the host index of records where neither end is internal.
const NoHost = ^uint32(0)

// Side is the end of a record an Orientation looks from: the internal
// address as its source (Out) or its destination (In). A number, not the
// Direction a finding carries: every detector asks it of every record.
type Side uint8

const (
	Out Side = iota
	In
)

// Direction returns the finding direction of s.
func (s Side) Direction() Direction {
	if s == In {
		return DirIn
	}
	return DirOut
}

// SideOf returns the side of finding direction d (In for DirIn, else Out).
func SideOf(d Direction) Side {
	if d == DirIn {
		return In
	}
	return Out
}

// Orientation is a record seen from one internal end. The engine computes it
// once per record and internal end and passes it to every detector.
type Orientation struct {
	Dir  Side       // Out: Addr is the source; In: Addr is the destination
	Host uint32     // engine's dense index of Addr; detectors index their per-host state with it
	Addr netip.Addr // the internal address
	// Remote is the other end (external, or another customer's address).
	Remote netip.Addr
	// LocalPort and RemotePort are the ports at Addr's and Remote's end.
	LocalPort, RemotePort uint16
	// RemoteInternal: Remote is a customer's address too (the record is
	// seen from both ends).
	RemoteInternal bool
	// Start and End are the record's times in Unix nanoseconds (End >= Start).
	Start, End int64
}

// Detector is one abuse detector. All methods are called from the engine's
// single goroutine; a detector needs no locking. Observe is the hot path: it
// must not allocate in steady state.
type Detector interface {
	// Observe sees one record from the point of view of one internal end.
	Observe(r *flow.Record, o *Orientation)
	// Tick is called when event time (the highest record end seen) advances
	// by a second or more; detectors confirm pending verdicts here.
	Tick(now int64)
	// Forget drops the state of a host that expired; the index is reused.
	Forget(host uint32)
	// Flush emits every verdict the data seen so far proves (end of input).
	Flush()
}

// ForeignObserver is implemented by detectors that want records where
// neither end is internal (spoofed or misconfigured sources).
type ForeignObserver interface {
	ObserveForeign(r *flow.Record, start, end int64)
}

// Reporter is the engine side a detector reports to.
type Reporter interface {
	// Armed reports whether a finding for (addr, rule, dir) at event time t
	// would be reported now: false while the re-arm period of the previous
	// finding for the same address, rule and direction runs (a victim's
	// inbound finding does not silence its own outbound flood). Detectors
	// ask before they build evidence.
	Armed(addr netip.Addr, rule string, dir Direction, t int64) bool
	// ArmedMAC is Armed for a finding that names the MAC its traffic was
	// sent from (Finding.MAC): its re-arm period is that sender's, so a
	// second server leaking the same source or misusing the same address
	// is reported while the first one's period runs.
	ArmedMAC(addr netip.Addr, mac flow.MAC, rule string, dir Direction, t int64) bool
	// Report hands over a finding. The engine applies re-arm (keyed by
	// address, Finding.MAC, rule and direction), marks protected addresses
	// and passes it on.
	Report(f Finding)
	// Rearmed returns the event time (Unix ns) from which a finding for
	// (addr, rule, dir) is reported again; 0 when it would be reported
	// now. Detectors use it to stop evaluating a verdict that could only be
	// suppressed.
	Rearmed(addr netip.Addr, rule string, dir Direction) int64
	// Addr returns the internal address of a host index.
	Addr(host uint32) netip.Addr
}

// Env is what the engine gives every detector at construction.
type Env struct {
	Reporter Reporter
	// EvidencePackets is the number of sample records a finding carries.
	EvidencePackets int
	// EvidenceProbes is the number of probe lines a netscan finding carries.
	EvidenceProbes int
	// Private reports whether an address is private, CGNAT or bogon (never a
	// legitimate destination on a public interface).
	Private func(netip.Addr) bool
	// Hosts is the table of per-host records the detectors share; the
	// engine passes its own so that a record touches one host record, not
	// one array per detector. Nil: the detector keeps a table of its own.
	Hosts *Hosts
}

// Host is the small per-host state of every detector, kept together in one
// record per internal address so that a record touches one or two cache
// lines of host state instead of one line in each detector's own array. The
// first 64 bytes are read by nearly every record; both directions' packet
// meters fill the second line. 128 bytes in all: 64-byte aligned in large
// tables, and the two lines are one pair that the processor's adjacent-line
// prefetch fetches together. Each detector reads and writes only its own
// fields and clears them in Forget.
type Host struct {
	// Last is the engine's last record end of the host, Unix seconds.
	Last uint32
	// AttackGen, AttackCur and AttackPrev are the attack detector's gate:
	// the tumbling window's number and its and the previous window's counts.
	AttackGen             uint32
	AttackCur, AttackPrev [3]uint32
	// ScanFilter is the netscan detector's filter of contact key hashes
	// (96 bits), ScanService the last second the host sent a probe from a
	// service port: here, not in netscan's own state, because a busy
	// server's every record asks for it.
	ScanFilter  [3]uint32
	ScanService uint32
	// MeterHead and MeterHot are the packet_limit coarse meters' newest
	// bucket and hot-ring index+1, per direction (0 out, 1 in).
	MeterHead [2]uint32
	MeterHot  [2]int32
	// Meter are the packet_limit coarse buckets per direction.
	Meter [2][MeterBuckets]uint32
}

// MeterBuckets is the number of packet_limit coarse buckets per direction.
const MeterBuckets = 8

// Hosts is a dense table of Host records indexed by host index.
type Hosts struct{ H []Host }

// At returns the record of host, growing the table when needed.
func (t *Hosts) At(host uint32) *Host {
	if int(host) < len(t.H) {
		return &t.H[host]
	}
	return t.grow(host)
}

func (t *Hosts) grow(host uint32) *Host {
	if int(host) >= cap(t.H) {
		n := make([]Host, len(t.H), max(int(host)+1, 2*cap(t.H), 64))
		copy(n, t.H)
		t.H = n
	}
	t.H = t.H[:host+1]
	return &t.H[host]
}

// Duration is a time.Duration that YAML and JSON read and write as a Go
// duration string ("300s", "5m", "1h30m").
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Seconds returns the duration in whole seconds (at least 1 for positive durations).
func (d Duration) Seconds() int64 {
	s := int64(time.Duration(d) / time.Second)
	if s == 0 && d > 0 {
		return 1
	}
	return s
}

// MarshalText writes the duration as "300s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string; a unit is required.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use e.g. 300s, 5m): %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// Key16 is an address as 16 bytes (IPv4 mapped into IPv6), usable as a map
// key without pointers.
type Key16 = [16]byte

// Hash16 mixes an address key and a 32-bit value into a 64-bit hash for the
// detectors' open-addressing tables.
func Hash16(k *Key16, v uint32) uint64 {
	a := binary.LittleEndian.Uint64(k[:8])
	b := binary.LittleEndian.Uint64(k[8:])
	h := a*0x9e3779b97f4a7c15 ^ b*0xc2b2ae3d27d4eb4f ^ uint64(v)*0x165667b19e3779f9
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return h
}

// AddrFrom16 turns a key back into an address (IPv4 unmapped).
func AddrFrom16(k Key16) netip.Addr { return netip.AddrFrom16(k).Unmap() }

// Samples keeps a bounded set of record copies for a finding's traffic dump.
// It keeps the first records it is given up to its capacity and then
// replaces, in turn, kept records that lack packet header bytes by ones that
// have them, so the dump is built from real headers when the source has them.
// Its storage grows with what it keeps, up to its capacity, so the many
// counters that keep a record or two (a million hosts that each asked a
// metadata service once) do not each hold room for a full dump. With
// Within, a full buffer also gives way to newer records, so that a late
// finding shows its own window (CopySince keeps a dump to it).
type Samples struct {
	recs     []flow.Record
	max      int // capacity in records
	seen     uint64
	replace  int
	noHeader int   // kept records without header bytes
	within   int64 // ns; see Within
}

// Within makes a full buffer give way to new records: a kept record that
// ended more than half of window (ns) before a new record's end is replaced
// by it, in the order they were kept. A finding reported long after the
// buffer filled (a flood that goes on past a rearm period) then shows
// traffic of its own window, not the first minutes of the episode: kept
// records are at most half a window old, so all of them lie in the window
// a finding's dump keeps (CopySince) — replaced only once a whole window
// old, a steady stream's kept records sat at the window's start, and a
// finding a whole number of windows later showed none. It returns s.
func (s *Samples) Within(window int64) *Samples { s.within = window; return s }

func recEnd(r *flow.Record) int64 {
	if r.End.IsZero() {
		return r.Start.UnixNano()
	}
	return r.End.UnixNano()
}

// NewSamples returns a buffer for up to n records; it allocates as records
// are kept.
func NewSamples(n int) *Samples { return &Samples{max: n} }

// Add keeps a copy of r if there is room or r improves the set.
func (s *Samples) Add(r *flow.Record) {
	s.seen++
	if len(s.recs) < s.max {
		if len(s.recs) == cap(s.recs) {
			s.grow()
		}
		s.recs = append(s.recs, *r)
		if r.HeaderLength == 0 {
			s.noHeader++
		}
		return
	}
	if s.within > 0 && len(s.recs) > 0 {
		j := s.replace % len(s.recs)
		if old := &s.recs[j]; recEnd(old) < recEnd(r)-s.within/2 {
			if old.HeaderLength == 0 {
				s.noHeader--
			}
			if r.HeaderLength == 0 {
				s.noHeader++
			}
			*old = *r
			s.replace = j + 1
			return
		}
	}
	if r.HeaderLength == 0 || s.noHeader == 0 {
		return
	}
	for i := 0; i < len(s.recs); i++ {
		j := (s.replace + i) % len(s.recs)
		if s.recs[j].HeaderLength == 0 {
			s.recs[j] = *r
			s.replace = j + 1
			s.noHeader--
			return
		}
	}
}

// Missed counts n records offered before the buffer existed (a detector
// that keeps samples only once a verdict comes near): the dump then says
// they were left out.
func (s *Samples) Missed(n uint64) { s.seen += n }

// grow makes room for more records: doubling, at most to the capacity.
func (s *Samples) grow() {
	n := make([]flow.Record, len(s.recs), min(max(2*cap(s.recs), 2), s.max))
	copy(n, s.recs)
	s.recs = n
}

// Reset empties the buffer, keeping its storage.
func (s *Samples) Reset() { s.recs = s.recs[:0]; s.seen = 0; s.replace = 0; s.noHeader = 0 }

// Len is the number of records kept.
func (s *Samples) Len() int { return len(s.recs) }

// Copy returns the kept records sorted by start time (a new slice) and how
// many records were offered but not kept.
func (s *Samples) Copy() ([]flow.Record, int) { return s.CopySince(math.MinInt64) }

// CopySince is Copy of the kept records that ended at or after t (ns): a
// finding's dump shows its own window, and a record kept from before it
// (a buffer that is not full keeps everything it was given since its
// last reset) counts as left out.
func (s *Samples) CopySince(t int64) ([]flow.Record, int) {
	out := make([]flow.Record, 0, len(s.recs))
	for i := range s.recs {
		if recEnd(&s.recs[i]) >= t {
			out = append(out, s.recs[i])
		}
	}
	// insertion sort: tiny n, and it is stable
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Start.Before(out[j-1].Start); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, int(s.seen) - len(out)
}

// Rate returns r's sampling rate, at least 1.
func Rate(r *flow.Record) uint32 {
	if r.SamplingRate == 0 {
		return 1
	}
	return r.SamplingRate
}

// SampledPackets returns the packets of r as sampled, at least one: one
// per sFlow sample or captured packet, a flow record's packets divided by
// its sampling rate. Detectors count them towards min_samples.
func SampledPackets(r *flow.Record) uint64 {
	sp := r.SampledPackets
	if sp == 0 {
		sp = r.Packets / uint64(Rate(r))
	}
	return max(sp, 1)
}

// SampledShare is SampledPackets(r) times part/whole (part <= whole), at
// least one: the samples in the share of a record a detector counts (a
// long flow record's seconds within the window, say).
func SampledShare(r *flow.Record, part, whole uint64) uint64 {
	sp := SampledPackets(r)
	if part < whole {
		sp = MulDiv(sp, part, whole)
	}
	return max(sp, 1)
}

// SeenIn returns the second to show for something (a contact, a mail
// server) first seen at second first and last seen at last, in a finding
// whose window ends at second end and is w seconds long: first when it
// lies in the window; otherwise last. Something seen again and again
// since before the window keeps its first second, but when in the window
// it was first seen is not kept — last is a second it certainly was.
func SeenIn(first, last, end, w uint32) uint32 {
	if end >= w && first <= end-w {
		return last
	}
	return first
}

// MulDiv is a*b/c without overflow, for b <= c.
func MulDiv(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	q, _ := bits.Div64(hi, lo, c)
	return q
}

// Time converts Unix nanoseconds to time.Time in UTC.
func Time(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// IsEchoRequest reports whether an ICMP/ICMPv6 record is an echo request.
func IsEchoRequest(r *flow.Record) bool {
	t := r.DstPort >> 8
	return (r.Proto == flow.ProtoICMP && t == 8) || (r.Proto == flow.ProtoICMPv6 && t == 128)
}

// IsEchoReply reports whether an ICMP/ICMPv6 record is an echo reply.
func IsEchoReply(r *flow.Record) bool {
	t := r.DstPort >> 8
	return (r.Proto == flow.ProtoICMP && t == 0) || (r.Proto == flow.ProtoICMPv6 && t == 129)
}

// IsSYNOnly reports whether a TCP record carries SYN without ACK: a
// connection attempt (a single SYN packet, or a flow record of an attempt
// that was never acknowledged by this side).
func IsSYNOnly(r *flow.Record) bool {
	return r.Proto == flow.ProtoTCP && r.TCPFlags&flow.TCPSyn != 0 && r.TCPFlags&flow.TCPAck == 0
}

// IsFlow reports whether the record aggregates several packets of one flow
// (NetFlow/IPFIX) rather than being one packet (pcap, sFlow sample).
func IsFlow(r *flow.Record) bool {
	return r.Format == flow.FormatNetFlow5 || r.Format == flow.FormatNetFlow9 || r.Format == flow.FormatIPFIX
}

// IsClientSide reports whether, by the usual port layout, the end with
// localPort is the client of a connection with the end at remotePort (the
// service sits on the lower port).
func IsClientSide(localPort, remotePort uint16) bool { return remotePort < localPort }
