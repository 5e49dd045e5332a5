// Package enforce makes locks real on the network and keeps them real. It owns
// the contract between the lock manager and the enforcement drivers (the
// desired state: Block and Allow values, the Source that produces them, the
// Driver interface) and the reconcile loop that compares the desired state
// with what every driver reports as applied (BGP adj-RIB-out, nftables set
// contents, delivered webhooks) and applies the difference: at Start, on every
// Trigger and periodically, so a restarted padlock re-announces every route
// and a table deleted by hand comes back. It reports per-lock status
// (applied, pending with the error, refused), never calling a lock effective
// before a driver has confirmed it, refuses anything that touches a protected
// prefix, and drops whitelist entries when they expire.
//
// enforce imports no driver library: gobgp lives only in enforce/bgp,
// google/nftables only in enforce/nftables; the HTTP/exec driver is
// enforce/webhook. It must not import lock, store or web: the lock manager
// implements Source and reads Status, wiring happens in cmd/padlock.
package enforce

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Driver names used in configuration to map a lock reason to a method.
const (
	MethodBlackhole = "bgp_blackhole"
	MethodFlowSpec  = "flowspec"
	MethodNftables  = "nftables"
	MethodWebhook   = "webhook"
)

// Target is what a lock applies to. Exactly one of Prefix and StorageBox is
// set: Prefix is a single address (/32, /128) or a subnet, StorageBox names a
// storage box enforced through its backend (no IP).
type Target struct {
	Prefix     netip.Prefix `json:"prefix,omitzero"`
	StorageBox string       `json:"storage_box,omitempty"`
}

// Address returns the target for one address (/32 or /128).
func Address(a netip.Addr) Target {
	a = a.Unmap()
	return Target{Prefix: netip.PrefixFrom(a, a.BitLen())}
}

// Validate reports whether exactly one of Prefix and StorageBox is set and
// the prefix is canonical (no host bits set).
func (t Target) Validate() error {
	switch {
	case t.Prefix.IsValid() && t.StorageBox != "":
		return errors.New("target: both prefix and storage box set")
	case !t.Prefix.IsValid() && t.StorageBox == "":
		return errors.New("target: neither prefix nor storage box set")
	case t.Prefix.IsValid() && t.Prefix != t.Prefix.Masked():
		return fmt.Errorf("target: prefix %s has host bits set", t.Prefix)
	case t.Prefix.IsValid() && t.Prefix.Addr().Is4In6():
		return fmt.Errorf("target: prefix %s is IPv4-mapped", t.Prefix)
	}
	return nil
}

// Scope is the kind of target.
func (t Target) Scope() Scope {
	switch {
	case t.StorageBox != "":
		return ScopeStorageBox
	case t.Prefix.IsSingleIP():
		return ScopeAddress
	default:
		return ScopeSubnet
	}
}

// String is the key of the target: the prefix ("203.0.113.10/32") or
// "storage_box:NAME".
func (t Target) String() string {
	if t.StorageBox != "" {
		return "storage_box:" + t.StorageBox
	}
	return t.Prefix.String()
}

// Block asks a driver to cut all traffic to and from Target because of lock
// LockID. LockingID is the lock's public reference (shown to the customer
// and sent to webhooks). Method names the driver (see Method* constants and
// Driver.Name).
type Block struct {
	LockID    int64  `json:"lock_id"`
	LockingID string `json:"locking_id,omitempty"`
	Target    Target `json:"target"`
	Method    string `json:"method"`
	// NotEffective is set only in what a driver reports as applied: the
	// rule is configured on the equipment but not in effect, and why
	// ("not advertised to any established peer"). The loop removes such a
	// rule when it is unwanted but does not count it as applied.
	NotEffective string `json:"not_effective,omitempty"`
}

// Key identifies what a Block does on the network; two locks on the same
// target through the same driver share one rule.
func (b Block) Key() string { return b.Target.String() }

// Allow lets Source reach Target (and Target answer Source) while Target is
// blocked, until Expires (zero: no expiry). It belongs to lock LockID and is
// applied by the driver named Method, normally the lock's own.
type Allow struct {
	LockID  int64      `json:"lock_id"`
	Source  netip.Addr `json:"source"`
	Target  Target     `json:"target"`
	Expires time.Time  `json:"expires,omitzero"`
	Method  string     `json:"method"`
	// NotEffective: as Block.NotEffective.
	NotEffective string `json:"not_effective,omitempty"`
}

// Key identifies what an Allow does on the network.
func (a Allow) Key() string { return a.Source.Unmap().String() + ">" + a.Target.String() }

// Desired is the whole enforcement state padlock wants, or the part of it a
// driver reports as applied. Drivers that cannot observe lock IDs (BGP,
// nftables) report zero LockIDs; the loop compares by Key.
type Desired struct {
	Blocks []Block `json:"blocks"`
	Allows []Allow `json:"allows"`
}

// Change is what a driver must do in one Apply: add and remove entries. The
// driver applies Add.Allows before Add.Blocks and Remove.Blocks before
// Remove.Allows, so a whitelisted source is never cut while rules change.
type Change struct {
	Add    Desired
	Remove Desired
}

// Empty reports whether the change does nothing.
func (c Change) Empty() bool {
	return len(c.Add.Blocks)+len(c.Add.Allows)+len(c.Remove.Blocks)+len(c.Remove.Allows) == 0
}

// Source produces the desired state: the active locks and unexpired
// whitelists in the store. The lock manager implements it.
type Source interface {
	Desired(ctx context.Context) (Desired, error)
}

// Scope is a kind of target a driver can enforce.
type Scope string

const (
	ScopeAddress    Scope = "address"
	ScopeSubnet     Scope = "subnet"
	ScopeStorageBox Scope = "storage_box"
)

// Capabilities says what a driver can do; the loop refuses what it cannot
// (an Allow on a blackhole, a storage box on nftables) instead of pretending.
type Capabilities struct {
	BlockInbound  bool    // traffic to the target is dropped
	BlockOutbound bool    // traffic from the target is dropped
	Allow         bool    // a whitelisted source keeps working
	Scopes        []Scope // kinds of target it accepts
	AllowScopes   []Scope // kinds of target it can whitelist for; nil: Scopes
}

// Supports reports whether the driver accepts targets of scope s.
func (c Capabilities) Supports(s Scope) bool { return slices.Contains(c.Scopes, s) }

// Driver applies blocks and allows to one kind of equipment.
//
// Apply makes the given change; it must be idempotent (adding what is there
// or removing what is not is no error; adding an Allow that exists replaces
// it, renewing its expiry) and may apply part of a change before failing. Applied reports what is really in effect, read back from the
// equipment (RIB, kernel sets) or, where nothing can be read back (webhook),
// from the driver's record of acknowledged deliveries. Allows are reported
// without Expires when the equipment does not keep it. A rule configured on
// the equipment but not in effect is reported with NotEffective set, so the
// loop can both remove it when unwanted and keep its lock pending.
type Driver interface {
	Name() string
	Capabilities() Capabilities
	Apply(ctx context.Context, c Change) error
	Applied(ctx context.Context) (Desired, error)
}

// Diff returns the change that turns have into want, comparing by Key.
// An Allow in have whose Expires is earlier than wanted is added again
// (drivers treat adding an existing allow as replacing it).
// Duplicates in want (two locks on one target) are added once. Removals
// carry the entries as have reports them.
func Diff(want, have Desired) Change {
	var c Change
	haveB := make(map[string]bool, len(have.Blocks))
	for _, b := range have.Blocks {
		haveB[b.Key()] = true
	}
	wantB := make(map[string]bool, len(want.Blocks))
	for _, b := range want.Blocks {
		k := b.Key()
		if !wantB[k] && !haveB[k] {
			c.Add.Blocks = append(c.Add.Blocks, b)
		}
		wantB[k] = true
	}
	for _, b := range have.Blocks {
		k := b.Key()
		if !wantB[k] {
			c.Remove.Blocks = append(c.Remove.Blocks, b)
			wantB[k] = true // remove once
		}
	}
	haveA := make(map[string]Allow, len(have.Allows))
	for _, a := range have.Allows {
		haveA[a.Key()] = a
	}
	wantA := make(map[string]bool, len(want.Allows))
	for _, a := range want.Allows {
		k := a.Key()
		h, applied := haveA[k]
		// An applied allow that expires (on the equipment) before the desired
		// one is added again: the driver replaces it, renewing the timeout.
		stale := applied && !h.Expires.IsZero() && (a.Expires.IsZero() || a.Expires.After(h.Expires.Add(2*time.Second)))
		if !wantA[k] && (!applied || stale) {
			c.Add.Allows = append(c.Add.Allows, a)
		}
		wantA[k] = true
	}
	for _, a := range have.Allows {
		k := a.Key()
		if !wantA[k] {
			c.Remove.Allows = append(c.Remove.Allows, a)
			wantA[k] = true
		}
	}
	return c
}

// State is the enforcement state of one lock as shown to staff.
type State string

const (
	// StateApplied: every driver involved reports every rule of the lock.
	StateApplied State = "applied"
	// StatePending: something is missing; Err says why; retried with backoff.
	StatePending State = "pending"
	// StateRefused: the lock asks for something padlock will never do
	// (a protected prefix, a capability the method lacks); not retried
	// until the desired state changes.
	StateRefused State = "refused"
)

// Status is the enforcement status of one lock.
type Status struct {
	LockID   int64     `json:"lock_id"`
	State    State     `json:"state"`
	Err      string    `json:"error,omitempty"`
	Since    time.Time `json:"since"`    // when State last changed
	Attempts int       `json:"attempts"` // reconciles in a row without success
}

// ErrProtected is returned (in Status.Err) for a block or allow whose target
// overlaps a protected prefix.
var ErrProtected = errors.New("target overlaps a protected prefix")

// ErrUnsupported is returned for a rule its driver cannot enforce.
var ErrUnsupported = errors.New("not supported by the enforcement method")

// ErrNotEffective is returned by a driver's Applied, wrapped and together
// with the state it has configured, when none of that state is in effect on
// the network (a BGP speaker with no established session). The loop still
// applies the difference against the returned state, but reports every rule
// of that driver as not applied, with this error.
var ErrNotEffective = errors.New("configured but not in effect")

// ErrNoDriver is returned for a rule whose Method names no configured driver.
var ErrNoDriver = errors.New("no such enforcement method")

func joinKeys(keys []string) string {
	slices.Sort(keys)
	if len(keys) > 3 {
		return strings.Join(keys[:3], ", ") + fmt.Sprintf(" and %d more", len(keys)-3)
	}
	return strings.Join(keys, ", ")
}
