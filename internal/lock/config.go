package lock

import (
	"fmt"
	"net/netip"
	"time"
)

// ReasonPolicy is what padlock does for one reason.
type ReasonPolicy struct {
	// CustomerText is the explanation the customer reads in mails and the
	// client area.
	CustomerText string `yaml:"customer_text" json:"customer_text"`
	// Whitelist says whether the customer may whitelist an IP at all.
	Whitelist bool `yaml:"whitelist" json:"whitelist"`
	// WhitelistTTL is how long a whitelist entry lasts (default 24h).
	WhitelistTTL time.Duration `yaml:"whitelist_ttl" json:"whitelist_ttl"`
	// Method names the enforcement method (e.g. "blackhole", "flowspec",
	// "nftables", "webhook"); enforcement interprets it.
	Method string `yaml:"method" json:"method"`
}

// Configuration of the lock service.
type Configuration struct {
	// Reasons overrides the policy of single reasons; unset fields of an
	// entry keep their default.
	Reasons map[Reason]ReasonPolicy `yaml:"reasons"`
	// Probation is how long after an unlock a recurrence re-locks at once
	// without a new warning (default 30 days).
	Probation time.Duration `yaml:"probation"`
	// OwnNetworks are the provider's own prefixes; no address in them can
	// be whitelisted (nor can any address in the inventory).
	OwnNetworks []netip.Prefix `yaml:"own_networks"`
	// Bogons are prefixes that can never be whitelisted. Nil means
	// DefaultBogons. Loopback, private, link-local, multicast and
	// unspecified addresses are refused regardless.
	Bogons []netip.Prefix `yaml:"bogons"`
	// DefaultWarning is the warning period used when a lock is created as a
	// warning without an explicit deadline (default 24h).
	DefaultWarning time.Duration `yaml:"default_warning"`
}

// DefaultReasonPolicies are the built-in policies.
func DefaultReasonPolicies() map[Reason]ReasonPolicy {
	day := 24 * time.Hour
	return map[Reason]ReasonPolicy{
		ReasonNonPayment:       {CustomerText: "Your product was locked because an invoice is overdue. It is unlocked automatically once the payment is received.", Whitelist: false, WhitelistTTL: day, Method: "blackhole"},
		ReasonAbuse:            {CustomerText: "Your product was locked because of an abuse report concerning it. Please fix the issue and send us an unlock request.", Whitelist: true, WhitelistTTL: day, Method: "nftables"},
		ReasonIllegalContent:   {CustomerText: "Your product was locked because it hosts phishing, malware or copyright-infringing material. Please remove it and send us an unlock request.", Whitelist: false, WhitelistTTL: day, Method: "blackhole"},
		ReasonSpam:             {CustomerText: "Your product was locked because it sent spam. Please fix the issue and send us an unlock request.", Whitelist: true, WhitelistTTL: day, Method: "nftables"},
		ReasonNetworkAttack:    {CustomerText: "Your product was locked because it attacked other systems. The attached log shows what we saw. Please fix the issue and send us an unlock request.", Whitelist: true, WhitelistTTL: day, Method: "flowspec"},
		ReasonNetscan:          {CustomerText: "Your product was locked because it scanned other networks. The attached log shows the exact time, source and destination. Please fix the issue and send us an unlock request.", Whitelist: true, WhitelistTTL: day, Method: "flowspec"},
		ReasonPacketLimit:      {CustomerText: "Your product was locked because it exceeded the packet limit. The attached summary shows the traffic per destination. Please fix the issue and send us an unlock request.", Whitelist: true, WhitelistTTL: day, Method: "flowspec"},
		ReasonIncorrectNetwork: {CustomerText: "Your product was locked because of an incorrect network configuration (addresses or MAC addresses not assigned to it). Please fix the configuration and send us an unlock request.", Whitelist: true, WhitelistTTL: day, Method: "nftables"},
	}
}

// DefaultBogons are addresses that are never a customer's public address:
// reserved, shared, documentation and benchmarking ranges.
var DefaultBogons = mustPrefixes(
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
	"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"::/8", "100::/64", "2001:2::/48", "2001:10::/28", "2001:db8::/32", "3fff::/20",
	"fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// withDefaults returns the configuration with defaults filled in.
func (c Configuration) withDefaults() (Configuration, error) {
	pol := DefaultReasonPolicies()
	for r, p := range c.Reasons {
		d, ok := pol[r]
		if !ok {
			return c, fmt.Errorf("reasons: unknown reason %q", r)
		}
		if p.CustomerText != "" {
			d.CustomerText = p.CustomerText
		}
		if p.Method != "" {
			d.Method = p.Method
		}
		if p.WhitelistTTL < 0 {
			return c, fmt.Errorf("reasons.%s.whitelist_ttl: must not be negative", r)
		}
		if p.WhitelistTTL > 0 {
			d.WhitelistTTL = p.WhitelistTTL
		}
		d.Whitelist = p.Whitelist
		pol[r] = d
	}
	c.Reasons = pol
	if c.Probation == 0 {
		c.Probation = 30 * 24 * time.Hour
	}
	if c.Probation < 0 {
		return c, fmt.Errorf("probation: must not be negative")
	}
	if c.DefaultWarning == 0 {
		c.DefaultWarning = 24 * time.Hour
	}
	if c.Bogons == nil {
		c.Bogons = DefaultBogons
	}
	return c, nil
}
