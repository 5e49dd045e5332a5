// Package pipeline runs padlock's live path: records from the collector go
// through the detection engine, every finding through the policy, into the
// store as a case with its evidence files, and — where the policy says so —
// to the lock service, whose transaction queues the customer's mail and
// whose OnChange hook wakes enforcement.
//
// It owns the joins between those components and nothing else: batching and
// the queue between collector goroutines and the single engine goroutine
// (bounded; a full queue drops the batch and counts it), the mapping of
// finding kinds to lock reasons, evidence attachments, crash recovery of
// decided-but-not-applied actions, and the periodic sweeper (overdue
// warnings, expired whitelists, expired inbound-protection blackholes).
// It imports flow, detect, evidence, policy, lock, inventory, mail and the
// store's value types; it must not import collectors, decoders, enforcement
// drivers, notify or web packages (cmd/padlock wires those).
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/detect"
	"padlock/internal/evidence"
	"padlock/internal/flow"
	"padlock/internal/ingest"
	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/mail"
	"padlock/internal/policy"
	"padlock/internal/store"
)

// Configuration of the pipeline (the `pipeline:` section): the ingest
// path's keys (queue, batch, flush_interval, expire_interval) and the
// pipeline's own.
type Configuration struct {
	ingest.Configuration `yaml:",inline"`
	// SweepInterval runs overdue warnings, whitelist expiry and blackhole
	// expiry. Default 30s.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// RecoverWithin: at start, decided actions of open cases updated
	// within this period that never reached the lock service (a crash in
	// between) are applied again, idempotently. Default 1h; 0 disables.
	RecoverWithin time.Duration `yaml:"recover_within"`
}

// DefaultConfiguration returns the defaults.
func DefaultConfiguration() Configuration {
	return Configuration{Configuration: ingest.DefaultConfiguration(), SweepInterval: 30 * time.Second, RecoverWithin: time.Hour}
}

// Validate reports the first bad value, naming its key.
func (c Configuration) Validate() error {
	if err := c.Configuration.Validate(); err != nil {
		return err
	}
	switch {
	case c.SweepInterval <= 0:
		return errors.New("sweep_interval: must be > 0")
	case c.RecoverWithin < 0:
		return errors.New("recover_within: must be >= 0")
	}
	return nil
}

// Store is what the pipeline needs from the database (store.DB).
type Store interface {
	RecordFinding(ctx context.Context, in store.FindingInput, now time.Time) (store.FindingCase, bool, error)
	ListFindings(ctx context.Context, f store.FindingFilter) ([]store.FindingCase, error)
	SetFindingLock(ctx context.Context, id, lockID int64) error
	FindingEvidence(ctx context.Context, findingID int64, withData bool) ([]store.Evidence, error)
}

// Locks is what the pipeline needs from the lock service (lock.Service).
type Locks interface {
	Index() *inventory.Index
	CreateLock(ctx context.Context, a lock.Actor, req lock.CreateLockRequest, idempotencyKey string) (lock.Lock, error)
	GetLock(ctx context.Context, a lock.Actor, id int64) (lock.Lock, error)
	ListLocks(ctx context.Context, a lock.Actor, f lock.LockFilter) ([]lock.Lock, error)
	Unlock(ctx context.Context, a lock.Actor, lockID int64, note string) (lock.Lock, error)
	LockOverdue(ctx context.Context) (int, error)
	ExpireWhitelists(ctx context.Context) (int, error)
}

// Dependencies of the pipeline.
type Dependencies struct {
	Detect    detect.Configuration
	Customers []netip.Prefix // internal networks besides the inventory's
	Protected []netip.Prefix
	Policy    *policy.Policy
	Store     Store
	Locks     Locks
	Clock     func() time.Time // nil: time.Now
	Logger    *slog.Logger
	// Registerer receives the pipeline's and the engine's metrics.
	Registerer prometheus.Registerer
}

// Reasons maps finding kinds to lock reasons.
var Reasons = map[detect.Kind]lock.Reason{
	detect.KindNetscan:       lock.ReasonNetscan,
	detect.KindPacketLimit:   lock.ReasonPacketLimit,
	detect.KindAttack:        lock.ReasonNetworkAttack,
	detect.KindSpam:          lock.ReasonSpam,
	detect.KindIncorrectConf: lock.ReasonIncorrectNetwork,
}

// Pipeline is the live path component.
type Pipeline struct {
	conf   Configuration
	deps   Dependencies
	now    func() time.Time
	log    *slog.Logger
	in     *ingest.Ingest
	nets   *networks
	cancel context.CancelFunc
	wg     sync.WaitGroup

	m metrics
}

type metrics struct {
	outcomes *prometheus.CounterVec
	errors   *prometheus.CounterVec
	toLock   prometheus.Histogram
}

// New builds the pipeline and its detection engine. It does no I/O.
func New(conf Configuration, deps Dependencies) (*Pipeline, error) {
	if err := conf.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if deps.Policy == nil || deps.Store == nil || deps.Locks == nil {
		return nil, errors.New("pipeline: policy, store and locks are required")
	}
	p := &Pipeline{conf: conf, deps: deps, now: deps.Clock, log: deps.Logger}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.nets = &networks{prefixes: detect.NewPrefixes(deps.Customers), locks: deps.Locks}
	in, err := ingest.New(conf.Configuration, ingest.Dependencies{
		Detect:           deps.Detect,
		Networks:         p.nets,
		Protected:        deps.Protected,
		OnSamplingChange: p.samplingChanged,
		Clock:            deps.Clock,
		Logger:           p.log,
		Registerer:       deps.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	p.in = in
	p.m = metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "padlock_pipeline_actions_total",
			Help: "What the pipeline did with findings, by policy outcome (record, notify, warn, lock, blackhole, review, ignore, appended) and result (ok, error)."},
			[]string{"action", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "padlock_pipeline_errors_total",
			Help: "Errors by stage (store, lock, sweep, recover)."}, []string{"stage"}),
		toLock: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "padlock_pipeline_finding_to_lock_seconds",
			Help:    "From the last record of a finding (event time) to the committed lock.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
	}
	if r := deps.Registerer; r != nil {
		for _, c := range []prometheus.Collector{p.m.outcomes, p.m.errors, p.m.toLock} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("pipeline: metrics: %w", err)
			}
		}
	}
	return p, nil
}

// networks joins the `customers:` prefixes and the inventory for the engine.
type networks struct {
	prefixes *detect.Prefixes
	locks    Locks
}

func (n *networks) Internal(a netip.Addr) bool {
	if n.prefixes.Internal(a) {
		return true
	}
	_, ok := n.locks.Index().Lookup(a)
	return ok
}

func (n *networks) Owner(a netip.Addr) (string, bool) {
	if e, ok := n.locks.Index().Lookup(a); ok {
		return fmt.Sprintf("%s:%d", e.Type, e.ProductID), true
	}
	return n.prefixes.Owner(a)
}

func (n *networks) MACOwner(m flow.MAC) (string, bool) { return n.prefixes.MACOwner(m) }

// Start recovers interrupted actions and starts the ingest path, the
// finding handler and the sweeper.
func (p *Pipeline) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	if p.conf.RecoverWithin > 0 {
		p.recover(ctx)
	}
	if err := p.in.Start(ctx); err != nil {
		return err
	}
	p.wg.Add(2)
	go p.runFindings(ctx)
	go p.runSweeper(ctx)
	return nil
}

// Stop stops taking records, lets the engine finish the queue and the
// handler the findings, or gives up when ctx ends.
func (p *Pipeline) Stop(ctx context.Context) error {
	if p.cancel == nil {
		return nil
	}
	err := p.in.Stop(ctx)
	p.cancel()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sink returns a sink safe for concurrent use (for tests and replay).
func (p *Pipeline) Sink() flow.Sink { return p.in.Sink() }

// NewSink returns the sink of one collector goroutine (collect's NewSink).
func (p *Pipeline) NewSink(worker int) flow.Sink { return p.in.NewSink(worker) }

// samplingChanged tells the policy that an exporter's sampling rate changed.
func (p *Pipeline) samplingChanged(r *flow.Record, old uint32) {
	p.log.Error("exporter sampling rate changed: automatic actions stop", "exporter", r.Exporter.String(), "in_if", r.InIf, "from", old, "to", r.SamplingRate)
	p.deps.Policy.SamplingChanged(r.Exporter.String(), old, r.SamplingRate, p.now())
}

func (p *Pipeline) runFindings(ctx context.Context) {
	defer p.wg.Done()
	for f := range p.in.Findings() {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if err := p.Handle(hctx, f); err != nil {
			p.log.Error("finding", "kind", f.Kind, "internal_ip", f.InternalIP.String(), "err", err)
		}
		cancel()
	}
}

// detail is the finding's JSON form stored with its case: the finding
// without its bulky evidence, and the policy's decision.
type detail struct {
	detect.Finding
	Decision decisionJSON `json:"decision"`
}

type decisionJSON struct {
	Action       policy.Action `json:"action"`
	Configured   policy.Action `json:"configured,omitempty"`
	Why          string        `json:"why"`
	Group        string        `json:"group,omitempty"`
	WarnDeadline string        `json:"warn_deadline,omitempty"`
	Expiry       string        `json:"expiry,omitempty"`
	StaffUnlock  bool          `json:"staff_unlock,omitempty"`
	DecidedAt    time.Time     `json:"decided_at"`
	// Key is the idempotency key of the lock the action creates.
	Key string `json:"key,omitempty"`
}

// activeStates are the lock states in which a new finding only appends.
var activeStates = map[lock.State]bool{lock.StateWarned: true, lock.StateLocked: true, lock.StateUnlockRequested: true}

// Handle runs one finding through policy, store and lock service. It is
// called from one goroutine; tests call it directly.
func (p *Pipeline) Handle(ctx context.Context, f detect.Finding) error {
	now := p.now()
	var customer int64
	if e, ok := p.deps.Locks.Index().Lookup(f.InternalIP); ok {
		customer = e.CustomerID
	}
	reason, hasReason := Reasons[f.Kind]
	open, err := p.deps.Store.ListFindings(ctx, store.FindingFilter{IP: f.InternalIP, Kind: string(f.Kind), State: "open", Limit: 1})
	if err != nil {
		p.m.errors.WithLabelValues("store").Inc()
		return fmt.Errorf("open case: %w", err)
	}
	count := 1
	var activeLock int64
	if len(open) > 0 {
		count = open[0].Count + 1
		if id := open[0].LockID; id != 0 {
			if l, err := p.deps.Locks.GetLock(ctx, lock.System, id); err == nil && activeStates[l.State] {
				activeLock = id
			}
		}
	}
	var d policy.Decision
	if activeLock != 0 {
		d = policy.Decision{Action: "appended", Why: fmt.Sprintf("lock %d is active: evidence appended to its case", activeLock)}
	} else {
		prior := 0
		if customer != 0 && hasReason {
			prior = p.priorLocks(ctx, customer, reason, now)
		}
		d = p.deps.Policy.Decide(policy.Input{Kind: string(f.Kind), Direction: string(f.Direction), IP: f.InternalIP,
			Samples: f.Samples, Protected: f.Protected, CustomerID: customer, CaseCount: count, PriorLocks: prior}, now)
	}
	if !hasReason && d.Action.Automatic() {
		d.Action, d.Why = policy.ActionReview, fmt.Sprintf("no lock reason for kind %q: queued for review", f.Kind)
	}

	files := evidence.Files(f)
	ev := make([]store.Evidence, 0, len(files))
	for _, x := range files {
		ev = append(ev, store.Evidence{Name: x.Name, ContentType: x.ContentType, Data: x.Data})
	}
	dj := decisionJSON{Action: d.Action, Configured: d.Configured, Why: d.Why, Group: d.Group, StaffUnlock: d.StaffUnlock, DecidedAt: now}
	if d.Action == policy.ActionWarn {
		dj.WarnDeadline = d.WarnDeadline.String()
	}
	if d.Action == policy.ActionBlackhole {
		dj.Expiry = d.Expiry.String()
	}
	slim := f
	slim.Probes, slim.Packets, slim.Summary = nil, nil, nil
	// The case ID is unknown before it is recorded: the key uses the IP,
	// kind and the case's count, unique per appended finding.
	if d.Action.Automatic() {
		dj.Key = fmt.Sprintf("finding:%s:%s:%d:%d", f.Kind, f.InternalIP, count, now.UnixMicro())
	}
	raw, err := json.Marshal(detail{Finding: slim, Decision: dj})
	if err != nil {
		return err
	}
	fc, _, err := p.deps.Store.RecordFinding(ctx, store.FindingInput{Kind: string(f.Kind), InternalIP: f.InternalIP, CustomerID: customer,
		FirstSeen: f.FirstSeen, LastSeen: f.LastSeen, Detail: raw, Evidence: ev}, now)
	if err != nil {
		p.m.errors.WithLabelValues("store").Inc()
		p.m.outcomes.WithLabelValues(string(d.Action), "error").Inc()
		return err
	}
	log := p.log.With("finding_id", fc.ID, "kind", string(f.Kind), "rule", f.Rule, "internal_ip", f.InternalIP.String(),
		"customer_id", customer, "action", string(d.Action), "why", d.Why)
	switch d.Action {
	case policy.ActionNotify, policy.ActionReview:
		log.Warn("finding needs staff attention")
	case policy.ActionIgnore, policy.ActionRecord, "appended":
		log.Info("finding recorded")
	}
	if !d.Action.Automatic() {
		p.m.outcomes.WithLabelValues(string(d.Action), "ok").Inc()
		return nil
	}
	l, err := p.apply(ctx, fc.ID, f.InternalIP, reason, dj, files)
	if err != nil {
		p.m.errors.WithLabelValues("lock").Inc()
		p.m.outcomes.WithLabelValues(string(d.Action), "error").Inc()
		return fmt.Errorf("finding %d: %w", fc.ID, err)
	}
	p.m.outcomes.WithLabelValues(string(d.Action), "ok").Inc()
	if !f.LastSeen.IsZero() {
		p.m.toLock.Observe(p.now().Sub(f.LastSeen).Seconds())
	}
	log.Info("finding locked", "lock_id", l.ID, "locking_id", l.LockingID, "state", string(l.State))
	return nil
}

// apply creates (or re-locks) the lock a decision asks for and links it to
// the case. The idempotency key makes a repeat after a crash return the same
// lock.
func (p *Pipeline) apply(ctx context.Context, caseID int64, ip netip.Addr, reason lock.Reason, d decisionJSON, files []evidence.File) (lock.Lock, error) {
	req := lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{ip}}, Reason: reason, FindingID: caseID}
	var note []string
	switch d.Action {
	case policy.ActionBlackhole:
		exp, _ := time.ParseDuration(d.Expiry)
		note = append(note, policy.InboundProtectionMarker+" expires "+d.DecidedAt.Add(exp).UTC().Format(time.RFC3339)+":",
			"this address receives more traffic than the network can carry; it is blackholed to protect the network, not because of anything the customer did.")
	case policy.ActionWarn:
		dl, _ := time.ParseDuration(d.WarnDeadline)
		until := d.DecidedAt.Add(dl)
		if !until.After(p.now()) {
			until = p.now().Add(time.Minute)
		}
		req.WarnUntil = &until
	}
	if d.StaffUnlock {
		note = append(note, policy.StaffUnlockMarker+" repeat offence: only staff may unlock.")
	}
	note = append(note, "automatic: "+d.Why)
	req.Note = strings.Join(note, " ")
	for _, x := range files {
		if x.Name == evidence.NameJSON {
			continue
		}
		req.Evidence = append(req.Evidence, mail.Attachment{Name: x.Name, ContentType: x.ContentType, Data: x.Data})
	}
	l, err := p.deps.Locks.CreateLock(ctx, lock.System, req, d.Key)
	if e := lock.ErrorDetails(err); e != nil && errors.Is(err, lock.ErrConflict) && e.ExistingID != 0 {
		l, err = p.deps.Locks.GetLock(ctx, lock.System, e.ExistingID)
	}
	if err != nil {
		return lock.Lock{}, err
	}
	if err := p.deps.Store.SetFindingLock(ctx, caseID, l.ID); err != nil {
		return l, err
	}
	return l, nil
}

func (p *Pipeline) priorLocks(ctx context.Context, customer int64, reason lock.Reason, now time.Time) int {
	ls, err := p.deps.Locks.ListLocks(ctx, lock.System, lock.LockFilter{CustomerID: customer, Reason: reason, Limit: 1000})
	if err != nil {
		p.m.errors.WithLabelValues("lock").Inc()
		p.log.Warn("prior locks", "customer_id", customer, "err", err)
		return 0
	}
	cut := now.Add(-p.deps.Policy.Configuration().Escalation.Lookback)
	n := 0
	for _, l := range ls {
		if l.CreatedAt.After(cut) && !strings.Contains(l.Note, policy.InboundProtectionMarker) {
			n++
		}
	}
	return n
}

// recover applies decided automatic actions whose lock was never created
// (padlock died between recording the finding and creating the lock).
func (p *Pipeline) recover(ctx context.Context) {
	cases, err := p.deps.Store.ListFindings(ctx, store.FindingFilter{State: "open", Limit: 1000})
	if err != nil {
		p.m.errors.WithLabelValues("recover").Inc()
		p.log.Error("recover: list findings", "err", err)
		return
	}
	cut := p.now().Add(-p.conf.RecoverWithin)
	for _, c := range cases {
		if c.LockID != 0 || c.UpdatedAt.Before(cut) {
			continue
		}
		var dt struct {
			Decision decisionJSON `json:"decision"`
		}
		if json.Unmarshal(c.Detail, &dt) != nil || !dt.Decision.Action.Automatic() || dt.Decision.Key == "" {
			continue
		}
		reason, ok := Reasons[detect.Kind(c.Kind)]
		if !ok {
			continue
		}
		stored, err := p.deps.Store.FindingEvidence(ctx, c.ID, true)
		if err != nil {
			p.m.errors.WithLabelValues("recover").Inc()
			continue
		}
		// The newest file of each name is the last finding's.
		latest := map[string]evidence.File{}
		var order []string
		for _, e := range stored {
			if _, ok := latest[e.Name]; !ok {
				order = append(order, e.Name)
			}
			latest[e.Name] = evidence.File{Name: e.Name, ContentType: e.ContentType, Data: e.Data}
		}
		files := make([]evidence.File, 0, len(order))
		for _, n := range order {
			files = append(files, latest[n])
		}
		l, err := p.apply(ctx, c.ID, c.InternalIP, reason, dt.Decision, files)
		if err != nil {
			p.m.errors.WithLabelValues("recover").Inc()
			p.log.Error("recover: lock", "finding_id", c.ID, "err", err)
			continue
		}
		p.log.Warn("recovered an interrupted automatic action", "finding_id", c.ID, "lock_id", l.ID, "locking_id", l.LockingID)
	}
}

func (p *Pipeline) runSweeper(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTicker(p.conf.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.Sweep(ctx)
		}
	}
}

// Sweep escalates overdue warnings, expires whitelists and lifts expired
// inbound-protection blackholes.
func (p *Pipeline) Sweep(ctx context.Context) {
	if n, err := p.deps.Locks.LockOverdue(ctx); err != nil {
		p.m.errors.WithLabelValues("sweep").Inc()
		p.log.Error("sweep: overdue warnings", "err", err)
	} else if n > 0 {
		p.log.Info("sweep: warnings past their deadline locked", "count", n)
	}
	if n, err := p.deps.Locks.ExpireWhitelists(ctx); err != nil {
		p.m.errors.WithLabelValues("sweep").Inc()
		p.log.Error("sweep: whitelists", "err", err)
	} else if n > 0 {
		p.log.Info("sweep: whitelist entries expired", "count", n)
	}
	now := p.now()
	for _, r := range []lock.Reason{lock.ReasonPacketLimit, lock.ReasonNetworkAttack} {
		ls, err := p.deps.Locks.ListLocks(ctx, lock.System, lock.LockFilter{State: lock.StateLocked, Reason: r, Limit: 1000})
		if err != nil {
			p.m.errors.WithLabelValues("sweep").Inc()
			continue
		}
		for _, l := range ls {
			exp, ok := BlackholeExpiry(l.Note)
			if !ok || now.Before(exp) {
				continue
			}
			if _, err := p.deps.Locks.Unlock(ctx, lock.System, l.ID, "inbound protection expired"); err != nil {
				p.m.errors.WithLabelValues("sweep").Inc()
				p.log.Error("sweep: lift blackhole", "lock_id", l.ID, "err", err)
				continue
			}
			p.log.Info("sweep: inbound protection lifted", "lock_id", l.ID, "locking_id", l.LockingID)
		}
	}
}

// BlackholeExpiry reads the expiry of an inbound-protection lock from its
// note ("[inbound-protection] expires 2026-11-25T13:00:00Z: ...").
func BlackholeExpiry(note string) (time.Time, bool) {
	_, rest, ok := strings.Cut(note, policy.InboundProtectionMarker+" expires ")
	if !ok {
		return time.Time{}, false
	}
	ts, _, _ := strings.Cut(rest, ":")
	// RFC 3339 contains colons: take the fixed-width UTC form.
	if len(rest) >= len("2006-01-02T15:04:05Z") {
		ts = rest[:len("2006-01-02T15:04:05Z")]
	}
	t, err := time.Parse(time.RFC3339, ts)
	return t, err == nil
}

// Policy returns the policy (the admin area reads its breaker state).
func (p *Pipeline) Policy() *policy.Policy { return p.deps.Policy }
