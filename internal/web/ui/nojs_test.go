package ui_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"padlock/internal/inventory"
	"padlock/internal/lock"
)

// TestCustomerStoryWithoutJavaScript walks the customer story with plain
// HTTP requests and form posts: no JavaScript is needed anywhere.
func TestCustomerStoryWithoutJavaScript(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.xff = "198.51.100.23" // the test connects through the trusted proxy 127.0.0.1
	if code, _ := c.get("/client/"); code != 200 || !strings.Contains(c.last, "Sign in") {
		t.Fatalf("signed out /client/ = %d, want the sign-in page", code)
	}
	c.signin("alice@alpha.example")
	_, body := c.get("/client/")
	c.mustContain(body, "web-1", "backup-3", "203.0.113.64/28", "Network scans from your server ("+e.LockA.LockingID+")", "Non-payment")
	if strings.Contains(body, "db-7") {
		t.Fatal("products list another customer's server")
	}

	// Server locking shows the forwarded public IP, one-click whitelist
	// for the netscan lock, and why not for the non-payment lock.
	_, body = c.get("/client/server-locking")
	c.mustContain(body, `<output id="client-ip" class="ip">198.51.100.23</output>`, "Whitelist 198.51.100.23 for 24 hours",
		"Whitelisting is not available for a lock because of non-payment", "Send us a ticket instead")
	_, body = c.post("/client/locks/"+e.LockA.LockingID+"/whitelist", url.Values{"ip": {"198.51.100.23"}, "back": {"/client/server-locking"}})
	c.mustContain(body, "198.51.100.23 is whitelisted for "+e.LockA.LockingID, "Remove whitelist entry")
	// A bad address is refused with the service's reason.
	_, body = c.post("/client/locks/"+e.LockA.LockingID+"/whitelist", url.Values{"ip": {"203.0.113.10"}, "back": {"/client/server-locking"}})
	c.mustContain(body, "belongs to our own network")
	_, body = c.post("/client/locks/"+e.LockA.LockingID+"/whitelist/remove", url.Values{"back": {"/client/server-locking"}})
	c.mustContain(body, "The whitelist entry was removed.")
	// Where whitelisting is not offered, the service refuses it too, and
	// the offered ticket carries the customer's IP to the staff.
	_, body = c.post("/client/locks/"+e.PayA.LockingID+"/whitelist", url.Values{"ip": {"198.51.100.23"}, "back": {"/client/server-locking"}})
	c.mustContain(body, "Whitelisting is not available for locks because of non_payment")
	_, body = c.post("/client/tickets", url.Values{"lock": {e.PayA.LockingID}, "subject": {"Access to locked storage box backup-3"},
		"message": {"Please let me connect from 198.51.100.23 to solve the issue."}, "back": {"/client/server-locking"}})
	c.mustContain(body, "Your ticket was sent.", "Access to locked storage box backup-3", "Please let me connect from 198.51.100.23")

	// Lock page: reason text, evidence exactly as stored, pcap download,
	// traceroute advice, mails.
	_, body = c.get("/client/locks/" + e.LockA.LockingID)
	c.mustContain(body, "it scanned other networks", "Netscan detected from host   203.0.113.10",
		"traffic.pcap", "tracert.exe 203.0.113.10", "traceroute 203.0.113.10", "We don't have additional log files",
		"["+e.LockA.LockingID+"] lock", "IP address whitelisted", "Send unlock request")
	if strings.Contains(body, "internal: finding") {
		t.Fatal("the customer sees the staff's internal note")
	}
	code, pcap := c.get("/client/locks/" + e.LockA.LockingID + "/evidence/" + evidenceID(t, e, "traffic.pcap"))
	if code != 200 || !strings.HasPrefix(pcap, "\xd4\xc3\xb2\xa1") {
		t.Fatalf("pcap download = %d %q", code, pcap)
	}

	// KVM console order.
	_, body = c.post("/client/servers/"+itoa(e.SrvA.ID)+"/kvm", url.Values{"back": {"/client/locks/" + e.LockA.LockingID}})
	c.mustContain(body, "Your KVM console order was sent as ticket #", "KVM console order")

	// Unlock request; the button becomes a link; a second is refused.
	_, body = c.post("/client/locks/"+e.LockA.LockingID+"/unlock-request", url.Values{"cause": {"a compromised WordPress"}, "fixed": {"reinstalled"}})
	c.mustContain(body, "Your unlock request was sent", `id="open-request"`)
	if strings.Contains(body, `id="send-unlock"`) {
		t.Fatal("the unlock form is still offered after sending")
	}
	_, body = c.post("/client/locks/"+e.LockA.LockingID+"/unlock-request", url.Values{"cause": {"again"}, "fixed": {"again"}})
	c.mustContain(body, "is already open for lock "+e.LockA.LockingID, "please do not send multiple unlock requests")

	// Staff approve with a note.
	s := e.client()
	s.signin("staff@padlock.example")
	_, body = s.get("/admin/")
	c.mustContain(body, "Pending unlock requests (1)", e.LockA.LockingID, "enforcement: pending", "no established session", "not configured")
	reqs, _ := e.svc.ListUnlockRequests(e.ctx, e.staff, lockFilterOpen())
	_, body = s.post("/admin/requests/"+itoa(reqs[0].ID)+"/approve", url.Values{"note": {"Thanks, looks clean now."}})
	c.mustContain(body, "approved; lock "+e.LockA.LockingID+" is now unlocked")

	// The customer sees the product unlocked, the answer, and the mails.
	_, body = c.get("/client/")
	if strings.Contains(body, e.LockA.LockingID+")") {
		t.Fatalf("web-1 still shown locked:\n%s", body)
	}
	_, body = c.get("/client/locks/" + e.LockA.LockingID)
	c.mustContain(body, "Thanks, looks clean now.", "unlock request approved", "unlock request received", "whitelist added")

	// Tickets: list, thread, reply.
	_, body = c.get("/client/tickets")
	c.mustContain(body, "KVM console order")
	tks, _ := e.svc.ListTickets(e.ctx, e.staff, lockTicketFilter())
	_, body = c.get("/client/tickets/" + itoa(tks[0].ID))
	c.mustContain(body, tks[0].Subject, `action="/client/tickets/`+itoa(tks[0].ID)+`/reply"`)
	_, body = c.post("/client/tickets/"+itoa(tks[0].ID)+"/reply", url.Values{"body": {"Any news?"}})
	c.mustContain(body, "Any news?", "Your reply was sent.")

	// Sign out ends the session.
	c.get("/client/")
	c.post("/client/signout", nil)
	if _, body = c.get("/client/"); !strings.Contains(body, "Sign in") {
		t.Fatal("still signed in after signing out")
	}
}

func TestCrossSitePostsRefused(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.signin("alice@alpha.example")
	c.get("/client/locks/" + e.LockA.LockingID)
	tok := c.csrf()
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "http://evil.example"},
	} {
		req, _ := http.NewRequest("POST", e.srv.URL+"/client/locks/"+e.LockA.LockingID+"/unlock-request",
			strings.NewReader(url.Values{"csrf": {tok}, "cause": {"x"}, "fixed": {"y"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		if code, _ := c.do(req); code != http.StatusForbidden {
			t.Errorf("cross-site POST with %v = %d, want 403", h, code)
		}
	}
	// Same-site POST without the form token is refused too.
	if code, _ := c.post("/client/locks/"+e.LockA.LockingID+"/unlock-request", url.Values{"csrf": {""}, "cause": {"x"}, "fixed": {"y"}}); code != http.StatusForbidden {
		t.Errorf("POST without token = %d, want 403", code)
	}
	if l, _ := e.svc.GetLock(e.ctx, e.staff, e.LockA.ID); l.State != "locked" {
		t.Fatalf("a refused POST changed the lock: %s", l.State)
	}
}

func TestSigninRateLimitAndReset(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.xff = "198.51.100.99"
	for i := 0; i < 5; i++ {
		c.get("/client/signin")
		if code, _ := c.post("/client/signin", url.Values{"email": {"alice@alpha.example"}, "password": {"wrong password!"}}); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d = %d, want 401", i, code)
		}
	}
	// The right password is refused now too: the account is rate limited.
	code, body := c.post("/client/signin", url.Values{"email": {"alice@alpha.example"}, "password": {password}})
	if code != http.StatusTooManyRequests || !strings.Contains(body, "Too many failed sign-ins") {
		t.Fatalf("after 5 failures = %d", code)
	}
	// Reset by mail link: queued in the outbox, single use.
	c2 := e.client()
	c2.xff = "198.51.100.100"
	c2.get("/client/reset")
	_, body = c2.post("/client/reset", url.Values{"email": {"bob@beta.example"}})
	c2.mustContain(body, "If an account with this email exists")
	ms, _ := e.db.ListMails(e.ctx, 0, e.B.ID, 10)
	var link string
	for _, m := range ms {
		if m.Kind == "password_reset" {
			for _, f := range strings.Fields(m.Text) {
				if strings.HasPrefix(f, "http://padlock.example/client/reset/") {
					link = strings.TrimPrefix(f, "http://padlock.example")
				}
			}
		}
	}
	if link == "" {
		t.Fatalf("no reset mail in the outbox: %+v", ms)
	}
	c2.get(link)
	if _, body = c2.post(link, url.Values{"password": {"a brand new secret"}, "password2": {"a brand new secret"}}); !strings.Contains(body, "Your password was changed") {
		t.Fatalf("reset: %s", body)
	}
	if code, _ := c2.get(link); code != http.StatusNotFound {
		t.Fatalf("second use of the link = %d, want 404", code)
	}
	c2.get("/client/signin")
	if _, body = c2.post("/client/signin", url.Values{"email": {"bob@beta.example"}, "password": {"a brand new secret"}}); !strings.Contains(body, "db-7") {
		t.Fatalf("sign-in with the new password failed:\n%s", body)
	}
	// An unknown email gets the same answer and no mail.
	n := len(ms)
	c2.post("/client/reset", url.Values{"email": {"nobody@nowhere.example"}})
	all, _ := e.db.ListMails(e.ctx, 0, 0, 1000)
	for _, m := range all {
		if m.To == "nobody@nowhere.example" {
			t.Fatal("mail sent to an unknown address")
		}
	}
	_ = n
}

// The reset link mail is written in the language of the user's customer.
func TestResetMailInCustomersLanguage(t *testing.T) {
	e := newEnv(t)
	g, err := e.svc.CreateCustomer(e.ctx, e.staff, inventory.Customer{Name: "Gamma GmbH", Email: "noc@gamma.example", Language: "de"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.CreateUser(e.ctx, lock.System, "greta@gamma.example", "correct horse battery", lock.RoleCustomer, g.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.get("/client/reset")
	_, body := c.post("/client/reset", url.Values{"email": {"greta@gamma.example"}})
	c.mustContain(body, "If an account with this email exists")
	ms, _ := e.db.ListMails(e.ctx, 0, g.ID, 10)
	if len(ms) != 1 || ms[0].Kind != "password_reset" {
		t.Fatalf("outbox of Gamma: %+v", ms)
	}
	m := ms[0]
	if m.To != "greta@gamma.example" || m.Subject != "Passwort zurücksetzen" || !strings.Contains(m.Text, "innerhalb von einer Stunde") ||
		!strings.Contains(m.Text, "http://padlock.example/client/reset/") || !strings.Contains(m.HTML, `lang="de"`) {
		t.Fatalf("German reset mail expected, got %q to %s:\n%s", m.Subject, m.To, m.Text)
	}
}

// A customer can ask for help without a lock (no email received, unsure
// whether something is locked): a form on the tickets page, which keeps
// what was typed when it is refused. The lock page links to the same form
// with its lock chosen.
func TestGeneralSupportTicket(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.signin("alice@alpha.example")
	_, body := c.get("/client/tickets")
	c.mustContain(body, "New support ticket", "No particular lock", e.LockA.LockingID)
	msg := "I received no email but cannot reach web1 since this morning."
	code, body := c.post("/client/tickets", url.Values{"subject": {"  "}, "message": {msg}, "lock": {""}})
	if code != http.StatusBadRequest {
		t.Fatalf("ticket without a subject = %d, want 400", code)
	}
	c.mustContain(body, "A subject of 1 to 200 characters is required", msg)
	_, body = c.post("/client/tickets", url.Values{"subject": {"No email, server unreachable"}, "message": {msg}, "lock": {""}})
	c.mustContain(body, "Your ticket was sent.", "No email, server unreachable", msg)
	ts, err := e.svc.ListTickets(e.ctx, e.staff, lock.TicketFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, tk := range ts {
		if tk.Subject == "No email, server unreachable" {
			found = true
			if tk.CustomerID != e.A.ID || tk.LockID != 0 || tk.ProductID != 0 {
				t.Errorf("general ticket stored as %+v", tk)
			}
		}
	}
	if !found {
		t.Fatal("the ticket is not in the staff's list")
	}
	// Another customer neither sees it in the list nor by its number.
	b := e.client()
	b.signin("bob@beta.example")
	if _, body := b.get("/client/tickets"); strings.Contains(body, "No email, server unreachable") {
		t.Error("Beta sees Alpha's ticket")
	}
	// From the lock page: the form with the lock chosen.
	_, body = c.get("/client/locks/" + e.LockA.LockingID)
	c.mustContain(body, "/client/tickets?lock="+e.LockA.LockingID+"#new-ticket")
	_, body = c.get("/client/tickets?lock=" + e.LockA.LockingID)
	c.mustContain(body, `value="`+e.LockA.LockingID+`" selected`)
}

// A lock for non-payment tells the customer to pay, offers no unlock
// request and shows no evidence section: the payment lifts it.
func TestNonPaymentLockPage(t *testing.T) {
	e := newEnv(t)
	l, err := e.svc.CreateLock(e.ctx, lock.Actor{Role: lock.RoleBilling, Name: "billing"}, lock.CreateLockRequest{
		Scope: lock.Scope{ServerID: e.SrvA.ID}, Reason: lock.ReasonNonPayment}, "")
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.signin("alice@alpha.example")
	_, body := c.get("/client/locks/" + l.LockingID)
	c.mustContain(body, "Pay the overdue invoice", "No unlock request is needed")
	for _, bad := range []string{`id="send-unlock"`, "Fix the issue completely", `<h2 id="ev">Evidence</h2>`} {
		if strings.Contains(body, bad) {
			t.Errorf("non-payment lock page contains %q", bad)
		}
	}
}

// Every server of the customer can get a KVM console from the products
// page, locked or not ("order a KVM console for the correct server").
func TestKVMOrderFromProducts(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.signin("alice@alpha.example")
	_, body := c.get("/client/")
	c.mustContain(body, fmt.Sprintf(`action="/client/servers/%d/kvm"`, e.SrvA.ID))
	_, body = c.post(fmt.Sprintf("/client/servers/%d/kvm", e.SrvA.ID), url.Values{"back": {"/client/"}})
	c.mustContain(body, "Your KVM console order was sent as ticket")
	ts, _ := e.svc.ListTickets(e.ctx, e.staff, lock.TicketFilter{Kind: lock.TicketKVMConsole})
	if len(ts) != 1 || ts[0].ProductID != e.SrvA.ID || ts[0].CustomerID != e.A.ID {
		t.Fatalf("KVM orders: %+v", ts)
	}
	// Beta cannot order one for Alpha's server.
	b := e.client()
	b.signin("bob@beta.example")
	b.get("/client/")
	if code, _ := b.post(fmt.Sprintf("/client/servers/%d/kvm", e.SrvA.ID), url.Values{"back": {"/client/"}}); code != http.StatusNotFound {
		t.Errorf("Beta orders a console for Alpha's server: %d", code)
	}
}

// The customer's lock page offers the files our mail carried; the
// finding's JSON is staff's (and the API's).
func TestCustomerEvidenceIsWhatWasMailed(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	c.signin("alice@alpha.example")
	_, body := c.get("/client/locks/" + e.LockA.LockingID)
	c.mustContain(body, "traffic.pcap", "netscan.log")
	if strings.Contains(body, "finding.json") {
		t.Error("customer page lists finding.json")
	}
	s := e.client()
	s.signin("staff@padlock.example")
	_, body = s.get(fmt.Sprintf("/admin/locks/%d", e.LockA.ID))
	s.mustContain(body, "finding.json")
}
