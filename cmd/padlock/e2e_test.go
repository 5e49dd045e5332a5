package main

import (
	"bytes"
	"context"

	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"padlock/internal/store"
)

// needTools skips the test when a tool is missing, and fails it under CI.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required under CI: %v", tool, err)
			}
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

func freeTCP(t *testing.T, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func freeUDP(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// e2eSMTP is a real SMTP server (go-smtp). It holds the first delivery
// attempt until released and then refuses it with 451, so the test can kill
// padlock while a mail is in flight; only accepted messages count.
type e2eSMTP struct {
	addr      *net.TCPAddr
	mu        sync.Mutex
	msgs      [][]byte
	attempts  int
	firstSeen chan struct{} // closed when the first DATA arrives
	release   chan struct{} // closed by the test to let the first DATA fail
}

func startE2ESMTP(t *testing.T) *e2eSMTP {
	s := &e2eSMTP{firstSeen: make(chan struct{}), release: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &e2eSession{s: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().(*net.TCPAddr)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *e2eSMTP) messages() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.msgs...)
}

type e2eSession struct{ s *e2eSMTP }

func (e *e2eSession) Mail(string, *smtp.MailOptions) error { return nil }
func (e *e2eSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (e *e2eSession) Reset()                               {}
func (e *e2eSession) Logout() error                        { return nil }
func (e *e2eSession) Data(r io.Reader) error {
	s := e.s
	s.mu.Lock()
	s.attempts++
	first := s.attempts == 1
	s.mu.Unlock()
	if first {
		close(s.firstSeen)
		<-s.release
		_, _ = io.Copy(io.Discard, r)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "held by the test while padlock was killed"}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, b)
	s.mu.Unlock()
	return nil
}

type e2eBIRD struct{ sock string }

func startE2EBIRD(t *testing.T, dir string, port, padlockPort int) *e2eBIRD {
	t.Helper()
	b := &e2eBIRD{sock: filepath.Join(dir, "bird.ctl")}
	conf := fmt.Sprintf(`router id 127.0.0.2;
protocol device {}
ipv4 table master4;
# The discard next hop padlock announces resolves to a blackhole, as on a router.
protocol static { ipv4; route 198.18.0.1/32 blackhole; }
protocol bgp padlock {
  local 127.0.0.2 port %d as 65002;
  neighbor 127.0.0.1 port %d as 65001;
  multihop;
  connect retry time 1;
  ipv4 { import all; export none; gateway recursive; igp table master4; };
}
`, port, padlockPort)
	cf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startLogged(t, dir, "bird", "bird", "-f", "-c", cf, "-s", b.sock)
	waitUntil(t, 5*time.Second, "bird control socket", func() bool { _, err := os.Stat(b.sock); return err == nil })
	return b
}

// route returns BIRD's view of one prefix ("" when absent).
func (b *e2eBIRD) route(prefix string) string {
	out, _ := exec.Command("birdc", "-s", b.sock, "show", "route", "for", prefix, "all").CombinedOutput()
	if !strings.Contains(string(out), prefix) {
		return ""
	}
	return string(out)
}

func startLogged(t *testing.T, dir, name string, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return cmd
}

func waitUntil(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !f() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type e2eAPI struct {
	base, token string
}

func (c e2eAPI) do(t *testing.T, method, path string, body []byte, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	if res.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	return res.StatusCode
}

type e2eLock struct {
	ID        int64  `json:"id"`
	LockingID string `json:"locking_id"`
	State     string `json:"state"`
	Reason    string `json:"reason"`
	FindingID int64  `json:"finding_id"`
}

func (c e2eAPI) locks(t *testing.T) []e2eLock {
	var r struct {
		Items []e2eLock `json:"items"`
	}
	c.do(t, "GET", "/api/v1/locks", nil, &r)
	return r.Items
}

// attachments returns the attachments of a MIME message by file name.
func attachments(t *testing.T, raw []byte) (subject string, files map[string]string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	subject, _ = dec.DecodeHeader(m.Header.Get("Subject"))
	files = map[string]string{}
	var walk func(ct string, body io.Reader, enc string, disp string)
	walk = func(ct string, body io.Reader, enc string, disp string) {
		mt, params, _ := mime.ParseMediaType(ct)
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err != nil {
					return
				}
				walk(p.Header.Get("Content-Type"), p, p.Header.Get("Content-Transfer-Encoding"), p.Header.Get("Content-Disposition"))
			}
		}
		_, dp, _ := mime.ParseMediaType(disp)
		name := dp["filename"]
		if name == "" {
			name = params["name"]
		}
		if name == "" {
			return
		}
		var r io.Reader = body
		switch strings.ToLower(enc) {
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, body)
		case "quoted-printable":
			r = quotedprintable.NewReader(body)
		}
		b, _ := io.ReadAll(r)
		files[name] = string(b)
	}
	walk(m.Header.Get("Content-Type"), m.Body, m.Header.Get("Content-Transfer-Encoding"), "")
	return subject, files
}

const e2eInventory = `{"customers": [
  {"name": "Alice Example", "email": "alice@example.net", "language": "en",
   "servers": [{"name": "web1", "ips": ["203.0.113.10"]}]}
]}`

// TestEndToEnd: softflowd replays a real nmap scan to padlock's NetFlow
// port → netscan finding → lock → /32 blackhole route with community
// 65535:666 at a real BIRD → mail at a real SMTP server with the netscan log
// and the Locking ID. padlock is SIGKILLed while that mail is in flight and
// restarted: the lock, the route and exactly one mail exist afterwards.
func TestEndToEnd(t *testing.T) {
	needTools(t, "softflowd", "bird", "birdc")
	dir := t.TempDir()
	bin := buildPadlock(t, dir)
	scan, err := filepath.Abs("../../testdata/demo/scan.pcap")
	if err != nil {
		t.Fatal(err)
	}

	smtpSrv := startE2ESMTP(t)
	bgpPort, birdPort := freeTCP(t, "127.0.0.1"), freeTCP(t, "127.0.0.2")
	bird := startE2EBIRD(t, dir, birdPort, bgpPort)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freeTCP(t, "127.0.0.1"))
	nfPort := freeUDP(t)
	conf := fmt.Sprintf(`listen: %s
data: %s
customers: [203.0.113.0/24]
collect: {netflow: "127.0.0.1:%d", sflow: "", ipfix: "", sockets: 1}
policy:
  netscan: {action: lock}
  packet_limit: {action: lock}
  auto_lock_limit: {per_hour: 20}
  circuit_breaker: {servers: 10, within: 5m}
locks:
  own_networks: [203.0.113.0/24]
  bogons: []
  reasons:
    netscan: {method: blackhole, whitelist: false}
enforce:
  interval: 2s
  bgp:
    asn: 65001
    router_id: 127.0.0.1
    listen: 127.0.0.1:%d
    next_hop: 198.18.0.1
    communities: ["65535:666"]
    connect_retry: 1s
    peers: [{address: 127.0.0.2, asn: 65002, port: %d}]
notify:
  smtp: {host: 127.0.0.1, port: %d, from: abuse@example.net, tls: none, timeout: 2s}
  poll_interval: 500ms
  lease: 3s
  retry_min: 1s
`, httpAddr, filepath.Join(dir, "data"), nfPort, bgpPort, birdPort, smtpSrv.addr.Port)
	cfgPath := filepath.Join(dir, "padlock.yaml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "token", "create", "--config", cfgPath, "--role", "admin", "--name", "e2e").CombinedOutput()
	if err != nil {
		t.Fatalf("token: %v\n%s", err, out)
	}
	api := e2eAPI{base: "http://" + httpAddr, token: strings.TrimSpace(string(out))}
	if i := strings.LastIndex(api.token, "\n"); i >= 0 {
		api.token = strings.TrimSpace(api.token[i+1:])
	}
	startPadlock := func() *exec.Cmd {
		cmd := startLogged(t, dir, "padlock", bin, "serve", "--config", cfgPath)
		waitUntil(t, 10*time.Second, "padlock /healthz", func() bool {
			res, err := http.Get(api.base + "/healthz")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == 200
		})
		return cmd
	}
	first := startPadlock()
	if code := api.do(t, "POST", "/api/v1/inventory/import", []byte(e2eInventory), nil); code >= 300 {
		t.Fatalf("import: %d", code)
	}

	// The abuse: softflowd exports the scan's flows to padlock. The live
	// engine runs on event time next to the wall clock, so the capture is
	// shifted to start now, as if the scan were happening.
	live := filepath.Join(dir, "scan-now.pcap")
	if err := shiftPcap(scan, live, time.Now()); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	sf := exec.Command("softflowd", "-d", "-r", live, "-n", fmt.Sprintf("127.0.0.1:%d", nfPort), "-v", "9")
	if out, err := sf.CombinedOutput(); err != nil {
		t.Fatalf("softflowd: %v\n%s", err, out)
	}
	var lk e2eLock
	waitUntil(t, 20*time.Second, "the netscan lock", func() bool {
		ls := api.locks(t)
		if len(ls) > 0 {
			lk = ls[0]
			return true
		}
		return false
	})
	tLock := time.Since(t0)
	const prefix = "203.0.113.10/32"
	var route string
	waitUntil(t, 15*time.Second, "the /32 at BIRD", func() bool { route = bird.route(prefix); return route != "" })
	tRoute := time.Since(t0)
	select {
	case <-smtpSrv.firstSeen:
	case <-time.After(15 * time.Second):
		t.Fatal("no delivery attempt reached the SMTP server")
	}
	tMail := time.Since(t0)
	t.Logf("latency from softflowd start (first abusive record) to: lock committed %v, route at the BIRD peer %v, mail at the SMTP server %v",
		tLock.Round(time.Millisecond), tRoute.Round(time.Millisecond), tMail.Round(time.Millisecond))
	if lk.Reason != "netscan" || lk.State != "locked" || lk.FindingID == 0 {
		t.Errorf("lock %+v", lk)
	}
	if !strings.Contains(route, "65535,666") {
		t.Errorf("route without the blackhole community:\n%s", route)
	}

	// Crash with the mail in flight, then let that delivery fail.
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = first.Process.Wait()
	close(smtpSrv.release)
	waitUntil(t, 10*time.Second, "BIRD to drop the route of the dead session", func() bool { return bird.route(prefix) == "" })

	startPadlock()
	waitUntil(t, 15*time.Second, "the route again after the restart", func() bool { route = bird.route(prefix); return route != "" })
	if !strings.Contains(route, "65535,666") {
		t.Errorf("route after restart without the blackhole community:\n%s", route)
	}
	waitUntil(t, 15*time.Second, "the mail after the restart", func() bool { return len(smtpSrv.messages()) > 0 })
	time.Sleep(3 * time.Second) // a duplicate would show up within a lease and a poll
	msgs := smtpSrv.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d mails accepted, want exactly 1", len(msgs))
	}
	subject, files := attachments(t, msgs[0])
	if !strings.Contains(subject, lk.LockingID) {
		t.Errorf("subject %q lacks the Locking ID %s", subject, lk.LockingID)
	}
	log, ok := files["netscan.log"]
	if !ok {
		t.Fatalf("no netscan.log attached; attachments: %v", keys(files))
	}
	if !strings.Contains(log, "Netscan detected from host   203.0.113.10") || strings.Count(log, "=>") < 250 {
		t.Errorf("netscan.log:\n%.600s", log)
	}
	if ls := api.locks(t); len(ls) != 1 || ls[0].ID != lk.ID || ls[0].State != "locked" {
		t.Errorf("locks after restart: %+v", ls)
	}
	var fs struct {
		Items []struct {
			ID       int64    `json:"id"`
			Kind     string   `json:"kind"`
			LockID   int64    `json:"lock_id"`
			Evidence []string `json:"evidence"`
		} `json:"items"`
	}
	api.do(t, "GET", "/api/v1/findings?ip=203.0.113.10&kind=netscan", nil, &fs)
	if len(fs.Items) != 1 || fs.Items[0].LockID != lk.ID || !contains(fs.Items[0].Evidence, "netscan.log") {
		t.Errorf("findings: %+v", fs.Items)
	}
}

// shiftPcap copies a classic little-endian pcap file, moving its packet
// times so that the first packet is at start.
func shiftPcap(from, to string, start time.Time) error {
	d, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if len(d) < 24 || binary.LittleEndian.Uint32(d) != 0xa1b2c3d4 {
		return fmt.Errorf("%s: not a little-endian microsecond pcap", from)
	}
	var first uint32
	for off := 24; off+16 <= len(d); {
		ts := binary.LittleEndian.Uint32(d[off:])
		if off == 24 {
			first = ts
		}
		binary.LittleEndian.PutUint32(d[off:], ts-first+uint32(start.Unix()))
		off += 16 + int(binary.LittleEndian.Uint32(d[off+8:]))
	}
	return os.WriteFile(to, d, 0o600)
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// buildPadlock builds the real binary (CGO_ENABLED=0) into dir.
func buildPadlock(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "padlock")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// TestDemo: `padlock serve --demo` replays its bundled NetFlow export of a
// real nmap scan to its own collector; within a minute there is a finding
// with the netscan log, a lock with its evidence and the mail in the outbox
// (no SMTP configured).
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	bin := buildPadlock(t, dir)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freeTCP(t, "127.0.0.1"))
	// Free ports instead of the demo's fixed ones, so tests run side by side.
	conf := fmt.Sprintf(`collect: {netflow: "127.0.0.1:%d", sflow: "", ipfix: ""}
web: {monitoring_networks: [127.0.0.1/32]}
enforce:
  bgp: {asn: 65001, router_id: 127.0.0.1, listen: "127.0.0.1:%d", next_hop: 192.0.2.1, peers: [{address: 127.0.0.2, asn: 65002, port: %d}]}
`, freeUDP(t), freeTCP(t, "127.0.0.1"), freeTCP(t, "127.0.0.2"))
	cfgPath := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	capture, _ := filepath.Abs("../../testdata/demo/scan.netflow9.pcap")
	var stdout bytes.Buffer
	cmd := exec.Command(bin, "serve", "--demo", "--config", cfgPath, "--data", filepath.Join(dir, "data"), "--listen", httpAddr, "--demo-capture", capture)
	cmd.Stdout = &syncWriter{w: &stdout}
	logf, _ := os.Create(filepath.Join(dir, "padlock.log"))
	cmd.Stderr = logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("stdout:\n%s\nlog:\n%s", stdout.String(), b)
		}
	})
	var staff string
	waitUntil(t, 20*time.Second, "the demo's staff token", func() bool {
		for _, l := range strings.Split(cmd.Stdout.(*syncWriter).String(), "\n") {
			if f := strings.Fields(l); len(f) > 0 && strings.Contains(l, "staff API token:") {
				staff = f[len(f)-1]
			}
		}
		return staff != ""
	})
	api := e2eAPI{base: "http://" + httpAddr, token: staff}
	var fs struct {
		Items []struct {
			ID       int64    `json:"id"`
			LockID   int64    `json:"lock_id"`
			Rule     string   `json:"rule"`
			Evidence []string `json:"evidence"`
		} `json:"items"`
	}
	waitUntil(t, 60*time.Second, "the demo finding and its lock", func() bool {
		api.do(t, "GET", "/api/v1/findings?ip=203.0.113.10&kind=netscan", nil, &fs)
		return len(fs.Items) == 1 && fs.Items[0].LockID != 0
	})
	t.Logf("demo: finding %d (%s) and lock %d %v after start", fs.Items[0].ID, fs.Items[0].Rule, fs.Items[0].LockID, time.Since(start).Round(time.Millisecond))
	if !contains(fs.Items[0].Evidence, "netscan.log") {
		t.Errorf("evidence %v", fs.Items[0].Evidence)
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/findings/%d/evidence/netscan.log", api.base, fs.Items[0].ID), nil)
	req.Header.Set("Authorization", "Bearer "+staff)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "Netscan detected from host   203.0.113.10") {
		t.Errorf("evidence download: %d\n%.300s", res.StatusCode, body)
	}
	ls := api.locks(t)
	if len(ls) != 1 || ls[0].Reason != "netscan" || ls[0].FindingID != fs.Items[0].ID {
		t.Fatalf("locks %+v", ls)
	}
	// Every stage has its metrics.
	res, err = http.Get(api.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		"padlock_ingest_records_total ", `padlock_ingest_findings_total{kind="netscan"} 1`,
		`padlock_policy_decisions_total{action="lock",kind="netscan"} 1`, `padlock_pipeline_actions_total{action="lock",result="ok"} 1`,
		`padlock_locks{state="locked"} 1`, "padlock_enforce_reconcile_duration_seconds_count", "padlock_policy_breaker_open 0",
		"padlock_notify_outbox_depth", "padlock_ingest_dropped_records_total 0",
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The operational endpoints answer web.monitoring_networks only (here
	// 127.0.0.1): a client connecting from 127.0.0.2 is refused, told
	// why, while /healthz stays open to it.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	for path, want := range map[string]int{"/metrics": 403, "/collector": 403, "/policy/breaker": 403, "/healthz": 200} {
		res, err := other.Get(api.base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want || want == 403 && !strings.Contains(string(body), "web.monitoring_networks") {
			t.Errorf("GET %s from 127.0.0.2: %d %.100q, want %d", path, res.StatusCode, body, want)
		}
		res, err = http.Get(api.base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s from 127.0.0.1: %d, want 200", path, res.StatusCode)
		}
	}
	// The mail waits in the outbox: stop padlock and read the database.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	db, err := store.Open(context.Background(), store.DefaultDSN(filepath.Join(dir, "data")))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mails, err := db.ListMails(context.Background(), ls[0].ID, 0, 10)
	if err != nil || len(mails) != 1 {
		t.Fatalf("mails of the lock: %d %v", len(mails), err)
	}
	m := mails[0]
	if !strings.Contains(m.Subject, ls[0].LockingID) || m.To != "alice@example.net" || len(m.Attachments) == 0 || m.Attachments[0].Name != "netscan.log" {
		t.Errorf("mail: to %s subject %q attachments %d", m.To, m.Subject, len(m.Attachments))
	}
}

// syncWriter lets the test read a process's stdout while it is written.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}
