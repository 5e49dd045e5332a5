package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func testConf() Configuration {
	c := DefaultConfiguration()
	c.Protected = pfx("203.0.113.1/32")
	notify := KindPolicy{Action: ActionNotify}
	warn := KindPolicy{Action: ActionWarn, WarnDeadline: time.Hour}
	record := KindPolicy{Action: ActionRecord}
	c.Groups = []Group{
		{Name: "managed", Prefixes: pfx("203.0.113.0/24"), GroupKinds: GroupKinds{Netscan: &notify}},
		{Name: "vip", Prefixes: pfx("203.0.113.128/25"), GroupKinds: GroupKinds{Netscan: &warn, Spam: &record}},
	}
	c.PacketLimit.MinSamples = 50
	c.Spam.Consecutive = 2
	c.InboundBlackhole = InboundBlackhole{Enabled: true, Expiry: 30 * time.Minute}
	return c
}

// TestResolve: the pure decision for each configuration path.
func TestResolve(t *testing.T) {
	c := testConf()
	base := Input{Kind: "netscan", Direction: "out", Samples: 500, CustomerID: 7, CaseCount: 1}
	with := func(f func(*Input)) Input { in := base; f(&in); return in }
	tests := []struct {
		name string
		in   Input
		want Decision
	}{
		{"top-level lock", with(func(in *Input) { in.IP = ip("198.51.100.9") }),
			Decision{Action: ActionLock, Configured: ActionLock, Why: "action lock", WarnDeadline: 24 * time.Hour}},
		{"group override by prefix", with(func(in *Input) { in.IP = ip("203.0.113.10") }),
			Decision{Action: ActionNotify, Configured: ActionNotify, Why: "action notify", Group: "managed", WarnDeadline: 24 * time.Hour}},
		{"longest prefix wins", with(func(in *Input) { in.IP = ip("203.0.113.200") }),
			Decision{Action: ActionWarn, Configured: ActionWarn, Why: "action warn", Group: "vip", WarnDeadline: time.Hour}},
		{"group inherits kinds it does not set", with(func(in *Input) { in.IP = ip("203.0.113.200"); in.Kind = "packet_limit" }),
			Decision{Action: ActionLock, Configured: ActionLock, Why: "action lock", Group: "vip", WarnDeadline: 24 * time.Hour}},
		{"protected prefix", with(func(in *Input) { in.IP = ip("203.0.113.1") }),
			Decision{Action: ActionIgnore, Configured: ActionIgnore, Why: "protected prefix 203.0.113.1/32: never acted on"}},
		{"protected by detector", with(func(in *Input) { in.IP = ip("198.51.100.9"); in.Protected = true }),
			Decision{Action: ActionIgnore, Configured: ActionIgnore, Why: "protected address: never acted on"}},
		{"min samples floor", with(func(in *Input) { in.IP = ip("198.51.100.9"); in.Kind = "packet_limit"; in.Samples = 10 }),
			Decision{Action: ActionRecord, Configured: ActionLock, Why: "below the confidence floor: 10 samples < min_samples 50", WarnDeadline: 24 * time.Hour}},
		{"consecutive floor", with(func(in *Input) { in.IP = ip("198.51.100.9"); in.Kind = "spam" }),
			Decision{Action: ActionRecord, Configured: ActionLock, Why: "below the confidence floor: held 1 of 2 consecutive findings", WarnDeadline: 24 * time.Hour}},
		{"consecutive reached", with(func(in *Input) { in.IP = ip("198.51.100.9"); in.Kind = "spam"; in.CaseCount = 2 }),
			Decision{Action: ActionLock, Configured: ActionLock, Why: "action lock", WarnDeadline: 24 * time.Hour}},
		{"no owner", with(func(in *Input) { in.IP = ip("198.51.100.9"); in.CustomerID = 0 }),
			Decision{Action: ActionReview, Configured: ActionLock, Why: "no owner in the inventory: queued for review", WarnDeadline: 24 * time.Hour}},
		{"repeat offender skips the warning", with(func(in *Input) { in.IP = ip("203.0.113.200"); in.PriorLocks = 1 }),
			Decision{Action: ActionLock, Configured: ActionWarn, Why: "repeat offender (1 earlier locks): locked without a warning", Group: "vip", WarnDeadline: time.Hour}},
		{"third lock needs staff", with(func(in *Input) { in.IP = ip("198.51.100.9"); in.PriorLocks = 2 }),
			Decision{Action: ActionLock, Configured: ActionLock, Why: "lock number 3: only staff may unlock", WarnDeadline: 24 * time.Hour, StaffUnlock: true}},
		{"inbound victim blackholed", with(func(in *Input) { in.IP = ip("198.51.100.9"); in.Kind = "packet_limit"; in.Direction = "in" }),
			Decision{Action: ActionBlackhole, Configured: ActionBlackhole, Why: "inbound overload: blackhole to protect the network", WarnDeadline: 24 * time.Hour, Expiry: 30 * time.Minute, Method: "blackhole"}},
		{"spoofed source nobody owns is reviewed", with(func(in *Input) {
			in.IP = ip("198.18.77.77")
			in.Kind = "incorrect_network_config"
			in.CustomerID = 0
			in.SpoofedSource = true
		}),
			Decision{Action: ActionReview, Configured: ActionWarn, Why: "spoofed source 198.18.77.77 belongs to nobody and no sender could be attributed: queued for review", WarnDeadline: 24 * time.Hour}},
		{"inbound netscan is never the victim's fault", with(func(in *Input) { in.IP = ip("198.51.100.9"); in.Direction = "in" }),
			Decision{Action: ActionRecord, Configured: ActionRecord, Why: "inbound: the address is a victim; recorded (inbound_blackhole disabled)", WarnDeadline: 24 * time.Hour}},
		{"unknown kind", with(func(in *Input) { in.IP = ip("198.51.100.9"); in.Kind = "telepathy" }),
			Decision{Action: ActionRecord, Configured: ActionRecord, Why: `no policy for kind "telepathy": recorded`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Resolve(&c, tt.in)); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
	c.InboundBlackhole.Enabled = false
	in := with(func(in *Input) { in.IP = ip("198.51.100.9"); in.Kind = "packet_limit"; in.Direction = "in" })
	if d := Resolve(&c, in); d.Action != ActionRecord {
		t.Errorf("inbound with blackhole disabled: %+v", d)
	}
}

// TestBreakerServers: a flood of findings from many servers at once opens
// the breaker; automatic actions then queue for review and the alert fires
// once.
func TestBreakerServers(t *testing.T) {
	c := DefaultConfiguration()
	c.AutoLockLimit = RateLimit{} // only the breaker here
	var alerts []BreakerState
	reg := prometheus.NewRegistry()
	p, err := New(c, Dependencies{OnTrip: func(s BreakerState) { alerts = append(alerts, s) }, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	locks := 0
	for i := range 30 {
		d := p.Decide(Input{Kind: "netscan", Direction: "out", IP: ip(fmt.Sprintf("198.51.100.%d", i+1)), Samples: 300, CustomerID: int64(i + 1), CaseCount: 1}, t0.Add(time.Duration(i)*time.Second))
		if d.Action == ActionLock {
			locks++
		} else if d.Action != ActionReview || !strings.Contains(d.Why, "circuit breaker open") {
			t.Fatalf("finding %d: %+v", i, d)
		}
	}
	if locks != 10 {
		t.Errorf("%d automatic locks before the breaker opened, want 10 (servers: 10 means more than 10 opens)", locks)
	}
	st := p.State()
	if !st.Open || !st.Since.Equal(t0.Add(10*time.Second)) || !strings.Contains(st.Reason, "11 servers tripped netscan within 5m0s") {
		t.Errorf("state %+v", st)
	}
	if len(alerts) != 1 {
		t.Errorf("%d alerts, want 1", len(alerts))
	}
	if v := testutil.ToFloat64(p.open); v != 1 {
		t.Errorf("breaker gauge %v", v)
	}
	if v := testutil.ToFloat64(p.decisions.WithLabelValues("netscan", "review")); v != 20 {
		t.Errorf("review decisions %v, want 20", v)
	}
	p.Reset()
	if p.State().Open {
		t.Fatal("reset did not close the breaker")
	}
	d := p.Decide(Input{Kind: "netscan", Direction: "out", IP: ip("198.51.100.200"), Samples: 300, CustomerID: 99, CaseCount: 1}, t0.Add(time.Minute))
	if d.Action != ActionLock {
		t.Errorf("after reset: %+v", d)
	}
}

// TestBreakerWindow: servers spread over more than `within` do not open it.
func TestBreakerWindow(t *testing.T) {
	c := DefaultConfiguration()
	c.AutoLockLimit = RateLimit{}
	p, _ := New(c, Dependencies{})
	for i := range 30 {
		p.Decide(Input{Kind: "netscan", Direction: "out", IP: ip(fmt.Sprintf("198.51.100.%d", i+1)), CustomerID: 1, CaseCount: 1}, t0.Add(time.Duration(i)*time.Minute))
	}
	if p.State().Open {
		t.Fatalf("opened by findings 1 minute apart: %+v", p.State())
	}
	// Different detectors do not add up.
	for i := range 6 {
		p.Decide(Input{Kind: "spam", Direction: "out", IP: ip(fmt.Sprintf("198.51.100.%d", i+1)), CustomerID: 1, CaseCount: 1}, t0.Add(time.Hour))
		p.Decide(Input{Kind: "netscan", Direction: "out", IP: ip(fmt.Sprintf("198.51.100.%d", i+101)), CustomerID: 1, CaseCount: 1}, t0.Add(time.Hour))
	}
	if p.State().Open {
		t.Fatalf("opened by 6+6 findings of two kinds: %+v", p.State())
	}
}

func TestBreakerSamplingAndAutoReset(t *testing.T) {
	c := DefaultConfiguration()
	c.CircuitBreaker.ResetAfter = 10 * time.Minute
	n := 0
	p, _ := New(c, Dependencies{OnTrip: func(BreakerState) { n++ }})
	p.SamplingChanged("192.0.2.7", 1, 1000, t0)
	st := p.State()
	if !st.Open || st.Reason != "sampling rate of exporter 192.0.2.7 changed from 1 to 1000" || n != 1 {
		t.Fatalf("state %+v, alerts %d", st, n)
	}
	d := p.Decide(Input{Kind: "netscan", Direction: "out", IP: ip("198.51.100.1"), CustomerID: 1, CaseCount: 1}, t0.Add(time.Minute))
	if d.Action != ActionReview {
		t.Fatalf("while open: %+v", d)
	}
	d = p.Decide(Input{Kind: "netscan", Direction: "out", IP: ip("198.51.100.1"), CustomerID: 1, CaseCount: 1}, t0.Add(11*time.Minute))
	if d.Action != ActionLock || p.State().Open {
		t.Fatalf("after reset_after: %+v %+v", d, p.State())
	}
	c.CircuitBreaker.SamplingChange = false
	q, _ := New(c, Dependencies{})
	q.SamplingChanged("192.0.2.7", 1, 1000, t0)
	if q.State().Open {
		t.Fatal("sampling_change: false still opened the breaker")
	}
}

// TestRateLimits: global and per-customer budgets per sliding hour.
func TestRateLimits(t *testing.T) {
	c := DefaultConfiguration()
	c.CircuitBreaker.Servers = 0
	c.AutoLockLimit = RateLimit{PerHour: 5, PerCustomer: 2}
	p, _ := New(c, Dependencies{})
	decide := func(cust int64, host int, at time.Duration) Action {
		return p.Decide(Input{Kind: "netscan", Direction: "out", IP: ip(fmt.Sprintf("198.51.100.%d", host)), CustomerID: cust, CaseCount: 1}, t0.Add(at)).Action
	}
	got := []Action{decide(1, 1, 0), decide(1, 2, time.Second), decide(1, 3, 2*time.Second)}
	if diff := cmp.Diff([]Action{ActionLock, ActionLock, ActionReview}, got); diff != "" {
		t.Errorf("per customer (-want +got):\n%s", diff)
	}
	got = []Action{decide(2, 10, 3*time.Second), decide(3, 11, 4*time.Second), decide(4, 12, 5*time.Second), decide(5, 13, 6*time.Second)}
	if diff := cmp.Diff([]Action{ActionLock, ActionLock, ActionLock, ActionReview}, got); diff != "" {
		t.Errorf("global (-want +got):\n%s", diff)
	}
	if a := decide(1, 4, time.Hour+time.Second); a != ActionLock {
		t.Errorf("an hour later: %s", a)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Configuration)
		want string
	}{
		{"bad action", func(c *Configuration) { c.Netscan.Action = "nuke" }, `netscan.action: must be one of record, notify, warn, lock, not "nuke"`},
		{"group without prefixes", func(c *Configuration) { c.Groups = []Group{{Name: "x"}} }, "groups[0].prefixes"},
		{"group bad action", func(c *Configuration) {
			c.Groups = []Group{{Prefixes: pfx("198.51.100.0/24"), GroupKinds: GroupKinds{Spam: &KindPolicy{Action: "x"}}}}
		}, "groups[0].spam.action"},
		{"host bits", func(c *Configuration) { c.Protected = []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")} }, "protected[0]"},
		{"negative limit", func(c *Configuration) { c.AutoLockLimit.PerHour = -1 }, "auto_lock_limit.per_hour"},
		{"breaker without window", func(c *Configuration) { c.CircuitBreaker.Within = 0 }, "circuit_breaker.within"},
		{"blackhole without expiry", func(c *Configuration) { c.InboundBlackhole = InboundBlackhole{Enabled: true} }, "inbound_blackhole.expiry"},
		{"blackhole method", func(c *Configuration) { c.InboundBlackhole.Method = "nullroute" }, `inbound_blackhole.method: must be one of blackhole, bgp_blackhole, rtbh, flowspec, nftables, webhook, not "nullroute"`},
		{"staff email with name", func(c *Configuration) { c.StaffEmail = "NOC <noc@example.net>" }, "staff_email:"},
		{"staff email not an address", func(c *Configuration) { c.StaffEmail = "noc" }, "staff_email:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfiguration()
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	if err := DefaultConfiguration().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c := DefaultConfiguration()
	c.StaffEmail = "noc@example.net"
	if err := c.Validate(); err != nil {
		t.Fatalf("staff_email noc@example.net: %v", err)
	}
}

// TestBlackholeMethodExplicit: the inbound blackhole asks for an RTBH by
// default, and for the configured method otherwise, whatever method the
// reason has.
func TestBlackholeMethodExplicit(t *testing.T) {
	c := DefaultConfiguration()
	c.InboundBlackhole.Enabled = true
	in := Input{Kind: "network_attack", Direction: "in", IP: ip("198.51.100.9"), Samples: 500, CustomerID: 7, CaseCount: 1}
	if d := Resolve(&c, in); d.Action != ActionBlackhole || d.Method != "blackhole" {
		t.Errorf("default: %+v", d)
	}
	c.InboundBlackhole.Method = "nftables"
	if d := Resolve(&c, in); d.Method != "nftables" {
		t.Errorf("configured nftables: %+v", d)
	}
	in.Direction = "out"
	if d := Resolve(&c, in); d.Method != "" {
		t.Errorf("an outbound lock uses the reason's method, got %q", d.Method)
	}
}

// TestSpoofedSourcesDoNotTripBreaker: a server spoofing hundreds of random
// source addresses yields one finding per source; they are not hundreds of
// servers and must not stop automatic locking for everybody.
func TestSpoofedSourcesDoNotTripBreaker(t *testing.T) {
	c := DefaultConfiguration()
	n := 0
	p, _ := New(c, Dependencies{OnTrip: func(BreakerState) { n++ }})
	for i := range 200 {
		d := p.Decide(Input{Kind: "incorrect_network_config", Direction: "out", IP: ip(fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)), Samples: 20, CaseCount: 1, SpoofedSource: true}, t0.Add(time.Duration(i)*time.Millisecond))
		if d.Action != ActionReview {
			t.Fatalf("spoofed source %d: %+v", i, d)
		}
	}
	if p.State().Open || n != 0 {
		t.Fatalf("breaker opened by spoofed sources: %+v", p.State())
	}
	if d := p.Decide(Input{Kind: "netscan", Direction: "out", IP: ip("198.51.100.1"), Samples: 300, CustomerID: 1, CaseCount: 1}, t0.Add(time.Second)); d.Action != ActionLock {
		t.Errorf("netscan after the spoofing: %+v", d)
	}
}

// A breaker restored open after a restart keeps findings queued for review
// until staff close it, and reset_after counts from when it first opened.
func TestBreakerRestore(t *testing.T) {
	c := DefaultConfiguration()
	p, err := New(c, Dependencies{})
	if err != nil {
		t.Fatal(err)
	}
	p.Restore(BreakerState{Open: true, Reason: "11 servers tripped netscan within 5m0s", Since: t0})
	d := p.Decide(Input{Kind: "netscan", Direction: "out", IP: ip("198.51.100.1"), Samples: 300, CustomerID: 1, CaseCount: 1}, t0.Add(time.Hour))
	if d.Action != ActionReview || !strings.Contains(d.Why, "circuit breaker open (11 servers") {
		t.Fatalf("after restore: %+v", d)
	}
	c.CircuitBreaker.ResetAfter = 30 * time.Minute
	q, _ := New(c, Dependencies{})
	q.Restore(BreakerState{Open: true, Reason: "x", Since: t0})
	if d := q.Decide(Input{Kind: "netscan", Direction: "out", IP: ip("198.51.100.1"), Samples: 300, CustomerID: 1, CaseCount: 1}, t0.Add(time.Hour)); d.Action != ActionLock {
		t.Errorf("reset_after passed since the trip: %+v", d)
	}
}
