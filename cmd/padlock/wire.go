package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/collect"
	"padlock/internal/config"
	"padlock/internal/decode"
	"padlock/internal/decode/netflow"
	"padlock/internal/decode/sflow"
	"padlock/internal/detect"
	"padlock/internal/enforce"
	"padlock/internal/enforce/webhook"
	"padlock/internal/evidence"
	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/mail"
	"padlock/internal/notify"
	"padlock/internal/pipeline"
	"padlock/internal/policy"
	"padlock/internal/store"
	"padlock/internal/web/api"
	"padlock/internal/web/ui"
)

// storeAuth adapts the store's API tokens to the API's Authenticator.
type storeAuth struct{ db *store.DB }

func (s storeAuth) Authenticate(ctx context.Context, tok string) (lock.Actor, error) {
	a, _, err := s.db.Authenticate(ctx, tok)
	return a, err
}

// mailRenderer turns lock events into customer mails with the notify
// templates. It runs inside the transaction of the change, so it only
// reads (product names) through separate short read transactions.
type mailRenderer struct {
	db        *store.DB
	r         *notify.Renderer
	clientURL string
	// svc decides whether a whitelist is offered (set once the service
	// exists; nil: the reason's policy alone).
	svc *lock.Service
}

// whitelistOffered says whether the customer can whitelist an address once
// the product is locked: the reason's policy and what the lock's
// enforcement method can let through, as the service decides it.
func (m *mailRenderer) whitelistOffered(ev lock.Event) bool {
	if m.svc == nil {
		return ev.Policy.Whitelist
	}
	l := *ev.Lock
	l.State = lock.StateLocked // a warning's mail tells what the lock will allow
	ok, _ := m.svc.WhitelistOfferedAt(l, ev.At)
	return ok
}

// notifyKinds maps lock events to mail kinds; events without a mail (ticket
// messages, KVM orders: staff answer those in the ticket) are absent.
var notifyKinds = map[string]notify.Kind{
	"warning":                 notify.KindWarning,
	"lock":                    notify.KindLock,
	"relock":                  notify.KindLock,
	"whitelist_added":         notify.KindWhitelistAdded,
	"whitelist_expired":       notify.KindWhitelistExpired,
	"unlock_request_received": notify.KindUnlockRequestReceived,
	"unlock_request_rejected": notify.KindUnlockRequestRejected,
	"unlock_request_approved": notify.KindUnlock,
	"unlock":                  notify.KindUnlock,
}

func (m *mailRenderer) Render(ev lock.Event) ([]mail.Message, error) {
	kind, ok := notifyKinds[ev.Kind]
	if !ok || ev.Lock == nil {
		return nil, nil
	}
	if ev.Customer.Email == "" {
		return nil, fmt.Errorf("render %s mail: customer %d has no email address", ev.Kind, ev.Customer.ID)
	}
	l := ev.Lock
	ne := notify.Event{
		Kind:      kind,
		LockID:    l.ID,
		LockingID: l.LockingID,
		Reason:    string(l.Reason),
		Customer: notify.Customer{ID: ev.Customer.ID, Name: ev.Customer.Name, Email: ev.Customer.Email,
			Language: ev.Customer.Language},
		At:               ev.At,
		Deadline:         deref(l.WarnUntil),
		Since:            deref(l.LockedAt),
		ProbationUntil:   deref(l.ProbationUntil),
		WhitelistOffered: m.whitelistOffered(ev),
		Note:             ev.Note,
		Evidence:         ev.Evidence,
		// A blackhole that protects an inbound victim is not the
		// customer's fault.
		InboundProtection: l.InboundProtection,
		Until:             deref(l.ExpiresAt),
		WarningOnly:       kind == notify.KindUnlock && l.LockedAt == nil,
	}
	if ne.Since.IsZero() {
		ne.Since = l.CreatedAt
	}
	for _, p := range l.Prefixes {
		ne.Addresses = append(ne.Addresses, inventory.FormatPrefix(p))
	}
	ne.ProductKind, ne.Product = m.product(l)
	if len(ne.Evidence) == 0 && kind == notify.KindLock {
		ne.Evidence = m.earlierEvidence(l)
	}
	if ev.Whitelist != nil {
		ne.WhitelistIP = ev.Whitelist.IP.String()
		ne.WhitelistExpires = ev.Whitelist.ExpiresAt
	}
	if ev.UnlockRequest != nil && ev.UnlockRequest.Note != "" {
		ne.Note = ev.UnlockRequest.Note
	}
	if m.clientURL != "" {
		ne.ClientAreaURL = strings.TrimRight(m.clientURL, "/") + "/client/locks/" + l.LockingID
	}
	msg, err := m.r.Render(ne)
	if err != nil {
		return nil, err
	}
	msg.LockID, msg.CustomerID, msg.Kind = l.ID, ev.Customer.ID, ev.Kind
	return []mail.Message{msg}, nil
}

// earlierEvidence returns the evidence files the lock's newest earlier
// warning or lock mail carried. A lock that follows a warning (the
// deadline passed, staff escalated) or comes back (relock) has no new
// finding of its own; its mail attaches what the customer was shown
// before, so "we have locked" never arrives without the log.
func (m *mailRenderer) earlierEvidence(l *lock.Lock) []mail.Attachment {
	if m.db == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ms, err := m.db.ListMails(ctx, l.ID, 0, 50)
	if err != nil {
		return nil // the mail goes out without; the client area shows the evidence
	}
	for _, q := range ms { // newest first
		switch q.Kind {
		case lock.EventWarning, lock.EventLock, lock.EventRelock:
			if len(q.Attachments) > 0 {
				return q.Attachments
			}
		}
	}
	return nil
}

// product names the locked product as the customer knows it.
func (m *mailRenderer) product(l *lock.Lock) (kind, name string) {
	addrs := make([]string, 0, len(l.Prefixes))
	for _, p := range l.Prefixes {
		addrs = append(addrs, inventory.FormatPrefix(p))
	}
	list := strings.Join(addrs, ", ")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	switch l.ScopeKind {
	case lock.ScopeServer:
		var sv inventory.Server
		err := m.db.View(ctx, func(tx lock.Tx) (err error) { sv, err = tx.Server(ctx, l.Scope.ServerID); return })
		if err == nil {
			return "server", fmt.Sprintf("%s (%s)", sv.Name, list)
		}
		return "server", list
	case lock.ScopeStorageBox:
		var b inventory.StorageBox
		err := m.db.View(ctx, func(tx lock.Tx) (err error) { b, err = tx.StorageBox(ctx, l.Scope.StorageBoxID); return })
		if err == nil {
			return "storage_box", b.Name
		}
		return "storage_box", fmt.Sprintf("#%d", l.Scope.StorageBoxID)
	case lock.ScopeSubnet:
		return "subnet", list
	}
	if len(l.Prefixes) > 1 {
		return "ips", list
	}
	return "ip", list
}

// noticeRenderer renders the customer's notice of a notify case
// (pipeline.Dependencies.Notice): what was seen from their product, the
// evidence attached, and that nothing is locked. It runs outside any
// transaction and reads the customer and server through the lock service.
type noticeRenderer struct {
	svc       *lock.Service
	r         *notify.Renderer
	clientURL string
}

func (n noticeRenderer) Notice(ctx context.Context, f detect.Finding, ip netip.Addr, customerID int64, files []evidence.File) (mail.Message, error) {
	reason, ok := pipeline.Reasons[f.Kind]
	if !ok {
		return mail.Message{}, fmt.Errorf("notice: no reason for finding kind %q", f.Kind)
	}
	cu, err := n.svc.GetCustomer(ctx, lock.System, customerID)
	if err != nil {
		return mail.Message{}, fmt.Errorf("notice: customer %d: %w", customerID, err)
	}
	ev := notify.Event{
		Kind:     notify.KindNotice,
		Reason:   string(reason),
		Customer: notify.Customer{ID: cu.ID, Name: cu.Name, Email: cu.Email, Language: cu.Language},
		Since:    f.FirstSeen,
		At:       f.LastSeen,
	}
	ev.ProductKind, ev.Product = n.product(ctx, ip)
	ev.Addresses = []string{ip.String()}
	for _, x := range files {
		ev.Evidence = append(ev.Evidence, mail.Attachment{Name: x.Name, ContentType: x.ContentType, Data: x.Data})
	}
	if n.clientURL != "" {
		ev.ClientAreaURL = strings.TrimRight(n.clientURL, "/") + "/client/"
	}
	msg, err := n.r.Render(ev)
	if err != nil {
		return mail.Message{}, err
	}
	msg.CustomerID, msg.Kind = cu.ID, string(notify.KindNotice)
	return msg, nil
}

// product names the product behind ip as the customer knows it, like
// mailRenderer.product: "server", "web1 (203.0.113.10)", else the address.
func (n noticeRenderer) product(ctx context.Context, ip netip.Addr) (kind, name string) {
	e, ok := n.svc.Index().Lookup(ip)
	if !ok {
		return "ip", ip.String()
	}
	if e.Type == inventory.ProductServer {
		if sv, err := n.svc.GetServer(ctx, lock.System, e.ProductID); err == nil {
			return "server", fmt.Sprintf("%s (%s)", sv.Name, ip)
		}
		return "server", ip.String()
	}
	if !e.Prefix.IsSingleIP() {
		return "subnet", fmt.Sprintf("%s (%s)", inventory.FormatPrefix(e.Prefix), ip)
	}
	return "ip", ip.String()
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// desiredSource turns the lock service's desired state into enforcement
// blocks and allows, each sent to the method its reason is configured for.
type desiredSource struct {
	svc *lock.Service
	db  *store.DB
}

func (d desiredSource) Desired(ctx context.Context) (enforce.Desired, error) {
	st, err := d.svc.DesiredState(ctx)
	if err != nil {
		return enforce.Desired{}, err
	}
	var out enforce.Desired
	methods := map[int64]string{}
	targets := map[int64][]enforce.Target{}
	for _, l := range st.Locks {
		method := lock.NormalizeMethod(l.Method)
		methods[l.ID] = method
		if l.StorageBoxID != 0 {
			name := fmt.Sprintf("box-%d", l.StorageBoxID)
			_ = d.db.View(ctx, func(tx lock.Tx) error {
				if b, err := tx.StorageBox(ctx, l.StorageBoxID); err == nil {
					name = b.Name
				}
				return nil
			})
			targets[l.ID] = append(targets[l.ID], enforce.Target{StorageBox: name})
		}
		for _, p := range l.Prefixes {
			targets[l.ID] = append(targets[l.ID], enforce.Target{Prefix: p})
		}
		for _, t := range targets[l.ID] {
			out.Blocks = append(out.Blocks, enforce.Block{LockID: l.ID, LockingID: l.LockingID, Target: t, Method: method})
		}
	}
	for _, w := range st.Whitelist {
		for _, t := range targets[w.LockID] {
			if t.Prefix.IsValid() && t.Prefix.Addr().Is4() != w.IP.Unmap().Is4() {
				// an IPv4 source reaches the lock's IPv4 addresses, not its
				// IPv6 ones (and the other way round)
				continue
			}
			out.Allows = append(out.Allows, enforce.Allow{LockID: w.LockID, Source: w.IP, Target: t, Expires: w.ExpiresAt, Method: methods[w.LockID]})
		}
	}
	sort.Slice(out.Blocks, func(i, j int) bool { return out.Blocks[i].Key() < out.Blocks[j].Key() })
	return out, nil
}

// canWhitelist says whether the enforcement driver named method can let a
// whitelisted source through to a target of kind k, from the capabilities
// it declares (the reconcile loop refuses exactly the same). A method
// without a configured driver cannot.
func canWhitelist(drivers []enforce.Driver, method string, k lock.TargetKind) bool {
	for _, d := range drivers {
		if d.Name() != method {
			continue
		}
		c, s := d.Capabilities(), enforce.Scope(k)
		return c.Allow && c.Supports(s) && (c.AllowScopes == nil || slices.Contains(c.AllowScopes, s))
	}
	return false
}

// protectedOf joins the protected prefix lists of the configuration.
func protectedOf(lists ...[]netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, l := range lists {
		for _, p := range l {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// findingSource serves finding cases and their evidence to the API,
// customer-scoped: a customer actor sees only cases of its own addresses;
// anything else is lock.ErrNotFound, as if it did not exist.
type findingSource struct{ db *store.DB }

func (f findingSource) ListFindings(ctx context.Context, a lock.Actor, flt api.FindingFilter) ([]api.FindingSummary, error) {
	sf := store.FindingFilter{IP: flt.IP, Kind: flt.Kind, Limit: flt.Limit}
	if a.Role == lock.RoleCustomer {
		if a.CustomerID == 0 {
			return nil, lock.ErrNotFound
		}
		sf.CustomerID = a.CustomerID
	}
	cases, err := f.db.ListFindings(ctx, sf)
	if err != nil {
		return nil, err
	}
	out := make([]api.FindingSummary, 0, len(cases))
	for _, c := range cases {
		if a.Role == lock.RoleCustomer && c.CustomerID != a.CustomerID {
			continue
		}
		s := api.FindingSummary{ID: c.ID, Kind: c.Kind, InternalIP: c.InternalIP, CustomerID: c.CustomerID,
			FirstSeen: c.FirstSeen, LastSeen: c.LastSeen, Count: c.Count, LockID: c.LockID, Evidence: []string{}}
		var d struct {
			Rule      string  `json:"rule"`
			Direction string  `json:"direction"`
			Measured  float64 `json:"measured"`
			Threshold float64 `json:"threshold"`
			Samples   uint64  `json:"samples"`
		}
		if json.Unmarshal(c.Detail, &d) == nil {
			s.Rule, s.Direction, s.Measured, s.Threshold, s.Samples = d.Rule, d.Direction, d.Measured, d.Threshold, d.Samples
		}
		files, err := f.db.FindingEvidence(ctx, c.ID, false)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, e := range files {
			if !seen[e.Name] {
				seen[e.Name] = true
				s.Evidence = append(s.Evidence, e.Name)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// EvidenceFile returns the newest evidence file of that name in the case
// (every appended finding adds its own files).
func (f findingSource) EvidenceFile(ctx context.Context, a lock.Actor, findingID int64, name string) (string, []byte, error) {
	c, err := f.db.Finding(ctx, findingID)
	if err != nil {
		return "", nil, err
	}
	if a.Role == lock.RoleCustomer && (a.CustomerID == 0 || c.CustomerID != a.CustomerID) {
		return "", nil, lock.ErrNotFound
	}
	files, err := f.db.FindingEvidence(ctx, findingID, false)
	if err != nil {
		return "", nil, err
	}
	var id int64
	for _, e := range files {
		if e.Name == name && e.ID > id {
			id = e.ID
		}
	}
	if id == 0 {
		return "", nil, lock.ErrNotFound
	}
	e, err := f.db.EvidenceFile(ctx, id)
	if err != nil {
		return "", nil, err
	}
	return e.ContentType, e.Data, nil
}

// lockStates exports the number of locks by state (padlock_locks), read
// from the database at scrape time.
type lockStates struct {
	db   *store.DB
	desc *prometheus.Desc
}

func newLockStates(db *store.DB) *lockStates {
	return &lockStates{db: db, desc: prometheus.NewDesc("padlock_locks", "Locks by state.", []string{"state"}, nil)}
}

func (l *lockStates) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

func (l *lockStates) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts := map[string]float64{}
	for _, s := range []lock.State{lock.StateWarned, lock.StateLocked, lock.StateUnlockRequested, lock.StateUnlocked} {
		counts[string(s)] = 0
	}
	rows, err := l.db.SQL().QueryContext(ctx, `SELECT state, COUNT(*) FROM locks GROUP BY state`)
	if err == nil {
		for rows.Next() {
			var s string
			var n float64
			if rows.Scan(&s, &n) == nil {
				counts[s] = n
			}
		}
		rows.Close()
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(l.desc, prometheus.GaugeValue, n, s)
	}
}

// breakerView shows the policy's circuit breaker in the admin area.
type breakerView struct {
	p   *policy.Policy
	db  *store.DB
	log *slog.Logger
}

func (b breakerView) CircuitBreaker(context.Context) ui.BreakerState {
	st := b.p.State()
	out := ui.BreakerState{State: "closed", Detail: st.Reason, Since: st.Since}
	if st.Open {
		out.State = "open"
	}
	return out
}

// ResetCircuitBreaker closes the breaker from the admin area, in memory
// and in the store.
func (b breakerView) ResetCircuitBreaker(ctx context.Context) error {
	if err := b.db.SetBreaker(ctx, store.BreakerRecord{}, time.Now()); err != nil {
		return err
	}
	b.p.Reset()
	return nil
}

// saveBreaker stores an opened breaker so that a restart keeps it open;
// a failure is logged (the breaker is open in memory either way).
func saveBreaker(db *store.DB, st policy.BreakerState, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.SetBreaker(ctx, store.BreakerRecord{Open: st.Open, Reason: st.Reason, Since: st.Since}, time.Now()); err != nil {
		log.Error("circuit breaker state not stored: a restart would close it", "err", err)
	}
}

// redacted is the configuration as the admin area shows it: secrets
// (SMTP password, webhook secrets, the database DSN's password) replaced.
func redacted(cfg config.Config) config.Config {
	const hidden = "(hidden)"
	if cfg.Notify.SMTP.Password != "" {
		cfg.Notify.SMTP.Password = hidden
	}
	hooks := make([]webhook.Configuration, len(cfg.Enforce.Webhooks))
	copy(hooks, cfg.Enforce.Webhooks)
	for i := range hooks {
		if hooks[i].Secret != "" {
			hooks[i].Secret = hidden
		}
	}
	cfg.Enforce.Webhooks = hooks
	if u, err := url.Parse(cfg.Store.DSN); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "hidden")
			cfg.Store.DSN = u.String()
		}
	}
	return cfg
}

// exportDecoders builds the flow-export decoders of a configuration: one
// NetFlow/IPFIX and one sFlow decoder, both with the exporters' sampling
// overrides. The collector calls them once per socket and turns on the
// NetFlow/IPFIX clock check (collect.max_clock_skew) itself; analyze does
// too.
func exportDecoders(cfg config.Config) collect.Decoders {
	o := cfg.SamplingOverrides()
	return collect.Decoders{
		NetFlow: func() decode.Decoder {
			return netflow.New(netflow.Configuration{SamplingOverride: o})
		},
		SFlow: func() decode.Decoder { return sflow.New(sflow.Configuration{SamplingOverride: o}) },
	}
}
