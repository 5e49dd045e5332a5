// Package policy decides what happens to each detector finding: record it,
// alert staff, warn the customer, lock, blackhole an inbound victim, or hold
// it for staff review. It owns the `policy:` configuration, the longest-prefix
// match of customer/server groups, the protected prefixes, the confidence
// floor, the rate limits on automatic locks, the circuit breaker and the
// escalation of repeat offenders.
//
// Resolve is a pure function of the configuration and one finding's facts;
// Policy.Decide adds the state that spans findings (breaker, rate limits) and
// takes the time from its caller, so every decision is reproducible in a
// test. The package imports only the standard library and the Prometheus
// client; it must not import detection, storage, locking or enforcement: the
// pipeline turns findings into Inputs and Decisions into lock calls.
package policy

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Input is what the policy needs to know about one finding.
type Input struct {
	Kind      string     // detector kind: netscan, packet_limit, ...
	Direction string     // "out" or "in", seen from the internal address
	IP        netip.Addr // the internal address
	Samples   uint64     // contributing records as received
	Protected bool       // the detector already found IP protected
	// CustomerID owns IP in the inventory; 0 when nobody does.
	CustomerID int64
	// CaseCount is the number of findings in the open case of IP and kind,
	// this one included (the condition held over that many windows).
	CaseCount int
	// PriorLocks is the number of earlier locks of the customer for the
	// finding's reason within the escalation lookback.
	PriorLocks int
	// SpoofedSource: the finding has no internal address and IP is the
	// spoofed source address it was reported for, which belongs to nobody.
	// Such findings never count towards the circuit breaker (random
	// spoofing from one server is not many servers tripping a detector)
	// and are never acted on automatically: there is no owner to lock.
	SpoofedSource bool
}

// Decision is what happens to one finding.
type Decision struct {
	Action Action
	// Configured is the action configured for the kind and group, before
	// confidence, breaker, limits and escalation changed it.
	Configured Action
	// Why explains the outcome in one line for logs, audit notes and the
	// admin area.
	Why string
	// Group is the name (or first prefix) of the group whose policy
	// applied, empty for the top-level one.
	Group string
	// WarnDeadline is the warning's deadline from now (ActionWarn).
	WarnDeadline time.Duration
	// Expiry lifts the lock by itself (ActionBlackhole).
	Expiry time.Duration
	// StaffUnlock marks the n-th lock of a repeat offender.
	StaffUnlock bool
	// Method is the enforcement method the action asks for where the
	// policy chooses it (ActionBlackhole: inbound_blackhole.method);
	// empty: the lock reason's method.
	Method string
}

// Resolve is the pure part of the decision: protected prefixes, group and
// kind policy, inbound victims, the confidence floor, owner and escalation.
// It does not consult the breaker or the rate limits.
func Resolve(c *Configuration, in Input) Decision {
	if in.Protected {
		return Decision{Action: ActionIgnore, Configured: ActionIgnore, Why: "protected address: never acted on"}
	}
	for _, p := range c.Protected {
		if p.Contains(in.IP) {
			return Decision{Action: ActionIgnore, Configured: ActionIgnore, Why: "protected prefix " + p.String() + ": never acted on"}
		}
	}
	kp, ok := c.Kind(in.Kind)
	if !ok {
		return Decision{Action: ActionRecord, Configured: ActionRecord, Why: fmt.Sprintf("no policy for kind %q: recorded", in.Kind)}
	}
	d := Decision{}
	if g, gp := group(c, in.Kind, in.IP); g != "" {
		d.Group = g
		if gp != nil {
			kp = *gp
		}
	}
	if kp.Consecutive <= 0 {
		kp.Consecutive = 1
	}
	if kp.WarnDeadline <= 0 {
		kp.WarnDeadline = 24 * time.Hour
	}
	d.Configured = kp.Action
	d.Action = kp.Action
	d.WarnDeadline = kp.WarnDeadline

	// An address that receives too much is a victim, not an offender.
	if in.Direction == "in" {
		if c.InboundBlackhole.Enabled && (in.Kind == "packet_limit" || in.Kind == "network_attack") {
			d.Configured, d.Action, d.Expiry = ActionBlackhole, ActionBlackhole, c.InboundBlackhole.Expiry
			d.Method = c.InboundBlackhole.Method
			if d.Method == "" {
				d.Method = "blackhole"
			}
			d.Why = "inbound overload: blackhole to protect the network"
		} else {
			d.Configured, d.Action = ActionRecord, ActionRecord
			d.Why = "inbound: the address is a victim; recorded (inbound_blackhole disabled)"
			return d
		}
	}
	if d.Action == ActionRecord {
		d.Why = "action record (shadow mode)"
		return d
	}
	if kp.MinSamples > 0 && in.Samples < kp.MinSamples {
		d.Action = ActionRecord
		d.Why = fmt.Sprintf("below the confidence floor: %d samples < min_samples %d", in.Samples, kp.MinSamples)
		return d
	}
	if in.CaseCount < kp.Consecutive {
		d.Action = ActionRecord
		d.Why = fmt.Sprintf("below the confidence floor: held %d of %d consecutive findings", in.CaseCount, kp.Consecutive)
		return d
	}
	if d.Action.Automatic() && in.SpoofedSource {
		d.Action, d.Method = ActionReview, ""
		d.Why = "spoofed source " + in.IP.String() + " belongs to nobody and no sender could be attributed: queued for review"
		return d
	}
	if d.Action.Automatic() && in.CustomerID == 0 {
		d.Action, d.Method = ActionReview, ""
		d.Why = "no owner in the inventory: queued for review"
		return d
	}
	if d.Action == ActionBlackhole {
		return d
	}
	if d.Action == ActionWarn && c.Escalation.LockAfter > 0 && in.PriorLocks >= c.Escalation.LockAfter {
		d.Action = ActionLock
		d.Why = fmt.Sprintf("repeat offender (%d earlier locks): locked without a warning", in.PriorLocks)
	}
	if d.Action.Automatic() && c.Escalation.StaffUnlockAfter > 0 && in.PriorLocks+1 >= c.Escalation.StaffUnlockAfter {
		d.StaffUnlock = true
		if d.Why == "" {
			d.Why = fmt.Sprintf("lock number %d: only staff may unlock", in.PriorLocks+1)
		}
	}
	if d.Why == "" {
		d.Why = "action " + string(d.Action)
	}
	return d
}

// group returns the group with the longest prefix containing ip, and its
// override for kind (nil: inherits).
func group(c *Configuration, kind string, ip netip.Addr) (string, *KindPolicy) {
	best, bits := -1, -1
	var bestPrefix netip.Prefix
	for i := range c.Groups {
		for _, p := range c.Groups[i].Prefixes {
			if p.Contains(ip) && p.Bits() > bits {
				best, bits, bestPrefix = i, p.Bits(), p
			}
		}
	}
	if best < 0 {
		return "", nil
	}
	g := &c.Groups[best]
	name := g.Name
	if name == "" {
		name = bestPrefix.String()
	}
	return name, g.Kind(kind)
}

// BreakerState is the circuit breaker as the admin area shows it.
type BreakerState struct {
	Open   bool      `json:"open"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitzero"`
}

// Dependencies of a Policy.
type Dependencies struct {
	// OnTrip is called (outside the policy's lock) when the breaker opens:
	// the place to alert staff. Optional.
	OnTrip     func(BreakerState)
	Registerer prometheus.Registerer // nil: no metrics
}

// Policy is the stateful decider: the configuration plus the circuit
// breaker and the rate-limit windows. Safe for concurrent use.
type Policy struct {
	conf   Configuration
	onTrip func(BreakerState)

	mu       sync.Mutex
	breaker  BreakerState
	lastTrip time.Time
	trips    map[string]map[netip.Addr]time.Time // kind → address → last finding
	locks    []time.Time                         // automatic actions in the last hour
	byCust   map[int64][]time.Time

	decisions *prometheus.CounterVec
	open      prometheus.Gauge
	tripped   *prometheus.CounterVec
}

// New returns a policy. It does no I/O.
func New(conf Configuration, deps Dependencies) (*Policy, error) {
	if err := conf.Validate(); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p := &Policy{conf: conf, onTrip: deps.OnTrip, trips: map[string]map[netip.Addr]time.Time{}, byCust: map[int64][]time.Time{}}
	p.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "padlock_policy_decisions_total",
		Help: "Findings by kind and policy outcome (record, notify, warn, lock, blackhole, review, ignore).",
	}, []string{"kind", "action"})
	p.open = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "padlock_policy_breaker_open",
		Help: "1 while the circuit breaker holds automatic actions for review.",
	})
	p.tripped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "padlock_policy_breaker_trips_total",
		Help: "Times the circuit breaker opened, by cause (servers, sampling).",
	}, []string{"cause"})
	if deps.Registerer != nil {
		for _, c := range []prometheus.Collector{p.decisions, p.open, p.tripped} {
			if err := deps.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("policy: metrics: %w", err)
			}
		}
	}
	return p, nil
}

// Configuration returns the policy's configuration.
func (p *Policy) Configuration() Configuration { return p.conf }

// Decide decides one finding at time now. Every non-ignored finding counts
// towards the breaker; automatic actions count towards the rate limits only
// when they are let through.
func (p *Policy) Decide(in Input, now time.Time) Decision {
	d := Resolve(&p.conf, in)
	var trip *BreakerState
	p.mu.Lock()
	p.maybeReset(now)
	if d.Action != ActionIgnore && in.Direction != "in" && !in.SpoofedSource {
		trip = p.observe(in.Kind, in.IP, now)
	}
	if d.Action.Automatic() {
		switch {
		case p.breaker.Open:
			d.Why = "circuit breaker open (" + p.breaker.Reason + "): queued for review instead of " + string(d.Action)
			d.Action = ActionReview
		case d.Action != ActionBlackhole && !p.allow(in.CustomerID, now):
			d.Why = "automatic lock limit reached: queued for review instead of " + string(d.Action)
			d.Action = ActionReview
		}
	}
	p.mu.Unlock()
	p.decisions.WithLabelValues(in.Kind, string(d.Action)).Inc()
	if trip != nil && p.onTrip != nil {
		p.onTrip(*trip)
	}
	return d
}

// observe counts a finding for the breaker and opens it when more than
// Servers addresses tripped the kind within Within. Called with mu held.
func (p *Policy) observe(kind string, ip netip.Addr, now time.Time) *BreakerState {
	bc := p.conf.CircuitBreaker
	if bc.Servers <= 0 {
		return nil
	}
	m := p.trips[kind]
	if m == nil {
		m = map[netip.Addr]time.Time{}
		p.trips[kind] = m
	}
	m[ip] = now
	for a, t := range m {
		if now.Sub(t) > bc.Within {
			delete(m, a)
		}
	}
	if len(m) <= bc.Servers {
		return nil
	}
	p.lastTrip = now
	if p.breaker.Open {
		return nil
	}
	return p.openLocked("servers", fmt.Sprintf("%d servers tripped %s within %s (limit %d)", len(m), kind, bc.Within, bc.Servers), now)
}

func (p *Policy) openLocked(cause, reason string, now time.Time) *BreakerState {
	p.breaker = BreakerState{Open: true, Reason: reason, Since: now}
	p.lastTrip = now
	p.open.Set(1)
	p.tripped.WithLabelValues(cause).Inc()
	s := p.breaker
	return &s
}

// maybeReset closes the breaker after ResetAfter without a new trip.
func (p *Policy) maybeReset(now time.Time) {
	ra := p.conf.CircuitBreaker.ResetAfter
	if p.breaker.Open && ra > 0 && now.Sub(p.lastTrip) >= ra {
		p.breaker = BreakerState{}
		p.trips = map[string]map[netip.Addr]time.Time{}
		p.open.Set(0)
	}
}

// allow consumes one automatic lock from the global and the customer's
// hourly budget, or reports that one of them is spent. Called with mu held.
func (p *Policy) allow(customer int64, now time.Time) bool {
	rl := p.conf.AutoLockLimit
	cut := now.Add(-time.Hour)
	p.locks = prune(p.locks, cut)
	c := prune(p.byCust[customer], cut)
	if rl.PerHour > 0 && len(p.locks) >= rl.PerHour || rl.PerCustomer > 0 && len(c) >= rl.PerCustomer {
		p.byCust[customer] = c
		return false
	}
	p.locks = append(p.locks, now)
	p.byCust[customer] = append(c, now)
	for id, ts := range p.byCust {
		if len(ts) == 0 || !ts[len(ts)-1].After(cut) {
			delete(p.byCust, id)
		}
	}
	return true
}

func prune(ts []time.Time, cut time.Time) []time.Time {
	i := sort.Search(len(ts), func(i int) bool { return ts[i].After(cut) })
	return append(ts[:0], ts[i:]...)
}

// SamplingChanged opens the breaker because an exporter's sampling rate
// changed (when circuit_breaker.sampling_change is on): thresholds tuned for
// one rate are wrong for another until staff look.
func (p *Policy) SamplingChanged(exporter string, from, to uint32, now time.Time) {
	if !p.conf.CircuitBreaker.SamplingChange {
		return
	}
	p.mu.Lock()
	var trip *BreakerState
	if !p.breaker.Open {
		trip = p.openLocked("sampling", fmt.Sprintf("sampling rate of exporter %s changed from %d to %d", exporter, from, to), now)
	} else {
		p.lastTrip = now
	}
	p.mu.Unlock()
	if trip != nil && p.onTrip != nil {
		p.onTrip(*trip)
	}
}

// State returns the breaker's state (for the admin area).
func (p *Policy) State() BreakerState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.breaker
}

// Restore sets the breaker to a state saved before a restart (an open
// breaker stays open until staff close it or reset_after passes since it
// opened).
func (p *Policy) Restore(st BreakerState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.breaker = st
	if st.Open {
		p.lastTrip = st.Since
		p.open.Set(1)
	}
}

// Reset closes the breaker (staff decided the automation may go on) and
// forgets the findings that opened it.
func (p *Policy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.breaker = BreakerState{}
	p.trips = map[string]map[netip.Addr]time.Time{}
	p.open.Set(0)
}
