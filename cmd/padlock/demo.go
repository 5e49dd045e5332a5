package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"padlock/internal/config"
	"padlock/internal/enforce"
	"padlock/internal/enforce/bgp"
	"padlock/internal/inventory"
	"padlock/internal/lock"
)

// demoInventory is the inventory `padlock serve --demo` loads: two
// customers in the documentation ranges (RFC 5737, RFC 3849), so nothing
// real is ever named.
const demoInventory = `{"customers": [
  {"name": "Alice Example", "email": "alice@example.net", "language": "en",
   "servers": [
     {"name": "web1", "ips": ["203.0.113.10", "2001:db8:10::/64"], "macs": ["52:54:00:00:00:10"]},
     {"name": "mail1", "ips": ["203.0.113.25"], "macs": ["52:54:00:00:00:25"]}],
   "storage_boxes": [{"name": "bx11", "host": "bx11.storage.example.net"}],
   "ips": [{"prefix": "203.0.113.64/28", "note": "routed subnet"}]},
  {"name": "Beispiel GmbH", "email": "noc@beispiel.example", "language": "de",
   "servers": [{"name": "db7", "ips": ["203.0.113.77", "2001:db8:77::/64"]}]}
]}`

// applyDemoConfig makes the defaults fit the demo network: its customers
// live in documentation ranges, which the whitelist would otherwise refuse
// as bogons, and the client area has a base URL for mail links.
func applyDemoConfig(cfg *config.Config) {
	if len(cfg.Customers) == 0 {
		cfg.Customers = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	}
	if cfg.Locks.Bogons == nil {
		cfg.Locks.Bogons = []netip.Prefix{}
	}
	if len(cfg.Locks.OwnNetworks) == 0 {
		cfg.Locks.OwnNetworks = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	}
	// With no enforcement configured, the demo runs an embedded BGP speaker
	// on 127.0.0.1:10179 (a BIRD on 127.0.0.2:10179, AS 65002, receives the routes) and sends every
	// reason there: RTBH for non-payment and illegal content, FlowSpec (which
	// can let a whitelisted address through) for the rest.
	if cfg.Enforce.BGP == nil && cfg.Enforce.NFTables == nil && len(cfg.Enforce.Webhooks) == 0 {
		b := bgp.DefaultConfiguration()
		b.ASN = 65001
		b.RouterID = netip.MustParseAddr("127.0.0.1")
		b.Listen = "127.0.0.1:10179"
		b.NextHop = netip.MustParseAddr("192.0.2.1")
		b.Peers = []bgp.Peer{{Address: netip.MustParseAddr("127.0.0.2"), ASN: 65002, Port: 10179}}
		cfg.Enforce.BGP = &b
		if cfg.Locks.Reasons == nil {
			cfg.Locks.Reasons = map[lock.Reason]lock.ReasonPolicy{}
		}
		for r, p := range lock.DefaultReasonPolicies() {
			if p.Method != "blackhole" {
				p.Method = enforce.MethodFlowSpec
			}
			if _, set := cfg.Locks.Reasons[r]; !set {
				cfg.Locks.Reasons[r] = p
			}
		}
	}
	if cfg.Web.BaseURL == "" {
		cfg.Web.BaseURL = "http://" + cfg.Listen
	}
}

// loadDemo imports the demo inventory (idempotent) and prints credentials.
func (s *server) loadDemo(ctx context.Context, stdout io.Writer) error {
	doc, err := inventory.DecodeJSON(strings.NewReader(demoInventory))
	if err != nil {
		return err
	}
	admin := lock.Actor{Role: lock.RoleAdmin, Name: "demo"}
	if _, err := s.svc.Import(ctx, admin, doc); err != nil {
		return err
	}
	var alice inventory.Customer
	err = s.db.View(ctx, func(tx lock.Tx) (err error) {
		alice, err = tx.CustomerByEmail(ctx, "alice@example.net")
		return err
	})
	if err != nil {
		return err
	}
	now := time.Now()
	staffTok, _, err := s.db.CreateToken(ctx, admin, "demo-staff", lock.RoleStaff, 0, now)
	if err != nil {
		return err
	}
	custTok, _, err := s.db.CreateToken(ctx, admin, "demo-alice", lock.RoleCustomer, alice.ID, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `
padlock demo: inventory loaded (customers Alice Example and Beispiel GmbH, servers web1, mail1, db7).
  staff API token:            %s
  customer API token (Alice): %s
  try: curl -s -H "Authorization: Bearer %s" http://%s/api/v1/locks

`, staffTok, custTok, staffTok, s.cfg.Listen)
	return nil
}
