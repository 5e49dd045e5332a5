package enforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Configuration of the reconcile loop (the `enforce:` section; the drivers'
// own sections live next to it and are configured by their packages).
type Configuration struct {
	// Interval between periodic reconciles that repair drift. Default 30s.
	Interval time.Duration `yaml:"interval"`
	// MinBackoff and MaxBackoff bound the retry delay after a failure; the
	// delay doubles with every failed reconcile. Defaults 1s and 5m.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Protected prefixes are never enforced against: a block or allow whose
	// target overlaps one is refused and reported, whatever asked for it.
	Protected []netip.Prefix `yaml:"protected"`
}

// DefaultConfiguration returns the defaults.
func DefaultConfiguration() Configuration {
	return Configuration{Interval: 30 * time.Second, MinBackoff: time.Second, MaxBackoff: 5 * time.Minute}
}

// Validate checks the configuration; errors name the key.
func (c Configuration) Validate() error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval: must be positive, got %s", c.Interval))
	}
	if c.MinBackoff <= 0 {
		errs = append(errs, fmt.Errorf("min_backoff: must be positive, got %s", c.MinBackoff))
	}
	if c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("max_backoff: must be at least min_backoff (%s), got %s", c.MinBackoff, c.MaxBackoff))
	}
	for i, p := range c.Protected {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("protected[%d]: invalid prefix", i))
		}
	}
	return errors.Join(errs...)
}

// Dependencies of the loop.
type Dependencies struct {
	Source     Source
	Drivers    []Driver              // distinct Name()s
	Registerer prometheus.Registerer // nil: metrics are not registered
	Logger     *slog.Logger          // nil: slog.Default()
	Now        func() time.Time      // nil: time.Now; decides whitelist expiry
	// OnStatus, if set, is called (from the loop goroutine, without locks
	// held) whenever a lock's state or error changes, and with State ""
	// when a lock leaves the desired state.
	OnStatus func(Status)
}

// Loop is the reconcile loop. Create it with New, then Start it.
type Loop struct {
	cfg     Configuration
	deps    Dependencies
	log     *slog.Logger
	drivers map[string]Driver
	names   []string
	trigger chan struct{}
	metrics metrics

	runMu sync.Mutex // one reconcile at a time
	// owned by the reconcile holding runMu
	last       map[string]map[string]bool // keys applied after the last reconcile
	lastWant   map[string]map[string]bool // keys wanted in the last reconcile
	failures   int
	nextExpiry time.Time

	mu     sync.Mutex
	status map[int64]Status

	cancel context.CancelFunc
	done   chan struct{}
}

type metrics struct {
	drift    *prometheus.CounterVec
	failures *prometheus.CounterVec
	applied  *prometheus.GaugeVec
	locks    *prometheus.GaugeVec
	duration prometheus.Histogram
}

// New checks the configuration and builds the loop; it does no I/O.
func New(cfg Configuration, deps Dependencies) (*Loop, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("enforce: %w", err)
	}
	if deps.Source == nil {
		return nil, errors.New("enforce: no source")
	}
	l := &Loop{
		cfg: cfg, deps: deps, log: deps.Logger,
		drivers:  map[string]Driver{},
		trigger:  make(chan struct{}, 1),
		last:     map[string]map[string]bool{},
		lastWant: map[string]map[string]bool{},
		status:   map[int64]Status{},
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.deps.Now == nil {
		l.deps.Now = time.Now
	}
	for _, d := range deps.Drivers {
		if _, dup := l.drivers[d.Name()]; dup {
			return nil, fmt.Errorf("enforce: two drivers named %q", d.Name())
		}
		l.drivers[d.Name()] = d
		l.names = append(l.names, d.Name())
	}
	slices.Sort(l.names)
	l.metrics = metrics{
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "padlock_enforce_drift_total",
			Help: "Rules found added or missing on the equipment since the previous reconcile without padlock changing them.",
		}, []string{"driver"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "padlock_enforce_failures_total",
			Help: "Failed reads or applies of a driver (driver=\"source\" for the desired state).",
		}, []string{"driver"}),
		applied: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "padlock_enforce_applied",
			Help: "Rules a driver reports applied after the last reconcile.",
		}, []string{"driver", "kind"}),
		locks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "padlock_enforce_locks",
			Help: "Locks by enforcement state after the last reconcile.",
		}, []string{"state"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "padlock_enforce_reconcile_duration_seconds",
			Help:    "Duration of one reconcile over all drivers.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
	if deps.Registerer != nil {
		for _, c := range []prometheus.Collector{l.metrics.drift, l.metrics.failures, l.metrics.applied, l.metrics.locks, l.metrics.duration} {
			if err := deps.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("enforce: metrics: %w", err)
			}
		}
	}
	return l, nil
}

// Start runs the loop in the background: a reconcile right away (a restarted
// padlock re-announces and rebuilds everything), then on Trigger, when a
// whitelist expires, after a backoff while something is pending, and every
// Interval.
func (l *Loop) Start(ctx context.Context) error {
	ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	l.done = make(chan struct{})
	go l.run(ctx)
	return nil
}

// Stop ends the loop and waits for a running reconcile to finish or ctx to
// end. Rules stay on the equipment: stopping padlock never unlocks.
func (l *Loop) Stop(ctx context.Context) error {
	if l.cancel == nil {
		return nil
	}
	l.cancel()
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Trigger asks for a reconcile soon; the lock manager calls it after every
// change. It never blocks.
func (l *Loop) Trigger() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// Status returns the enforcement status of a lock, false when the lock is not
// in the desired state (not locked, or not reconciled yet).
func (l *Loop) Status(lockID int64) (Status, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.status[lockID]
	return s, ok
}

// Statuses returns the status of every lock in the desired state.
func (l *Loop) Statuses() []Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Status, 0, len(l.status))
	for _, s := range l.status {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Status) int { return int(a.LockID - b.LockID) })
	return out
}

func (l *Loop) run(ctx context.Context) {
	defer close(l.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	lastErr := "" // logged once until it changes
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-l.trigger:
		}
		err := l.Reconcile(ctx)
		if ctx.Err() != nil {
			return
		}
		l.runMu.Lock()
		wait := l.cfg.Interval
		if err != nil || l.failures > 0 {
			wait = l.cfg.MinBackoff << min(max(l.failures-1, 0), 20)
			if wait > l.cfg.MaxBackoff || wait <= 0 {
				wait = l.cfg.MaxBackoff
			}
		}
		if !l.nextExpiry.IsZero() {
			if d := l.nextExpiry.Sub(l.deps.Now()); d < wait {
				wait = max(d, 10*time.Millisecond)
			}
		}
		l.runMu.Unlock()
		if err != nil && err.Error() != lastErr {
			l.log.Warn("enforce: reconcile incomplete", "error", err, "retry_in", wait.String())
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// rule is one block or allow with the lock it belongs to.
type rule struct {
	lockID int64
	driver string
	key    string
}

// Reconcile runs one pass: read the desired state, refuse what must not be
// done, read each driver's applied state, apply the difference, read it back
// and update every lock's status. It returns the errors of the pass (the
// statuses carry them per lock too).
func (l *Loop) Reconcile(ctx context.Context) error {
	l.runMu.Lock()
	defer l.runMu.Unlock()
	start := time.Now()
	defer func() { l.metrics.duration.Observe(time.Since(start).Seconds()) }()

	now := l.deps.Now()
	desired, err := l.deps.Source.Desired(ctx)
	if err != nil {
		l.failures++
		l.metrics.failures.WithLabelValues("source").Inc()
		return fmt.Errorf("enforce: desired state: %w", err)
	}

	want := map[string]*Desired{}
	for _, n := range l.names {
		want[n] = &Desired{}
	}
	refused := map[int64]error{}
	var rules []rule
	locks := map[int64]bool{}
	l.nextExpiry = time.Time{}
	for _, b := range desired.Blocks {
		locks[b.LockID] = true
		if err := l.check(b.Target, b.Method, false); err != nil {
			refused[b.LockID] = errors.Join(refused[b.LockID], fmt.Errorf("block %s via %s: %w", b.Target, b.Method, err))
			continue
		}
		want[b.Method].Blocks = append(want[b.Method].Blocks, b)
		rules = append(rules, rule{b.LockID, b.Method, "b:" + b.Key()})
	}
	for _, a := range desired.Allows {
		if !a.Expires.IsZero() && !now.Before(a.Expires) {
			continue // expired: removed below if still applied
		}
		locks[a.LockID] = true
		err := l.check(a.Target, a.Method, true)
		if err == nil && !a.Source.IsValid() {
			err = errors.New("invalid source address")
		}
		if err == nil && a.Target.Prefix.IsValid() && a.Source.Unmap().Is4() != a.Target.Prefix.Addr().Is4() {
			err = errors.New("source and target are of different IP versions")
		}
		if err != nil {
			refused[a.LockID] = errors.Join(refused[a.LockID], fmt.Errorf("allow %s via %s: %w", a.Key(), a.Method, err))
			continue
		}
		a.Source = a.Source.Unmap()
		want[a.Method].Allows = append(want[a.Method].Allows, a)
		rules = append(rules, rule{a.LockID, a.Method, "a:" + a.Key()})
		if !a.Expires.IsZero() && (l.nextExpiry.IsZero() || a.Expires.Before(l.nextExpiry)) {
			l.nextExpiry = a.Expires
		}
	}

	applied := map[string]map[string]bool{}
	notEffective := map[string]map[string]string{}
	driverErr := map[string]error{}
	var errs []error
	for _, n := range l.names {
		keys, why, err := l.reconcileDriver(ctx, n, *want[n])
		applied[n], notEffective[n] = keys, why
		if err != nil {
			driverErr[n] = err
			errs = append(errs, err)
			l.metrics.failures.WithLabelValues(n).Inc()
		}
	}

	// Per-lock status: applied only when every rule is read back.
	missing := map[int64][]string{}
	missingDrivers := map[int64]map[string]bool{}
	missingWhy := map[int64]string{}
	for _, r := range rules {
		if !applied[r.driver][r.key] {
			missing[r.lockID] = append(missing[r.lockID], r.key[2:])
			if why := notEffective[r.driver][r.key]; why != "" && missingWhy[r.lockID] == "" {
				missingWhy[r.lockID] = r.driver + ": " + why
			}
			if missingDrivers[r.lockID] == nil {
				missingDrivers[r.lockID] = map[string]bool{}
			}
			missingDrivers[r.lockID][r.driver] = true
		}
	}
	var changed []Status
	counts := map[State]int{}
	l.mu.Lock()
	for id := range locks {
		s := Status{LockID: id}
		switch {
		case refused[id] != nil:
			s.State, s.Err = StateRefused, refused[id].Error()
		case len(missing[id]) > 0:
			s.State = StatePending
			var reasons []error
			for _, n := range slices.Sorted(maps.Keys(missingDrivers[id])) {
				if driverErr[n] != nil {
					reasons = append(reasons, driverErr[n])
				}
			}
			if len(reasons) == 0 && missingWhy[id] != "" {
				reasons = append(reasons, errors.New(missingWhy[id]))
			}
			if len(reasons) == 0 {
				reasons = append(reasons, errors.New("not yet reported applied by the equipment"))
			}
			s.Err = fmt.Sprintf("missing %s: %v", joinKeys(missing[id]), errors.Join(reasons...))
		default:
			s.State = StateApplied
		}
		old, had := l.status[id]
		s.Since = now
		if had && old.State == s.State {
			s.Since = old.Since
		}
		if s.State == StatePending {
			s.Attempts = old.Attempts + 1
		}
		l.status[id] = s
		counts[s.State]++
		if !had || old.State != s.State || old.Err != s.Err {
			changed = append(changed, s)
		}
	}
	for id := range l.status {
		if !locks[id] {
			delete(l.status, id)
			changed = append(changed, Status{LockID: id})
		}
	}
	l.mu.Unlock()
	for _, st := range []State{StateApplied, StatePending, StateRefused} {
		l.metrics.locks.WithLabelValues(string(st)).Set(float64(counts[st]))
	}
	// One log line per reconcile, not per lock: 10,000 locks may change at once.
	var bad []Status
	for _, s := range changed {
		if s.State == StatePending || s.State == StateRefused {
			bad = append(bad, s)
		}
		if l.deps.OnStatus != nil {
			l.deps.OnStatus(s)
		}
	}
	if len(bad) > 0 {
		slices.SortFunc(bad, func(a, b Status) int { return int(a.LockID - b.LockID) })
		l.log.Warn("enforce: locks not effective", "locks", len(bad), "lock_id", bad[0].LockID,
			"state", string(bad[0].State), "error", bad[0].Err)
	}

	if len(errs) > 0 || counts[StatePending] > 0 {
		l.failures++
	} else {
		l.failures = 0
	}
	return errors.Join(errs...)
}

// reconcileDriver brings one driver to want and returns the keys it reports
// applied afterwards ("b:"+Block.Key, "a:"+Allow.Key), and why the
// rules it reports configured but not in effect are not.
func (l *Loop) reconcileDriver(ctx context.Context, name string, want Desired) (map[string]bool, map[string]string, error) {
	d := l.drivers[name]
	have, err := d.Applied(ctx)
	var notEffective error
	if errors.Is(err, ErrNotEffective) {
		notEffective, err = fmt.Errorf("%s: %w", name, err), nil
	}
	if err != nil {
		return l.last[name], nil, fmt.Errorf("%s: read applied state: %w", name, err)
	}
	keys := keySet(have)
	if prev, ok := l.last[name]; ok {
		// Drift: a wanted rule that was applied is gone, or an unwanted
		// rule appeared, without padlock doing it.
		wanted, prevWanted := keySet(want), l.lastWant[name]
		drift := 0
		for k := range keys {
			if !prev[k] && !wanted[k] && !prevWanted[k] {
				drift++
			}
		}
		for k := range prev {
			if !keys[k] && wanted[k] {
				drift++
			}
		}
		if drift > 0 {
			l.metrics.drift.WithLabelValues(name).Add(float64(drift))
			l.log.Warn("enforce: drift repaired", "driver", name, "rules", drift)
		}
	}
	change := Diff(want, have)
	var applyErr error
	if !change.Empty() {
		if err := d.Apply(ctx, change); err != nil {
			applyErr = fmt.Errorf("%s: %w", name, err)
		}
		have, err = d.Applied(ctx)
		notEffective = nil
		if errors.Is(err, ErrNotEffective) {
			notEffective, err = fmt.Errorf("%s: %w", name, err), nil
		}
		if err != nil {
			return nil, nil, errors.Join(applyErr, fmt.Errorf("%s: read applied state: %w", name, err))
		}
		keys = keySet(have)
	}
	l.last[name] = keys
	l.lastWant[name] = keySet(want)
	if notEffective != nil {
		l.last[name] = map[string]bool{}
		l.metrics.applied.WithLabelValues(name, "block").Set(0)
		l.metrics.applied.WithLabelValues(name, "allow").Set(0)
		return map[string]bool{}, nil, errors.Join(applyErr, notEffective)
	}
	why := map[string]string{}
	nb, na := 0, 0
	for _, b := range have.Blocks {
		if b.NotEffective != "" {
			why["b:"+b.Key()] = b.NotEffective
		} else {
			nb++
		}
	}
	for _, a := range have.Allows {
		if a.NotEffective != "" {
			why["a:"+a.Key()] = a.NotEffective
		} else {
			na++
		}
	}
	l.metrics.applied.WithLabelValues(name, "block").Set(float64(nb))
	l.metrics.applied.WithLabelValues(name, "allow").Set(float64(na))
	return keys, why, applyErr
}

// check refuses targets padlock must never enforce against and rules the
// named driver cannot do.
func (l *Loop) check(t Target, method string, allow bool) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if t.Prefix.IsValid() {
		for _, p := range l.cfg.Protected {
			if p.Overlaps(t.Prefix) {
				return fmt.Errorf("%w %s", ErrProtected, p)
			}
		}
	}
	d, ok := l.drivers[method]
	if !ok {
		return fmt.Errorf("%w %q", ErrNoDriver, method)
	}
	c := d.Capabilities()
	if !c.Supports(t.Scope()) {
		return fmt.Errorf("%w: scope %s", ErrUnsupported, t.Scope())
	}
	if allow && !c.Allow {
		return fmt.Errorf("%w: whitelist", ErrUnsupported)
	}
	if allow && c.AllowScopes != nil && !slices.Contains(c.AllowScopes, t.Scope()) {
		return fmt.Errorf("%w: whitelist for scope %s", ErrUnsupported, t.Scope())
	}
	return nil
}

// keySet returns the keys of the rules in effect.
func keySet(d Desired) map[string]bool {
	m := make(map[string]bool, len(d.Blocks)+len(d.Allows))
	for _, b := range d.Blocks {
		if b.NotEffective == "" {
			m["b:"+b.Key()] = true
		}
	}
	for _, a := range d.Allows {
		if a.NotEffective == "" {
			m["a:"+a.Key()] = true
		}
	}
	return m
}
