package notify

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"padlock/internal/mail"
)

// fakeOutbox is an in-memory Outbox with internal/store's contract: a claim
// leases the mail and counts an attempt, a failure sets the next attempt.
type fakeOutbox struct {
	mu       sync.Mutex
	mails    map[int64]*outboxRow
	claims   int
	failSent int // MarkMailSent fails this many times (database down)
}

type outboxRow struct {
	q     mail.Queued
	lease time.Time
	nexts []time.Time // every next attempt MarkMailFailed recorded
}

func newFakeOutbox(qs ...mail.Queued) *fakeOutbox {
	o := &fakeOutbox{mails: map[int64]*outboxRow{}}
	for _, q := range qs {
		q.NextAttempt = q.CreatedAt
		o.mails[q.ID] = &outboxRow{q: q}
	}
	return o
}

func (o *fakeOutbox) ClaimMails(_ context.Context, now, leaseUntil time.Time, limit int) ([]mail.Queued, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.claims++
	var out []mail.Queued
	ids := make([]int64, 0, len(o.mails))
	for id := range o.mails {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		r := o.mails[id]
		if r.q.SentAt != nil || r.q.NextAttempt.After(now) || r.lease.After(now) || len(out) == limit {
			continue
		}
		r.lease = leaseUntil
		r.q.Attempts++ // like internal/store: claiming counts as an attempt
		out = append(out, r.q)
	}
	return out, nil
}

func (o *fakeOutbox) MarkMailSent(_ context.Context, id int64, at time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failSent > 0 {
		o.failSent--
		return errors.New("database is locked")
	}
	o.mails[id].q.SentAt = &at
	return nil
}

func (o *fakeOutbox) MarkMailFailed(_ context.Context, id int64, errText string, next time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := o.mails[id]
	r.q.LastError = errText
	r.q.NextAttempt = next
	r.lease = time.Time{}
	r.nexts = append(r.nexts, next)
	return nil
}

func (o *fakeOutbox) OutboxStats(context.Context) (int, time.Time, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var n int
	var oldest time.Time
	for _, r := range o.mails {
		if r.q.SentAt == nil {
			n++
			if oldest.IsZero() || r.q.CreatedAt.Before(oldest) {
				oldest = r.q.CreatedAt
			}
		}
	}
	return n, oldest, nil
}

func (o *fakeOutbox) row(id int64) outboxRow {
	o.mu.Lock()
	defer o.mu.Unlock()
	return *o.mails[id]
}

func (o *fakeOutbox) claimCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.claims
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func newTestComponent(t *testing.T, srv *smtpServer, ob *fakeOutbox, clock Clock, mod func(*Configuration)) (*Component, *prometheus.Registry) {
	t.Helper()
	conf := Configuration{
		RetryMin: time.Minute, RetryMax: 3 * time.Minute,
		PollInterval: time.Hour, // only Kick wakes the worker in tests
	}
	if srv != nil {
		conf.SMTP = SMTPConfig{Host: srv.Host, Port: srv.Port, From: "Abuse Team <abuse@example.net>", TLS: TLSNone, Timeout: 5 * time.Second}
	}
	if mod != nil {
		mod(&conf)
	}
	reg := prometheus.NewRegistry()
	c, err := New(conf, Dependencies{Outbox: ob, Stats: ob, Clock: clock, Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

// TestWorkerRetriesWithBackoff: a server that answers 451 three times gets
// the mail on the fourth attempt, the waits double and stop at retry_max,
// nothing is tried before it is due, and exactly one copy arrives.
func TestWorkerRetriesWithBackoff(t *testing.T) {
	srv := startSMTPServer(t, serverOptions{failData: 3})
	q := queuedLockMail(t, 1)
	ob := newFakeOutbox(q)
	clock := &fakeClock{t: q.CreatedAt}
	c, reg := newTestComponent(t, srv, ob, clock, nil)
	ctx := context.Background()
	t0 := clock.Now()

	run := func(want Result) {
		t.Helper()
		got, _ := c.RunOnce(ctx)
		if got != want {
			t.Fatalf("at +%s: RunOnce = %+v, want %+v", clock.Now().Sub(t0), got, want)
		}
	}
	run(Result{Claimed: 1, Failed: 1}) // 451 #1, next at +1m
	run(Result{})                      // not due yet
	clock.Advance(59 * time.Second)
	run(Result{})
	clock.Advance(time.Second)
	run(Result{Claimed: 1, Failed: 1}) // 451 #2 at +1m, next at +3m
	clock.Advance(2 * time.Minute)
	run(Result{Claimed: 1, Failed: 1}) // 451 #3 at +3m, next at +6m (capped at 3m)
	clock.Advance(2 * time.Minute)
	run(Result{})
	clock.Advance(time.Minute)
	run(Result{Claimed: 1, Sent: 1})
	clock.Advance(time.Hour)
	run(Result{})

	row := ob.row(1)
	wantNexts := []time.Time{t0.Add(time.Minute), t0.Add(3 * time.Minute), t0.Add(6 * time.Minute)}
	if diff := cmp.Diff(wantNexts, row.nexts); diff != "" {
		t.Errorf("next attempts (-want +got):\n%s", diff)
	}
	if row.q.SentAt == nil || !row.q.SentAt.Equal(t0.Add(6*time.Minute)) || row.q.Attempts != 4 {
		t.Errorf("row sent_at=%v attempts=%d, want sent at +6m on the 4th attempt", row.q.SentAt, row.q.Attempts)
	}
	if n := srv.dataAttempts(); n != 4 {
		t.Errorf("server saw %d DATA commands, want 4", n)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("server holds %d messages, want exactly 1", len(msgs))
	}
	checkDelivered(t, msgs[0], q)
	if v := metricValue(t, reg, "padlock_notify_sent_total", nil); v != 1 {
		t.Errorf("sent_total = %v, want 1", v)
	}
	if v := metricValue(t, reg, "padlock_notify_failures_total", map[string]string{"type": "temporary"}); v != 3 {
		t.Errorf("failures_total{temporary} = %v, want 3", v)
	}
}

func TestBackoff(t *testing.T) {
	c, _ := newTestComponent(t, nil, newFakeOutbox(), nil, func(c *Configuration) {
		c.RetryMin, c.RetryMax = 30*time.Second, time.Hour
	})
	var got []time.Duration
	for a := 0; a < 10; a++ {
		got = append(got, c.Backoff(a, false))
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour, time.Hour}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
	if d := c.Backoff(1000, false); d != time.Hour {
		t.Errorf("backoff after 1000 failures = %s, want the cap", d)
	}
	if d := c.Backoff(0, true); d != time.Hour {
		t.Errorf("permanent failure backoff = %s, want the cap", d)
	}
}

// TestWorkerPermanentFailure: a 550 is recorded with its text and retried
// only after retry_max; the mail is not dropped.
func TestWorkerPermanentFailure(t *testing.T) {
	srv := startSMTPServer(t, serverOptions{failData: 1, dataErr: smtpErr(554, "message refused")})
	q := queuedLockMail(t, 3)
	ob := newFakeOutbox(q)
	clock := &fakeClock{t: q.CreatedAt}
	c, reg := newTestComponent(t, srv, ob, clock, nil)
	if res, _ := c.RunOnce(context.Background()); res.Failed != 1 {
		t.Fatalf("RunOnce = %+v, want one failure", res)
	}
	row := ob.row(3)
	if !row.q.NextAttempt.Equal(q.CreatedAt.Add(3*time.Minute)) || row.q.SentAt != nil {
		t.Errorf("next attempt %v sent %v, want retry_max later and unsent", row.q.NextAttempt, row.q.SentAt)
	}
	if want := "permanent: "; len(row.q.LastError) < len(want) || row.q.LastError[:len(want)] != want {
		t.Errorf("last error %q, want it to start with %q", row.q.LastError, want)
	}
	if v := metricValue(t, reg, "padlock_notify_failures_total", map[string]string{"type": "permanent"}); v != 1 {
		t.Errorf("failures_total{permanent} = %v, want 1", v)
	}
	clock.Advance(3 * time.Minute)
	if res, _ := c.RunOnce(context.Background()); res.Sent != 1 {
		t.Errorf("after the cap: RunOnce = %+v, want the mail sent", res)
	}
}

// TestWorkerResendAfterLostMark: the server took the mail but marking it
// sent failed (as if padlock died in between). After the lease the mail is
// sent again — with the same Message-ID, so the customer's client shows one
// mail — and then never again.
func TestWorkerResendAfterLostMark(t *testing.T) {
	srv := startSMTPServer(t, serverOptions{})
	q := queuedLockMail(t, 4)
	ob := newFakeOutbox(q)
	ob.failSent = 1
	clock := &fakeClock{t: q.CreatedAt}
	c, _ := newTestComponent(t, srv, ob, clock, func(c *Configuration) { c.Lease = 5 * time.Minute })
	ctx := context.Background()
	if res, _ := c.RunOnce(ctx); res.Sent != 1 {
		t.Fatalf("first pass %+v", res)
	}
	clock.Advance(4 * time.Minute)
	if res, _ := c.RunOnce(ctx); res.Claimed != 0 {
		t.Fatalf("claimed %d mails within the lease", res.Claimed)
	}
	clock.Advance(time.Minute)
	if res, _ := c.RunOnce(ctx); res.Sent != 1 {
		t.Fatalf("after the lease: %+v", res)
	}
	clock.Advance(time.Hour)
	if res, _ := c.RunOnce(ctx); res.Claimed != 0 {
		t.Fatalf("a sent mail was claimed again")
	}
	msgs := srv.messages()
	if len(msgs) != 2 {
		t.Fatalf("server holds %d messages, want 2", len(msgs))
	}
	id1 := parseMail(t, msgs[0].Data).Header.Get("Message-Id")
	id2 := parseMail(t, msgs[1].Data).Header.Get("Message-Id")
	if id1 == "" || id1 != id2 {
		t.Errorf("Message-IDs %q and %q, want the same", id1, id2)
	}
}

// TestWorkerStartKickStop runs the real loop: a kick delivers a queued
// mail at once (the poll interval is an hour), Stop ends the loop, and the
// outbox gauges follow the store.
func TestWorkerStartKickStop(t *testing.T) {
	srv := startSMTPServer(t, serverOptions{})
	q := queuedLockMail(t, 7)
	ob := newFakeOutbox(q)
	c, reg := newTestComponent(t, srv, ob, nil, nil)
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(srv.messages()) == 1 && ob.row(7).q.SentAt != nil })
	ob.mu.Lock()
	q2 := queuedLockMail(t, 8)
	q2.NextAttempt = time.Now()
	ob.mails[8] = &outboxRow{q: q2}
	ob.mu.Unlock()
	c.Kick()
	waitFor(t, func() bool { return len(srv.messages()) == 2 && ob.row(8).q.SentAt != nil })
	waitFor(t, func() bool { return metricValue(t, reg, "padlock_notify_outbox_depth", nil) == 0 })
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	claims := ob.claimCount()
	c.Kick()
	time.Sleep(50 * time.Millisecond)
	if ob.claimCount() != claims {
		t.Error("the worker claimed mails after Stop")
	}
}

// TestWorkerKeepsMailsWithoutSMTP: the demo has no SMTP host; the worker
// never claims, the mails stay queued and unsent, and the depth gauge
// shows them.
func TestWorkerKeepsMailsWithoutSMTP(t *testing.T) {
	q := queuedLockMail(t, 9)
	ob := newFakeOutbox(q)
	clock := &fakeClock{t: q.CreatedAt.Add(90 * time.Second)}
	c, reg := newTestComponent(t, nil, ob, clock, nil)
	if c.Sending() || c.Sender() != nil {
		t.Fatal("component without smtp.host claims to send")
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Kick()
	waitFor(t, func() bool { return metricValue(t, reg, "padlock_notify_outbox_depth", nil) == 1 })
	if v := metricValue(t, reg, "padlock_notify_outbox_oldest_age_seconds", nil); v != 90 {
		t.Errorf("oldest age %v, want 90", v)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res, err := c.RunOnce(context.Background()); err != nil || res != (Result{}) {
		t.Errorf("RunOnce without SMTP = %+v, %v", res, err)
	}
	if n := ob.claimCount(); n != 0 {
		t.Errorf("%d claims without SMTP, want 0", n)
	}
	if r := ob.row(9); r.q.SentAt != nil || r.q.Attempts != 0 || r.q.LastError != "" {
		t.Errorf("kept mail changed: %+v", r.q)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
