package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"padlock/internal/decode/pcapfile"
	"padlock/internal/detect"
	"padlock/internal/evidence"
	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/mail"
	"padlock/internal/policy"
	"padlock/internal/store"
)

// spoofer is the MAC of testdata/captures/spoof.pcap's spoofing host
// 203.0.113.13 (its legitimate pings and the spoofed frames carry it).
const spoofer = "3a:4e:b1:9f:f4:e9"

func capture(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "captures", name)
}

// replay feeds a capture's records into the running pipeline's sink.
func replay(t *testing.T, p *Pipeline, name string) {
	t.Helper()
	rd, err := pcapfile.Open(capture(name), pcapfile.Configuration{}, pcapfile.Dependencies{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if _, err := rd.Run(context.Background(), p.Sink()); err != nil {
		t.Fatal(err)
	}
}

// waitCases waits until the store holds n incorrect_network_config cases.
func waitCases(t *testing.T, e *env, n int) []store.FindingCase {
	t.Helper()
	end := time.Now().Add(20 * time.Second)
	for {
		cases, _ := e.db.ListFindings(context.Background(), store.FindingFilter{Kind: string(detect.KindIncorrectConf)})
		if len(cases) >= n {
			time.Sleep(100 * time.Millisecond) // nothing more may come
			cases, _ = e.db.ListFindings(context.Background(), store.FindingFilter{Kind: string(detect.KindIncorrectConf)})
			return cases
		}
		if time.Now().After(end) {
			t.Fatalf("%d incorrect_network_config cases, want %d", len(cases), n)
		}
		e.clk.Add(time.Second)
		time.Sleep(20 * time.Millisecond)
	}
}

func spoofDoc(macs ...string) inventory.Document {
	return inventory.Document{Customers: []inventory.DocCustomer{{Name: "spoofco", Email: "noc@spoofco.example",
		Servers: []inventory.DocServer{{Name: "spoofer", IPs: []string{"203.0.113.13"}, MACs: macs}}}}}
}

// TestSpoofedSourceUnattributed: the spoofed sources of spoof.pcap, whose
// sender's MAC the inventory does not know, are stored as review cases
// keyed by the spoofed address (customer 0, no lock), flagged as spoofed
// sources. Before, RecordFinding refused them (no internal IP) and they
// were lost.
func TestSpoofedSourceUnattributed(t *testing.T) {
	e := newEnvDoc(t, spoofDoc(), netip.MustParsePrefix("203.0.113.0/24"), policy.DefaultConfiguration(), nil)
	e.clk.t = time.Now().UTC()
	ctx := context.Background()
	if err := e.p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.p.Stop(ctx)
	replay(t, e.p, "spoof.pcap")
	cases := waitCases(t, e, 2)
	got := map[string]store.FindingCase{}
	for _, c := range cases {
		got[c.InternalIP.String()] = c
	}
	for _, src := range []string{"198.51.100.66", "198.18.77.77"} {
		c, ok := got[src]
		if !ok {
			t.Errorf("no case for spoofed source %s; cases %v", src, cases)
			continue
		}
		d := string(c.Detail)
		if c.CustomerID != 0 || c.LockID != 0 || !strings.Contains(d, `"spoofed_source":true`) || !strings.Contains(d, `"attributed_by":"none"`) ||
			!strings.Contains(d, `"action":"review"`) || !strings.Contains(d, `"source":"`+src+`"`) {
			t.Errorf("case %s: %+v\n%s", src, c, d)
		}
		ev, _ := e.db.FindingEvidence(ctx, c.ID, false)
		if len(ev) == 0 {
			t.Errorf("case %s has no evidence", src)
		}
	}
	if len(cases) != 2 {
		t.Errorf("%d cases, want the two spoofed sources", len(cases))
	}
	if ls, _ := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{}); len(ls) != 0 {
		t.Errorf("locks without an owner: %+v", ls)
	}
	if st := e.pol.State(); st.Open {
		t.Errorf("spoofed sources opened the breaker: %+v", st)
	}
}

// TestSpoofedSourceByMAC: with the spoofer's MAC in the inventory, both
// spoofed sources of spoof.pcap land in one case of the spoofing server,
// which is warned (incorrect_network_config defaults to warn) as a whole.
func TestSpoofedSourceByMAC(t *testing.T) {
	e := newEnvDoc(t, spoofDoc(strings.ToUpper(spoofer)), netip.MustParsePrefix("203.0.113.0/24"), policy.DefaultConfiguration(), nil)
	e.clk.t = time.Now().UTC()
	ctx := context.Background()
	if err := e.p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.p.Stop(ctx)
	replay(t, e.p, "spoof.pcap")
	end := time.Now().Add(20 * time.Second)
	var c store.FindingCase
	for {
		cases, _ := e.db.ListFindings(ctx, store.FindingFilter{Kind: string(detect.KindIncorrectConf)})
		// both spoofed sources in one case; on a loaded machine the fast
		// clock may let a source fire once more before this loop looks, so
		// at least two findings
		if len(cases) == 1 && cases[0].Count >= 2 {
			c = cases[0]
			break
		}
		if time.Now().After(end) || len(cases) > 1 {
			t.Fatalf("cases %+v, want one case of 203.0.113.13 with both spoofed sources", cases)
		}
		e.clk.Add(time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	if c.InternalIP != netip.MustParseAddr("203.0.113.13") || c.CustomerID == 0 || c.LockID == 0 ||
		!strings.Contains(string(c.Detail), `"attributed_by":"mac"`) || !strings.Contains(string(c.Detail), `"name":"spoofer"`) {
		t.Fatalf("case %+v\n%s", c, c.Detail)
	}
	l, err := e.svc.GetLock(ctx, lock.System, c.LockID)
	if err != nil || l.State != lock.StateWarned || l.ScopeKind != lock.ScopeServer || l.Reason != lock.ReasonIncorrectNetwork || l.CustomerID != c.CustomerID {
		t.Fatalf("lock %+v %v", l, err)
	}
	mails, _ := e.db.ListMails(ctx, l.ID, 0, 10)
	if len(mails) != 1 || mails[0].To != "noc@spoofco.example" {
		t.Errorf("warning mails %+v", mails)
	}
}

// TestWarningLapsesWithoutRecurrence: a warned address whose abuse stopped
// is not locked at the deadline: the warning lapses with its note and the
// case closes, before the deadline makes it enforced. One whose case got
// new evidence after the warning is locked when the deadline passes.
func TestWarningLapsesWithoutRecurrence(t *testing.T) {
	pc := policy.DefaultConfiguration()
	pc.Netscan = policy.KindPolicy{Action: policy.ActionWarn, Consecutive: 1, WarnDeadline: time.Hour}
	e := newEnv(t, 2, pc, nil)
	ctx := context.Background()
	t0 := e.clk.Now()
	for _, ip := range []string{"198.51.100.1", "198.51.100.2"} {
		if err := e.p.Handle(ctx, scanFinding(ip, t0)); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.Add(20 * time.Minute) // only .2 keeps scanning
	if err := e.p.Handle(ctx, scanFinding("198.51.100.2", e.clk.Now())); err != nil {
		t.Fatal(err)
	}
	lockOf := func(ip string) lock.Lock {
		ls, err := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{IP: netip.MustParseAddr(ip)})
		if err != nil || len(ls) != 1 {
			t.Fatalf("locks of %s: %+v %v", ip, ls, err)
		}
		return ls[0]
	}
	quiet, busy := lockOf("198.51.100.1"), lockOf("198.51.100.2")
	if quiet.State != lock.StateWarned || busy.State != lock.StateWarned {
		t.Fatalf("states %s %s", quiet.State, busy.State)
	}

	e.clk.Set(t0.Add(time.Hour - 5*time.Minute))
	e.p.Sweep(ctx)
	if l := lockOf("198.51.100.1"); l.State != lock.StateWarned {
		t.Fatalf("lapsed 5 minutes before the deadline (sweep interval 30s): %s", l.State)
	}

	// The last sweep before the deadline lets the quiet warning lapse, so
	// it never becomes enforced.
	e.clk.Set(t0.Add(time.Hour - 10*time.Second))
	e.p.Sweep(ctx)
	l := lockOf("198.51.100.1")
	if l.State != lock.StateUnlocked || l.LockedAt != nil {
		t.Fatalf("quiet warning: %s (locked at %v), want it lapsed", l.State, l.LockedAt)
	}
	audit, _ := e.svc.ListAudit(ctx, lock.System, lock.AuditFilter{LockID: l.ID, Action: string(lock.ActionUnlock)})
	if len(audit) != 1 || audit[0].Note != LapseNote {
		t.Errorf("audit of the lapse: %+v", audit)
	}
	c, _ := e.db.Finding(ctx, quiet.FindingID)
	if c.State != "closed" {
		t.Errorf("case of the lapsed warning is %s", c.State)
	}
	if l := lockOf("198.51.100.2"); l.State != lock.StateWarned {
		t.Fatalf("warning with new evidence: %s before its deadline", l.State)
	}

	e.clk.Set(t0.Add(time.Hour + time.Second))
	e.p.Sweep(ctx)
	if l := lockOf("198.51.100.2"); l.State != lock.StateLocked {
		t.Errorf("warning with new evidence after the deadline: %s, want locked", l.State)
	}
	if l := lockOf("198.51.100.1"); l.State != lock.StateUnlocked {
		t.Errorf("lapsed warning is %s after the deadline", l.State)
	}
	// A lapsed warning is no earlier lock: the next offence is warned
	// again (outside probation), not locked at once as a repeat offender.
	if n := e.p.priorLocks(ctx, quiet.CustomerID, lock.ReasonNetscan, e.clk.Now()); n != 0 {
		t.Errorf("prior locks after a lapsed warning: %d", n)
	}
}

// staffMails lists the outbox's mails to the staff address.
func staffMails(t *testing.T, e *env, to string) []mail.Queued {
	t.Helper()
	all, err := e.db.ListMails(context.Background(), 0, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []mail.Queued
	for _, m := range all {
		if m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// TestStaffAlertBreaker: the breaker trip queues exactly one staff mail in
// the (real SQLite) outbox, however many findings keep arriving; a new
// trip after staff closed it queues another.
func TestStaffAlertBreaker(t *testing.T) {
	pc := policy.DefaultConfiguration()
	pc.AutoLockLimit = policy.RateLimit{PerHour: 100, PerCustomer: 5}
	pc.StaffEmail = "noc@example.net"
	e := newEnv(t, 30, pc, nil)
	ctx := context.Background()
	for i := 1; i <= 15; i++ {
		if err := e.p.Handle(ctx, scanFinding(fmt.Sprintf("198.51.100.%d", i), e.clk.Now())); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(time.Second)
	}
	e.p.Sweep(ctx)
	ms := staffMails(t, e, "noc@example.net")
	if len(ms) != 1 || ms[0].Kind != MailStaffBreaker || !strings.Contains(ms[0].Subject, "circuit breaker open") ||
		!strings.Contains(ms[0].Text, "11 servers tripped netscan") {
		t.Fatalf("staff mails after the trip: %+v", ms)
	}
	e.pol.Reset()
	for i := 16; i <= 27; i++ {
		if err := e.p.Handle(ctx, scanFinding(fmt.Sprintf("198.51.100.%d", i), e.clk.Now())); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(time.Second)
	}
	if ms := staffMails(t, e, "noc@example.net"); len(ms) != 2 {
		t.Errorf("%d staff mails after a second trip, want 2", len(ms))
	}
}

// TestStaffAlertSamplingChange: a trip by a sampling-rate change (from a
// collector goroutine) is mailed by the sweeper goroutine.
func TestStaffAlertSamplingChange(t *testing.T) {
	pc := policy.DefaultConfiguration()
	pc.StaffEmail = "noc@example.net"
	e := newEnv(t, 1, pc, nil)
	ctx := context.Background()
	if err := e.p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.p.Stop(ctx)
	sink := e.p.Sink()
	for _, rate := range []uint32{1, 1, 100} {
		r := scanRecords(netip.MustParseAddr("198.51.100.1"), time.Now())[0]
		r.SamplingRate = rate
		sink.Record(&r)
		time.Sleep(50 * time.Millisecond)
	}
	end := time.Now().Add(10 * time.Second)
	for len(staffMails(t, e, "noc@example.net")) == 0 {
		if time.Now().After(end) {
			t.Fatalf("no staff mail after a sampling change; breaker %+v", e.pol.State())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ms := staffMails(t, e, "noc@example.net"); !strings.Contains(ms[0].Text, "changed from 1 to 100") {
		t.Errorf("mail %+v", ms[0])
	}
}

// TestStaffAlertNotify: a notify finding queues one staff mail per case
// with its evidence; later findings of the case do not mail again; without
// staff_email nothing is queued.
func TestStaffAlertNotify(t *testing.T) {
	pc := policy.DefaultConfiguration()
	pc.Netscan.Action = policy.ActionNotify
	pc.StaffEmail = "noc@example.net"
	e := newEnv(t, 3, pc, nil)
	ctx := context.Background()
	for _, ip := range []string{"198.51.100.1", "198.51.100.1", "198.51.100.2", "198.51.100.1"} {
		if err := e.p.Handle(ctx, scanFinding(ip, e.clk.Now())); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(20 * time.Minute)
	}
	ms := staffMails(t, e, "noc@example.net")
	if len(ms) != 2 {
		t.Fatalf("%d staff mails for two notify cases, want 2: %+v", len(ms), ms)
	}
	subjects := ms[0].Subject + "|" + ms[1].Subject
	if !strings.Contains(subjects, "netscan from 198.51.100.1") || !strings.Contains(subjects, "netscan from 198.51.100.2") || ms[0].Kind != MailStaffNotify {
		t.Errorf("subjects %q", subjects)
	}
	all, _ := e.db.ListMails(ctx, 0, 0, 100)
	if len(all) != 2 {
		t.Errorf("%d mails in the outbox, want only the staff alerts (notify never mails customers)", len(all))
	}
	if full, _ := e.db.ListMails(ctx, 0, 0, 1); len(full) == 1 {
		// ListMails does not load attachments; the notify mail's text names the case.
		if !strings.Contains(full[0].Text, "Case:") {
			t.Errorf("text %q", full[0].Text)
		}
	}

	// A burst of notify cases (random spoofing: one case per source) is
	// capped per hour.
	for i := range StaffNotifyPerHour + 10 {
		if err := e.p.Handle(ctx, scanFinding(fmt.Sprintf("198.18.%d.%d", i/200, i%200+1), e.clk.Now())); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, m := range staffMails(t, e, "noc@example.net") {
		if m.Kind == MailStaffNotify {
			n++
		}
	}
	if n != StaffNotifyPerHour+1 {
		t.Errorf("%d notify mails after a burst, want the hourly cap %d (one of the first two still in the hour)", n, StaffNotifyPerHour)
	}

	pc.StaffEmail = ""
	q := newEnv(t, 1, pc, nil)
	if err := q.p.Handle(ctx, scanFinding("198.51.100.1", q.clk.Now())); err != nil {
		t.Fatal(err)
	}
	if all, _ := q.db.ListMails(ctx, 0, 0, 100); len(all) != 0 {
		t.Errorf("mails without staff_email: %+v", all)
	}
}

// TestCustomerNoticeOnNotify: with policy action notify, two findings of
// one case queue exactly one customer notice in the (real SQLite) outbox,
// to the customer's address, with the netscan log attached and without the
// finding's JSON; the staff still get their alert, which says a notice went
// out. A case without a customer gets no notice.
func TestCustomerNoticeOnNotify(t *testing.T) {
	pc := policy.DefaultConfiguration()
	pc.Netscan.Action = policy.ActionNotify
	pc.StaffEmail = "noc@example.net"
	e := newEnv(t, 2, pc, nil)
	type call struct {
		ip       netip.Addr
		customer int64
		files    []string
	}
	var calls []call
	e.p.deps.Notice = func(ctx context.Context, f detect.Finding, ip netip.Addr, customer int64, files []evidence.File) (mail.Message, error) {
		c := call{ip: ip, customer: customer}
		var atts []mail.Attachment
		for _, x := range files {
			c.files = append(c.files, x.Name)
			atts = append(atts, mail.Attachment{Name: x.Name, ContentType: x.ContentType, Data: x.Data})
		}
		calls = append(calls, c)
		cu, err := e.svc.GetCustomer(ctx, lock.System, customer)
		if err != nil {
			return mail.Message{}, err
		}
		return mail.Message{To: cu.Email, Subject: "Abuse notice: " + string(f.Kind) + " from " + ip.String(), Text: "nothing is locked",
			Attachments: atts, Kind: "notice"}, nil
	}
	ctx := context.Background()
	for _, ip := range []string{"198.51.100.2", "198.51.100.2", "198.18.0.9"} { // the last has no customer
		if err := e.p.Handle(ctx, scanFinding(ip, e.clk.Now())); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(time.Minute)
	}
	if len(calls) != 1 || calls[0].ip != netip.MustParseAddr("198.51.100.2") || calls[0].customer == 0 ||
		!slices.Equal(calls[0].files, []string{evidence.NameNetscanLog}) {
		t.Fatalf("notice calls %+v, want one for 198.51.100.2 with netscan.log only", calls)
	}
	queued, err := e.db.ClaimMails(ctx, e.clk.Now().Add(time.Hour), e.clk.Now().Add(2*time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	var notices, alerts []mail.Queued
	for _, m := range queued {
		switch m.To {
		case "c2@example.net":
			notices = append(notices, m)
		case "noc@example.net":
			alerts = append(alerts, m)
		default:
			t.Errorf("unexpected mail to %q: %s", m.To, m.Subject)
		}
	}
	if len(notices) != 1 {
		t.Fatalf("%d customer notices for two findings of one case, want 1", len(notices))
	}
	n := notices[0]
	if n.Kind != "notice" || n.CustomerID != calls[0].customer || n.LockID != 0 || len(n.Attachments) != 1 ||
		n.Attachments[0].Name != evidence.NameNetscanLog || !bytes.Contains(n.Attachments[0].Data, []byte("198.51.100.2")) {
		t.Errorf("notice %+v", n.Message)
	}
	if len(alerts) != 2 {
		t.Fatalf("%d staff alerts, want 2 (one per case)", len(alerts))
	}
	for _, a := range alerts {
		withNotice := strings.Contains(a.Text, "a notice with the evidence was queued for the customer (c2@example.net)")
		if strings.Contains(a.Subject, "198.51.100.2") != withNotice {
			t.Errorf("staff alert %q says notice=%v:\n%s", a.Subject, withNotice, a.Text)
		}
	}
	if ls, _ := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{Limit: 10}); len(ls) != 0 {
		t.Errorf("notify locked something: %+v", ls)
	}
}

// A finding for an address whose server staff already locked for the same
// reason joins that lock: no second lock, no second mail, no second unlock
// request for the customer.
func TestFindingJoinsCoveringLock(t *testing.T) {
	pc := policy.DefaultConfiguration()
	pc.Netscan = policy.KindPolicy{Action: policy.ActionLock, Consecutive: 1}
	e := newEnv(t, 1, pc, nil)
	ctx := context.Background()
	svs, err := e.svc.ListServers(ctx, lock.System, lock.InventoryFilter{})
	if err != nil || len(svs) != 1 {
		t.Fatal(svs, err)
	}
	staffLock, err := e.svc.CreateLock(ctx, lock.Actor{Role: lock.RoleStaff, Name: "alice"},
		lock.CreateLockRequest{Scope: lock.Scope{ServerID: svs[0].ID}, Reason: lock.ReasonNetscan, Note: "seen by hand"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.Handle(ctx, scanFinding("198.51.100.1", e.clk.Now())); err != nil {
		t.Fatal(err)
	}
	ls, _ := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{})
	if len(ls) != 1 || ls[0].ID != staffLock.ID {
		t.Fatalf("locks after the finding: %+v, want only the staff's server lock", ls)
	}
	cases, _ := e.db.ListFindings(ctx, store.FindingFilter{Kind: string(detect.KindNetscan)})
	if len(cases) != 1 || cases[0].LockID != staffLock.ID {
		t.Fatalf("finding case: %+v, want it linked to lock %d", cases, staffLock.ID)
	}
	ms, _ := e.db.ListMails(ctx, 0, 0, 100)
	n := 0
	for _, m := range ms {
		if m.Kind == lock.EventLock {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d lock mails, want the staff lock's one", n)
	}
}

// Each recurrence within probation counts as an offence for the
// escalation, though it re-locks the same lock: the third lock of a reason
// is reserved for staff to lift (staff_unlock_after: 3).
func TestRelocksCountTowardsEscalation(t *testing.T) {
	pc := policy.DefaultConfiguration()
	pc.Netscan = policy.KindPolicy{Action: policy.ActionLock, Consecutive: 1}
	e := newEnv(t, 1, pc, nil)
	ctx := context.Background()
	staff := lock.Actor{Role: lock.RoleStaff, Name: "alice"}
	var l lock.Lock
	for round := 1; round <= 3; round++ {
		if err := e.p.Handle(ctx, scanFinding("198.51.100.1", e.clk.Now())); err != nil {
			t.Fatal(err)
		}
		ls, err := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{})
		if err != nil || len(ls) != 1 || ls[0].State != lock.StateLocked {
			t.Fatalf("round %d: locks %+v %v", round, ls, err)
		}
		l = ls[0]
		if want := round >= 3; l.StaffUnlockOnly != want {
			t.Fatalf("round %d: staff-only unlock %v, want %v", round, l.StaffUnlockOnly, want)
		}
		if round < 3 {
			if _, err := e.svc.Unlock(ctx, staff, l.ID, "fixed"); err != nil {
				t.Fatal(err)
			}
			e.clk.Add(time.Hour)
		}
	}
}

// "consecutive" counts the findings of one episode: three findings days
// apart do not lock (each opens a fresh case after policy.case_idle);
// three within hours do.
func TestConsecutiveFindingsOfOneEpisode(t *testing.T) {
	pc := policy.DefaultConfiguration()
	pc.Netscan = policy.KindPolicy{Action: policy.ActionLock, Consecutive: 3}
	e := newEnv(t, 2, pc, nil)
	ctx := context.Background()
	for range 3 {
		if err := e.p.Handle(ctx, scanFinding("198.51.100.1", e.clk.Now())); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(48 * time.Hour)
	}
	if ls, _ := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{IP: netip.MustParseAddr("198.51.100.1")}); len(ls) != 0 {
		t.Fatalf("three findings two days apart locked: %+v", ls)
	}
	if cs, _ := e.db.ListFindings(ctx, store.FindingFilter{IP: netip.MustParseAddr("198.51.100.1")}); len(cs) != 3 {
		t.Errorf("%d cases, want a fresh one per episode", len(cs))
	}
	for range 3 {
		if err := e.p.Handle(ctx, scanFinding("198.51.100.2", e.clk.Now())); err != nil {
			t.Fatal(err)
		}
		e.clk.Add(2 * time.Hour)
	}
	if ls, _ := e.svc.ListLocks(ctx, lock.System, lock.LockFilter{IP: netip.MustParseAddr("198.51.100.2")}); len(ls) != 1 {
		t.Fatalf("three findings within hours: locks %+v, want one", ls)
	}
}
