package ui_test

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"padlock/internal/lock"
)

const chromium = "/usr/bin/chromium"

var shots = flag.Bool("screenshots", false, "write docs/screenshots/*.png from the browser tests")

// browser starts Debian's Chromium headless on a fresh profile. Without
// Chromium the test skips, or fails when CI is set.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", chromium, err)
		}
		t.Skipf("%s not installed", chromium)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel3)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab opens a new tab in its own browser context (own cookies): a second
// person at a second computer.
func tab(t *testing.T, browserCtx context.Context) context.Context {
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	return ctx
}

type step = chromedp.Action[chromedp.Void]

func visible(sel string) step { return chromedp.WaitVisible(chromedp.CSS(sel)) }
func click(sel string) step   { return chromedp.Click(chromedp.CSS(sel)) }
func keys(sel, v string) step { return chromedp.SendKeys(chromedp.CSS(sel), v) }
func setv(sel, v string) step { return chromedp.SetValue(chromedp.CSS(sel), v) }

func run(t *testing.T, ctx context.Context, what string, steps ...step) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v (at %s)\n%s", what, err, loc, body)
	}
}

func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// screenshot saves the page as docs/screenshots/NAME.png with -screenshots.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*shots {
		return
	}
	// The whole page, scaled down until the PNG stays under 300 KB.
	w := get(t, ctx, "width", chromedp.Evaluate[float64](`document.documentElement.scrollWidth`))
	h := get(t, ctx, "height", chromedp.Evaluate[float64](`document.documentElement.scrollHeight`))
	var b []byte
	for _, scale := range []float64{1, 0.8, 0.6, 0.45} {
		r, err := chromedp.Call(ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng,
			CaptureBeyondViewport: new(true), FromSurface: new(true), Clip: &page.Viewport{Width: w, Height: h, Scale: scale}})
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		b = r.Data
		if len(b) < 300<<10 {
			break
		}
	}
	dir := filepath.Join("..", "..", "..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func signin(t *testing.T, ctx context.Context, base, area, email string) {
	run(t, ctx, "sign in "+email,
		chromedp.Navigate(base+"/"+area+"/signin"),
		visible("#email"),
		keys("#email", email),
		keys("#password", password),
		click(`button[type="submit"]`),
		visible(`form.signout`),
	)
}

// TestBrowserCustomerStory: sign in, open the locked server, whitelist the
// shown IP, order KVM, send an unlock request, see a second one refused,
// staff approve in a second browser, the customer sees the product
// unlocked and the mails listed.
func TestBrowserCustomerStory(t *testing.T) {
	e := newEnv(t)
	b := browser(t)
	base := e.srv.URL
	cust := tab(t, b)
	// The test connects from 127.0.0.1, the trusted proxy, which forwards
	// the customer's public address.
	run(t, cust, "open tab")
	if _, err := chromedp.Call(cust, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(cust, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"X-Forwarded-For": "198.51.100.23"}}); err != nil {
		t.Fatal(err)
	}
	signin(t, cust, base, "client", "alice@alpha.example")
	run(t, cust, "products", visible("table.products"))
	if s := text(t, cust, "table.products"); !strings.Contains(s, "web-1") || !strings.Contains(s, e.LockA.LockingID) {
		t.Fatalf("products: %s", s)
	}
	screenshot(t, cust, "client-products")

	lid := e.LockA.LockingID
	run(t, cust, "open the locked server",
		click(`a[href="/client/locks/`+lid+`"]`),
		visible("#ev"))
	if s := text(t, cust, "figure.evidence pre"); !strings.Contains(s, "Netscan detected from host   203.0.113.10") {
		t.Fatalf("evidence: %q", s)
	}

	run(t, cust, "server locking",
		click(`a[href="/client/server-locking"]`),
		visible("#client-ip"))
	if ip := text(t, cust, "#client-ip"); ip != "198.51.100.23" {
		t.Fatalf("shown IP %q, want the forwarded 198.51.100.23", ip)
	}
	screenshot(t, cust, "client-server-locking")
	run(t, cust, "whitelist the shown IP",
		click("#wl-"+lid),
		visible(".flash.ok"))
	if s := text(t, cust, ".flash.ok"); !strings.Contains(s, "198.51.100.23 is whitelisted for "+lid) {
		t.Fatalf("whitelist: %q", s)
	}
	if wl, _ := e.svc.ListWhitelist(e.ctx, e.staff, e.LockA.ID); len(wl) != 1 || wl[0].IP.String() != "198.51.100.23" {
		t.Fatalf("whitelist in the store: %+v", wl)
	}

	run(t, cust, "order KVM",
		chromedp.Navigate(base+"/client/locks/"+lid),
		visible("#order-kvm"),
		click("#order-kvm"),
		visible(".flash.ok"))
	if s := text(t, cust, ".flash.ok"); !strings.Contains(s, "KVM console order was sent as ticket") {
		t.Fatalf("kvm: %q", s)
	}

	run(t, cust, "send the unlock request",
		chromedp.Navigate(base+"/client/locks/"+lid),
		visible("#send-unlock"),
		keys("#cause", "An outdated WordPress plugin was used to run a scanner."),
		keys("#fixed", "Reinstalled the server from a clean image and updated everything."),
		click("#send-unlock"),
		visible("#open-request"))
	if forms := get(t, cust, "count forms", chromedp.Evaluate[int](`document.querySelectorAll("#send-unlock").length`)); forms != 0 {
		t.Fatal("the send button is still there after sending")
	}
	screenshot(t, cust, "client-lock")

	// A second request (a stale tab, a double submit) is refused.
	run(t, cust, "second unlock request",
		chromedp.Evaluate[chromedp.Void](`(() => { const f = document.createElement("form"); f.method = "post"; f.action = location.pathname + "/unlock-request";
			for (const [k, v] of [["csrf", document.querySelector("input[name=csrf]").value], ["cause", "again"], ["fixed", "again"]]) {
				const i = document.createElement("input"); i.type = "hidden"; i.name = k; i.value = v; f.appendChild(i); }
			document.body.appendChild(f); f.submit(); return {}; })()`),
		visible(".flash.err"))
	if s := text(t, cust, ".flash.err"); !strings.Contains(s, "already open") || !strings.Contains(s, "do not send multiple unlock requests") {
		t.Fatalf("second request: %q", s)
	}
	if rs, _ := e.svc.ListUnlockRequests(e.ctx, e.staff, lock.UnlockRequestFilter{LockID: e.LockA.ID}); len(rs) != 1 {
		t.Fatalf("%d unlock requests stored, want 1", len(rs))
	}

	// Staff approve in a second browser.
	staff := tab(t, b)
	signin(t, staff, base, "admin", "staff@padlock.example")
	run(t, staff, "dashboard", visible("#pend"))
	if s := text(t, staff, "#pend"); !strings.Contains(s, "(1)") {
		t.Fatalf("dashboard pending: %q", s)
	}
	screenshot(t, staff, "admin-dashboard")
	run(t, staff, "open the request",
		click(`section[aria-labelledby="pend"] ol a`),
		visible("#requests textarea"))
	screenshot(t, staff, "admin-lock")
	run(t, staff, "approve",
		keys("#requests textarea", "Thanks, the scans stopped. Unlocked."),
		click(`#requests button[id^="approve-"]`),
		visible(".flash.ok"))
	if s := text(t, staff, ".flash.ok"); !strings.Contains(s, "is now unlocked") {
		t.Fatalf("approve: %q", s)
	}

	// The customer sees the product unlocked, the answer and the mails.
	run(t, cust, "products again", chromedp.Navigate(base+"/client/"), visible("table.products"))
	row := get(t, cust, "web-1 row", chromedp.Text(chromedp.Search(`//tr[th[text()="web-1"]]`)))
	if !strings.Contains(row, "Not locked") {
		t.Fatalf("web-1 row: %q", row)
	}
	run(t, cust, "lock page", chromedp.Navigate(base+"/client/locks/"+lid), visible("#ml"))
	if s := text(t, cust, "main"); !strings.Contains(s, "Thanks, the scans stopped") {
		t.Fatalf("staff answer missing: %s", s)
	}
	mails := text(t, cust, "ul.mails")
	for _, want := range []string{"[" + lid + "] lock", "whitelist added", "unlock request received", "unlock request approved"} {
		if !strings.Contains(mails, want) {
			t.Errorf("mail %q not listed: %s", want, mails)
		}
	}
	screenshot(t, cust, "client-lock-unlocked")

	// The same page on a phone.
	phone := tab(t, b)
	signin(t, phone, base, "client", "bob@beta.example")
	run(t, phone, "phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1), chromedp.EmulateMobile),
		chromedp.Navigate(base+"/client/locks/"+e.LockB.LockingID), visible("#ev"))
	if get(t, phone, "overflow", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)) {
		t.Error("the lock page scrolls sideways on a 390 px phone")
	}
	screenshot(t, phone, "client-lock-phone")
}

// TestBrowserStaffStory: sign in, the dashboard shows the pending request,
// reject with a note, lock by hand, search the audit log.
func TestBrowserStaffStory(t *testing.T) {
	e := newEnv(t)
	r, err := e.svc.RequestUnlock(e.ctx, lock.Actor{Role: lock.RoleCustomer, CustomerID: e.B.ID, Name: "bob"}, e.LockB.ID, "We rate-limited the service.")
	if err != nil {
		t.Fatal(err)
	}
	b := browser(t)
	base := e.srv.URL
	s := tab(t, b)
	signin(t, s, base, "admin", "staff@padlock.example")
	if d := text(t, s, "main"); !strings.Contains(d, "#"+fmt.Sprint(r.ID)+" for "+e.LockB.LockingID) || !strings.Contains(d, "enforcement: pending") || !strings.Contains(d, "not configured") {
		t.Fatalf("dashboard: %s", d)
	}
	run(t, s, "requests", click(`a[href="/admin/requests"]`), visible(fmt.Sprintf("#reject-%d", r.ID)))
	screenshot(t, s, "admin-requests")
	// A rejection without a note is refused with the reason.
	run(t, s, "reject without note", click(fmt.Sprintf("#reject-%d", r.ID)), visible(".flash.err"))
	if m := text(t, s, ".flash.err"); !strings.Contains(m, "needs a note") {
		t.Fatalf("reject without note: %q", m)
	}
	run(t, s, "reject with note",
		keys(fmt.Sprintf("#note-%d", r.ID), "The flood continues from 203.0.113.20; please check again."),
		click(fmt.Sprintf("#reject-%d", r.ID)),
		visible(".flash.ok"))
	if l, _ := e.svc.GetLock(e.ctx, e.staff, e.LockB.ID); l.State != lock.StateLocked {
		t.Fatalf("after reject the lock is %s", l.State)
	}

	run(t, s, "lock by hand",
		chromedp.Navigate(base+"/admin/locks"),
		click("#new-lock summary"),
		setv("#kind", "ips"),
		keys("#target", "203.0.113.66"),
		setv("#reason", "abuse"),
		keys("#note", "Abuse report #4711 (phishing kit)"),
		click(`#new-lock button[type="submit"]`),
		visible(".flash.ok"))
	msg := text(t, s, ".flash.ok")
	lid := strings.TrimSuffix(strings.TrimPrefix(msg, "Lock "), " created.")
	if !lock.ValidLockingID(lid) {
		t.Fatalf("lock by hand: %q", msg)
	}
	screenshot(t, s, "admin-lock-by-hand")

	run(t, s, "audit search",
		chromedp.Navigate(base+"/admin/audit?"+url.Values{"locking_id": {lid}}.Encode()),
		visible("table.audit"))
	if a := text(t, s, "table.audit tbody"); !strings.Contains(a, "Abuse report #4711") || !strings.Contains(a, "staff:staff@padlock.example") {
		t.Fatalf("audit: %s", a)
	}
	screenshot(t, s, "admin-audit")
	for _, p := range []string{"mails", "policy", "findings/" + fmt.Sprint(e.Finding.ID), "inventory?customer=" + fmt.Sprint(e.A.ID)} {
		run(t, s, p, chromedp.Navigate(base+"/admin/"+p), visible("h1"))
		name, _, _ := strings.Cut(strings.ReplaceAll(p, "/", "-"), "?")
		if strings.HasPrefix(name, "findings-") {
			name = "finding"
		}
		screenshot(t, s, "admin-"+name)
	}
}
