package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"padlock/internal/collect"
	"padlock/internal/config"
	"padlock/internal/decode/packet"
	"padlock/internal/enforce"
	"padlock/internal/enforce/bgp"
	"padlock/internal/flow"
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

// Demo web accounts. The password is printed at start; the demo listens on
// loopback only unless told otherwise.
const (
	demoStaffEmail    = "staff@example.net"
	demoCustomerEmail = "alice@example.net"
	demoPassword      = "padlock-demo"
)

// demoBGPListen is 127.0.0.1:10179, or a free loopback port when another
// program (a second demo) holds that one.
func demoBGPListen() string {
	const want = "127.0.0.1:10179"
	ln, err := net.Listen("tcp", want)
	if err == nil {
		ln.Close()
		return want
	}
	if ln, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
		defer ln.Close()
		return ln.Addr().String()
	}
	return want
}

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
		b.Listen = demoBGPListen()
		b.NextHop = netip.MustParseAddr("192.0.2.1")
		b.Peers = []bgp.Peer{{Address: netip.MustParseAddr("127.0.0.2"), ASN: 65002, Port: 10179}}
		cfg.Enforce.BGP = &b
		if cfg.Locks.Reasons == nil {
			cfg.Locks.Reasons = map[lock.Reason]lock.ReasonPolicy{}
		}
		for r, p := range lock.DefaultReasonPolicies() {
			if p.Method != lock.MethodBlackhole {
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
	// The demo runs without root: loopback high ports for the collector
	// unless the file names its own.
	if cfg.Collect == collect.DefaultConfiguration() {
		cfg.Collect.SFlow, cfg.Collect.NetFlow, cfg.Collect.IPFIX = demoSFlow, demoNetFlow, demoIPFIX
	}
}

// Collector addresses of the demo.
const (
	demoSFlow   = "127.0.0.1:16343"
	demoNetFlow = "127.0.0.1:12055"
	demoIPFIX   = "127.0.0.1:14739"
)

// demoCaptureName is the bundled NetFlow v9 export of a real nmap scan
// from web1 (203.0.113.10); see testdata/demo/README.md.
const demoCaptureName = "testdata/demo/scan.netflow9.pcap"

// findDemoCapture looks for the capture in the working directory and
// next to the binary (and its parent, for a binary built into bin/).
func findDemoCapture(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	cands := []string{demoCaptureName}
	if exe, err := os.Executable(); err == nil {
		d := filepath.Dir(exe)
		cands = append(cands, filepath.Join(d, demoCaptureName), filepath.Join(d, "..", demoCaptureName))
	}
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s not found (run from the source tree or pass --demo-capture)", demoCaptureName)
}

// replayDemo sends the bundled export datagrams to the demo's own NetFlow
// listener and says where to look.
func (s *server) replayDemo(ctx context.Context, stdout io.Writer, explicit string) {
	path, err := findDemoCapture(explicit)
	if err != nil {
		s.log.Warn("demo replay skipped", "err", err)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		s.log.Warn("demo replay skipped", "err", err)
		return
	}
	grams, err := udpPayloads(data)
	if err != nil {
		s.log.Warn("demo replay skipped", "capture", path, "err", err)
		return
	}
	target := s.cfg.Collect.NetFlow
	if strings.HasPrefix(target, ":") {
		target = "127.0.0.1" + target
	}
	conn, err := net.Dial("udp", target)
	if err != nil {
		s.log.Warn("demo replay skipped", "err", err)
		return
	}
	defer conn.Close()
	now := uint32(time.Now().Unix())
	for _, g := range grams {
		if ctx.Err() != nil {
			return
		}
		restampNetFlow9(g, now)
		if _, err := conn.Write(g); err != nil {
			s.log.Warn("demo replay", "err", err)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	fmt.Fprintf(stdout, `padlock demo: replayed %d NetFlow v9 datagrams of an nmap scan from web1 (203.0.113.10) to %s.
  In a few seconds: the finding  GET /api/v1/findings?ip=203.0.113.10
                    the lock     GET /api/v1/locks
                    the mail     kept in the outbox (no SMTP configured), see the admin area
`, len(grams), target)
}

// restampNetFlow9 sets a NetFlow v9 export header's time to now; flow
// times are relative to it, so the replayed flows are fresh.
func restampNetFlow9(g []byte, now uint32) {
	if len(g) >= 20 && binary.BigEndian.Uint16(g) == 9 {
		binary.BigEndian.PutUint32(g[8:], now)
	}
}

// udpPayloads returns the UDP payloads of a capture file (pcap or pcapng,
// any link type the packet parser knows).
func udpPayloads(data []byte) ([][]byte, error) {
	rd, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	link := uint32(rd.LinkType())
	var out [][]byte
	var r flow.Record
	for {
		pkt, _, err := rd.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		payload, err := packet.ParsePayload(link, pkt, &r)
		if err != nil || r.Proto != flow.ProtoUDP || len(payload) == 0 {
			continue
		}
		out = append(out, append([]byte(nil), payload...))
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
	// Web accounts for the client and admin areas; a restarted demo keeps
	// the accounts of its data directory.
	for _, u := range []struct {
		email string
		role  lock.Role
		cust  int64
	}{{demoStaffEmail, lock.RoleStaff, 0}, {demoCustomerEmail, lock.RoleCustomer, alice.ID}} {
		if _, err := s.db.UserByEmail(ctx, u.email); err == nil {
			continue
		}
		if _, err := s.db.CreateUser(ctx, lock.System, u.email, demoPassword, u.role, u.cust, now); err != nil {
			return fmt.Errorf("demo user %s: %w", u.email, err)
		}
	}
	fmt.Fprintf(stdout, `
padlock demo: inventory loaded (customers Alice Example and Beispiel GmbH, servers web1, mail1, db7).
  admin area:   http://%[1]s/admin/   sign in as %[2]s, password %[4]s
  client area:  http://%[1]s/client/  sign in as %[3]s, password %[4]s
  staff API token:            %[5]s
  customer API token (Alice): %[6]s
  try: curl -s -H "Authorization: Bearer %[5]s" http://%[1]s/api/v1/locks

`, s.cfg.Listen, demoStaffEmail, demoCustomerEmail, demoPassword, staffTok, custTok)
	return nil
}
