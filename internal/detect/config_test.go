package detect_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"

	"padlock/internal/detect"
)

var prefixEq = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

// decode reads a detect block the way the integrator's strict top-level
// config does: into the defaults, unknown keys rejected.
func decode(t *testing.T, src string) (detect.Configuration, error) {
	t.Helper()
	conf := detect.Defaults()
	if err := yaml.UnmarshalWithOptions([]byte(src), &conf, yaml.Strict()); err != nil {
		return conf, err
	}
	return conf, conf.Validate()
}

func TestConfigurationIssueExample(t *testing.T) {
	conf, err := decode(t, `
packet_limit: {threshold_pps: 100000, window: 300s, directions: [out, in]}
netscan: {window: 300s, min_destinations: 250, min_ports: 100}
attack: {window: 60s, min_pps: 50000}
spam: {window: 300s, min_destinations: 100}
incorrect_network_config: {enabled: true}
`)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(detect.Defaults(), conf, prefixEq); diff != "" {
		t.Errorf("the issue's example is the defaults (-want +got):\n%s", diff)
	}
}

func TestConfigurationPartialOverride(t *testing.T) {
	conf, err := decode(t, "netscan: {min_ports: 150}\nattack: {window: 2m}\nrearm: 1h\n")
	if err != nil {
		t.Fatal(err)
	}
	want := detect.Defaults()
	want.Netscan.MinPorts = 150
	want.Attack.Window = detect.Duration(2 * time.Minute)
	want.Rearm = detect.Duration(time.Hour)
	if diff := cmp.Diff(want, conf, prefixEq); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestConfigurationErrorsNameTheKey(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{"netscan: {window: 0s}", "detect.netscan.window: must be >= 1s"},
		{"packet_limit: {threshold_pps: 0}", "detect.packet_limit.threshold_pps: must be > 0"},
		{"packet_limit: {directions: [up]}", `detect.packet_limit.directions[0]: must be out or in, got "up"`},
		{"attack: {brute_force: {min_connections: 0}}", "detect.attack.brute_force.min_connections: must be > 0"},
		{"spam: {min_destinations: 600}", "detect.spam.max_destinations"},
		{"host_expiry: 1m", "detect.host_expiry: 1m0s is shorter than detect.packet_limit.window (5m0s)"},
		{"packet_limit: {window: 1h}", "detect.host_expiry: 10m0s is shorter than detect.packet_limit.window (1h0m0s)"},
		{"{host_expiry: 1m, netscan: {window: 20m}}", "detect.host_expiry: 1m0s is shorter than detect.netscan.window (20m0s), the longest window"},
		{"packet_limit: {directions: []}", "detect.packet_limit.directions: must list out, in or both"},
		{"netscan: {window: 5}", "invalid duration"},
		{"netscan: {windw: 5s}", "unknown field \"windw\""},
	} {
		_, err := decode(t, tt.src)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.src, err, tt.want)
		}
	}
}

func TestNewRequiresDependencies(t *testing.T) {
	if _, err := detect.New(detect.Defaults(), detect.Dependencies{OnFinding: func(detect.Finding) {}}); err == nil {
		t.Error("New without Networks succeeded")
	}
	bad := detect.Defaults()
	bad.Netscan.MinDestinations = 0
	if _, err := detect.New(bad, detect.Dependencies{Networks: detect.NewPrefixes(customers), OnFinding: func(detect.Finding) {}}); err == nil {
		t.Error("New with an invalid configuration succeeded")
	}
}
