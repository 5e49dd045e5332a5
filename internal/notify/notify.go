package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/mail"
)

// Outbox is the part of the store the worker needs (internal/store's DB
// implements it). ClaimMails returns up to limit unsent mails whose next
// attempt is due at now and leases them until leaseUntil (hiding them from
// other claims; a crashed worker's mails come back when the lease ends).
// Claiming counts as an attempt: a claimed mail's Attempts includes the
// attempt about to be made. MarkMailFailed records the error text and when
// to try again; MarkMailSent records the delivery, after which the mail is
// never claimed again.
type Outbox interface {
	ClaimMails(ctx context.Context, now, leaseUntil time.Time, limit int) ([]mail.Queued, error)
	MarkMailSent(ctx context.Context, id int64, at time.Time) error
	MarkMailFailed(ctx context.Context, id int64, errText string, next time.Time) error
}

// OutboxStats is optional: when the store provides it, the worker exports
// the outbox depth (unsent mails) and the age of the oldest unsent mail.
type OutboxStats interface {
	OutboxStats(ctx context.Context) (depth int, oldest time.Time, err error)
}

// Clock tells the time; injected so tests decide when retries are due.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Dependencies of the component. Outbox is required; Stats, Clock, Logger
// and Registerer may be nil.
type Dependencies struct {
	Outbox     Outbox
	Stats      OutboxStats
	Clock      Clock
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Component renders mails and runs the outbox worker.
type Component struct {
	conf     Configuration
	deps     Dependencies
	renderer *Renderer
	sender   *Sender // nil: no SMTP, mails are kept
	metrics  metrics

	kick   chan struct{}
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

type metrics struct {
	sent         prometheus.Counter
	failures     *prometheus.CounterVec
	outboxErrors prometheus.Counter
	duration     prometheus.Histogram
	depth        prometheus.Gauge
	oldest       prometheus.Gauge
}

// New validates conf, parses the templates (built-in and conf.Templates)
// and registers the metrics. It does no network I/O.
func New(conf Configuration, deps Dependencies) (*Component, error) {
	if err := conf.Validate(); err != nil {
		return nil, err
	}
	conf = conf.withDefaults()
	if deps.Outbox == nil {
		return nil, errors.New("notify: no outbox")
	}
	if deps.Clock == nil {
		deps.Clock = systemClock{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	r, err := NewRenderer(RendererConfig{Dir: conf.Templates, ClientAreaURL: conf.ClientAreaURL})
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	c := &Component{conf: conf, deps: deps, renderer: r, kick: make(chan struct{}, 1)}
	if conf.SMTP.Configured() {
		if c.sender, err = NewSender(conf.SMTP, conf.MessageIDDomain); err != nil {
			return nil, err
		}
	}
	c.metrics = metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "padlock_notify_sent_total", Help: "Mails the SMTP server accepted."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "padlock_notify_failures_total", Help: "Failed delivery attempts, by type (temporary, permanent)."},
			[]string{"type"}),
		outboxErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "padlock_notify_outbox_errors_total", Help: "Errors claiming or marking outbox mails."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "padlock_notify_send_duration_seconds", Help: "Time of one SMTP delivery.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 7)}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "padlock_notify_outbox_depth", Help: "Unsent mails in the outbox (needs the store's OutboxStats)."}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "padlock_notify_outbox_oldest_age_seconds", Help: "Age of the oldest unsent mail (needs the store's OutboxStats)."}),
	}
	c.metrics.failures.WithLabelValues("temporary")
	c.metrics.failures.WithLabelValues("permanent")
	for _, col := range []prometheus.Collector{c.metrics.sent, c.metrics.failures, c.metrics.outboxErrors,
		c.metrics.duration, c.metrics.depth, c.metrics.oldest} {
		if err := deps.Registerer.Register(col); err != nil {
			return nil, fmt.Errorf("notify: metrics: %w", err)
		}
	}
	return c, nil
}

// Renderer returns the template renderer (for the lock manager, which
// renders a mail and queues it in the transaction of the change).
func (c *Component) Renderer() *Renderer { return c.renderer }

// Render renders the mail of one event; see Renderer.Render.
func (c *Component) Render(ev Event) (mail.Message, error) { return c.renderer.Render(ev) }

// Sending reports whether mails are delivered (SMTP configured). When
// false, mails are kept in the outbox for the admin area.
func (c *Component) Sending() bool { return c.sender != nil }

// Sender returns the SMTP sender, nil when none is configured.
func (c *Component) Sender() *Sender { return c.sender }

// Start runs the worker until Stop. Without SMTP it only keeps the outbox
// gauges current.
func (c *Component) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return errors.New("notify: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	c.done = make(chan struct{})
	if c.sender == nil {
		c.deps.Logger.Info("no SMTP server configured: mails are kept in the outbox and shown in the admin area",
			"config_key", "notify.smtp.host")
	} else {
		c.deps.Logger.Info("sending mails", "smtp_host", c.conf.SMTP.Host, "smtp_port", c.conf.SMTP.Port, "tls", c.conf.SMTP.TLS)
	}
	go c.loop(ctx)
	return nil
}

// Stop ends the worker. A delivery in progress is finished (bounded by
// smtp.timeout) so that it is marked sent and not sent again; mails claimed
// but not yet tried come back when their lease ends.
func (c *Component) Stop(ctx context.Context) error {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.cancel = nil
	c.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("notify: stop: %w", ctx.Err())
	}
}

// Kick makes the worker look into the outbox now (after a mail was queued)
// instead of at the next poll. It never blocks.
func (c *Component) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Component) loop(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.conf.PollInterval)
	defer t.Stop()
	for {
		if c.sender != nil {
			for {
				res, err := c.RunOnce(ctx)
				if err != nil {
					c.deps.Logger.Error("outbox pass failed", "error", err)
				}
				// A full batch means more mails may be due: go on at once.
				if err != nil || res.Claimed < c.conf.BatchSize || ctx.Err() != nil {
					break
				}
			}
		}
		c.updateStats(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
	}
}

func (c *Component) updateStats(ctx context.Context) {
	if c.deps.Stats == nil {
		return
	}
	depth, oldest, err := c.deps.Stats.OutboxStats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.metrics.outboxErrors.Inc()
			c.deps.Logger.Warn("outbox stats failed", "error", err)
		}
		return
	}
	c.metrics.depth.Set(float64(depth))
	age := 0.0
	if depth > 0 && !oldest.IsZero() {
		age = c.deps.Clock.Now().Sub(oldest).Seconds()
	}
	c.metrics.oldest.Set(age)
}

// Result counts what one pass did.
type Result struct {
	Claimed, Sent, Failed int
}

// Backoff is the wait after a failure that followed attempts earlier
// failed attempts: RetryMin doubled per earlier failure, at most RetryMax; a
// permanent failure waits RetryMax at once. Mails are never given up: staff
// see them, with their last error, in the admin area.
func (c *Component) Backoff(attempts int, permanent bool) time.Duration {
	if permanent {
		return c.conf.RetryMax
	}
	d := c.conf.RetryMin
	for i := 0; i < attempts && d < c.conf.RetryMax; i++ {
		d *= 2
	}
	return min(d, c.conf.RetryMax)
}

// RunOnce claims the due mails once and tries to deliver each. The loop of
// Start calls it; tests and tools may call it directly. Without SMTP it
// claims nothing.
func (c *Component) RunOnce(ctx context.Context) (Result, error) {
	var res Result
	if c.sender == nil {
		return res, nil
	}
	now := c.deps.Clock.Now()
	mails, err := c.deps.Outbox.ClaimMails(ctx, now, now.Add(c.conf.Lease), c.conf.BatchSize)
	if err != nil {
		c.metrics.outboxErrors.Inc()
		return res, fmt.Errorf("notify: claim: %w", err)
	}
	res.Claimed = len(mails)
	var errs []error
	for _, q := range mails {
		if ctx.Err() != nil {
			break // the rest comes back when its lease ends
		}
		if err := c.deliver(ctx, q); err != nil {
			errs = append(errs, err)
			res.Failed++
		} else {
			res.Sent++
		}
	}
	if len(errs) > 0 && res.Sent == 0 {
		return res, errors.Join(errs...)
	}
	return res, nil
}

// deliver sends one mail and records the outcome. The delivery and the
// recording are not cut short by ctx, so that a mail the server accepted is
// also marked sent.
func (c *Component) deliver(ctx context.Context, q mail.Queued) error {
	bg := context.WithoutCancel(ctx)
	sendCtx, cancel := context.WithTimeout(bg, c.conf.SMTP.Timeout)
	start := time.Now()
	err := c.sender.Send(sendCtx, q)
	cancel()
	c.metrics.duration.Observe(time.Since(start).Seconds())
	markCtx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	log := c.deps.Logger.With("mail_id", q.ID, "lock_id", q.LockID, "kind", q.Kind, "attempts", q.Attempts)
	at := c.deps.Clock.Now()
	if err == nil {
		c.metrics.sent.Inc()
		log.Info("mail sent", "message_id", MessageID(q, c.conf.MessageIDDomain))
		if merr := c.deps.Outbox.MarkMailSent(markCtx, q.ID, at); merr != nil {
			c.metrics.outboxErrors.Inc()
			// The mail went out; when its lease ends it is sent again with
			// the same Message-ID, which mail clients show once.
			log.Error("mail sent but not marked sent", "error", merr)
		}
		return nil
	}
	permanent := IsPermanent(err)
	typ := "temporary"
	if permanent {
		typ = "permanent"
	}
	c.metrics.failures.WithLabelValues(typ).Inc()
	// q.Attempts includes this attempt; the backoff counts earlier ones.
	next := at.Add(c.Backoff(max(q.Attempts-1, 0), permanent))
	log.Warn("mail not sent", "error", err, "failure", typ, "next_attempt", next)
	if merr := c.deps.Outbox.MarkMailFailed(markCtx, q.ID, err.Error(), next); merr != nil {
		c.metrics.outboxErrors.Inc()
		log.Error("mail failure not recorded", "error", merr)
	}
	return fmt.Errorf("mail %d: %w", q.ID, err)
}
