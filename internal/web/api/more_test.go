package api

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAPITicketsBoxesRequestsExport covers the endpoints the story test
// does not: storage boxes, tickets and KVM orders, unlock requests by ID
// and by lock, and the inventory export in both formats (re-importing an
// export changes nothing).
func TestAPITicketsBoxesRequestsExport(t *testing.T) {
	f := newFixture(t)
	staff := f.tokens["staff"]
	alice := f.must(f.do(staff, "POST", "/api/v1/customers", `{"name":"Alice","email":"alice@example.net"}`), 201).num("id")
	bob := f.must(f.do(staff, "POST", "/api/v1/customers", `{"name":"Bob","email":"bob@example.org"}`), 201).num("id")
	web1 := f.must(f.do(staff, "POST", "/api/v1/servers", `{"customer_id":`+itoa(alice)+`,"name":"web1","ips":["203.0.113.10"]}`), 201).num("id")
	box := f.must(f.do(staff, "POST", "/api/v1/storage-boxes", `{"customer_id":`+itoa(alice)+`,"name":"bx11","host":"bx11.example.net"}`), 201).num("id")
	f.must(f.do(staff, "POST", "/api/v1/addresses", `{"customer_id":`+itoa(bob)+`,"prefix":"203.0.113.64/28","note":"routed"}`), 201)
	cust := f.token("customer", alice)
	other := f.token("customer", bob)

	// Storage boxes: the owner sees its box, another customer gets 404.
	if b := f.must(f.do(cust, "GET", "/api/v1/storage-boxes/"+itoa(box), ""), 200); b.Body["name"] != "bx11" {
		t.Fatalf("box %s", b.Raw)
	}
	f.must(f.do(other, "GET", "/api/v1/storage-boxes/"+itoa(box), ""), 404)
	if l := f.must(f.do(other, "GET", "/api/v1/storage-boxes", ""), 200); len(l.Body["items"].([]any)) != 0 {
		t.Fatalf("bob lists alice's boxes: %s", l.Raw)
	}

	// A lock, then a KVM order and a support ticket about it.
	lk := f.must(f.do(staff, "POST", "/api/v1/locks", `{"scope":{"server_id":`+itoa(web1)+`},"reason":"abuse"}`), 201).num("id")
	kvm := f.must(f.do(cust, "POST", "/api/v1/servers/"+itoa(web1)+"/kvm", `{"message":"need console to fix sshd"}`), 201)
	if kvm.Body["kind"] != "kvm_console" {
		t.Fatalf("kvm order %s", kvm.Raw)
	}
	f.must(f.do(other, "POST", "/api/v1/servers/"+itoa(web1)+"/kvm", `{}`), 404)
	tk := f.must(f.do(cust, "POST", "/api/v1/tickets", `{"lock_id":`+itoa(lk)+`,"subject":"why locked?","message":"please explain"}`), 201).num("id")
	f.must(f.do(staff, "POST", "/api/v1/tickets/"+itoa(tk)+"/messages", `{"body":"see the attached log"}`), 201)
	th := f.must(f.do(cust, "GET", "/api/v1/tickets/"+itoa(tk), ""), 200)
	if msgs, _ := th.Body["messages"].([]any); len(msgs) != 2 {
		t.Fatalf("ticket thread %s", th.Raw)
	}
	f.must(f.do(other, "GET", "/api/v1/tickets/"+itoa(tk), ""), 404)
	f.must(f.do(other, "POST", "/api/v1/tickets/"+itoa(tk)+"/messages", `{"body":"hi"}`), 404)
	if l := f.must(f.do(cust, "GET", "/api/v1/tickets", ""), 200); len(l.Body["items"].([]any)) != 2 {
		t.Fatalf("alice's tickets %s", l.Raw)
	}

	// Unlock requests by ID and per lock.
	ur := f.must(f.do(cust, "POST", "/api/v1/locks/"+itoa(lk)+"/unlock-requests", `{"message":"fixed: removed the bot"}`), 201).num("id")
	if g := f.must(f.do(cust, "GET", "/api/v1/unlock-requests/"+itoa(ur), ""), 200); g.Body["state"] != "open" {
		t.Fatalf("request %s", g.Raw)
	}
	f.must(f.do(other, "GET", "/api/v1/unlock-requests/"+itoa(ur), ""), 404)
	if l := f.must(f.do(cust, "GET", "/api/v1/locks/"+itoa(lk)+"/unlock-requests", ""), 200); len(l.Body["items"].([]any)) != 1 {
		t.Fatalf("requests of the lock %s", l.Raw)
	}
	f.must(f.do(other, "GET", "/api/v1/locks/"+itoa(lk)+"/unlock-requests", ""), 404)
	rej := f.must(f.do(staff, "POST", "/api/v1/unlock-requests/"+itoa(ur)+"/reject", `{"note":"the bot is still running"}`), 200)
	if r := rej.Body["unlock_request"].(map[string]any); r["state"] != "rejected" || r["note"] != "the bot is still running" {
		t.Fatalf("reject %s", rej.Raw)
	}

	// Export, then import the export again: nothing changes.
	for _, format := range []string{"json", "csv"} {
		req, _ := http.NewRequest("GET", f.srv.URL+"/api/v1/inventory/export?format="+format, nil)
		req.Header.Set("Authorization", "Bearer "+staff)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), "bx11") || !strings.Contains(string(body), "203.0.113.64/28") {
			t.Fatalf("%s export: %d %s", format, res.StatusCode, body)
		}
		ct := "application/json"
		if format == "csv" {
			ct = "text/csv"
		}
		req, _ = http.NewRequest("POST", f.srv.URL+"/api/v1/inventory/import", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+staff)
		req.Header.Set("Content-Type", ct)
		res, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(out), `"created": 0`) || !strings.Contains(string(out), `"updated": 0`) {
			t.Fatalf("re-import of the %s export changed something: %d %s", format, res.StatusCode, out)
		}
	}
	f.must(f.do(cust, "POST", "/api/v1/inventory/import", `{"customers":[]}`), 403)
	f.must(f.do(staff, "GET", "/api/v1/inventory/export?format=xml", ""), 400)
	for _, q := range []string{"/api/v1/tickets?lock_id=abc", "/api/v1/unlock-requests?limit=-1", "/api/v1/locks?server_id=x", "/api/v1/servers?after_id=1e3"} {
		if r := f.must(f.do(staff, "GET", q, ""), 400); r.errField("field") == "" {
			t.Errorf("%s: the error names no field: %s", q, r.Raw)
		}
	}
}

// A customer's token reads its lock and audit log as the client area shows
// them: without the staff's internal note and names.
func TestAPICustomerViewHidesStaffData(t *testing.T) {
	f := newFixture(t)
	staff := f.tokens["staff"]
	alice, web1 := f.aliceWithWeb1()
	lk := f.must(f.do(staff, "POST", "/api/v1/locks", `{"scope":{"server_id":`+itoa(web1)+`},"reason":"abuse","note":"CERT complaint 4711"}`), 201).num("id")
	if s := f.must(f.do(staff, "GET", "/api/v1/locks/"+itoa(lk), ""), 200); !strings.Contains(s.Raw, "4711") {
		t.Fatalf("staff do not see their note: %s", s.Raw)
	}
	cust := f.token("customer", alice)
	for _, path := range []string{"/api/v1/locks/" + itoa(lk), "/api/v1/locks", "/api/v1/audit?lock_id=" + itoa(lk)} {
		r := f.must(f.do(cust, "GET", path, ""), 200)
		if strings.Contains(r.Raw, "4711") || strings.Contains(r.Raw, `"staff:`) {
			t.Errorf("%s shows the customer staff data: %s", path, r.Raw)
		}
	}
}

// "warn": true makes a warning with the configured default deadline
// (locks.default_warning, 24 h by default) instead of a lock.
func TestAPIWarningWithDefaultDeadline(t *testing.T) {
	f := newFixture(t)
	staff := f.tokens["staff"]
	_, web1 := f.aliceWithWeb1()
	l := f.must(f.do(staff, "POST", "/api/v1/locks", `{"scope":{"server_id":`+itoa(web1)+`},"reason":"spam","warn":true}`), 201)
	if l.Body["state"] != "warned" {
		t.Fatalf("warn: true gave %s", l.Raw)
	}
	until, err := time.Parse(time.RFC3339Nano, l.Body["warn_until"].(string))
	if err != nil || time.Until(until) < 23*time.Hour || time.Until(until) > 25*time.Hour {
		t.Fatalf("deadline %v (%v), want about 24 h from now", until, err)
	}
}

// Billing says "payment received" once per customer and every non-payment
// lock of that customer ends; staff escalate a warning to a lock before
// its deadline.
func TestAPIPaymentReceivedAndEscalate(t *testing.T) {
	f := newFixture(t)
	staff, billing := f.tokens["staff"], f.tokens["billing"]
	alice, web1 := f.aliceWithWeb1()
	box := f.must(f.do(staff, "POST", "/api/v1/storage-boxes", `{"customer_id":`+itoa(alice)+`,"name":"bx11","host":"bx11.example.net"}`), 201).num("id")
	np1 := f.must(f.do(billing, "POST", "/api/v1/locks", `{"scope":{"server_id":`+itoa(web1)+`},"reason":"non_payment"}`), 201).num("id")
	np2 := f.must(f.do(billing, "POST", "/api/v1/locks", `{"scope":{"storage_box_id":`+itoa(box)+`},"reason":"non_payment"}`), 201).num("id")
	abuse := f.must(f.do(staff, "POST", "/api/v1/locks", `{"scope":{"ips":["203.0.113.10"]},"reason":"spam","warn":true}`), 201).num("id")

	paid := f.must(f.do(billing, "POST", "/api/v1/customers/"+itoa(alice)+"/payment-received", `{"note":"invoice 4711 paid"}`), 200)
	if items, _ := paid.Body["items"].([]any); len(items) != 2 {
		t.Fatalf("payment received unlocked %s, want both non-payment locks", paid.Raw)
	}
	for _, id := range []int64{np1, np2} {
		if l := f.must(f.do(staff, "GET", "/api/v1/locks/"+itoa(id), ""), 200); l.Body["state"] != "unlocked" {
			t.Errorf("non-payment lock %d after payment: %s", id, l.Raw)
		}
	}
	if l := f.must(f.do(staff, "GET", "/api/v1/locks/"+itoa(abuse), ""), 200); l.Body["state"] != "warned" {
		t.Errorf("the spam warning changed with the payment: %s", l.Raw)
	}
	// billing may not escalate an abuse warning; staff may
	f.must(f.do(billing, "POST", "/api/v1/locks/"+itoa(abuse)+"/escalate", `{"note":"x"}`), 403)
	if l := f.must(f.do(staff, "POST", "/api/v1/locks/"+itoa(abuse)+"/escalate", `{"note":"still spamming"}`), 200); l.Body["state"] != "locked" {
		t.Errorf("escalated warning: %s", l.Raw)
	}
}

// aliceWithWeb1 creates customer Alice (as staff) with her server web1 on
// 203.0.113.10 and returns both IDs.
func (f *fixture) aliceWithWeb1() (customer, server int64) {
	staff := f.tokens["staff"]
	customer = f.must(f.do(staff, "POST", "/api/v1/customers", `{"name":"Alice","email":"alice@example.net"}`), 201).num("id")
	server = f.must(f.do(staff, "POST", "/api/v1/servers", `{"customer_id":`+itoa(customer)+`,"name":"web1","ips":["203.0.113.10"]}`), 201).num("id")
	return customer, server
}
