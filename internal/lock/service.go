package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/inventory"
	"padlock/internal/mail"
)

// Dependencies of the service.
type Dependencies struct {
	Store Store
	// Clock returns the current time (default time.Now).
	Clock func() time.Time
	// Render turns an event into the customer's mails; they are enqueued in
	// the outbox in the same transaction as the change. Nil sends nothing.
	// A Render error aborts the change: no lock without its mail.
	Render func(Event) ([]mail.Message, error)
	// OnChange is called after each committed change that may alter the
	// desired enforcement state (typically: wake the reconcile loop). It
	// must not block.
	OnChange func(Change)
	// CanWhitelist says whether enforcement method (a normalized method
	// name: bgp_blackhole, flowspec, nftables, a webhook driver's name)
	// can let a whitelisted source through to a target of the given
	// kind. AddWhitelist refuses, and WhitelistOffered does not offer, a
	// whitelist unless it holds for every target of the lock. Nil means
	// DefaultCanWhitelist. Wire it from the enforcement drivers'
	// Capabilities: Allow, Supports(scope) and AllowScopes (nil: Scopes).
	CanWhitelist func(method string, target TargetKind) bool
	Logger       *slog.Logger
	// Registerer registers the service's metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// Service is the lock and inventory service layer. All methods are safe for
// concurrent use.
type Service struct {
	cfg     Configuration
	store   Store
	now     func() time.Time
	render  func(Event) ([]mail.Message, error)
	changed func(Change)
	canWL   func(method string, target TargetKind) bool
	log     *slog.Logger
	index   atomic.Pointer[inventory.Index]
	// refresh serializes index rebuilds so a slower rebuild never replaces
	// a newer index with an older snapshot.
	refresh sync.Mutex
	changes *prometheus.CounterVec
}

// New returns a service; it does no I/O (call Start to load the index).
func New(cfg Configuration, deps Dependencies) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if deps.Store == nil {
		return nil, errors.New("lock: no store")
	}
	s := &Service{cfg: cfg, store: deps.Store, now: deps.Clock, render: deps.Render, changed: deps.OnChange, canWL: deps.CanWhitelist, log: deps.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.canWL == nil {
		s.canWL = DefaultCanWhitelist
	}
	s.changes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "padlock_lock_changes_total",
		Help: "Committed changes by the lock service, by action.",
	}, []string{"action"})
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(s.changes); err != nil {
			return nil, fmt.Errorf("lock: metrics: %w", err)
		}
	}
	return s, nil
}

// Start loads the inventory index.
func (s *Service) Start(ctx context.Context) error { return s.RefreshIndex(ctx) }

// Stop does nothing; the service owns no goroutines.
func (s *Service) Stop(context.Context) error { return nil }

// Policy returns the effective policy of a reason.
func (s *Service) Policy(r Reason) (ReasonPolicy, bool) {
	p, ok := s.cfg.Reasons[r]
	return p, ok
}

// canWhitelist asks the enforcement capability for one target kind.
func (s *Service) canWhitelist(method string, k TargetKind) bool { return s.canWL(method, k) }

// Method returns the enforcement method of a lock: its own, else the one
// configured for its reason.
func (s *Service) Method(l Lock) string {
	if l.Method != "" {
		return l.Method
	}
	if l.ScopeKind == ScopeStorageBox && s.cfg.StorageBoxMethod != "" {
		return NormalizeMethod(s.cfg.StorageBoxMethod)
	}
	return s.cfg.Reasons[l.Reason].Method
}

// Index returns the current inventory index (never nil after Start).
func (s *Service) Index() *inventory.Index { return s.index.Load() }

// RefreshIndex rebuilds the lookup index from the store. The service calls
// it after every inventory change it commits; call it when another node may
// have changed the inventory.
func (s *Service) RefreshIndex(ctx context.Context) error {
	s.refresh.Lock()
	defer s.refresh.Unlock()
	var snap *inventory.Snapshot
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		snap, err = tx.Inventory(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("lock: load inventory: %w", err)
	}
	s.index.Store(inventory.BuildWithMACs(snap.Entries(), snap.MACs()))
	return nil
}

func (s *Service) index0(ctx context.Context) (*inventory.Index, error) {
	if x := s.index.Load(); x != nil {
		return x, nil
	}
	if err := s.RefreshIndex(ctx); err != nil {
		return nil, err
	}
	return s.index.Load(), nil
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// txn is the state of one service change inside a store transaction.
type txn struct {
	s         *Service
	ctx       context.Context
	tx        Tx
	actor     Actor
	now       time.Time
	changes   []Change
	inventory bool
	actions   []string
}

// update runs fn in one store transaction and, after commit, refreshes the
// index and reports the changes.
func (s *Service) update(ctx context.Context, a Actor, fn func(t *txn) error) error {
	if err := a.check(); err != nil {
		return err
	}
	var t *txn
	err := s.store.Update(ctx, func(tx Tx) error {
		t = &txn{s: s, ctx: ctx, tx: tx, actor: a, now: s.clock()}
		return fn(t)
	})
	if err != nil {
		return err
	}
	for _, act := range t.actions {
		s.changes.WithLabelValues(act).Inc()
	}
	if t.inventory {
		// The change is committed: rebuild even if the caller gives up.
		if err := s.RefreshIndex(context.WithoutCancel(ctx)); err != nil {
			s.log.Error("refresh inventory index", "error", err)
		}
	}
	if s.changed != nil {
		for _, c := range t.changes {
			s.changed(c)
		}
	}
	return nil
}

// view runs fn with read access.
func (s *Service) view(ctx context.Context, a Actor, fn func(tx Tx) error) error {
	if err := a.check(); err != nil {
		return err
	}
	return s.store.View(ctx, fn)
}

// audit appends an audit event in the transaction.
func (t *txn) audit(action, objType string, objID, lockID, customerID int64, before, after any, note string) error {
	e := AuditEvent{At: t.now, Actor: t.actor.String(), ActorRole: t.actor.Role, Action: action,
		ObjectType: objType, ObjectID: objID, LockID: lockID, CustomerID: customerID,
		Before: snapshot(before), After: snapshot(after), Note: note}
	if err := t.tx.InsertAudit(t.ctx, &e); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	t.actions = append(t.actions, action)
	return nil
}

func snapshot(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%q", err.Error())
	}
	if string(b) == "null" {
		return ""
	}
	return string(b)
}

// notify renders the event and enqueues its mails in the transaction.
func (t *txn) notify(ev Event) error {
	if t.s.render == nil {
		return nil
	}
	ev.At = t.now
	if ev.Customer.ID == 0 {
		cid := int64(0)
		switch {
		case ev.Lock != nil:
			cid = ev.Lock.CustomerID
		case ev.Ticket != nil:
			cid = ev.Ticket.CustomerID
		}
		if cid != 0 {
			c, err := t.tx.Customer(t.ctx, cid)
			if err != nil {
				return fmt.Errorf("notify %s: customer %d: %w", ev.Kind, cid, err)
			}
			ev.Customer = c
		}
	}
	if ev.Lock != nil {
		ev.Policy = t.s.cfg.Reasons[ev.Lock.Reason]
	}
	msgs, err := t.s.render(ev)
	if err != nil {
		return fmt.Errorf("notify %s: render: %w", ev.Kind, err)
	}
	for _, m := range msgs {
		if m.Kind == "" {
			m.Kind = ev.Kind
		}
		if m.LockID == 0 && ev.Lock != nil {
			m.LockID = ev.Lock.ID
		}
		if m.CustomerID == 0 {
			m.CustomerID = ev.Customer.ID
		}
		if m.To == "" {
			m.To = ev.Customer.Email
		}
		if _, err := t.tx.EnqueueMail(t.ctx, m, t.now); err != nil {
			return fmt.Errorf("notify %s: enqueue: %w", ev.Kind, err)
		}
	}
	return nil
}

func (t *txn) changed(lockID int64, action string) {
	t.changes = append(t.changes, Change{LockID: lockID, Action: action})
}

func limit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}

// ListAudit returns audit events, newest first. Customers see only the
// events of their own objects.
func (s *Service) ListAudit(ctx context.Context, a Actor, f AuditFilter) ([]AuditEvent, error) {
	if a.Role == RoleCustomer {
		f.CustomerID = a.CustomerID
	}
	f.Limit = limit(f.Limit)
	var out []AuditEvent
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		out, err = tx.ListAudit(ctx, f)
		return err
	})
	a.redactAudit(out)
	return out, err
}

// DesiredState returns what enforcement must apply now, with each lock's
// enforcement method from the reason policy.
func (s *Service) DesiredState(ctx context.Context) (DesiredState, error) {
	var ds DesiredState
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		ds, err = tx.DesiredState(ctx, s.clock())
		return err
	})
	if err != nil {
		return ds, fmt.Errorf("desired state: %w", err)
	}
	for i := range ds.Locks {
		a := &ds.Locks[i]
		a.Method = s.Method(Lock{Reason: a.Reason, ScopeKind: a.ScopeKind, Method: a.Method})
	}
	return ds, nil
}
