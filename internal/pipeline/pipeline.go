// Package pipeline runs padlock's live path: records from the collector go
// through the detection engine, every finding through the policy, into the
// store as a case with its evidence files, and — where the policy says so —
// to the lock service, whose transaction queues the customer's mail and
// whose OnChange hook wakes enforcement.
//
// It owns the joins between those components and nothing else: batching and
// the queue between collector goroutines and the single engine goroutine
// (bounded; a full queue drops the batch and counts it), the mapping of
// finding kinds to lock reasons, evidence attachments, the attribution of
// spoofed-source findings (by the sender's MAC in the inventory, else a
// review case keyed by the spoofed address), staff alerts through the
// outbox (policy.staff_email: one mail per breaker trip, one per notify
// case), the customer's notice of a notify case (one per case, rendered by
// Dependencies.Notice, queued in the outbox), crash recovery of decided-but-not-applied actions, and the
// periodic sweeper (warnings that lapse without recurrence, overdue
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
	"padlock/internal/detect/netconf"
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
	Finding(ctx context.Context, id int64) (store.FindingCase, error)
	CloseFinding(ctx context.Context, id, lockID int64, now time.Time) error
	SetFindingLock(ctx context.Context, id, lockID int64) error
	FindingEvidence(ctx context.Context, findingID int64, withData bool) ([]store.Evidence, error)
	// EnqueueMail queues a staff alert or a customer notice in the outbox.
	EnqueueMail(ctx context.Context, m mail.Message, now time.Time) (int64, error)
}

// Locks is what the pipeline needs from the lock service (lock.Service).
type Locks interface {
	Index() *inventory.Index
	CreateLock(ctx context.Context, a lock.Actor, req lock.CreateLockRequest, idempotencyKey string) (lock.Lock, error)
	GetLock(ctx context.Context, a lock.Actor, id int64) (lock.Lock, error)
	ListLocks(ctx context.Context, a lock.Actor, f lock.LockFilter) ([]lock.Lock, error)
	// GetServer returns the server behind a MAC (the index's LookupMAC).
	GetServer(ctx context.Context, a lock.Actor, id int64) (inventory.Server, error)
	Unlock(ctx context.Context, a lock.Actor, lockID int64, note string) (lock.Lock, error)
	LockOverdue(ctx context.Context) (int, error)
	ExpireWhitelists(ctx context.Context) (int, error)
	// ExpireLocks lifts locks whose ExpiresAt passed (inbound protection).
	ExpireLocks(ctx context.Context) (int, error)
	// ListAudit finds re-locks within probation (priorLocks).
	ListAudit(ctx context.Context, a lock.Actor, f lock.AuditFilter) ([]lock.AuditEvent, error)
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
	// Notice renders the customer's mail for a notify case: what was seen
	// from the case's address ip, with the evidence files, and that nothing
	// is locked. Called once per case, for a case with a customer and a
	// lock reason. Nil: notify cases mail only the staff.
	Notice func(ctx context.Context, f detect.Finding, ip netip.Addr, customerID int64, files []evidence.File) (mail.Message, error)
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
	// kick wakes the sweeper to send a breaker alert at once.
	kick chan struct{}

	// alertMu guards alerted: the Since of the last breaker trip a staff
	// mail was queued for.
	alertMu sync.Mutex
	alerted time.Time
	// notified are the times of the notify mails of the last hour
	// (Handle's goroutine only), capped at StaffNotifyPerHour.
	notified []time.Time

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
	p := &Pipeline{conf: conf, deps: deps, now: deps.Clock, log: deps.Logger, kick: make(chan struct{}, 1)}
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
			Help: "What the pipeline did with findings, by policy outcome (record, notify, warn, lock, blackhole, review, ignore, appended; lapsed: a warning lifted without recurrence) and result (ok, error)."},
			[]string{"action", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "padlock_pipeline_errors_total",
			Help: "Errors by stage (store, lock, sweep, recover, alert, notice)."}, []string{"stage"}),
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

// Owner names an address's holder as netconf compares it (see
// netconf.SameOwner): "customer:C/server:S" for a server's address, whose
// server alone may send from it, and "customer:C" for a standalone address
// (an additional IP or subnet), which any of the customer's servers may.
func (n *networks) Owner(a netip.Addr) (string, bool) {
	if e, ok := n.locks.Index().Lookup(a); ok {
		if e.Type == inventory.ProductServer {
			return fmt.Sprintf("customer:%d/server:%d", e.CustomerID, e.ProductID), true
		}
		return fmt.Sprintf("customer:%d", e.CustomerID), true
	}
	return n.prefixes.Owner(a)
}

// MACOwner names the server an inventory MAC belongs to, as Owner does.
func (n *networks) MACOwner(m flow.MAC) (string, bool) {
	if e, ok := n.locks.Index().LookupMAC(m); ok {
		return fmt.Sprintf("customer:%d/server:%d", e.CustomerID, e.ServerID), true
	}
	return n.prefixes.MACOwner(m)
}

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
	select { // the sweeper goroutine queues the staff mail
	case p.kick <- struct{}{}:
	default:
	}
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
// without its bulky evidence, how a finding without an internal end was
// attributed, and the policy's decision.
type detail struct {
	detect.Finding
	// SpoofedSource flags an incorrect_network_config finding whose source
	// belongs to nobody (Finding.Source); the case is keyed by the server
	// the sender's MAC belongs to, or else by the spoofed address itself.
	SpoofedSource bool `json:"spoofed_source,omitempty"`
	// AttributedBy says how a spoofed source's or a foreign address's
	// case found its owner: "mac" (the inventory knows the sender's MAC)
	// or "none" (keyed by the address, customer 0, for review).
	AttributedBy string `json:"attributed_by,omitempty"`
	// Server is the server the sender's MAC belongs to (spoofed sources,
	// foreign addresses).
	Server   *serverRef   `json:"server,omitempty"`
	Decision decisionJSON `json:"decision"`
}

type serverRef struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type decisionJSON struct {
	Action       policy.Action `json:"action"`
	Configured   policy.Action `json:"configured,omitempty"`
	Why          string        `json:"why"`
	Group        string        `json:"group,omitempty"`
	WarnDeadline string        `json:"warn_deadline,omitempty"`
	Expiry       string        `json:"expiry,omitempty"`
	StaffUnlock  bool          `json:"staff_unlock,omitempty"`
	// Method is the enforcement method the policy chose (blackhole).
	Method    string    `json:"method,omitempty"`
	DecidedAt time.Time `json:"decided_at"`
	// Key is the idempotency key of the lock the action creates.
	Key string `json:"key,omitempty"`
	// ServerID makes the lock cover the whole server (a spoofing sender
	// found by its MAC) instead of the case's address.
	ServerID int64 `json:"server_id,omitempty"`
	// StaffNotified: a staff mail was queued for this case (notify);
	// carried over to the case's later findings so it is sent once.
	StaffNotified bool `json:"staff_notified,omitempty"`
	// CustomerNotified: the customer's notice was queued for this case
	// (notify); carried over like StaffNotified.
	CustomerNotified bool `json:"customer_notified,omitempty"`
}

// activeStates are the lock states in which a new finding only appends.
var activeStates = map[lock.State]bool{lock.StateWarned: true, lock.StateLocked: true, lock.StateUnlockRequested: true}

// Handle runs one finding through policy, store and lock service. It is
// called from one goroutine; tests call it directly.
func (p *Pipeline) Handle(ctx context.Context, f detect.Finding) error {
	now := p.now()
	// The case's address: the internal end, or for a spoofed source the
	// server its sender's MAC belongs to, or else the spoofed address.
	ip := f.InternalIP
	var customer int64
	var att struct {
		spoofed bool
		by      string
		server  *inventory.Server
	}
	if !ip.IsValid() && f.Source.IsValid() {
		att.spoofed, att.by, ip = true, "none", f.Source
		if sv, ok := p.serverOfMAC(ctx, f.MAC); ok {
			att.by, att.server, ip, customer = "mac", &sv, serverAddr(sv), sv.CustomerID
		}
	}
	if f.Rule == netconf.RuleForeignAddress && ip.IsValid() {
		// A server sent from another's address: the case is the sender's
		// (the server its MAC belongs to), not the address holder's, who
		// only had its address misused. A sender the inventory no longer
		// knows leaves the case to review (customer 0), keyed by the address.
		att.by = "none"
		if sv, ok := p.serverOfMAC(ctx, f.MAC); ok {
			att.by, att.server, ip, customer = "mac", &sv, serverAddr(sv), sv.CustomerID
		}
	}
	if !ip.IsValid() {
		return fmt.Errorf("finding %s (%s) has neither an internal address nor a source", f.Kind, f.Rule)
	}
	if att.server == nil && att.by == "" {
		if e, ok := p.deps.Locks.Index().Lookup(ip); ok {
			customer = e.CustomerID
		}
	}
	reason, hasReason := Reasons[f.Kind]
	open, err := p.deps.Store.ListFindings(ctx, store.FindingFilter{IP: ip, Kind: string(f.Kind), State: "open", Limit: 1})
	if err != nil {
		p.m.errors.WithLabelValues("store").Inc()
		return fmt.Errorf("open case: %w", err)
	}
	if idle := p.deps.Policy.Configuration().CaseIdle; idle > 0 && len(open) > 0 && open[0].LockID == 0 &&
		open[0].LastSeen.Before(f.FirstSeen.Add(-idle)) {
		// a new episode: the old case ends, the finding opens a fresh one
		if err := p.deps.Store.CloseFinding(ctx, open[0].ID, 0, now); err != nil {
			p.m.errors.WithLabelValues("store").Inc()
			return fmt.Errorf("close idle case: %w", err)
		}
		open = nil
	}
	count := 1
	var activeLock int64
	var prev decisionJSON
	if len(open) > 0 {
		count = open[0].Count + 1
		var pd struct {
			Decision decisionJSON `json:"decision"`
		}
		_ = json.Unmarshal(open[0].Detail, &pd)
		prev = pd.Decision
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
		d = p.deps.Policy.Decide(policy.Input{Kind: string(f.Kind), Direction: string(f.Direction), IP: ip,
			Samples: f.Samples, Protected: f.Protected, CustomerID: customer, CaseCount: count, PriorLocks: prior,
			SpoofedSource: att.spoofed && att.server == nil}, now)
		p.alertBreaker(ctx)
	}
	if !hasReason && d.Action.Automatic() {
		d.Action, d.Why = policy.ActionReview, fmt.Sprintf("no lock reason for kind %q: queued for review", f.Kind)
	}

	files := evidence.Files(f)
	ev := make([]store.Evidence, 0, len(files))
	for _, x := range files {
		ev = append(ev, store.Evidence{Name: x.Name, ContentType: x.ContentType, Data: x.Data})
	}
	dj := decisionJSON{Action: d.Action, Configured: d.Configured, Why: d.Why, Group: d.Group, StaffUnlock: d.StaffUnlock, DecidedAt: now,
		StaffNotified: prev.StaffNotified, CustomerNotified: prev.CustomerNotified}
	if d.Action == policy.ActionWarn {
		dj.WarnDeadline = d.WarnDeadline.String()
	}
	if d.Action == policy.ActionBlackhole {
		dj.Expiry, dj.Method = d.Expiry.String(), d.Method
	}
	if att.server != nil {
		dj.ServerID = att.server.ID
	}
	notifyStaff := d.Action == policy.ActionNotify && !prev.StaffNotified && p.staffEmail() != "" && p.notifyBudget(now)
	if notifyStaff {
		dj.StaffNotified = true
	}
	// The customer's notice is rendered before the case is recorded, so
	// the case records it as sent only when there is a mail to queue.
	var notice *mail.Message
	if d.Action == policy.ActionNotify && !prev.CustomerNotified && customer != 0 && hasReason && p.deps.Notice != nil {
		if m, err := p.deps.Notice(ctx, f, ip, customer, customerFiles(files)); err != nil {
			p.m.errors.WithLabelValues("notice").Inc()
			p.log.Error("customer notice not rendered", "kind", string(f.Kind), "internal_ip", ip.String(), "customer_id", customer, "err", err)
		} else {
			if m.CustomerID == 0 {
				m.CustomerID = customer
			}
			notice, dj.CustomerNotified = &m, true
		}
	}
	slim := f
	slim.Probes, slim.Packets, slim.Summary = nil, nil, nil
	// The case ID is unknown before it is recorded: the key uses the IP,
	// kind and the case's count, unique per appended finding.
	if d.Action.Automatic() {
		dj.Key = fmt.Sprintf("finding:%s:%s:%d:%d", f.Kind, ip, count, now.UnixMicro())
	}
	dt := detail{Finding: slim, Decision: dj}
	dt.SpoofedSource, dt.AttributedBy = att.spoofed, att.by
	if att.server != nil {
		dt.Server = &serverRef{ID: att.server.ID, Name: att.server.Name}
	}
	raw, err := json.Marshal(dt)
	if err != nil {
		return err
	}
	in := store.FindingInput{Kind: string(f.Kind), InternalIP: ip, CustomerID: customer,
		FirstSeen: f.FirstSeen, LastSeen: f.LastSeen, Detail: raw, Evidence: ev}
	if notice != nil || notifyStaff {
		// queued with the case, so the case's "notified" marks and the
		// mails are written together or not at all
		in.Mails = func(fc store.FindingCase) []mail.Message {
			var ms []mail.Message
			if notice != nil {
				ms = append(ms, *notice)
			}
			if notifyStaff {
				m := notifyMail(fc, f, dt, customer, files, notice)
				m.To = p.staffEmail()
				ms = append(ms, m)
			}
			return ms
		}
	}
	fc, _, err := p.deps.Store.RecordFinding(ctx, in, now)
	if err != nil {
		p.m.errors.WithLabelValues("store").Inc()
		p.m.outcomes.WithLabelValues(string(d.Action), "error").Inc()
		return err
	}
	log := p.log.With("finding_id", fc.ID, "kind", string(f.Kind), "rule", f.Rule, "internal_ip", ip.String(),
		"customer_id", customer, "action", string(d.Action), "why", d.Why)
	if att.spoofed {
		log = log.With("spoofed_source", f.Source.String())
	}
	if att.by != "" {
		log = log.With("attributed_by", att.by)
	}
	switch d.Action {
	case policy.ActionNotify, policy.ActionReview:
		log.Warn("finding needs staff attention")
	case policy.ActionIgnore, policy.ActionRecord, "appended":
		log.Info("finding recorded")
	}
	queued := fc.Queued
	if notice != nil && len(queued) > 0 {
		log.Info("customer notice queued", "mail_id", queued[0], "to", notice.To)
		queued = queued[1:]
	}
	if notifyStaff && len(queued) > 0 {
		log.Info("staff alert queued", "alert", "notify", "mail_id", queued[0], "to", p.staffEmail())
	}
	if !d.Action.Automatic() {
		p.m.outcomes.WithLabelValues(string(d.Action), "ok").Inc()
		return nil
	}
	l, err := p.apply(ctx, fc.ID, ip, reason, dj, files)
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

// serverOfMAC returns the server the inventory assigns mac to.
func (p *Pipeline) serverOfMAC(ctx context.Context, mac flow.MAC) (inventory.Server, bool) {
	e, ok := p.deps.Locks.Index().LookupMAC(mac)
	if !ok || mac.IsZero() {
		return inventory.Server{}, false
	}
	sv, err := p.deps.Locks.GetServer(ctx, lock.System, e.ServerID)
	if err != nil {
		p.m.errors.WithLabelValues("store").Inc()
		p.log.Error("server of a MAC", "server", e.ServerID, "err", err)
		return inventory.Server{}, false
	}
	return sv, true
}

// serverAddr is the address a server's case is keyed by: its first single
// address (IPv4 before IPv6), else the first address of its first prefix.
func serverAddr(sv inventory.Server) netip.Addr {
	var best netip.Addr
	for _, pf := range sv.IPs {
		if pf.IsSingleIP() && (!best.IsValid() || best.Is6() && pf.Addr().Is4()) {
			best = pf.Addr()
		}
	}
	if !best.IsValid() && len(sv.IPs) > 0 {
		best = sv.IPs[0].Addr()
	}
	return best
}

// StaffNotifyPerHour caps the staff mails for notify cases (a server
// spoofing random sources yields one case per source): beyond it cases are
// only logged and shown in the admin area; a capped case mails with its
// next finding once the hour has room again.
const StaffNotifyPerHour = 30

// notifyBudget takes one notify mail from the hourly budget.
func (p *Pipeline) notifyBudget(now time.Time) bool {
	cut := now.Add(-time.Hour)
	i := 0
	for i < len(p.notified) && !p.notified[i].After(cut) {
		i++
	}
	p.notified = append(p.notified[:0], p.notified[i:]...)
	if len(p.notified) >= StaffNotifyPerHour {
		p.log.Warn("staff notify mail suppressed: hourly cap reached", "per_hour", StaffNotifyPerHour)
		return false
	}
	p.notified = append(p.notified, now)
	return true
}

// staffEmail is policy.staff_email (empty: alerts are only logged).
func (p *Pipeline) staffEmail() string { return p.deps.Policy.Configuration().StaffEmail }

// mailStaff queues a staff alert in the outbox. A failure is logged and
// counted; the finding stays visible in the admin area.
func (p *Pipeline) mailStaff(ctx context.Context, m mail.Message, what string, log *slog.Logger) bool {
	m.To = p.staffEmail()
	if m.To == "" {
		return false
	}
	id, err := p.deps.Store.EnqueueMail(ctx, m, p.now())
	if err != nil {
		p.m.errors.WithLabelValues("alert").Inc()
		log.Error("staff alert not queued", "alert", what, "err", err)
		return false
	}
	log.Info("staff alert queued", "alert", what, "mail_id", id, "to", m.To)
	return true
}

// Staff alert mail kinds (mail.Message.Kind).
const (
	MailStaffNotify  = "staff_notify"
	MailStaffBreaker = "staff_breaker"
)

func notifyMail(fc store.FindingCase, f detect.Finding, dt detail, customer int64, files []evidence.File, notice *mail.Message) mail.Message {
	var b strings.Builder
	if notice != nil {
		fmt.Fprintf(&b, "padlock recorded a finding whose policy action is notify: nothing was locked; a notice with the evidence was queued for the customer (%s).\n\n", notice.To)
	} else {
		fmt.Fprintf(&b, "padlock recorded a finding whose policy action is notify: no customer mail was sent and nothing was locked.\n\n")
	}
	fmt.Fprintf(&b, "Case:        %d\n", fc.ID)
	fmt.Fprintf(&b, "Kind:        %s (%s, direction %s)\n", f.Kind, f.Rule, f.Direction)
	fmt.Fprintf(&b, "Address:     %s\n", fc.InternalIP)
	if dt.SpoofedSource {
		fmt.Fprintf(&b, "Spoofed src: %s (attributed by %s)\n", f.Source, dt.AttributedBy)
	}
	if customer != 0 {
		fmt.Fprintf(&b, "Customer:    %d\n", customer)
	} else {
		fmt.Fprintf(&b, "Customer:    none in the inventory\n")
	}
	fmt.Fprintf(&b, "Measured:    %g %s (threshold %g)\n", f.Measured, f.Unit, f.Threshold)
	fmt.Fprintf(&b, "Seen:        %s – %s (sampling 1:%d, %d samples)\n", f.FirstSeen.UTC().Format(time.RFC3339), f.LastSeen.UTC().Format(time.RFC3339), f.SamplingRate, f.Samples)
	if f.Detail != "" {
		fmt.Fprintf(&b, "Detail:      %s\n", f.Detail)
	}
	fmt.Fprintf(&b, "Policy:      %s\n", dt.Decision.Why)
	fmt.Fprintf(&b, "\nLater findings of this case are appended to it without another mail.\n")
	m := mail.Message{Subject: fmt.Sprintf("[padlock] %s from %s (case %d): notify", f.Kind, fc.InternalIP, fc.ID), Text: b.String(), Kind: MailStaffNotify}
	for _, x := range files {
		m.Attachments = append(m.Attachments, mail.Attachment{Name: x.Name, ContentType: x.ContentType, Data: x.Data})
	}
	return m
}

// customerFiles are the evidence files a customer gets: all but the
// finding's JSON (as with locks).
func customerFiles(files []evidence.File) []evidence.File {
	out := make([]evidence.File, 0, len(files))
	for _, x := range files {
		if x.Name != evidence.NameJSON {
			out = append(out, x)
		}
	}
	return out
}

// alertBreaker queues one staff mail per circuit-breaker trip (a trip is
// identified by the time it opened). Safe for concurrent use.
func (p *Pipeline) alertBreaker(ctx context.Context) {
	st := p.deps.Policy.State()
	if !st.Open || p.staffEmail() == "" {
		return
	}
	p.alertMu.Lock()
	defer p.alertMu.Unlock()
	if st.Since.Equal(p.alerted) {
		return
	}
	text := fmt.Sprintf("The circuit breaker opened at %s: %s.\n\nAutomatic warnings, locks and blackholes have stopped; new findings queue for review in the admin area.\nClose it under Policy in the admin area (/admin/policy) once the cause is understood.\n",
		st.Since.UTC().Format(time.RFC3339), st.Reason)
	m := mail.Message{Subject: "[padlock] circuit breaker open: automatic actions stopped", Text: text, Kind: MailStaffBreaker}
	if p.mailStaff(ctx, m, "breaker", p.log.With("reason", st.Reason)) {
		p.alerted = st.Since
	}
}

// apply creates (or re-locks) the lock a decision asks for and links it to
// the case. The idempotency key makes a repeat after a crash return the same
// lock.
func (p *Pipeline) apply(ctx context.Context, caseID int64, ip netip.Addr, reason lock.Reason, d decisionJSON, files []evidence.File) (lock.Lock, error) {
	req := lock.CreateLockRequest{Scope: lock.Scope{IPs: []netip.Addr{ip}}, Reason: reason, FindingID: caseID}
	if d.ServerID != 0 {
		req.Scope = lock.Scope{ServerID: d.ServerID}
	}
	var note []string
	switch d.Action {
	case policy.ActionBlackhole:
		exp, _ := time.ParseDuration(d.Expiry)
		until := d.DecidedAt.Add(exp).UTC()
		if !until.After(p.now()) { // recovered after its expiry: a short one
			until = p.now().Add(time.Minute).UTC()
		}
		method := d.Method
		if method == "" {
			method = lock.MethodBlackhole
		}
		req.InboundProtection, req.ExpiresAt, req.Method = true, &until, lock.NormalizeMethod(method)
		note = append(note, "inbound protection until "+until.Format(time.RFC3339)+":",
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
		req.StaffUnlockOnly = true
		note = append(note, "repeat offence: only staff may unlock.")
	}
	note = append(note, "automatic: "+d.Why)
	req.Note = strings.Join(note, " ")
	for _, x := range files {
		if x.Name == evidence.NameJSON {
			continue
		}
		req.Evidence = append(req.Evidence, mail.Attachment{Name: x.Name, ContentType: x.ContentType, Data: x.Data})
	}
	if d.Action == policy.ActionLock || d.Action == policy.ActionWarn {
		// The product may already be locked for this reason under another
		// scope (staff locked the whole server, or locked from a finding,
		// which closed that case): the finding joins that lock instead of
		// locking the same problem twice, with a second mail and a second
		// unlock request for the customer.
		if l, ok, err := p.coveringLock(ctx, ip, reason, d.Action); err != nil {
			return lock.Lock{}, err
		} else if ok {
			if err := p.deps.Store.SetFindingLock(ctx, caseID, l.ID); err != nil {
				return l, err
			}
			return l, nil
		}
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

// coveringLock finds an active lock of reason that already covers ip and
// is at least as strong as the action: any warning or lock for a warning;
// a lock (not a mere warning) for a lock. Inbound protection locks do not
// count: they protect a victim, they do not stop the customer's traffic
// for this reason.
func (p *Pipeline) coveringLock(ctx context.Context, ip netip.Addr, reason lock.Reason, act policy.Action) (lock.Lock, bool, error) {
	ls, err := p.deps.Locks.ListLocks(ctx, lock.System, lock.LockFilter{IP: ip, Reason: reason, Limit: 100})
	if err != nil {
		return lock.Lock{}, false, err
	}
	for _, l := range ls {
		if l.InboundProtection {
			continue
		}
		switch l.State {
		case lock.StateLocked, lock.StateUnlockRequested:
			return l, true, nil
		case lock.StateWarned:
			if act == policy.ActionWarn {
				return l, true, nil
			}
		}
	}
	return lock.Lock{}, false, nil
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
	mine := map[int64]bool{}
	for _, l := range ls {
		if l.InboundProtection {
			continue
		}
		mine[l.ID] = true
		// A warning that lapsed (unlocked without ever being locked) was
		// never a lock.
		lapsed := l.State == lock.StateUnlocked && l.LockedAt == nil
		if l.CreatedAt.After(cut) && !lapsed {
			n++
		}
	}
	// A recurrence within probation re-locks the same lock: each re-lock is
	// another offence.
	evs, err := p.deps.Locks.ListAudit(ctx, lock.System, lock.AuditFilter{CustomerID: customer, Action: string(lock.ActionRelock), Since: cut, Limit: 1000})
	if err != nil {
		p.m.errors.WithLabelValues("lock").Inc()
		p.log.Warn("prior re-locks", "customer_id", customer, "err", err)
		return n
	}
	for _, ev := range evs {
		if mine[ev.LockID] {
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
		case <-p.kick:
			p.alertBreaker(ctx)
		}
	}
}

// Sweep lets warnings without recurrence lapse, escalates the other
// overdue warnings, expires whitelists, lifts expired inbound-protection
// blackholes and sends a pending breaker alert.
func (p *Pipeline) Sweep(ctx context.Context) {
	p.alertBreaker(ctx)
	p.lapseWarnings(ctx)
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
	if n, err := p.deps.Locks.ExpireLocks(ctx); err != nil {
		p.m.errors.WithLabelValues("sweep").Inc()
		p.log.Error("sweep: expired locks", "err", err)
	} else if n > 0 {
		p.log.Info("sweep: inbound protection lifted at its expiry", "count", n)
	}
}

// LapseNote is the note of a warning the sweeper lifted because its case
// got no new evidence after the warning.
const LapseNote = "warning lapsed: no recurrence"

// lapseWarnings implements the policy's warn semantics: a warning locks at
// its deadline only when the abuse continued. For each warning the pipeline
// created whose deadline passes before the next sweep (a warning past its
// deadline is already enforced, so waiting for the deadline itself would
// block an innocent address until the sweep after it), the warning's case
// is checked: no finding appended since the warning was issued means no
// recurrence, and the warning is unlocked with LapseNote and the case
// closed. Warnings whose case got new evidence are left to LockOverdue. A
// recurrence after the lapse opens a new case; within the lock's probation
// the lock service re-locks at once.
func (p *Pipeline) lapseWarnings(ctx context.Context) {
	now := p.now()
	horizon := now.Add(p.conf.SweepInterval)
	ls, err := p.deps.Locks.ListLocks(ctx, lock.System, lock.LockFilter{State: lock.StateWarned, Limit: 1000})
	if err != nil {
		p.m.errors.WithLabelValues("sweep").Inc()
		p.log.Error("sweep: warnings", "err", err)
		return
	}
	for _, l := range ls {
		if l.WarnUntil == nil || l.WarnUntil.After(horizon) || l.FindingID == 0 || l.CreatedBy != lock.System.String() {
			continue
		}
		c, err := p.deps.Store.Finding(ctx, l.FindingID)
		if err != nil {
			p.m.errors.WithLabelValues("sweep").Inc()
			p.log.Error("sweep: case of a warning", "lock_id", l.ID, "finding_id", l.FindingID, "err", err)
			continue
		}
		// The warning was created after its case's finding was recorded;
		// any later finding appended to the case moves UpdatedAt past it.
		if c.UpdatedAt.After(l.CreatedAt) {
			continue
		}
		if _, err := p.deps.Locks.Unlock(ctx, lock.System, l.ID, LapseNote); err != nil {
			p.m.errors.WithLabelValues("sweep").Inc()
			p.log.Error("sweep: lapse warning", "lock_id", l.ID, "err", err)
			continue
		}
		if c.State == "open" {
			if err := p.deps.Store.CloseFinding(ctx, c.ID, 0, now); err != nil {
				p.m.errors.WithLabelValues("sweep").Inc()
				p.log.Error("sweep: close case of a lapsed warning", "finding_id", c.ID, "err", err)
			}
		}
		p.m.outcomes.WithLabelValues("lapsed", "ok").Inc()
		p.log.Info("sweep: warning lapsed without recurrence", "lock_id", l.ID, "locking_id", l.LockingID, "finding_id", c.ID,
			"warn_until", l.WarnUntil.UTC().Format(time.RFC3339), "case_count", c.Count)
	}
}

// Policy returns the policy (the admin area reads its breaker state).
func (p *Pipeline) Policy() *policy.Policy { return p.deps.Policy }
