// Package nftables enforces locks on a Linux edge or hypervisor with a
// padlock-owned nftables table (family inet, default name "padlock"):
//
//	table inet padlock {
//	  set locked4 { type ipv4_addr; flags interval; }          # locked prefixes
//	  set locked6 { type ipv6_addr; flags interval; }
//	  set allow4  { type ipv4_addr . ipv4_addr; flags timeout; } # whitelisted source . locked address
//	  set allow6  { type ipv6_addr . ipv6_addr; flags timeout; }
//	  chain forward { type filter hook forward priority 0; policy accept;
//	    ip saddr . ip daddr @allow4 accept      # whitelisted source → locked
//	    ip daddr . ip saddr @allow4 accept      # locked → whitelisted source
//	    ip daddr @locked4 drop
//	    ip saddr @locked4 drop
//	    (the same for ip6)
//	  }
//	  (chains input and output alike, when configured)
//	}
//
// Whitelist entries carry a kernel timeout, so they expire on time even if
// padlock is down. padlock reads, creates and deletes only its own table;
// rules outside it are never touched. When the table or part of it is gone
// (deleted by hand), Applied reports nothing and the next Apply rebuilds the
// whole table in one transaction.
//
// It is the only package of padlock that imports github.com/google/nftables;
// it imports enforce for the driver contract and nothing else of padlock.
package nftables

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"sync"
	"time"

	nft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"padlock/internal/enforce"
)

// Configuration is the `enforce.nftables:` section.
type Configuration struct {
	// Table is the name of padlock's inet table. Default "padlock".
	Table string `yaml:"table"`
	// Hooks that get a chain with padlock's rules: forward (routers,
	// hypervisor bridges with br_netfilter), input and output (the host
	// itself). Default [forward].
	Hooks []string `yaml:"hooks"`
	// Priority of the chains. Default 0 (filter); lower runs earlier.
	Priority int32 `yaml:"priority"`
	// NetNS is the path of the network namespace to work in
	// (/run/netns/NAME, /proc/PID/ns/net). Empty: padlock's own.
	NetNS string `yaml:"netns"`
}

// DefaultConfiguration returns the defaults.
func DefaultConfiguration() Configuration {
	return Configuration{Table: "padlock", Hooks: []string{"forward"}}
}

var tableName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,31}$`)

var hooks = map[string]*nft.ChainHook{"forward": nft.ChainHookForward, "input": nft.ChainHookInput, "output": nft.ChainHookOutput}

// Validate checks the configuration; errors name the key.
func (c Configuration) Validate() error {
	var errs []error
	if !tableName.MatchString(c.Table) {
		errs = append(errs, fmt.Errorf("table: %q is not a valid table name", c.Table))
	}
	if len(c.Hooks) == 0 {
		errs = append(errs, errors.New("hooks: at least one of forward, input, output"))
	}
	for i, h := range c.Hooks {
		if hooks[h] == nil {
			errs = append(errs, fmt.Errorf("hooks[%d]: %q is not forward, input or output", i, h))
		}
		if slices.Index(c.Hooks, h) != i {
			errs = append(errs, fmt.Errorf("hooks[%d]: %q twice", i, h))
		}
	}
	return errors.Join(errs...)
}

// Driver is the nftables driver, named enforce.MethodNftables.
type Driver struct {
	cfg Configuration
	log *slog.Logger
	now func() time.Time

	mu sync.Mutex // one netlink transaction at a time
	ns netns.NsHandle
}

var _ enforce.Driver = (*Driver)(nil)

// New checks the configuration; it does no I/O.
func New(cfg Configuration, logger *slog.Logger) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Driver{cfg: cfg, log: logger, now: time.Now, ns: netns.None()}, nil
}

// Start opens the network namespace, if one is configured, and checks that
// nftables can be read there.
func (d *Driver) Start(ctx context.Context) error {
	if d.cfg.NetNS != "" {
		h, err := netns.GetFromPath(d.cfg.NetNS)
		if err != nil {
			return fmt.Errorf("nftables: netns %s: %w", d.cfg.NetNS, err)
		}
		d.ns = h
	}
	c, err := d.conn()
	if err != nil {
		return err
	}
	if _, err := c.ListTablesOfFamily(nft.TableFamilyINet); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return nil
}

// Stop closes the namespace handle. The table stays: stopping padlock never
// unlocks.
func (d *Driver) Stop(context.Context) error {
	if d.ns.IsOpen() {
		return d.ns.Close()
	}
	return nil
}

// Remove deletes padlock's table (for an operator taking nftables
// enforcement out of service; never called by the loop).
func (d *Driver) Remove(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.conn()
	if err != nil {
		return err
	}
	if t, _ := c.ListTableOfFamily(d.cfg.Table, nft.TableFamilyINet); t != nil {
		c.DelTable(t)
		return c.Flush()
	}
	return nil
}

func (d *Driver) conn() (*nft.Conn, error) {
	var opts []nft.ConnOption
	if d.ns.IsOpen() {
		opts = append(opts, nft.WithNetNSFd(int(d.ns)))
	}
	c, err := nft.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return c, nil
}

// Name implements enforce.Driver.
func (d *Driver) Name() string { return enforce.MethodNftables }

// Capabilities implements enforce.Driver: both directions, whitelists for
// single addresses.
func (d *Driver) Capabilities() enforce.Capabilities {
	return enforce.Capabilities{BlockInbound: true, BlockOutbound: true, Allow: true,
		Scopes:      []enforce.Scope{enforce.ScopeAddress, enforce.ScopeSubnet},
		AllowScopes: []enforce.Scope{enforce.ScopeAddress}}
}

// objects is padlock's table with its sets, in the configured namespace.
type objects struct {
	table                           *nft.Table
	locked4, locked6, allow4, allo6 *nft.Set
}

func (d *Driver) objects() objects {
	t := &nft.Table{Name: d.cfg.Table, Family: nft.TableFamilyINet}
	return objects{
		table:   t,
		locked4: &nft.Set{Table: t, Name: "locked4", KeyType: nft.TypeIPAddr, Interval: true},
		locked6: &nft.Set{Table: t, Name: "locked6", KeyType: nft.TypeIP6Addr, Interval: true},
		allow4: &nft.Set{Table: t, Name: "allow4", KeyType: nft.MustConcatSetType(nft.TypeIPAddr, nft.TypeIPAddr),
			Concatenation: true, HasTimeout: true},
		allo6: &nft.Set{Table: t, Name: "allow6", KeyType: nft.MustConcatSetType(nft.TypeIP6Addr, nft.TypeIP6Addr),
			Concatenation: true, HasTimeout: true},
	}
}

// intact reports whether padlock's table exists with all its sets, chains
// and rules.
func (d *Driver) intact(c *nft.Conn, o objects) (bool, error) {
	t, err := c.ListTableOfFamily(d.cfg.Table, nft.TableFamilyINet)
	if err != nil || t == nil {
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return false, fmt.Errorf("nftables: list table: %w", err)
		}
		return false, nil
	}
	sets, err := c.GetSets(o.table)
	if err != nil {
		return false, fmt.Errorf("nftables: list sets: %w", err)
	}
	for _, want := range []string{"locked4", "locked6", "allow4", "allow6"} {
		if !slices.ContainsFunc(sets, func(s *nft.Set) bool { return s.Name == want }) {
			return false, nil
		}
	}
	for _, h := range d.cfg.Hooks {
		rules, err := c.GetRules(o.table, &nft.Chain{Name: h, Table: o.table})
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				return false, nil
			}
			return false, fmt.Errorf("nftables: list rules of %s: %w", h, err)
		}
		if len(rules) != len(ruleExprs(o)) {
			return false, nil
		}
	}
	return true, nil
}

// build queues the whole table, replacing what is left of it.
func (d *Driver) build(c *nft.Conn, o objects) error {
	if t, _ := c.ListTableOfFamily(d.cfg.Table, nft.TableFamilyINet); t != nil {
		c.DelTable(o.table)
	}
	c.AddTable(o.table)
	for _, s := range []*nft.Set{o.locked4, o.locked6, o.allow4, o.allo6} {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("nftables: set %s: %w", s.Name, err)
		}
	}
	for _, h := range d.cfg.Hooks {
		ch := c.AddChain(&nft.Chain{Name: h, Table: o.table, Type: nft.ChainTypeFilter, Hooknum: hooks[h],
			Priority: nft.ChainPriorityRef(nft.ChainPriority(d.cfg.Priority)), Policy: ptr(nft.ChainPolicyAccept)})
		for _, e := range ruleExprs(o) {
			c.AddRule(&nft.Rule{Table: o.table, Chain: ch, Exprs: e})
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// ruleExprs are the rules of every chain, in order.
func ruleExprs(o objects) [][]expr.Any {
	proto := func(p byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
		}
	}
	// IPv4 header: saddr at 12, daddr at 16; IPv6: saddr at 8, daddr at 24.
	type fam struct {
		nfproto            byte
		src, dst, size     uint32
		locked, allow      *nft.Set
		secondRegForConcat uint32
	}
	var out [][]expr.Any
	for _, f := range []fam{
		{unix.NFPROTO_IPV4, 12, 16, 4, o.locked4, o.allow4, 9},
		{unix.NFPROTO_IPV6, 8, 24, 16, o.locked6, o.allo6, 2},
	} {
		load := func(off, reg uint32) expr.Any {
			return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: f.size}
		}
		verdict := func(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }
		// whitelisted source → locked, and the answers back
		for _, pair := range [][2]uint32{{f.src, f.dst}, {f.dst, f.src}} {
			out = append(out, append(proto(f.nfproto),
				load(pair[0], 1), load(pair[1], f.secondRegForConcat),
				&expr.Lookup{SourceRegister: 1, SetName: f.allow.Name, SetID: f.allow.ID},
				verdict(expr.VerdictAccept)))
		}
		for _, off := range []uint32{f.dst, f.src} {
			out = append(out, append(proto(f.nfproto),
				load(off, 1),
				&expr.Lookup{SourceRegister: 1, SetName: f.locked.Name, SetID: f.locked.ID},
				verdict(expr.VerdictDrop)))
		}
	}
	return out
}

// Apply implements enforce.Driver. Everything goes in one netlink
// transaction: the table is rebuilt first if any part of it is missing.
func (d *Driver) Apply(_ context.Context, ch enforce.Change) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.conn()
	if err != nil {
		return err
	}
	o := d.objects()
	ok, err := d.intact(c, o)
	if err != nil {
		return err
	}
	if !ok {
		d.log.Info("nftables: building table", "table", d.cfg.Table, "netns", d.cfg.NetNS)
		if err := d.build(c, o); err != nil {
			return err
		}
	}
	now := d.now()
	var errs []error
	// Element operations, in groups that must commit together. A netlink
	// batch is limited in size, so groups are committed in transactions of
	// about maxBatch elements; the table (if rebuilt) goes with the first.
	type op struct {
		set *nft.Set
		els []nft.SetElement
		del bool
	}
	var groups [][]op
	byset := func(els map[*nft.Set][]nft.SetElement, order []*nft.Set, f func(*nft.Set, []nft.SetElement)) {
		for _, set := range order {
			for chunk := range slices.Chunk(els[set], maxBatch/3) {
				f(set, chunk)
			}
		}
	}
	allows := map[*nft.Set][]nft.SetElement{}
	for _, a := range ch.Add.Allows {
		set, el, err := allowElement(o, a, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if el.Timeout >= 0 { // else expired while being applied
			allows[set] = append(allows[set], el)
		}
	}
	// add, delete, add: replaces an existing element (renewing its
	// timeout) and never fails on a missing one.
	byset(allows, []*nft.Set{o.allow4, o.allo6}, func(set *nft.Set, els []nft.SetElement) {
		plain := untimed(els)
		groups = append(groups, []op{{set, plain, false}, {set, plain, true}, {set, els, false}})
	})
	blocks := map[*nft.Set][]nft.SetElement{}
	for _, b := range ch.Add.Blocks {
		set, els, err := lockedElements(o, b.Target)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		blocks[set] = append(blocks[set], els...)
	}
	byset(blocks, []*nft.Set{o.locked4, o.locked6}, func(set *nft.Set, els []nft.SetElement) {
		groups = append(groups, []op{{set, els, false}})
	})
	// Removals: add first, so a delete never fails on an element that has
	// just expired or was removed by hand. Blocks go before allows.
	unblocks := map[*nft.Set][]nft.SetElement{}
	for _, b := range ch.Remove.Blocks {
		if set, els, err := lockedElements(o, b.Target); err == nil {
			unblocks[set] = append(unblocks[set], els...)
		}
	}
	for _, a := range ch.Remove.Allows {
		if set, el, err := allowElement(o, a, now); err == nil {
			unblocks[set] = append(unblocks[set], untimed([]nft.SetElement{el})...)
		}
	}
	byset(unblocks, []*nft.Set{o.locked4, o.locked6, o.allow4, o.allo6}, func(set *nft.Set, els []nft.SetElement) {
		groups = append(groups, []op{{set, els, false}, {set, els, true}})
	})

	pending := 0
	flush := func() {
		if err := c.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("nftables: commit: %w", err))
		}
		pending = 0
	}
	for _, g := range groups {
		n := 0
		for _, op := range g {
			n += len(op.els)
		}
		if pending > 0 && pending+n > maxBatch {
			flush()
		}
		for _, op := range g {
			var err error
			if op.del {
				err = c.SetDeleteElements(op.set, op.els)
			} else {
				err = c.SetAddElements(op.set, op.els)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("nftables: %s: %w", op.set.Name, err))
			}
		}
		pending += n
	}
	if pending > 0 || !ok {
		flush()
	}
	return errors.Join(errs...)
}

// maxBatch is the number of set elements committed in one netlink batch.
const maxBatch = 1500

func untimed(els []nft.SetElement) []nft.SetElement {
	out := slices.Clone(els)
	for i := range out {
		out[i].Timeout = 0
	}
	return out
}

func lockedElements(o objects, t enforce.Target) (*nft.Set, []nft.SetElement, error) {
	if !t.Prefix.IsValid() {
		return nil, nil, fmt.Errorf("nftables %s: %w", t, enforce.ErrUnsupported)
	}
	p := t.Prefix.Masked()
	set := o.locked4
	if p.Addr().Is6() {
		set = o.locked6
	}
	els := []nft.SetElement{{Key: p.Addr().AsSlice()}}
	if end, ok := lastAddr(p); ok {
		if next := end.Next(); next.IsValid() {
			els = append(els, nft.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return set, els, nil
}

func allowElement(o objects, a enforce.Allow, now time.Time) (*nft.Set, nft.SetElement, error) {
	if !a.Target.Prefix.IsSingleIP() || !a.Source.IsValid() {
		return nil, nft.SetElement{}, fmt.Errorf("nftables whitelist %s: %w", a.Key(), enforce.ErrUnsupported)
	}
	src, dst := a.Source.Unmap(), a.Target.Prefix.Addr()
	if src.Is4() != dst.Is4() {
		return nil, nft.SetElement{}, fmt.Errorf("nftables whitelist %s: mixed IP versions", a.Key())
	}
	set := o.allow4
	if dst.Is6() {
		set = o.allo6
	}
	el := nft.SetElement{Key: append(src.AsSlice(), dst.AsSlice()...)}
	if !a.Expires.IsZero() {
		el.Timeout = a.Expires.Sub(now).Round(time.Millisecond)
		if el.Timeout == 0 {
			el.Timeout = -1
		}
	}
	return set, el, nil
}

// Applied implements enforce.Driver: the contents of the sets, or nothing
// when the table is not intact.
func (d *Driver) Applied(context.Context) (enforce.Desired, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, err := d.conn()
	if err != nil {
		return enforce.Desired{}, err
	}
	o := d.objects()
	ok, err := d.intact(c, o)
	if err != nil || !ok {
		return enforce.Desired{}, err
	}
	var out enforce.Desired
	for _, set := range []*nft.Set{o.locked4, o.locked6} {
		els, err := c.GetSetElements(set)
		if err != nil {
			return enforce.Desired{}, fmt.Errorf("nftables: read %s: %w", set.Name, err)
		}
		for _, p := range intervals(els, set == o.locked6) {
			out.Blocks = append(out.Blocks, enforce.Block{Target: enforce.Target{Prefix: p}, Method: enforce.MethodNftables})
		}
	}
	now := d.now()
	for _, set := range []*nft.Set{o.allow4, o.allo6} {
		els, err := c.GetSetElements(set)
		if err != nil {
			return enforce.Desired{}, fmt.Errorf("nftables: read %s: %w", set.Name, err)
		}
		for _, e := range els {
			n := len(e.Key) / 2
			src, ok1 := netip.AddrFromSlice(e.Key[:n])
			dst, ok2 := netip.AddrFromSlice(e.Key[n:])
			if !ok1 || !ok2 || (n != 4 && n != 16) {
				continue
			}
			a := enforce.Allow{Source: src, Target: enforce.Address(dst), Method: enforce.MethodNftables}
			if e.Timeout > 0 {
				a.Expires = now.Add(e.Expires)
			}
			out.Allows = append(out.Allows, a)
		}
	}
	return out, nil
}

// intervals turns the elements of an interval set (start elements and
// IntervalEnd elements) back into prefixes.
func intervals(els []nft.SetElement, v6 bool) []netip.Prefix {
	type bound struct {
		a   netip.Addr
		end bool
	}
	var bs []bound
	for _, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			continue
		}
		bs = append(bs, bound{a, e.IntervalEnd})
	}
	slices.SortFunc(bs, func(x, y bound) int {
		if c := x.a.Compare(y.a); c != 0 {
			return c
		}
		if x.end == y.end {
			return 0
		}
		if x.end {
			return -1 // an interval ends before the next one starts at the same address
		}
		return 1
	})
	var out []netip.Prefix
	for i := 0; i < len(bs); i++ {
		if bs[i].end {
			continue
		}
		start := bs[i].a
		var last netip.Addr
		if i+1 < len(bs) && bs[i+1].end {
			last = bs[i+1].a.Prev()
			i++
		} else if v6 {
			last = netip.AddrFrom16([16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		} else {
			last = netip.AddrFrom4([4]byte{255, 255, 255, 255})
		}
		out = append(out, rangePrefixes(start, last)...)
	}
	return out
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) (netip.Addr, bool) {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, ok := netip.AddrFromSlice(b)
	return a, ok
}

// rangePrefixes splits [first, last] into the fewest prefixes.
func rangePrefixes(first, last netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for first.IsValid() && first.Compare(last) <= 0 {
		bits := first.BitLen()
		for bits > 0 {
			p := netip.PrefixFrom(first, bits-1)
			l, _ := lastAddr(p)
			if p.Masked().Addr() != first || l.Compare(last) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(first, bits)
		out = append(out, p)
		l, _ := lastAddr(p)
		first = l.Next()
	}
	return out
}
