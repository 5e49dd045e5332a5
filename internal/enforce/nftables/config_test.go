package nftables

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

func TestConfiguration(t *testing.T) {
	cfg := DefaultConfiguration()
	if err := yaml.UnmarshalWithOptions([]byte("table: pl\nhooks: [forward, input]\nnetns: /run/netns/edge\n"), &cfg, yaml.DisallowUnknownField()); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil || cfg.Table != "pl" || len(cfg.Hooks) != 2 {
		t.Fatalf("%+v %v", cfg, err)
	}
	cfg.Table, cfg.Hooks = "bad name", []string{"prerouting", "input", "input"}
	err := cfg.Validate()
	for _, want := range []string{"table: ", "hooks[0]: ", "hooks[2]: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
}

func TestRangePrefixes(t *testing.T) {
	for _, tc := range []struct{ first, last, want string }{
		{"203.0.113.0", "203.0.113.255", "203.0.113.0/24"},
		{"203.0.113.10", "203.0.113.10", "203.0.113.10/32"},
		{"203.0.113.1", "203.0.113.6", "203.0.113.1/32 203.0.113.2/31 203.0.113.4/31 203.0.113.6/32"},
		{"2001:db8::", "2001:db8::ffff", "2001:db8::/112"},
	} {
		var got []string
		for _, p := range rangePrefixes(netip.MustParseAddr(tc.first), netip.MustParseAddr(tc.last)) {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("rangePrefixes(%s, %s) = %v, want %s", tc.first, tc.last, got, tc.want)
		}
	}
}
