package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"
)

// The example section decodes strictly into Configuration.
func TestConfigurationFromYAML(t *testing.T) {
	src := `
asn: 65001
router_id: 127.0.0.1
listen: 127.0.0.1:10179
next_hop: 192.0.2.1
communities: ["65535:666"]
peers: [{address: 127.0.0.2, asn: 65002, port: 10179}]
`
	cfg := DefaultConfiguration()
	if err := yaml.UnmarshalWithOptions([]byte(src), &cfg, yaml.DisallowUnknownField()); err != nil {
		t.Fatal(err)
	}
	want := Configuration{
		ASN: 65001, RouterID: netip.MustParseAddr("127.0.0.1"), Listen: "127.0.0.1:10179",
		NextHop: netip.MustParseAddr("192.0.2.1"), NextHop6: netip.MustParseAddr("100::1"),
		Communities:  []string{"65535:666"},
		Peers:        []Peer{{Address: netip.MustParseAddr("127.0.0.2"), ASN: 65002, Port: 10179}},
		ConnectRetry: 5 * time.Second,
	}
	if diff := cmp.Diff(want, cfg, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Configuration)
		want string
	}{
		{func(c *Configuration) { c.ASN = 0 }, "asn: required"},
		{func(c *Configuration) { c.RouterID = netip.MustParseAddr("::1") }, "router_id: must be an IPv4 address"},
		{func(c *Configuration) { c.Listen = "127.0.0.1" }, "listen: "},
		{func(c *Configuration) { c.NextHop = netip.Addr{} }, "next_hop: must be an IPv4 address"},
		{func(c *Configuration) { c.NextHop6 = netip.MustParseAddr("192.0.2.1") }, "next_hop6: must be an IPv6 address"},
		{func(c *Configuration) { c.Communities = []string{"65535:666", "blackhole"} }, "communities[1]: "},
		{func(c *Configuration) { c.Communities = []string{"70000:1"} }, "communities[0]: "},
		{func(c *Configuration) { c.Peers = nil }, "peers: at least one peer"},
		{func(c *Configuration) { c.Peers[0].ASN = 0 }, "peers[0].asn: required"},
		{func(c *Configuration) { c.Peers[0].Address = netip.Addr{} }, "peers[0].address: required"},
	} {
		cfg := DefaultConfiguration()
		cfg.ASN, cfg.RouterID, cfg.NextHop = 65001, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.1")
		cfg.Peers = []Peer{{Address: netip.MustParseAddr("127.0.0.2"), ASN: 65002}}
		tc.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want %q", err, tc.want)
		}
	}
}

func TestParseRule(t *testing.T) {
	for in, want := range map[string]rule{
		"[destination: 203.0.113.20/32]":                              {dst: netip.MustParsePrefix("203.0.113.20/32")},
		"[source: 203.0.113.0/24]":                                    {src: netip.MustParsePrefix("203.0.113.0/24")},
		"[destination: 2001:db8::1/128/0][source: 2001:db8::2/128/0]": {dst: netip.MustParsePrefix("2001:db8::1/128"), src: netip.MustParsePrefix("2001:db8::2/128")},
	} {
		got, ok := parseRule(in)
		if !ok || got != want {
			t.Errorf("parseRule(%q) = %+v %v, want %+v", in, got, ok, want)
		}
	}
	for _, in := range []string{"[protocol: ==tcp]", "[destination: 2001:db8::/64/8]", "nonsense"} {
		if _, ok := parseRule(in); ok {
			t.Errorf("parseRule(%q) accepted a rule padlock does not make", in)
		}
	}
}
