package pipeline

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"padlock/internal/detect"
	"padlock/internal/detect/netconf"
	"padlock/internal/flow"
	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/policy"
	"padlock/internal/store"
)

// TestForeignAddressLocksTheSender: with the inventory's MACs, a server
// that sends from another customer's address is reported as
// incorrect_network_config.foreign_address, and the case, the warning and
// its mail are the sender's (the server its MAC belongs to), not those of
// the customer whose address was misused. The same server sending from a
// standalone address of its own customer, or a standalone address used by
// any of that customer's servers, is no finding. Before, the inventory's
// MACs never reached the detector (the rule could not fire in `serve`),
// and a finding would have been keyed by the misused address.
func TestForeignAddressLocksTheSender(t *testing.T) {
	const macA, macB = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
	doc := inventory.Document{Customers: []inventory.DocCustomer{
		{Name: "alpha", Email: "noc@alpha.example",
			Servers: []inventory.DocServer{{Name: "alpha-1", IPs: []string{"203.0.113.30"}, MACs: []string{macA}}},
			IPs:     []inventory.DocAddress{{Prefix: "203.0.113.50/32"}}},
		{Name: "beta", Email: "noc@beta.example",
			Servers: []inventory.DocServer{{Name: "beta-1", IPs: []string{"203.0.113.40"}, MACs: []string{macB}}}},
	}}
	e := newEnvDoc(t, doc, netip.MustParsePrefix("198.18.0.0/15"), policy.DefaultConfiguration(), nil)
	e.clk.t = time.Now().UTC()
	ctx := context.Background()
	if err := e.p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.p.Stop(ctx)
	hw := func(s string) flow.MAC { m, _ := net.ParseMAC(s); return flow.MAC(m) }
	start := time.Now().UTC().Add(-time.Minute)
	sink := e.p.Sink()
	send := func(i int, mac string, src string) {
		at := start.Add(time.Duration(i) * 100 * time.Millisecond)
		r := flow.Record{Start: at, End: at, Format: flow.FormatPcap, SamplingRate: 1, SrcMAC: hw(mac),
			SrcAddr: netip.MustParseAddr(src), DstAddr: netip.MustParseAddr("198.51.100.7"), SrcPort: uint16(40000 + i), DstPort: 443,
			Proto: flow.ProtoTCP, TCPFlags: flow.TCPSyn, Packets: 1, Bytes: 60, SampledPackets: 1, SampledBytes: 60}
		sink.Record(&r)
	}
	for i := range 40 {
		send(i, macA, "203.0.113.30") // its own address
		send(i, macA, "203.0.113.50") // its customer's standalone address
		send(i, macB, "203.0.113.40") // beta's own
		send(i, macA, "203.0.113.40") // beta's address, from alpha's server
	}
	end := time.Now().Add(20 * time.Second)
	var cases []store.FindingCase
	for {
		cases, _ = e.db.ListFindings(ctx, store.FindingFilter{Kind: string(detect.KindIncorrectConf)})
		if len(cases) > 0 && cases[0].LockID != 0 || time.Now().After(end) {
			break
		}
		e.clk.Add(time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // nothing more may come
	cases, _ = e.db.ListFindings(ctx, store.FindingFilter{Kind: string(detect.KindIncorrectConf)})
	if len(cases) != 1 {
		t.Fatalf("cases %+v, want one foreign_address case of alpha-1", cases)
	}
	c := cases[0]
	d := string(c.Detail)
	if c.InternalIP != netip.MustParseAddr("203.0.113.30") || c.CustomerID == 0 || c.LockID == 0 ||
		!strings.Contains(d, `"rule":"`+netconf.RuleForeignAddress+`"`) || !strings.Contains(d, `"internal_ip":"203.0.113.40"`) ||
		!strings.Contains(d, `"attributed_by":"mac"`) || !strings.Contains(d, `"name":"alpha-1"`) || strings.Contains(d, `"spoofed_source"`) {
		t.Fatalf("case %+v\n%s", c, d)
	}
	l, err := e.svc.GetLock(ctx, lock.System, c.LockID)
	if err != nil || l.State != lock.StateWarned || l.ScopeKind != lock.ScopeServer || l.Reason != lock.ReasonIncorrectNetwork || l.CustomerID != c.CustomerID {
		t.Fatalf("lock %+v %v", l, err)
	}
	mails, _ := e.db.ListMails(ctx, l.ID, 0, 10)
	if len(mails) != 1 || mails[0].To != "noc@alpha.example" {
		t.Errorf("warning mails %+v, want one to alpha", mails)
	}
}
