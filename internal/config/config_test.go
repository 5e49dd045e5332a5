package config

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"padlock/internal/lock"
)

func TestFullFile(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Enforce.BGP == nil || c.Enforce.BGP.ASN != 65001 || len(c.Enforce.BGP.Peers) != 1 {
		t.Fatalf("bgp section: %+v", c.Enforce.BGP)
	}
	if c.Enforce.NFTables == nil || c.Enforce.NFTables.Table != "padlock" {
		t.Fatalf("nftables section: %+v", c.Enforce.NFTables)
	}
	if c.Enforce.BGP.ConnectRetry == 0 {
		t.Errorf("bgp defaults lost for keys the file does not set")
	}
	if c.Enforce.Interval != 30*time.Second {
		t.Errorf("enforce.interval = %v", c.Enforce.Interval)
	}
	if len(c.Customers) != 2 || c.Protected[0] != netip.MustParsePrefix("203.0.113.1/32") {
		t.Errorf("customers/protected: %v %v", c.Customers, c.Protected)
	}
	if c.Notify.SMTP.Host != "127.0.0.1" || c.Collect.NetFlow != ":2055" {
		t.Errorf("notify/collect: %+v %+v", c.Notify.SMTP, c.Collect)
	}
	// the file's list replaces the loopback default, it does not add to it
	if m := c.Web.MonitoringNetworks; len(m) != 1 || m[0] != netip.MustParsePrefix("198.51.100.0/28") {
		t.Errorf("web.monitoring_networks = %v, want [198.51.100.0/28]", m)
	}
	if m := Default().Web.MonitoringNetworks; len(m) != 2 || !m[0].Contains(netip.MustParseAddr("127.0.0.1")) || !m[1].Contains(netip.IPv6Loopback()) {
		t.Errorf("default web.monitoring_networks = %v, want loopback", m)
	}
}

// TestPolicySection: the keys and the group/breaker keys decode
// into the policy configuration; keys the file leaves out keep defaults.
func TestPolicySection(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policy
	if p.Netscan.Action != "lock" || p.Spam.Action != "warn" || p.IncorrectNetworkConfig.Action != "notify" {
		t.Errorf("kind actions: %+v", p)
	}
	if p.PacketLimit.MinSamples != 50 || p.Netscan.Consecutive != 1 || p.Netscan.WarnDeadline != 24*time.Hour {
		t.Errorf("kind defaults/overrides: %+v %+v", p.PacketLimit, p.Netscan)
	}
	if p.AutoLockLimit.PerHour != 20 || p.AutoLockLimit.PerCustomer != 5 || p.CircuitBreaker.Servers != 10 || p.CircuitBreaker.Within != 5*time.Minute {
		t.Errorf("limits: %+v %+v", p.AutoLockLimit, p.CircuitBreaker)
	}
	if len(p.Groups) != 1 || p.Groups[0].Netscan == nil || p.Groups[0].Netscan.Action != "notify" || p.Groups[0].Spam != nil {
		t.Errorf("groups: %+v", p.Groups)
	}
	if !p.InboundBlackhole.Enabled || p.InboundBlackhole.Expiry != time.Hour || p.Escalation.StaffUnlockAfter != 3 {
		t.Errorf("inbound/escalation: %+v %+v", p.InboundBlackhole, p.Escalation)
	}
	if c.Pipeline.Batch != 256 || c.Pipeline.FlushInterval == 0 {
		t.Errorf("pipeline: %+v", c.Pipeline)
	}
	// The minimal block alone.
	c, err = Parse("p.yaml", []byte("policy:\n  netscan: {action: record}\n  packet_limit: {action: lock}\n  auto_lock_limit: {per_hour: 3}\n  circuit_breaker: {servers: 4, within: 1m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.Netscan.Action != "record" || c.Policy.AutoLockLimit.PerHour != 3 || c.Policy.AutoLockLimit.PerCustomer != 5 ||
		c.Policy.CircuitBreaker.Servers != 4 || !c.Policy.CircuitBreaker.SamplingChange || c.Policy.Spam.Action != "lock" {
		t.Errorf("minimal policy: %+v", c.Policy)
	}
}

func TestEmptyIsDefault(t *testing.T) {
	c, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || c.Enforce.BGP != nil || c.Enforce.NFTables != nil {
		t.Fatalf("defaults: %+v", c)
	}
}

// TestBadConfigsNameTheKey: each bad file gives an error naming the key and
// the problem, as `padlock check-config` prints it.
func TestBadConfigsNameTheKey(t *testing.T) {
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown top-level key", "listen:", "listn:", "c.yaml:2: listn: unknown key"},
		{"unknown detector key", "min_ports: 100", "min_portz: 100", "detect.netscan.min_portz: unknown key"},
		{"negative window", "window: 60s", "window: -60s", "detect.attack.window"},
		{"bad customer prefix", "203.0.113.0/24, 2001", "203.0.113.7/24, 2001", "customers[0]: 203.0.113.7/24 has host bits set"},
		{"bad smtp port", "port: 25", "port: 70000", "notify.smtp.port"},
		{"bgp without asn", "asn: 65001\n", "asn: 0\n", "enforce.bgp.asn"},
		{"wrong type", "threshold_pps: 100000", "threshold_pps: lots", "detect.packet_limit.threshold_pps: wrong type"},
		{"bad direction", "directions: [out, in]", "directions: [out, sideways]", "detect.packet_limit.directions"},
		{"bad policy action", "netscan: {action: lock}", "netscan: {action: nuke}", `policy.netscan.action: must be one of record, notify, warn, lock, not "nuke"`},
		{"unknown policy key", "per_hour: 20", "per_hours: 20", "policy.auto_lock_limit.per_hours: unknown key"},
		{"breaker without window", "within: 5m", "within: 0s", "policy.circuit_breaker.within"},
		{"group prefix with host bits", "prefixes: [203.0.113.128/25]", "prefixes: [203.0.113.129/25]", "policy.groups[0].prefixes[0]"},
		{"bad pipeline queue", "queue: 1024", "queue: 0", "pipeline.queue"},
		{"clock skew under the header resolution", `ipfix: ":4739"}`, `ipfix: ":4739", max_clock_skew: 500ms}`, "c.yaml: collect.max_clock_skew: 500ms: must be 0 (no correction) or at least 2s"},
		{"clock skew not a duration", `ipfix: ":4739"}`, `ipfix: ":4739", max_clock_skew: ten}`, "collect.max_clock_skew"},
		{"unknown lock reason", "spam: {whitelist_ttl: 2h}", "bogus: {whitelist_ttl: 2h}", "c.yaml: locks.reasons.bogus: unknown reason"},
		{"zero whitelist ttl", "spam: {whitelist_ttl: 2h}", "spam: {whitelist_ttl: 0s}", "c.yaml: locks.reasons.spam.whitelist_ttl: must be > 0"},
		{"misspelt lock method", "non_payment: {method: blackhole}", "non_payment: {method: nftabels}",
			`c.yaml: locks.reasons.non_payment.method: unknown method "nftabels" (bgp_blackhole, flowspec, nftables, webhook or a configured webhook name)`},
		{"unknown key in a lock reason", "spam: {whitelist_ttl: 2h}", "spam: {whitelist_tll: 2h}", "locks.reasons.spam.whitelist_tll: unknown key"},
		{"monitoring network with host bits", "monitoring_networks: [198.51.100.0/28]", "monitoring_networks: [198.51.100.1/28]", "web.monitoring_networks[0]: 198.51.100.1/28 has host bits set"},
		{"lock own network with host bits", "own_networks: [203.0.113.0/24]", "own_networks: [203.0.113.9/24]", "locks.own_networks[0]: 203.0.113.9/24 has host bits set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := strings.Replace(string(full), tt.from, tt.to, 1)
			if data == string(full) {
				t.Fatalf("fixture does not contain %q", tt.from)
			}
			_, err := Parse("c.yaml", []byte(data))
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestLocksSection: a reason entry overrides only the keys it names (the
// whitelist stays on when only its TTL changes), method aliases are
// accepted, and a method may name a configured webhook driver.
func TestLocksSection(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := lock.New(c.Locks, lock.Dependencies{Store: noStore{}})
	if err != nil {
		t.Fatal(err)
	}
	spam, _ := svc.Policy(lock.ReasonSpam)
	if !spam.Whitelist || spam.WhitelistTTL != 2*time.Hour || spam.Method != lock.MethodNftables || spam.CustomerText == "" {
		t.Errorf("spam policy %+v: want whitelist on, 2h, nftables, the default text", spam)
	}
	np, _ := svc.Policy(lock.ReasonNonPayment)
	if np.Method != lock.MethodBlackhole || np.Whitelist {
		t.Errorf("non_payment policy %+v", np)
	}
	doc := "enforce:\n  webhooks:\n    - {name: storage-hook, url: \"http://127.0.0.1:9/\", secret: s, timeout: 10s, attempts: 5, min_backoff: 1s, max_backoff: 30s}\nlocks:\n  reasons:\n    abuse: {method: storage-hook}\n"
	if _, err := Parse("w.yaml", []byte(doc)); err != nil {
		t.Errorf("method naming a configured webhook: %v", err)
	}
	if _, err := Parse("w.yaml", []byte(strings.Replace(doc, "name: storage-hook", "name: other-hook", 1))); err == nil ||
		!strings.Contains(err.Error(), `locks.reasons.abuse.method: unknown method "storage-hook"`) {
		t.Errorf("method naming no webhook: %v", err)
	}
}

// noStore is never reached: the test only reads policies.
type noStore struct{}

func (noStore) Update(context.Context, func(lock.Tx) error) error { return errors.New("no store") }
func (noStore) View(context.Context, func(lock.Tx) error) error   { return errors.New("no store") }

// A webhook entry that names only what it must keeps the package defaults
// for the rest (retries, timeout, scopes).
func TestWebhookEntryKeepsDefaults(t *testing.T) {
	c, err := Parse("c.yaml", []byte("enforce:\n  webhooks:\n    - {name: boxes, url: \"https://storage.example.net/hook\", secret: s3cret}\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Enforce.Webhooks[0]
	if w.Name != "boxes" || w.Timeout == 0 || w.Attempts == 0 || len(w.Scopes) == 0 {
		t.Fatalf("webhook entry %+v lost its defaults", w)
	}
}

// Several problems in one section are each reported with their full key.
func TestMultiLineErrorsKeepTheirKeys(t *testing.T) {
	_, err := Parse("c.yaml", []byte("enforce:\n  bgp: {asn: 0}\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, l := range strings.Split(err.Error(), "\n") {
		if !strings.Contains(l, "enforce.bgp.") {
			t.Errorf("line %q does not name its key", l)
		}
	}
}

// collect.max_clock_skew: 10s unless set; 0 turns the correction off.
func TestMaxClockSkew(t *testing.T) {
	for doc, want := range map[string]time.Duration{
		"":                                 10 * time.Second,
		"collect: {max_clock_skew: 0s}\n":  0,
		"collect: {max_clock_skew: 15m}\n": 15 * time.Minute,
		"collect: {netflow: \":2055\"}\n":  10 * time.Second,
	} {
		c, err := Parse("c.yaml", []byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if c.Collect.MaxClockSkew != want {
			t.Errorf("%q: max_clock_skew %v, want %v", doc, c.Collect.MaxClockSkew, want)
		}
	}
}

func TestSamplingOverride(t *testing.T) {
	c, err := Parse("c.yaml", []byte("sampling_override: {\"198.51.100.1\": 1000, \"2001:db8::1\": 512}\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := c.SamplingOverrides()
	if o[netip.MustParseAddr("198.51.100.1")] != 1000 || o[netip.MustParseAddr("2001:db8::1")] != 512 {
		t.Fatalf("overrides %v", o)
	}
	for _, bad := range []string{"sampling_override: {router1: 1000}\n", "sampling_override: {\"198.51.100.1\": 0}\n"} {
		if _, err := Parse("c.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "sampling_override.") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
