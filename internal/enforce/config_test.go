package enforce

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func TestConfigurationFromYAML(t *testing.T) {
	cfg := DefaultConfiguration()
	src := "interval: 10s\nmax_backoff: 1m\nprotected: [203.0.113.0/29, 2001:db8:ffff::/48]\n"
	if err := yaml.UnmarshalWithOptions([]byte(src), &cfg, yaml.DisallowUnknownField()); err != nil {
		t.Fatal(err)
	}
	if cfg.Interval != 10*time.Second || cfg.MaxBackoff != time.Minute || cfg.MinBackoff != time.Second ||
		len(cfg.Protected) != 2 || cfg.Protected[1] != netip.MustParsePrefix("2001:db8:ffff::/48") {
		t.Fatalf("decoded %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.Interval, cfg.MaxBackoff = 0, time.Millisecond
	err := cfg.Validate()
	for _, want := range []string{"interval: ", "max_backoff: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
}

func TestTargetValidate(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		ok   bool
		kind Scope
	}{
		{Address(netip.MustParseAddr("::ffff:203.0.113.1")), true, ScopeAddress},
		{Target{Prefix: netip.MustParsePrefix("203.0.113.0/24")}, true, ScopeSubnet},
		{Target{StorageBox: "BX1"}, true, ScopeStorageBox},
		{Target{Prefix: netip.MustParsePrefix("203.0.113.1/24")}, false, ScopeSubnet},
		{Target{}, false, ScopeSubnet},
		{Target{Prefix: netip.MustParsePrefix("203.0.113.1/32"), StorageBox: "BX1"}, false, ScopeStorageBox},
	} {
		if err := tc.t.Validate(); (err == nil) != tc.ok || tc.t.Scope() != tc.kind {
			t.Errorf("%+v: Validate() = %v, Scope() = %s", tc.t, err, tc.t.Scope())
		}
	}
}
