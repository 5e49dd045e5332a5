// Package bgp enforces locks with an embedded BGP speaker (gobgp v4): remote
// triggered blackhole routes (RFC 7999) and FlowSpec rules (RFC 8955 for
// IPv4, RFC 8956 for IPv6) announced to the provider's routers. It is the
// only package of padlock that imports github.com/osrg/gobgp; it imports
// enforce for the driver contract and nothing else of padlock.
//
// One Speaker serves two drivers: Blackhole ("bgp_blackhole") and FlowSpec
// ("flowspec"). What they report as applied is read back from the speaker:
// the locally originated paths of the RIB that are in the adj-RIB-out of at
// least one established peer. With no established peer the paths stay in the
// RIB (and go out as soon as a session comes up) but every lock is reported
// pending (enforce.ErrNotEffective).
//
// # What routers must do
//
// Blackhole: a /32 or /128 with community 65535:666 (BLACKHOLE, RFC 7999),
// the configured communities and NO_EXPORT, next hop next_hop (IPv4) or
// next_hop6 (IPv6). Routers map the next hop to a discard interface (e.g.
// 192.0.2.1 → Null0) and must accept /32 and /128 with that community from
// padlock. A blackhole drops traffic to the address only; it cannot
// whitelist.
//
// FlowSpec: for a locked prefix X, two rules with the action traffic-rate 0
// (discard): {destination X} and {source X}. For a whitelisted source W, two
// more specific rules with no action: {destination X, source W} and
// {destination W, source X}. RFC 8955 section 5.1 orders rules so that these
// are matched first (a rule with a destination component wins over one
// without; equal destination, a rule with a source wins), and section 7 makes
// "accept" the default action of a rule without a traffic filtering action,
// so the whitelisted pair passes. Routers must apply FlowSpec to transit
// traffic, keep RFC 8955 order (Junos, IOS XR, Nokia SR OS and BIRD do), and,
// where they validate FlowSpec against unicast routes (RFC 8955 section 6),
// have validation relaxed for padlock's session (RFC 9117 or "no-validate").
package bgp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Peer is one router padlock announces to.
type Peer struct {
	Address netip.Addr `yaml:"address"`
	ASN     uint32     `yaml:"asn"`
	Port    uint16     `yaml:"port"` // default 179
}

// Configuration is the `enforce.bgp:` section.
type Configuration struct {
	ASN      uint32     `yaml:"asn"`
	RouterID netip.Addr `yaml:"router_id"`
	// Listen is the address:port the speaker accepts sessions on, and the
	// local address of the sessions it opens. Empty: do not listen, open
	// sessions from any address.
	Listen string `yaml:"listen"`
	// NextHop of IPv4 blackhole routes (routers discard it), NextHop6 of IPv6
	// ones (default 100::1 from the discard-only prefix of RFC 6666).
	NextHop  netip.Addr `yaml:"next_hop"`
	NextHop6 netip.Addr `yaml:"next_hop6"`
	// Communities added to blackhole routes, "ASN:VALUE". Default
	// ["65535:666"]; 65535:666 and NO_EXPORT are always added.
	Communities []string `yaml:"communities"`
	Peers       []Peer   `yaml:"peers"`
	// ConnectRetry is how long a failed session waits before it is opened
	// again. Default 5s.
	ConnectRetry time.Duration `yaml:"connect_retry"`
}

// DefaultConfiguration returns the defaults.
func DefaultConfiguration() Configuration {
	return Configuration{
		NextHop6:     netip.MustParseAddr("100::1"),
		Communities:  []string{"65535:666"},
		ConnectRetry: 5 * time.Second,
	}
}

// Validate checks the configuration; every error names its key.
func (c Configuration) Validate() error {
	var errs []error
	if c.ASN == 0 {
		errs = append(errs, errors.New("asn: required"))
	}
	if !c.RouterID.Is4() {
		errs = append(errs, errors.New("router_id: must be an IPv4 address"))
	}
	if c.Listen != "" {
		if _, _, err := splitListen(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen: %w", err))
		}
	}
	if !c.NextHop.Is4() {
		errs = append(errs, errors.New("next_hop: must be an IPv4 address"))
	}
	if c.NextHop6.IsValid() && !c.NextHop6.Is6() {
		errs = append(errs, errors.New("next_hop6: must be an IPv6 address"))
	}
	for i, s := range c.Communities {
		if _, err := parseCommunity(s); err != nil {
			errs = append(errs, fmt.Errorf("communities[%d]: %w", i, err))
		}
	}
	if len(c.Peers) == 0 {
		errs = append(errs, errors.New("peers: at least one peer required"))
	}
	for i, p := range c.Peers {
		if !p.Address.IsValid() {
			errs = append(errs, fmt.Errorf("peers[%d].address: required", i))
		}
		if p.ASN == 0 {
			errs = append(errs, fmt.Errorf("peers[%d].asn: required", i))
		}
	}
	if c.ConnectRetry < 0 {
		errs = append(errs, errors.New("connect_retry: must not be negative"))
	}
	return errors.Join(errs...)
}

func splitListen(s string) (netip.Addr, uint16, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.Addr{}, 0, fmt.Errorf("bad port %q", port)
	}
	return a, uint16(p), nil
}

// parseCommunity parses "ASN:VALUE" (each 0..65535).
func parseCommunity(s string) (uint32, error) {
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("%q is not ASN:VALUE", s)
	}
	h, err1 := strconv.ParseUint(hi, 10, 16)
	l, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not ASN:VALUE with numbers up to 65535", s)
	}
	return uint32(h)<<16 | uint32(l), nil
}
