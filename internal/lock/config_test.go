package lock

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
)

// decodeLocks decodes a `locks:` section body as the config package does
// (strict: unknown keys are errors).
func decodeLocks(t *testing.T, doc string) Configuration {
	t.Helper()
	var c Configuration
	if err := yaml.UnmarshalWithOptions([]byte(doc), &c, yaml.DisallowUnknownField()); err != nil {
		t.Fatalf("decode %q: %v", doc, err)
	}
	return c
}

// TestConfigurationDefaults: overriding one key of a reason keeps the
// others, whitelist included (overriding whitelist_ttl used to switch
// whitelisting off).
func TestConfigurationDefaults(t *testing.T) {
	c, err := decodeLocks(t, "reasons:\n  spam: {whitelist_ttl: 1h}\n  abuse: {whitelist: false}\n  non_payment: {method: blackhole}\n  netscan: {customer_text: Scans.}\n").withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	got := map[Reason]bool{}
	for _, r := range Reasons {
		p, ok := c.Reasons[r]
		if !ok || p.CustomerText == "" || p.Method == "" || p.WhitelistTTL <= 0 {
			t.Errorf("reason %s: incomplete policy %+v", r, p)
		}
		got[r] = p.Whitelist
	}
	want := map[Reason]bool{ReasonNonPayment: false, ReasonIllegalContent: false, ReasonAbuse: false, ReasonSpam: true,
		ReasonNetworkAttack: true, ReasonNetscan: true, ReasonPacketLimit: true, ReasonIncorrectNetwork: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("whitelist offered per reason (-want +got):\n%s", diff)
	}
	if c.Reasons[ReasonSpam].WhitelistTTL != time.Hour || c.Reasons[ReasonAbuse].WhitelistTTL != 24*time.Hour {
		t.Errorf("TTLs: %v %v", c.Reasons[ReasonSpam].WhitelistTTL, c.Reasons[ReasonAbuse].WhitelistTTL)
	}
	if c.Reasons[ReasonSpam].Method != MethodNftables || c.Reasons[ReasonNonPayment].Method != MethodBlackhole {
		t.Errorf("methods: spam %q, non_payment %q (alias blackhole)", c.Reasons[ReasonSpam].Method, c.Reasons[ReasonNonPayment].Method)
	}
	if c.Reasons[ReasonNetscan].CustomerText != "Scans." || c.Reasons[ReasonNetscan].Method != MethodFlowSpec || !c.Reasons[ReasonNetscan].Whitelist {
		t.Errorf("netscan: %+v", c.Reasons[ReasonNetscan])
	}
	// Go-built entries: non-zero fields override, Whitelist as given.
	c, err = Configuration{Reasons: map[Reason]ReasonPolicy{ReasonSpam: {WhitelistTTL: time.Hour, Whitelist: true}}}.withDefaults()
	if err != nil || !c.Reasons[ReasonSpam].Whitelist || c.Reasons[ReasonSpam].WhitelistTTL != time.Hour || c.Reasons[ReasonSpam].Method != MethodNftables {
		t.Errorf("Go override: %+v %v", c.Reasons[ReasonSpam], err)
	}
	if _, err := (Configuration{Reasons: map[Reason]ReasonPolicy{"bored": {}}}).withDefaults(); err == nil || !strings.Contains(err.Error(), "bored") {
		t.Errorf("unknown reason accepted: %v", err)
	}
	// The defaults name the enforcement drivers.
	for r, p := range DefaultReasonPolicies() {
		if err := checkMethod(p.Method, nil); err != nil || NormalizeMethod(p.Method) != p.Method {
			t.Errorf("default method of %s: %q %v", r, p.Method, err)
		}
	}
}

// TestConfigurationValidate: bad `locks:` sections name the key.
func TestConfigurationValidate(t *testing.T) {
	for _, tc := range []struct {
		doc      string
		webhooks []string
		want     string // "" = valid
	}{
		{"reasons:\n  spam: {whitelist_ttl: 2h}\n", nil, ""},
		{"reasons:\n  spam: {method: blackhole}\n  abuse: {method: rtbh}\n", nil, ""},
		{"reasons:\n  abuse: {method: storage-hook}\n", []string{"webhook", "storage-hook"}, ""},
		{"probation: 720h\nown_networks: [203.0.113.0/24]\n", nil, ""},
		{"reasons:\n  bogus: {whitelist: true}\n", nil, "reasons.bogus: unknown reason"},
		{"reasons:\n  spam: {whitelist_ttl: 0s}\n", nil, "reasons.spam.whitelist_ttl: must be > 0"},
		{"reasons:\n  spam: {whitelist_ttl: -1h}\n", nil, "reasons.spam.whitelist_ttl: must be > 0"},
		{"reasons:\n  spam: {method: nftabels}\n", nil, `reasons.spam.method: unknown method "nftabels" (bgp_blackhole, flowspec, nftables, webhook or a configured webhook name)`},
		{"reasons:\n  abuse: {method: storage-hook}\n", []string{"webhook"}, `reasons.abuse.method: unknown method "storage-hook"`},
		{"reasons:\n  spam: {method: \"\"}\n", nil, `reasons.spam.method: unknown method ""`},
		{"reasons:\n  spam: {customer_text: \" \"}\n", nil, "reasons.spam.customer_text: must not be empty"},
		{"probation: -1h\n", nil, "probation: must not be negative"},
		{"own_networks: [203.0.113.7/24]\n", nil, "own_networks[0]: 203.0.113.7/24 has host bits set"},
		{"storage_box_method: storage-hook\n", []string{"storage-hook"}, ""},
		{"storage_box_method: storage-hook\n", nil, `storage_box_method: unknown method "storage-hook"`},
	} {
		err := decodeLocks(t, tc.doc).Validate(tc.webhooks...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.doc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want %q", tc.doc, err, tc.want)
		}
	}
	var c Configuration
	if err := yaml.UnmarshalWithOptions([]byte("reasons:\n  spam: {whitelist_tl: 2h}\n"), &c, yaml.DisallowUnknownField()); err == nil {
		t.Error("unknown key in a reason entry accepted")
	}
}

// lockOf builds a lock in memory for the whitelist rules.
func lockOf(r Reason, st State, kind ScopeKind, prefixes ...string) Lock {
	l := Lock{ID: 1, LockingID: "L00000001", Reason: r, State: st, ScopeKind: kind}
	for _, p := range prefixes {
		l.Prefixes = append(l.Prefixes, netip.MustParsePrefix(p))
	}
	if kind == ScopeStorageBox {
		l.Scope.StorageBoxID = 3
	}
	return l
}

// TestWhitelistOffered: the service, not the UI, knows which locks can get
// a whitelist entry — reason, state, and what the method can let through
// for every target of the lock.
func TestWhitelistOffered(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	cfg := Configuration{Reasons: map[Reason]ReasonPolicy{}}
	for r, p := range DefaultReasonPolicies() {
		cfg.Reasons[r] = p
	}
	spam := cfg.Reasons[ReasonSpam]
	spam.Method = "blackhole"
	cfg.Reasons[ReasonSpam] = spam
	abuse := cfg.Reasons[ReasonAbuse]
	abuse.Method = "storage-hook"
	cfg.Reasons[ReasonAbuse] = abuse
	def, err := New(cfg, Dependencies{Store: nopStore{}, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// What serve wires from the drivers: the webhook "storage-hook" is
	// configured with whitelist: true for storage boxes.
	wired, err := New(cfg, Dependencies{Store: nopStore{}, Clock: func() time.Time { return now }, CanWhitelist: func(m string, k TargetKind) bool {
		return m == "storage-hook" && k == TargetStorageBox || DefaultCanWhitelist(m, k)
	}})
	if err != nil {
		t.Fatal(err)
	}
	soon := now.Add(time.Hour)
	warned := lockOf(ReasonNetscan, StateWarned, ScopeIP, "198.51.100.10/32")
	warned.WarnUntil = &soon
	for _, tc := range []struct {
		name  string
		svc   *Service
		l     Lock
		ok    bool
		why   string
		field error
	}{
		{"flowspec address", def, lockOf(ReasonNetscan, StateLocked, ScopeIP, "198.51.100.10/32"), true, "", nil},
		{"flowspec server with a v6 subnet", def, lockOf(ReasonNetscan, StateUnlockRequested, ScopeServer, "198.51.100.10/32", "2001:db8:a::/64"), true, "", nil},
		{"nftables address", def, lockOf(ReasonIncorrectNetwork, StateLocked, ScopeIP, "198.51.100.10/32"), true, "", nil},
		{"nftables subnet", def, lockOf(ReasonIncorrectNetwork, StateLocked, ScopeSubnet, "198.51.100.0/24"), false, "covers a whole subnet", ErrForbidden},
		{"blackhole method", def, lockOf(ReasonSpam, StateLocked, ScopeIP, "198.51.100.10/32"), false, "drops all traffic", ErrForbidden},
		{"storage box by default", def, lockOf(ReasonAbuse, StateLocked, ScopeStorageBox), false, "storage box", ErrForbidden},
		{"storage box through a whitelisting webhook", wired, lockOf(ReasonAbuse, StateLocked, ScopeStorageBox), true, "", nil},
		{"webhook for an address it cannot", wired, lockOf(ReasonAbuse, StateLocked, ScopeIP, "198.51.100.10/32"), false, "cannot let a single address through", ErrForbidden},
		{"non-payment", def, lockOf(ReasonNonPayment, StateLocked, ScopeIP, "198.51.100.10/32"), false, "because of non-payment", ErrForbidden},
		{"illegal content", def, lockOf(ReasonIllegalContent, StateLocked, ScopeIP, "198.51.100.10/32"), false, "because of phishing", ErrForbidden},
		{"unlocked", def, lockOf(ReasonNetscan, StateUnlocked, ScopeIP, "198.51.100.10/32"), false, "unlocked", ErrInvalidTransition},
		{"warned", def, warned, false, "only warned", ErrInvalidTransition},
	} {
		ok, why := tc.svc.WhitelistOffered(tc.l)
		if ok != tc.ok || !strings.Contains(why, tc.why) {
			t.Errorf("%s: WhitelistOffered = %v %q, want %v %q", tc.name, ok, why, tc.ok, tc.why)
		}
		r := tc.svc.whitelistRefusal(tc.l, now)
		if (r == nil) != tc.ok || r != nil && !errors.Is(r.err, tc.field) {
			t.Errorf("%s: refusal %+v, want kind %v", tc.name, r, tc.field)
		}
	}
}
