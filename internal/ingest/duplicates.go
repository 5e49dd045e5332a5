package ingest

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"padlock/internal/flow"
)

// Two exporters that see the same packets (sFlow at a switch and NetFlow
// at the router behind it, or NetFlow on both ends of a link) make the
// detectors count that traffic twice: a server at half its packet limit
// reaches it. padlock does not de-duplicate (records of the same packets
// differ by sampling, timeouts and clocks); it finds such exporter pairs
// and says so, in the log and in padlock_ingest_duplicate_exporter_pairs.
//
// One flow in 64 (dupShift; by a hash of its ports and protocol, the same on
// every exporter) is followed: the exporter that reported it
// last, and when. A record of a followed flow from another exporter
// within dupWithin of the last is a match for the pair. A pair is
// reported as soon as, within the current dupPeriod, at least
// dupMinMatches of its followed records matched and they are at least a
// tenth of the followed records of the pair's smaller exporter: asymmetric routing (requests
// through one router, answers through another) gives no matches, as the
// two directions are different flows, and a route change moves few.

const (
	dupShift      = 6 // one flow in 1<<dupShift (64) is followed
	dupWithin     = int64(60 * time.Second)
	dupPeriod     = 10 * time.Minute
	dupMinMatches = 20
	dupMaxFlows   = 1 << 16 // followed flows kept at most
	dupWarnEvery  = time.Hour
)

type dupFlow struct {
	src, dst [16]byte
	sp, dp   uint16
	proto    uint8
}

type dupSeen struct {
	exporter netip.Addr
	at       int64 // record end, ns
}

type dupPair struct{ a, b netip.Addr } // a < b

// dupFound is an exporter pair found exporting the same traffic.
type dupFound struct {
	Exporters [2]netip.Addr
	// Matched is how many followed records of the pair were seen from
	// both; Followed how many the pair's smaller exporter sent.
	Matched, Followed uint64
}

// duplicates is the engine goroutine's watch for exporter pairs that see
// the same traffic.
type duplicates struct {
	flows    map[dupFlow]dupSeen
	followed map[netip.Addr]uint64
	matched  map[dupPair]uint64
	since    time.Time // start of the current period
	warned   map[dupPair]time.Time
	// found: the pairs found in the current and in the previous period;
	// count: how many (read by the metric's goroutine)
	found, prev map[dupPair]bool
	count       atomic.Int64
}

func newDuplicates() *duplicates {
	return &duplicates{flows: map[dupFlow]dupSeen{}, followed: map[netip.Addr]uint64{}, matched: map[dupPair]uint64{},
		warned: map[dupPair]time.Time{}, found: map[dupPair]bool{}, prev: map[dupPair]bool{}}
}

// selected is the cheap test every record takes: whether its flow is one
// of those followed, by its ports and protocol (the client's ephemeral
// port spreads the choice; the same answer on every exporter). Reading
// the addresses too cost 10 ns a record more (BenchmarkDuplicatesObserve),
// a sixth of the engine's own work at a few hosts. Traffic of one port
// pair (a scan from a fixed source port) is followed entirely or not at
// all; exporters that share ordinary traffic are found by that.
func selected(r *flow.Record) bool {
	h := (uint32(r.SrcPort)<<16 | uint32(r.DstPort)) ^ uint32(r.Proto)<<8
	h *= 0x9e3779b1
	return h>>(32-dupShift) == 0
}

// observe follows the batch's selected records.
func (d *duplicates) observe(b []flow.Record) {
	for i := range b {
		r := &b[i]
		if !r.Exporter.IsValid() || !selected(r) {
			continue
		}
		exp := r.Exporter.Unmap()
		k := dupFlow{r.SrcAddr.Unmap().As16(), r.DstAddr.Unmap().As16(), r.SrcPort, r.DstPort, r.Proto}
		at := r.End.UnixNano()
		d.followed[exp]++
		if s, ok := d.flows[k]; ok {
			if s.exporter != exp && at-s.at <= dupWithin && s.at-at <= dupWithin {
				p := dupPair{s.exporter, exp}
				if exp.Less(s.exporter) {
					p = dupPair{exp, s.exporter}
				}
				d.matched[p]++
			}
		} else if len(d.flows) >= dupMaxFlows {
			continue
		}
		d.flows[k] = dupSeen{exp, at}
	}
}

// check judges the period's counts so far and returns the pairs to warn
// about (each at most once per dupWarnEvery); once the period is over it
// starts the next. It sets d.count, the pairs found in the current or the
// previous period.
func (d *duplicates) check(now time.Time) []dupFound {
	if d.since.IsZero() {
		d.since = now
	}
	if now.Sub(d.since) >= dupPeriod {
		d.prev, d.found = d.found, map[dupPair]bool{}
		clear(d.flows)
		clear(d.followed)
		clear(d.matched)
		d.since = now
		for p, t := range d.warned {
			if now.Sub(t) >= dupWarnEvery {
				delete(d.warned, p)
			}
		}
	}
	var warn []dupFound
	for p, m := range d.matched {
		least := min(d.followed[p.a], d.followed[p.b])
		if m < dupMinMatches || m*10 < least {
			continue
		}
		d.found[p] = true
		if t, ok := d.warned[p]; !ok || now.Sub(t) >= dupWarnEvery {
			d.warned[p] = now
			warn = append(warn, dupFound{Exporters: [2]netip.Addr{p.a, p.b}, Matched: m, Followed: least})
		}
	}
	n := len(d.found)
	for p := range d.prev {
		if _, ok := d.found[p]; !ok {
			n++
		}
	}
	d.count.Store(int64(n))
	slices.SortFunc(warn, func(x, y dupFound) int {
		if c := x.Exporters[0].Compare(y.Exporters[0]); c != 0 {
			return c
		}
		return x.Exporters[1].Compare(y.Exporters[1])
	})
	return warn
}
