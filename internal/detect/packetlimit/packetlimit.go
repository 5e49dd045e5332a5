// Package packetlimit is the packet_limit detector: packets of one internal
// address in one direction, summed over a true sliding window of one-second
// buckets, compared with a packets-per-second limit. It owns only its own
// per-host state; it imports internal/flow and internal/detect/detector and
// must not import the engine or other detectors.
//
// Memory: every host carries a coarse meter (8 buckets of window/7 per
// direction, 40 bytes). A host whose coarse sum reaches an eighth of the limit is
// promoted to a per-second ring (two windows of seconds of packets and
// samples, for the windows measured: see nWin) with
// a per-destination summary; the coarse buckets seed the ring, each bucket's
// packets attributed to the bucket's first second, so the ring never
// overstates the window (a verdict is a proof). A host whose coarse sum falls
// under a sixteenth of the limit is demoted and its ring reused. The
// summary's per-destination counts start at promotion and cover at most the
// last window (two half-window generations); Summary.Window says how long.
package packetlimit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"time"

	"padlock/internal/detect/detector"
	"padlock/internal/flow"
)

// Configuration of the packet_limit detector (YAML under detect.packet_limit).
type Configuration struct {
	// Enabled turns the detector on. Default true.
	Enabled bool `yaml:"enabled"`
	// ThresholdPPS is the limit in packets per second, averaged over Window;
	// the detector fires when the window's packets exceed ThresholdPPS×Window.
	// Default 100000.
	ThresholdPPS uint64 `yaml:"threshold_pps"`
	// Window is the sliding window, whole seconds, 15s..3600s. Default 300s.
	Window detector.Duration `yaml:"window"`
	// Directions lists the directions watched: out (sent by the internal
	// address) and/or in (received: victims of floods). Default [out, in].
	Directions []detector.Direction `yaml:"directions"`
	// MinSamples is the number of samples within the window the detector
	// needs before it fires: sampled packets as received, unscaled (one per
	// sFlow sample or captured packet; a flow record's packet count divided
	// by its sampling rate, so an unsampled NetFlow record of a single
	// flood flow counts every packet). Default 10.
	MinSamples uint64 `yaml:"min_samples"`
	// SummaryExternals is the number of remote addresses listed in a
	// finding's summary (the rest are counted in Sum and ExternalsOmitted).
	// Default 20.
	SummaryExternals int `yaml:"summary_externals"`
	// TrackedExternals is the number of distinct remote addresses counted
	// per host near the limit; traffic of further addresses counts in Sum
	// only. Default 4096.
	TrackedExternals int `yaml:"tracked_externals"`
}

// Defaults returns the documented defaults.
func Defaults() Configuration {
	return Configuration{
		Enabled:          true,
		ThresholdPPS:     100000,
		Window:           detector.Duration(300 * time.Second),
		Directions:       []detector.Direction{detector.DirOut, detector.DirIn},
		MinSamples:       10,
		SummaryExternals: 20,
		TrackedExternals: 4096,
	}
}

// Validate checks the configuration; errors name the key.
func (c Configuration) Validate() error {
	var errs []error
	w := c.Window.D()
	if w < 15*time.Second || w > time.Hour || w%time.Second != 0 {
		errs = append(errs, fmt.Errorf("window: must be whole seconds between 15s and 1h, got %s", w))
	}
	if c.ThresholdPPS == 0 {
		errs = append(errs, errors.New("threshold_pps: must be > 0"))
	}
	if c.Enabled && len(c.Directions) == 0 {
		errs = append(errs, errors.New("directions: must list out, in or both (enabled: false turns the detector off)"))
	}
	for i, d := range c.Directions {
		if d != detector.DirOut && d != detector.DirIn {
			errs = append(errs, fmt.Errorf("directions[%d]: must be out or in, got %q", i, d))
		}
	}
	if c.SummaryExternals < 1 {
		errs = append(errs, errors.New("summary_externals: must be >= 1"))
	}
	if c.TrackedExternals < c.SummaryExternals {
		errs = append(errs, errors.New("tracked_externals: must be >= summary_externals"))
	}
	return errors.Join(errs...)
}

// Rule is the rule name of this detector's findings.
const Rule = "packet_limit.pps"

const nCoarse = detector.MeterBuckets // coarse buckets: all but one cover the window, one is partial

// coarseSum adds the buckets written out: compiling fails here if their
// number changes.
const _ = uint(nCoarse-8) + uint(8-nCoarse)

// coarse is one direction's coarse meter, kept in the shared host record
// (detector.Host): scaled packets per bucket (saturating), the bucket
// number of the newest bucket (0 = empty) and the index+1 into
// Detector.hot (0 when not hot).
type coarse struct {
	pk   *[nCoarse]uint32
	head *uint32
	hot  *int32
}

func meter(h *detector.Host, di int) coarse {
	return coarse{pk: &h.Meter[di], head: &h.MeterHead[di], hot: &h.MeterHot[di]}
}

type ext struct {
	key detector.Key16
	detector.Counters
}

// extGen is one half-window generation of the summary: the records that
// ended within half a window from its start, with the shares of long
// records that lie in the window.
type extGen struct {
	start int64 // ns: end of the generation's first record
	last  int64 // ns: latest end of its records
	from  int64 // ns: earliest start of the counted shares
	idx   map[detector.Key16]int32
	ext   []ext
	sum   detector.Counters
	// full says some remote addresses were not tracked (a flood from
	// more than tracked_externals addresses: spoofed sources), and seen
	// has a bit set for the hash of each of them: the summary estimates
	// the distinct addresses (linear counting) instead of counting only
	// the tracked. Allocated when first needed, kept for reuse.
	seen []uint64
	full bool
}

// seenBits is the size of extGen.seen: distinct addresses are estimated
// within 1 % up to about 100,000 and within 3 % up to 500,000.
const seenBits = 1 << 16

func (g *extGen) reset(start int64) {
	g.start, g.last, g.from = start, start, start
	clear(g.idx)
	g.ext = g.ext[:0]
	g.sum = detector.Counters{}
	if g.full {
		clear(g.seen)
		g.full = false
	}
}

// nWin is the most windows a hot host is measured over: the window ending
// at its newest second and the same window ending lag seconds earlier
// (Detector.lags). A flow exporter with an active timeout sends a long
// flow's record only when the timeout ends, so with the flows' records
// staggered the window ending now is never complete: a flood a little
// over the limit that lasts for hours would never be proven in it. The
// windows ending 60 s and a whole window earlier are complete for active
// timeouts up to 60 s and up to the window.
const nWin = 3

type hotState struct {
	host    uint32
	dir     detector.Side
	pk      []uint64     // per-second packets, index sec%ring
	sm      []uint32     // per-second samples (detector.SampledShare)
	head    int64        // newest second
	sum     [nWin]uint64 // packets of window k: seconds (head-lags[k]-w, head-lags[k]]
	smSum   [nWin]uint64 // samples of window k
	first   int64        // ns of the first record since promotion
	newest  int64        // ns: the latest record end since promotion (in second head)
	maxRate uint32
	muted   int64 // ns; no evaluation before
	gen     [2]extGen
	cur     int
	samples *detector.Samples
}

// Detector is the packet_limit detector.
type Detector struct {
	conf    Configuration
	env     detector.Env
	w       int64   // window seconds
	lags    []int64 // how much earlier than the newest second each measured window ends (0 first)
	ring    int64   // seconds a hot host's ring holds: the window and the longest lag
	cw      int64   // coarse bucket width, seconds
	cwInv   uint64  // ceil(2^64 / cw), for bucket
	limit   uint64
	promote uint64
	demote  uint64
	dirOn   [2]bool
	hosts   *detector.Hosts
	hot     []*hotState
	free    []int32 // free hot indexes
}

// New returns the detector; conf must be valid.
func New(conf Configuration, env detector.Env) *Detector {
	d := &Detector{conf: conf, env: env, hosts: env.Hosts}
	if d.hosts == nil {
		d.hosts = &detector.Hosts{}
	}
	d.w = conf.Window.Seconds()
	d.lags = []int64{0}
	if d.w > 60 {
		d.lags = append(d.lags, 60)
	}
	d.lags = append(d.lags, d.w)
	d.ring = d.w + d.lags[len(d.lags)-1]
	d.cw = (d.w + nCoarse - 2) / (nCoarse - 1)
	d.cwInv = ^uint64(0)/uint64(d.cw) + 1
	d.limit = conf.ThresholdPPS * uint64(d.w)
	d.promote = d.limit / 8
	d.demote = d.limit / 16
	for _, dir := range conf.Directions {
		d.dirOn[detector.SideOf(dir)] = true
	}
	return d
}

// spread calls fn for each second from s0 to s1 with its share of total.
func spread(s0, s1 int64, total uint64, fn func(sec int64, n uint64)) {
	n := uint64(s1 - s0 + 1)
	per, rem := total/n, total%n
	for s := s0; s <= s1; s++ {
		v := per
		if rem > 0 {
			v++
			rem--
		}
		if v > 0 {
			fn(s, v)
		}
	}
}

// Observe implements detector.Detector.
func (d *Detector) Observe(r *flow.Record, o *detector.Orientation) {
	di := int(o.Dir)
	if !d.dirOn[di] {
		return
	}
	d.ObserveHost(r, o, d.hosts.At(o.Host))
}

// ObserveHost is Observe with the host's record already at hand (the
// engine's fast path).
func (d *Detector) ObserveHost(r *flow.Record, o *detector.Orientation, hr *detector.Host) {
	di := int(o.Dir)
	if !d.dirOn[di] {
		return
	}
	c := meter(hr, di)
	s0, s1 := o.Start/1e9, o.End/1e9
	// only the seconds of the ring can matter, and the coarse meter covers
	// a window: only a long record's last window goes into it (addCoarse
	// would fold the shares of buckets past its oldest into its newest)
	s0, packets := lastSeconds(s0, s1, r.Packets, d.ring)
	cs0, cpk := lastSeconds(s0, s1, packets, d.w)
	d.addCoarse(c, cs0, s1, cpk)
	if *c.hot == 0 {
		if d.coarseSum(c) < d.promote {
			return
		}
		d.promoteHost(c, o, di, cs0, cpk, s0, s1, packets, detector.SampledShare(r, packets, r.Packets))
	} else if d.coarseSum(c) < d.demote {
		d.release(c)
		return
	} else {
		d.addFine(d.hot[*c.hot-1], s0, s1, packets, detector.SampledShare(r, packets, r.Packets))
	}
	h := d.hot[*c.hot-1]
	h.newest = max(h.newest, o.End)
	d.account(h, r, o, s0, packets)
	d.evaluate(h, o.End)
}

// lastSeconds returns the start and the packets of the last n seconds of
// a record of packets over seconds s0..s1, evenly spread.
func lastSeconds(s0, s1 int64, packets uint64, n int64) (int64, uint64) {
	if s1-s0 < n {
		return s0, packets
	}
	return s1 - n + 1, packets / uint64(s1-s0+1) * uint64(n)
}

// scaled is c times part/total (part <= total), at least one flow.
func scaled(c detector.Counters, part, total uint64) detector.Counters {
	return detector.Counters{Packets: detector.MulDiv(c.Packets, part, total), Bytes: detector.MulDiv(c.Bytes, part, total),
		Flows: max(detector.MulDiv(c.Flows, part, total), 1)}
}

func (d *Detector) coarseSum(c coarse) uint64 {
	p := c.pk // written out: 15 instructions per record where the loop took 46
	return uint64(p[0]) + uint64(p[1]) + uint64(p[2]) + uint64(p[3]) +
		uint64(p[4]) + uint64(p[5]) + uint64(p[6]) + uint64(p[7])
}

// bucket returns the coarse bucket of second s (s / cw, by a
// multiplication: a division per record was a tenth of the detector's time).
func (d *Detector) bucket(s int64) uint32 {
	q, _ := bits.Mul64(uint64(s), d.cwInv)
	if int64(q)*d.cw > s { // the reciprocal rounds up: at most one too many
		q--
	}
	return uint32(q)
}

func (d *Detector) addCoarse(c coarse, s0, s1 int64, packets uint64) {
	b1 := d.bucket(s1)
	head := *c.head
	if head > b1+2*nCoarse {
		// The record ended more than two windows (the ring) before the
		// meter's newest bucket: nothing measured can share a window with
		// it. The exporter's clock was set back (it ran ahead): measure
		// from the record's time on, or every record would be dropped
		// until true time caught up with the wrong one.
		d.restart(c)
		head = 0
	}
	if b1 > head {
		if head == 0 || b1-head >= nCoarse {
			*c.pk = [nCoarse]uint32{}
		} else {
			for b := head + 1; b <= b1; b++ {
				c.pk[b%nCoarse] = 0
			}
		}
		head = b1
		*c.head = b1
	}
	if s0 == s1 { // a packet, a sample or a flow within one second
		if head-b1 < nCoarse {
			c.pk[b1%nCoarse] = uint32(min(uint64(c.pk[b1%nCoarse])+packets, 0xffffffff))
		}
		return
	}
	b0 := d.bucket(s0)
	n := uint64(s1 - s0 + 1)
	var done uint64
	for b := b0; b <= b1; b++ {
		if head-b >= nCoarse {
			continue
		}
		lo, hi := max(int64(b)*d.cw, s0), min(int64(b)*d.cw+d.cw-1, s1)
		v := packets * uint64(hi-lo+1) / n
		if b == b1 {
			v = packets - done
		}
		done += v
		c.pk[b%nCoarse] = uint32(min(uint64(c.pk[b%nCoarse])+v, 0xffffffff))
	}
}

// promoteHost gives the host a per-second ring, seeded from the coarse
// buckets; the record that promoted it (packets over seconds s0..now, of
// which cpk over cs0..now went into the coarse meter) is taken out of them
// and spread exactly, so that a long record whose first bucket straddles
// the window's start is not lost with that bucket.
func (d *Detector) promoteHost(c coarse, o *detector.Orientation, di int, cs0 int64, cpk uint64, s0, now int64, packets, smp uint64) {
	var h *hotState
	if n := len(d.free); n > 0 {
		*c.hot = d.free[n-1] + 1
		d.free = d.free[:n-1]
		h = d.hot[*c.hot-1]
	} else {
		h = &hotState{
			pk:      make([]uint64, d.ring),
			sm:      make([]uint32, d.ring),
			samples: detector.NewSamples(d.env.EvidencePackets).Within(d.w * 1e9),
		}
		for i := range h.gen {
			h.gen[i].idx = make(map[detector.Key16]int32)
		}
		d.hot = append(d.hot, h)
		*c.hot = int32(len(d.hot))
	}
	h.host, h.dir = o.Host, o.Dir
	clear(h.pk)
	clear(h.sm)
	h.head, h.sum, h.smSum, h.maxRate, h.muted = now, [nWin]uint64{}, [nWin]uint64{}, 0, 0
	h.first, h.newest = o.Start, o.End
	h.gen[0].reset(o.End)
	h.gen[1].reset(0)
	h.cur = 0
	h.samples.Reset()
	// the promoting record's shares of the coarse buckets: addCoarse's,
	// made again into empty buckets with the same newest bucket
	var own [nCoarse]uint32
	ownHead := *c.head
	d.addCoarse(coarse{pk: &own, head: &ownHead}, cs0, now, cpk)
	// Seed the rest from the coarse buckets, each attributed to its first
	// second: never later than the packets really were, so the sum stays
	// a lower bound.
	for i := uint32(0); i < nCoarse; i++ {
		if *c.head < i {
			break
		}
		b := *c.head - i
		v := uint64(c.pk[b%nCoarse] - min(own[b%nCoarse], c.pk[b%nCoarse]))
		if v == 0 {
			continue
		}
		sec := int64(b) * d.cw
		if sec <= now-d.w || sec > now {
			continue
		}
		d.put(h, sec, v)
		if ns := sec * 1e9; ns < h.first {
			h.first = ns
		}
	}
	d.addFine(h, s0, now, packets, smp) // the promoting record, exactly
}

// restart empties the host's meter and gives up its ring.
func (d *Detector) restart(c coarse) {
	if *c.hot != 0 {
		d.release(c)
	}
	*c.pk, *c.head = [nCoarse]uint32{}, 0
}

func (d *Detector) release(c coarse) {
	d.free = append(d.free, *c.hot-1)
	*c.hot = 0
}

func (d *Detector) advance(h *hotState, s int64) {
	if s <= h.head {
		return
	}
	if s-h.head >= d.ring {
		clear(h.pk)
		clear(h.sm)
		h.sum, h.smSum = [nWin]uint64{}, [nWin]uint64{}
		h.head = s
		return
	}
	for x := h.head + 1; x <= s; x++ {
		// window k moves on by a second: it gains second x-lag (x
		// itself, empty, for the window ending now) and loses x-lag-w
		for k, lag := range d.lags {
			if lag > 0 {
				i := (x - lag) % d.ring
				h.sum[k] += h.pk[i]
				h.smSum[k] += uint64(h.sm[i])
			}
			i := (x - lag - d.w) % d.ring
			h.sum[k] -= h.pk[i]
			h.smSum[k] -= uint64(h.sm[i])
		}
		i := x % d.ring // second x-ring leaves the ring
		h.pk[i], h.sm[i] = 0, 0
	}
	h.head = s
}

// put adds n packets at second sec (within the ring) to the ring and to
// the windows that hold sec.
func (d *Detector) put(h *hotState, sec int64, n uint64) {
	h.pk[sec%d.ring] += n
	for k := range d.lags {
		if d.holds(h, k, sec) {
			h.sum[k] += n
		}
	}
}

// holds reports whether window k (see lags) holds second sec.
func (d *Detector) holds(h *hotState, k int, sec int64) bool {
	end := h.head - d.lags[k]
	return sec <= end && sec > end-d.w
}

func (d *Detector) addFine(h *hotState, s0, s1 int64, packets, smp uint64) {
	d.advance(h, s1)
	lo := h.head - d.ring + 1
	if s1 < lo {
		return
	}
	spread(s0, s1, packets, func(sec int64, n uint64) {
		if sec >= lo {
			d.put(h, sec, n)
		}
	})
	i := s1 % d.ring
	v := min(uint64(h.sm[i])+smp, 0xffffffff)
	for k := range d.lags {
		if d.holds(h, k, s1) {
			h.smSum[k] += v - uint64(h.sm[i])
		}
	}
	h.sm[i] = uint32(v)
}

// account adds the record to the summary and the samples: packets are
// what the meters counted (a long record's share in the window, from
// second s0), its bytes in proportion.
func (d *Detector) account(h *hotState, r *flow.Record, o *detector.Orientation, s0 int64, packets uint64) {
	if rate := detector.Rate(r); rate > h.maxRate {
		h.maxRate = rate
	}
	g := &h.gen[h.cur]
	// Generations rotate by record end: by start, every record of half a
	// window or longer (NetFlow's active timeout) would open a new one.
	if o.End-g.start >= int64(d.w)*1e9/2 {
		h.cur ^= 1
		g = &h.gen[h.cur]
		g.reset(o.End)
	}
	g.from = min(g.from, max(o.Start, s0*1e9))
	g.last = max(g.last, o.End)
	c := detector.Counters{Packets: packets, Bytes: r.Bytes, Flows: 1}
	if packets < r.Packets {
		c.Bytes = detector.MulDiv(r.Bytes, packets, r.Packets)
	}
	g.sum.Merge(c)
	k := o.Remote.As16()
	if i, ok := g.idx[k]; ok {
		g.ext[i].Merge(c)
	} else if len(g.ext) < d.conf.TrackedExternals {
		g.idx[k] = int32(len(g.ext))
		g.ext = append(g.ext, ext{key: k, Counters: c})
	} else {
		if g.seen == nil {
			g.seen = make([]uint64, seenBits/64)
		}
		g.full = true
		setSeen(g.seen, &k)
	}
	h.samples.Add(r)
}

func (d *Detector) evaluate(h *hotState, now int64) {
	if now < h.muted {
		return
	}
	for k := range d.lags {
		if h.sum[k] <= d.limit || h.smSum[k] < d.conf.MinSamples || lowerBound(h.sum[k], h.smSum[k], h.maxRate) <= float64(d.limit) {
			continue
		}
		addr := d.env.Reporter.Addr(h.host)
		if !d.env.Reporter.Armed(addr, Rule, h.dir.Direction(), now) {
			h.muted = now + 1e9 // ask again in a second of event time
			return
		}
		d.env.Reporter.Report(d.finding(h, addr, now, k))
		h.muted = now + 1e9
		// the next finding (after the engine's rearm period) shows its own
		// traffic and sampling rate, not this one's
		h.samples.Reset()
		h.maxRate = 0
		return
	}
}

// confidence is how many standard deviations of the sampling error a
// sampled window's packet estimate must exceed the limit by: 3 leaves a
// 0.13 % chance that traffic exactly at the limit fires. Unsampled data
// (every packet counted) needs no margin.
const confidence = 3

// lowerBound is the packets of a window of sum scaled packets from n
// samples, less confidence standard deviations of the estimate, when
// sampled data (maxRate, the highest sampling rate among its records,
// above 1) went into it: each packet is taken with probability about
// n/sum, so the estimate's relative error is sqrt((1-n/sum)/n)
// (binomial; systematic 1-in-N sampling errs less). Under 1:1000 that is
// 1.7 % of a limit of 100,000 packets/s over 300 s (30,000 samples at
// the limit), under 1:10,000 5.5 %. n counts no samples for the packets
// of the coarse meter from before the address came near its limit (an
// eighth of it at most), which widens the margin a little.
func lowerBound(sum, n uint64, maxRate uint32) float64 {
	if maxRate <= 1 || n == 0 || n >= sum {
		return float64(sum)
	}
	s, k := float64(sum), float64(n)
	return s - confidence*s*math.Sqrt((1-k/s)/k)
}

// finding reports window k (see lags).
func (d *Detector) finding(h *hotState, addr netip.Addr, now int64, k int) detector.Finding {
	dir := h.dir.Direction()
	end := h.head - d.lags[k]     // the window's last second
	from := (end - d.w + 1) * 1e9 // its first second, ns
	// the window ends at the newest record measured, not at the one that
	// tipped it over the limit (a flow record that came late)
	last := max(now, h.newest)
	if k > 0 {
		last = end * 1e9
	}
	first := max(h.first, from)
	pps := float64(h.sum[k]) / float64(d.w)
	f := detector.Finding{
		Kind:         detector.KindPacketLimit,
		Direction:    dir,
		InternalIP:   addr,
		Rule:         Rule,
		Measured:     pps,
		Threshold:    float64(d.conf.ThresholdPPS),
		Unit:         "packets/s",
		FirstSeen:    detector.Time(first),
		LastSeen:     detector.Time(last),
		SamplingRate: h.maxRate,
		Samples:      h.smSum[k],
		Summary:      d.summary(h, addr, dir, from, last, h.sum[k]),
	}
	f.Detail = fmt.Sprintf("%s %d packets in %ds (%d packets/s) over the limit of %d packets/s",
		map[detector.Direction]string{detector.DirOut: "sent", detector.DirIn: "received"}[dir],
		h.sum[k], d.w, uint64(pps), d.conf.ThresholdPPS)
	if lb := lowerBound(h.sum[k], h.smSum[k], h.maxRate); lb < float64(h.sum[k]) {
		f.Detail += fmt.Sprintf(" (estimated from %d samples; allowing for the sampling error, at least %d packets/s)", h.smSum[k], uint64(lb)/uint64(d.w))
	}
	if k > 0 {
		// flow records arrive when the exporter's active timeout ends:
		// the window up to now was still incomplete
		f.Detail += fmt.Sprintf(", in the window ending %ds before the newest record (flow records come when their active timeout ends)", d.lags[k])
	}
	if secs := int64(f.Summary.Window / time.Second); secs < d.w {
		// the per-address summary covers the generations of records it
		// keeps (since the address came near its limit, at most the last
		// window): say so, or its shorter period reads as a contradiction
		f.Detail += fmt.Sprintf("; the per-address summary covers the last %ds of it", secs)
	}
	f.Packets, f.PacketsOmitted = h.samples.CopySince(from)
	return f
}

// summary sums the generations with records in the window from..now (ns),
// whose packets the meter measured as sum.
func (d *Detector) summary(h *hotState, addr netip.Addr, dir detector.Direction, from, now int64, sum uint64) *detector.Summary {
	s := &detector.Summary{Direction: dir, Internal: addr, ThresholdPPS: d.conf.ThresholdPPS}
	merged := map[detector.Key16]*detector.Counters{}
	start, end := now, now
	var seen []uint64 // the included generations' seen, when one was full
	for i := range h.gen {
		g := &h.gen[i]
		if g.sum.Flows == 0 || g.last < from || g.from > now {
			continue // nothing in the window (a flood that stopped before it)
		}
		start, end = min(start, g.from), max(end, g.last)
		s.Sum.Merge(g.sum)
		if g.full && seen == nil {
			seen = make([]uint64, seenBits/64)
		}
		for _, e := range g.ext {
			c := merged[e.key]
			if c == nil {
				c = &detector.Counters{}
				merged[e.key] = c
			}
			c.Merge(e.Counters)
		}
	}
	distinct := len(merged)
	if seen != nil { // the untracked and the tracked addresses, each once
		for i := range h.gen {
			if g := &h.gen[i]; g.full && g.sum.Flows != 0 && g.last >= from && g.from <= now {
				for j, v := range g.seen {
					seen[j] |= v
				}
			}
		}
		for k := range merged {
			setSeen(seen, &k)
		}
		distinct = max(distinct, distinctEstimate(seen))
	}
	// Two half-window generations reach back half a window to one and a
	// half. Reaching back further than the window, the summary is scaled
	// to the packets the window measured (the headline's), keeping each
	// address's share: a summary of 450 s would otherwise show a rate
	// below the limit its finding says was exceeded. Shorter (the address
	// came near its limit recently), it covers its own period and says so.
	secs := (now - start + 1e9 - 1) / 1e9
	// reaching past the window's end too (a window ending before the
	// newest record): scaled likewise
	scale := (secs > d.w || end > now) && s.Sum.Packets > sum
	total := s.Sum.Packets
	if scale {
		secs = d.w
		s.Sum = scaled(s.Sum, sum, total)
	}
	s.Window = time.Duration(max(secs, 1)) * time.Second
	for k, c := range merged {
		if scale {
			*c = scaled(*c, sum, total)
		}
		s.Externals = append(s.Externals, detector.External{Addr: detector.AddrFrom16(k), Counters: *c})
	}
	if scale { // every listed address keeps at least its one flow
		var flows uint64
		for _, e := range s.Externals {
			flows += e.Flows
		}
		s.Sum.Flows = max(s.Sum.Flows, flows)
	}
	slices.SortFunc(s.Externals, func(a, b detector.External) int {
		if a.Packets != b.Packets {
			if a.Packets > b.Packets {
				return -1
			}
			return 1
		}
		return a.Addr.Compare(b.Addr)
	})
	if n := d.conf.SummaryExternals; len(s.Externals) > n {
		s.Externals = s.Externals[:n]
	}
	s.ExternalsOmitted = distinct - len(s.Externals)
	return s
}

// setSeen sets the bit of address k in seen.
func setSeen(seen []uint64, k *detector.Key16) {
	b := seenHash(k) % seenBits
	seen[b/64] |= 1 << (b % 64)
}

// seenHash hashes an address for extGen.seen: every bit of the key
// reaches every bit of the hash (detector.Hash16, made for open
// addressing, left sequential IPv4 sources 3 % over-counted).
func seenHash(k *detector.Key16) uint64 {
	return fmix(binary.LittleEndian.Uint64(k[8:]) ^ fmix(binary.LittleEndian.Uint64(k[:8])))
}

// fmix is MurmurHash3's 64-bit finalizer.
func fmix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// distinctEstimate is the number of distinct addresses whose hashes set
// the bits of seen (linear counting), at least the bits set.
func distinctEstimate(seen []uint64) int {
	set := 0
	for _, v := range seen {
		set += bits.OnesCount64(v)
	}
	m := float64(len(seen) * 64)
	zero := m - float64(set)
	if zero == 0 {
		return int(m * math.Log(m)) // saturated: at least about this many
	}
	return max(set, int(math.Round(-m*math.Log(zero/m))))
}

// Tick implements detector.Detector; packet_limit verdicts need no confirmation.
func (d *Detector) Tick(int64) {}

// Flush implements detector.Detector; packet_limit fires as soon as proven.
func (d *Detector) Flush() {}

// Forget implements detector.Detector.
func (d *Detector) Forget(host uint32) {
	if int(host) >= len(d.hosts.H) {
		return
	}
	hr := &d.hosts.H[host]
	for i := range 2 {
		if c := meter(hr, i); *c.hot != 0 {
			d.release(c)
		}
	}
	hr.Meter, hr.MeterHead, hr.MeterHot = [2][nCoarse]uint32{}, [2]uint32{}, [2]int32{}
}

// Hot returns the number of hosts with a per-second ring (for metrics).
func (d *Detector) Hot() int { return len(d.hot) - len(d.free) }
