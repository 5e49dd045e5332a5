package policy

import (
	"fmt"
	"net/mail"
	"net/netip"
	"time"
)

// Action is what the policy decides for one finding.
type Action string

// Actions. The first four are what an operator configures per kind; the
// others are outcomes the policy reaches by itself.
const (
	// ActionRecord stores the finding and its evidence, nothing else
	// (shadow mode).
	ActionRecord Action = "record"
	// ActionNotify stores the finding, sends the customer one notice per
	// case with the evidence (nothing is locked) and alerts staff.
	ActionNotify Action = "notify"
	// ActionWarn creates a warning with a deadline; the lock manager locks
	// when the deadline passes (lock.Service.LockOverdue).
	ActionWarn Action = "warn"
	// ActionLock locks at once.
	ActionLock Action = "lock"
	// ActionBlackhole locks an inbound victim to protect the network, with
	// its own expiry; the mail says it is not the customer's fault.
	ActionBlackhole Action = "blackhole"
	// ActionReview holds an automatic action for staff: circuit breaker
	// open, rate limit reached or no owner in the inventory.
	ActionReview Action = "review"
	// ActionIgnore is for protected addresses: never acted on.
	ActionIgnore Action = "ignore"
)

// ConfigurableActions are the values of a kind's `action:` key.
var ConfigurableActions = []Action{ActionRecord, ActionNotify, ActionWarn, ActionLock}

// Automatic reports whether the action changes a customer's product.
func (a Action) Automatic() bool {
	return a == ActionWarn || a == ActionLock || a == ActionBlackhole
}

// KindPolicy is the policy of one detector kind (policy.netscan, ...).
type KindPolicy struct {
	// Action is record, notify, warn or lock.
	Action Action `yaml:"action"`
	// MinSamples is the confidence floor on the finding's sample count
	// (records as received); below it the finding is only recorded. 0: the
	// detector's own floor is enough.
	MinSamples uint64 `yaml:"min_samples"`
	// Consecutive is the number of findings the open case of the address
	// and kind must hold (the condition held over consecutive windows)
	// before any action. Default 1.
	Consecutive int `yaml:"consecutive"`
	// WarnDeadline is the deadline of a warning (action warn). Default 24h.
	WarnDeadline time.Duration `yaml:"warn_deadline"`
}

// GroupKinds are a group's overrides; a kind left out inherits the
// top-level policy of that kind.
type GroupKinds struct {
	Netscan                *KindPolicy `yaml:"netscan,omitempty"`
	PacketLimit            *KindPolicy `yaml:"packet_limit,omitempty"`
	NetworkAttack          *KindPolicy `yaml:"network_attack,omitempty"`
	Spam                   *KindPolicy `yaml:"spam,omitempty"`
	IncorrectNetworkConfig *KindPolicy `yaml:"incorrect_network_config,omitempty"`
}

// Group is a customer or server group: the policy of the addresses in its
// prefixes. The group with the longest matching prefix wins.
type Group struct {
	Name       string         `yaml:"name"`
	Prefixes   []netip.Prefix `yaml:"prefixes"`
	GroupKinds `yaml:",inline"`
}

// RateLimit bounds automatic locks and warnings per sliding hour; beyond
// it findings queue for review. Inbound-protection blackholes are exempt,
// as they are from the circuit breaker: an attack on many customers at
// once must not leave the later victims unprotected, and each blackhole
// ends by itself at its expiry.
type RateLimit struct {
	PerHour     int `yaml:"per_hour"`     // all customers; default 20, 0 = no limit
	PerCustomer int `yaml:"per_customer"` // one customer; default 5, 0 = no limit
}

// BreakerConfiguration configures the circuit breaker.
type BreakerConfiguration struct {
	// Servers: more than this many distinct internal addresses tripping
	// the same detector within Within opens the breaker. Default 10; 0
	// disables this condition.
	Servers int           `yaml:"servers"`
	Within  time.Duration `yaml:"within"` // default 5m
	// SamplingChange opens the breaker when an exporter's sampling rate
	// changes. Default true.
	SamplingChange bool `yaml:"sampling_change"`
	// ResetAfter closes the breaker by itself after this long with no new
	// trip; 0 (default) waits for staff (Reset).
	ResetAfter time.Duration `yaml:"reset_after"`
}

// Escalation configures the handling of repeat offenders. A recurrence
// within the probation of an unlocked lock is re-locked at once by the lock
// manager whatever the action says.
type Escalation struct {
	// LockAfter: a customer with at least this many earlier locks for the
	// reason (within Lookback) is locked directly where the action says
	// warn. Default 1; 0 disables.
	LockAfter int `yaml:"lock_after"`
	// StaffUnlockAfter: the n-th lock for a reason is marked as unlockable
	// by staff only (lock.CreateLockRequest.StaffUnlockOnly). Default 3; 0
	// disables.
	StaffUnlockAfter int `yaml:"staff_unlock_after"`
	// Lookback is how far back earlier locks count. Default 8760h (a year).
	Lookback time.Duration `yaml:"lookback"`
}

// InboundBlackhole configures the protection of inbound victims: an internal
// address that receives more than its packet limit.
type InboundBlackhole struct {
	// Enabled blackholes victims automatically. Default false (recorded for
	// staff only).
	Enabled bool `yaml:"enabled"`
	// Expiry lifts the blackhole by itself. Default 1h.
	Expiry time.Duration `yaml:"expiry"`
	// Method is the enforcement method of the blackhole, chosen here and
	// not by the reason's method (packet_limit and network_attack default
	// to flowspec, which is not a remotely triggered blackhole). One of
	// BlackholeMethods; default "blackhole" (RTBH /32 and /128 with
	// 65535:666).
	Method string `yaml:"method"`
}

// BlackholeMethods are the values of inbound_blackhole.method: the
// enforcement methods the lock configuration knows (locks.reasons.*.method).
var BlackholeMethods = []string{"blackhole", "bgp_blackhole", "rtbh", "flowspec", "nftables", "webhook"}

// Configuration is the `policy:` section.
type Configuration struct {
	Netscan                KindPolicy `yaml:"netscan"`
	PacketLimit            KindPolicy `yaml:"packet_limit"`
	NetworkAttack          KindPolicy `yaml:"network_attack"`
	Spam                   KindPolicy `yaml:"spam"`
	IncorrectNetworkConfig KindPolicy `yaml:"incorrect_network_config"`

	// Groups override kinds for customer/server groups, longest prefix wins.
	Groups []Group `yaml:"groups"`
	// Protected prefixes are never acted on (added to the top-level
	// `protected:` list).
	Protected []netip.Prefix `yaml:"protected"`

	// StaffEmail receives staff alerts through the mail outbox: one mail
	// each time the circuit breaker opens, and one per case whose action
	// is notify. Empty (default): alerts are only logged.
	StaffEmail string `yaml:"staff_email"`

	// CaseIdle closes a finding case without a lock whose last finding is
	// older than this when a new one arrives: the new finding opens a fresh
	// case, so "consecutive" counts findings of one episode (not three
	// findings weeks apart) and a notify case mails again. Default 24h; 0
	// keeps cases open until staff close them.
	CaseIdle time.Duration `yaml:"case_idle"`

	AutoLockLimit    RateLimit            `yaml:"auto_lock_limit"`
	CircuitBreaker   BreakerConfiguration `yaml:"circuit_breaker"`
	Escalation       Escalation           `yaml:"escalation"`
	InboundBlackhole InboundBlackhole     `yaml:"inbound_blackhole"`
}

// DefaultKind is a kind's policy with action a and the default confidence
// floor (one finding, no sample minimum beyond the detector's) and 24h
// warnings.
func DefaultKind(a Action) KindPolicy {
	return KindPolicy{Action: a, Consecutive: 1, WarnDeadline: 24 * time.Hour}
}

// DefaultConfiguration returns the defaults: netscan and packet_limit lock,
// attacks and spam lock, incorrect network configuration warns; at most 20
// automatic locks an hour, 5 per customer; the breaker opens when more than
// 10 servers trip one detector within 5 minutes or a sampling rate changes.
func DefaultConfiguration() Configuration {
	return Configuration{
		Netscan:                DefaultKind(ActionLock),
		PacketLimit:            DefaultKind(ActionLock),
		NetworkAttack:          DefaultKind(ActionLock),
		Spam:                   DefaultKind(ActionLock),
		IncorrectNetworkConfig: DefaultKind(ActionWarn),
		CaseIdle:               24 * time.Hour,
		AutoLockLimit:          RateLimit{PerHour: 20, PerCustomer: 5},
		CircuitBreaker:         BreakerConfiguration{Servers: 10, Within: 5 * time.Minute, SamplingChange: true},
		Escalation:             Escalation{LockAfter: 1, StaffUnlockAfter: 3, Lookback: 8760 * time.Hour},
		InboundBlackhole:       InboundBlackhole{Expiry: time.Hour, Method: "blackhole"},
	}
}

// Kind returns the top-level policy of a kind (ok false for unknown kinds).
func (c *Configuration) Kind(kind string) (KindPolicy, bool) {
	switch kind {
	case "netscan":
		return c.Netscan, true
	case "packet_limit":
		return c.PacketLimit, true
	case "network_attack":
		return c.NetworkAttack, true
	case "spam":
		return c.Spam, true
	case "incorrect_network_config":
		return c.IncorrectNetworkConfig, true
	}
	return KindPolicy{}, false
}

// Kind returns the group's override of a kind, nil when it inherits.
func (g *GroupKinds) Kind(kind string) *KindPolicy {
	switch kind {
	case "netscan":
		return g.Netscan
	case "packet_limit":
		return g.PacketLimit
	case "network_attack":
		return g.NetworkAttack
	case "spam":
		return g.Spam
	case "incorrect_network_config":
		return g.IncorrectNetworkConfig
	}
	return nil
}

// Kinds are the detector kinds the policy knows, in configuration order.
var Kinds = []string{"netscan", "packet_limit", "network_attack", "spam", "incorrect_network_config"}

func (k KindPolicy) validate(key string) error {
	ok := false
	for _, a := range ConfigurableActions {
		ok = ok || k.Action == a
	}
	if !ok {
		return fmt.Errorf("%s.action: must be one of record, notify, warn, lock, not %q", key, k.Action)
	}
	if k.Consecutive < 0 {
		return fmt.Errorf("%s.consecutive: must be >= 0", key)
	}
	if k.WarnDeadline < 0 || k.Action == ActionWarn && k.WarnDeadline == 0 {
		return fmt.Errorf("%s.warn_deadline: must be > 0", key)
	}
	return nil
}

// Validate reports the first bad value; the error starts with the key
// below `policy.` ("netscan.action: ...").
func (c Configuration) Validate() error {
	for _, kind := range Kinds {
		k, _ := c.Kind(kind)
		if err := k.validate(kind); err != nil {
			return err
		}
	}
	for i, g := range c.Groups {
		if len(g.Prefixes) == 0 {
			return fmt.Errorf("groups[%d].prefixes: a group needs at least one prefix", i)
		}
		for j, p := range g.Prefixes {
			if !p.IsValid() || p.Masked() != p {
				return fmt.Errorf("groups[%d].prefixes[%d]: %s has host bits set (did you mean %s?)", i, j, p, p.Masked())
			}
		}
		for _, kind := range Kinds {
			if k := g.Kind(kind); k != nil {
				kk := *k
				if kk.Consecutive == 0 {
					kk.Consecutive = 1
				}
				if kk.WarnDeadline == 0 {
					kk.WarnDeadline = 24 * time.Hour
				}
				if err := kk.validate(fmt.Sprintf("groups[%d].%s", i, kind)); err != nil {
					return err
				}
			}
		}
	}
	for i, p := range c.Protected {
		if p.Masked() != p {
			return fmt.Errorf("protected[%d]: %s has host bits set (did you mean %s?)", i, p, p.Masked())
		}
	}
	if c.AutoLockLimit.PerHour < 0 {
		return fmt.Errorf("auto_lock_limit.per_hour: must be >= 0")
	}
	if c.AutoLockLimit.PerCustomer < 0 {
		return fmt.Errorf("auto_lock_limit.per_customer: must be >= 0")
	}
	if c.CircuitBreaker.Servers < 0 {
		return fmt.Errorf("circuit_breaker.servers: must be >= 0")
	}
	if c.CircuitBreaker.Servers > 0 && c.CircuitBreaker.Within <= 0 {
		return fmt.Errorf("circuit_breaker.within: must be > 0")
	}
	if c.CaseIdle < 0 {
		return fmt.Errorf("case_idle: must be >= 0")
	}
	if c.CircuitBreaker.ResetAfter < 0 {
		return fmt.Errorf("circuit_breaker.reset_after: must be >= 0")
	}
	if c.Escalation.LockAfter < 0 || c.Escalation.StaffUnlockAfter < 0 {
		return fmt.Errorf("escalation: counts must be >= 0")
	}
	if c.InboundBlackhole.Enabled && c.InboundBlackhole.Expiry <= 0 {
		return fmt.Errorf("inbound_blackhole.expiry: must be > 0")
	}
	if m := c.InboundBlackhole.Method; m != "" {
		ok := false
		for _, x := range BlackholeMethods {
			ok = ok || m == x
		}
		if !ok {
			return fmt.Errorf("inbound_blackhole.method: must be one of blackhole, bgp_blackhole, rtbh, flowspec, nftables, webhook, not %q", m)
		}
	}
	if c.StaffEmail != "" {
		a, err := mail.ParseAddress(c.StaffEmail)
		if err != nil || a.Name != "" || a.Address != c.StaffEmail {
			return fmt.Errorf("staff_email: %q is not a bare email address (like abuse-staff@example.net)", c.StaffEmail)
		}
	}
	return nil
}
