package lock

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Enforcement method names a reason policy may use. They are the names of
// the enforcement drivers (internal/enforce Method* constants and
// Driver.Name); lock keeps them as plain strings and does not import
// enforcement. A configured webhook driver may carry another name.
const (
	MethodBlackhole = "bgp_blackhole" // BGP RTBH: drops everything, no whitelist
	MethodFlowSpec  = "flowspec"      // BGP FlowSpec discard with accept rules for a whitelisted source
	MethodNftables  = "nftables"      // padlock's nftables table on a Linux edge
	MethodWebhook   = "webhook"       // the default name of a webhook/command driver
)

// Methods lists the built-in method names.
var Methods = []string{MethodBlackhole, MethodFlowSpec, MethodNftables, MethodWebhook}

// methodAliases are older or shorter names accepted in configuration.
var methodAliases = map[string]string{"blackhole": MethodBlackhole, "rtbh": MethodBlackhole}

// NormalizeMethod returns the driver name of a configured method: the
// aliases "blackhole" and "rtbh" become "bgp_blackhole"; anything else is
// returned unchanged (leading and trailing spaces removed).
func NormalizeMethod(m string) string {
	m = strings.TrimSpace(m)
	if n, ok := methodAliases[m]; ok {
		return n
	}
	return m
}

// ReasonPolicy is what padlock does for one reason.
//
// In YAML every key of an entry under `locks.reasons` is optional and an
// absent key keeps the built-in default (`whitelist_ttl: 2h` alone leaves
// whitelisting on or off as it was). In Go a bool cannot be absent: a
// ReasonPolicy built in code overrides CustomerText, WhitelistTTL and
// Method when they are non-zero and always sets Whitelist — start from
// DefaultReasonPolicies()[r] to change a single field.
type ReasonPolicy struct {
	// CustomerText is the explanation the customer reads in mails and the
	// client area.
	CustomerText string `yaml:"customer_text" json:"customer_text"`
	// Whitelist says whether the customer may whitelist an IP at all
	// (the enforcement method must also be able to let it through; see
	// Dependencies.CanWhitelist).
	Whitelist bool `yaml:"whitelist" json:"whitelist"`
	// WhitelistTTL is how long a whitelist entry lasts (default 24h).
	WhitelistTTL time.Duration `yaml:"whitelist_ttl" json:"whitelist_ttl"`
	// Method names the enforcement method: bgp_blackhole (alias
	// blackhole), flowspec, nftables, webhook or the name of a configured
	// webhook driver; enforcement interprets it.
	Method string `yaml:"method" json:"method"`

	// set records which keys a YAML document gave (see UnmarshalYAML);
	// zero for a policy built in Go.
	set policyKeys
}

// policyKeys is a bit set of the keys of a decoded ReasonPolicy.
type policyKeys uint8

const (
	keyDecoded policyKeys = 1 << iota
	keyCustomerText
	keyWhitelist
	keyWhitelistTTL
	keyMethod
)

// reasonPolicyYAML is the YAML form of a ReasonPolicy: pointers tell an
// absent key from a zero value.
type reasonPolicyYAML struct {
	CustomerText *string        `yaml:"customer_text"`
	Whitelist    *bool          `yaml:"whitelist"`
	WhitelistTTL *time.Duration `yaml:"whitelist_ttl"`
	Method       *string        `yaml:"method"`
}

// UnmarshalYAML decodes one `locks.reasons.<reason>` entry and remembers
// which keys it set, so the others keep their defaults.
func (p *ReasonPolicy) UnmarshalYAML(unmarshal func(any) error) error {
	var y reasonPolicyYAML
	if err := unmarshal(&y); err != nil {
		return err
	}
	*p = ReasonPolicy{set: keyDecoded}
	if y.CustomerText != nil {
		p.CustomerText, p.set = *y.CustomerText, p.set|keyCustomerText
	}
	if y.Whitelist != nil {
		p.Whitelist, p.set = *y.Whitelist, p.set|keyWhitelist
	}
	if y.WhitelistTTL != nil {
		p.WhitelistTTL, p.set = *y.WhitelistTTL, p.set|keyWhitelistTTL
	}
	if y.Method != nil {
		p.Method, p.set = *y.Method, p.set|keyMethod
	}
	return nil
}

// has reports whether the entry sets key k: in YAML when the key is
// present, in Go when the field is non-zero (Whitelist always).
func (p ReasonPolicy) has(k policyKeys) bool {
	if p.set&keyDecoded != 0 {
		return p.set&k != 0
	}
	switch k {
	case keyCustomerText:
		return p.CustomerText != ""
	case keyWhitelistTTL:
		return p.WhitelistTTL != 0
	case keyMethod:
		return p.Method != ""
	}
	return true
}

// Configuration of the lock service (the `locks:` section).
type Configuration struct {
	// Reasons overrides the policy of single reasons; unset keys of an
	// entry keep their default (see ReasonPolicy).
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
	// StorageBoxMethod enforces storage box locks, which have no address:
	// through their backend, a webhook driver (enforce.webhooks[].name).
	// Empty: the reason's method, which for the address-based methods
	// (blackhole, FlowSpec, nftables) means the lock cannot be enforced and
	// shows as refused to staff.
	StorageBoxMethod string `yaml:"storage_box_method"`
}

// DefaultReasonPolicies are the built-in policies: RTBH for non-payment and
// illegal content (no whitelist), nftables or FlowSpec — which can let a
// whitelisted address through — for the rest.
func DefaultReasonPolicies() map[Reason]ReasonPolicy {
	day := 24 * time.Hour
	return map[Reason]ReasonPolicy{
		ReasonNonPayment:       {CustomerText: "Your product was locked because an invoice is overdue. It is unlocked automatically once the payment is received.", Whitelist: false, WhitelistTTL: day, Method: MethodBlackhole},
		ReasonAbuse:            {CustomerText: "Your product was locked because of an abuse report concerning it. Please fix the issue and send us an unlock request.", Whitelist: true, WhitelistTTL: day, Method: MethodNftables},
		ReasonIllegalContent:   {CustomerText: "Your product was locked because it hosts phishing, malware or copyright-infringing material. Please remove it and send us an unlock request.", Whitelist: false, WhitelistTTL: day, Method: MethodBlackhole},
		ReasonSpam:             {CustomerText: "Your product was locked because it sent spam. Please fix the issue and send us an unlock request.", Whitelist: true, WhitelistTTL: day, Method: MethodNftables},
		ReasonNetworkAttack:    {CustomerText: "Your product was locked because it attacked other systems. Please fix the issue and send us an unlock request.", Whitelist: true, WhitelistTTL: day, Method: MethodFlowSpec},
		ReasonNetscan:          {CustomerText: "Your product was locked because it scanned other networks. Please fix the issue and send us an unlock request.", Whitelist: true, WhitelistTTL: day, Method: MethodFlowSpec},
		ReasonPacketLimit:      {CustomerText: "Your product was locked because it exceeded the packet limit. Please fix the issue and send us an unlock request.", Whitelist: true, WhitelistTTL: day, Method: MethodFlowSpec},
		ReasonIncorrectNetwork: {CustomerText: "Your product was locked because of an incorrect network configuration (addresses or MAC addresses not assigned to it). Please fix the configuration and send us an unlock request.", Whitelist: true, WhitelistTTL: day, Method: MethodNftables},
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

// Validate checks the configuration as the operator wrote it; every error
// names its key below `locks:` ("reasons.spam.whitelist_ttl: must be >
// 0"), and all problems are reported, joined. webhookNames are the names
// of the configured webhook drivers, which a reason's method may name
// besides the built-in methods.
func (c Configuration) Validate(webhookNames ...string) error {
	var errs []error
	known := make(map[Reason]bool, len(Reasons))
	for _, r := range Reasons {
		known[r] = true
	}
	names := make([]string, 0, len(c.Reasons))
	for r := range c.Reasons {
		names = append(names, string(r))
	}
	slices.Sort(names)
	for _, n := range names {
		r := Reason(n)
		p := c.Reasons[r]
		key := "reasons." + n
		if !known[r] {
			errs = append(errs, fmt.Errorf("%s: unknown reason (want one of %s)", key, reasonList()))
			continue
		}
		if p.has(keyCustomerText) && strings.TrimSpace(p.CustomerText) == "" {
			errs = append(errs, fmt.Errorf("%s.customer_text: must not be empty", key))
		}
		if p.has(keyWhitelistTTL) && p.WhitelistTTL <= 0 {
			errs = append(errs, fmt.Errorf("%s.whitelist_ttl: must be > 0", key))
		}
		if p.has(keyMethod) {
			if err := checkMethod(p.Method, webhookNames); err != nil {
				errs = append(errs, fmt.Errorf("%s.method: %w", key, err))
			}
		}
	}
	if c.Probation < 0 {
		errs = append(errs, errors.New("probation: must not be negative"))
	}
	if c.DefaultWarning < 0 {
		errs = append(errs, errors.New("default_warning: must not be negative"))
	}
	if c.StorageBoxMethod != "" {
		if err := checkMethod(c.StorageBoxMethod, webhookNames); err != nil {
			errs = append(errs, fmt.Errorf("storage_box_method: %w", err))
		}
	}
	for i, p := range c.OwnNetworks {
		if p.Masked() != p {
			errs = append(errs, fmt.Errorf("own_networks[%d]: %s has host bits set (did you mean %s?)", i, p, p.Masked()))
		}
	}
	for i, p := range c.Bogons {
		if p.Masked() != p {
			errs = append(errs, fmt.Errorf("bogons[%d]: %s has host bits set (did you mean %s?)", i, p, p.Masked()))
		}
	}
	return errors.Join(errs...)
}

// checkMethod refuses a method name that no driver could carry.
func checkMethod(m string, webhookNames []string) error {
	n := NormalizeMethod(m)
	if slices.Contains(Methods, n) || n != "" && slices.Contains(webhookNames, n) {
		return nil
	}
	return fmt.Errorf("unknown method %q (bgp_blackhole, flowspec, nftables, webhook or a configured webhook name)", m)
}

// withDefaults returns the configuration with defaults filled in and the
// methods normalized. It refuses what would make the service misbehave
// (unknown reasons, negative durations); method names are checked by
// Validate, which knows the configured webhooks.
func (c Configuration) withDefaults() (Configuration, error) {
	pol := DefaultReasonPolicies()
	for r, p := range c.Reasons {
		d, ok := pol[r]
		if !ok {
			return c, fmt.Errorf("reasons.%s: unknown reason", r)
		}
		if p.has(keyCustomerText) && p.CustomerText != "" {
			d.CustomerText = p.CustomerText
		}
		if p.has(keyMethod) && p.Method != "" {
			d.Method = p.Method
		}
		if p.has(keyWhitelistTTL) {
			if p.WhitelistTTL < 0 || p.set&keyDecoded != 0 && p.WhitelistTTL == 0 {
				return c, fmt.Errorf("reasons.%s.whitelist_ttl: must be > 0", r)
			}
			d.WhitelistTTL = p.WhitelistTTL
		}
		if p.has(keyWhitelist) {
			d.Whitelist = p.Whitelist
		}
		d.Method = NormalizeMethod(d.Method)
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
	if c.DefaultWarning < 0 {
		return c, fmt.Errorf("default_warning: must not be negative")
	}
	if c.Bogons == nil {
		c.Bogons = DefaultBogons
	}
	return c, nil
}
