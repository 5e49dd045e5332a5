package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"padlock/internal/enforce"
	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/mail"
	"padlock/internal/store"
)

type lockRow struct {
	Lock     lock.Lock
	Enforce  string
	EnfError string
}

func (u *UI) lockRows(ls []lock.Lock) []lockRow {
	now := u.now()
	out := make([]lockRow, len(ls))
	for i, l := range ls {
		out[i].Lock = l
		out[i].Enforce, out[i].EnfError = u.enforcementOf(l, now)
	}
	return out
}

// requestsPageLimit is how many unlock requests the requests page shows.
const requestsPageLimit = 50

// dashboardLimit is how many rows each dashboard panel shows.
const dashboardLimit = 25

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	d := map[string]any{"Title": "Dashboard"}
	var active []lock.Lock
	for _, st := range []lock.State{lock.StateLocked, lock.StateUnlockRequested, lock.StateWarned} {
		ls, err := u.svc.ListLocks(ctx, s.Actor, lock.LockFilter{State: st, Limit: dashboardLimit})
		if err != nil {
			return err
		}
		active = append(active, ls...)
	}
	slices.SortFunc(active, func(a, b lock.Lock) int { return int(b.ID - a.ID) })
	if len(active) > dashboardLimit {
		active = active[:dashboardLimit]
	}
	d["Active"] = u.lockRows(active)
	reqs, err := u.svc.ListUnlockRequests(ctx, s.Actor, lock.UnlockRequestFilter{State: lock.RequestOpen, Limit: 1000})
	if err != nil {
		return err
	}
	slices.Reverse(reqs) // oldest first: they waited longest
	d["PendingCount"] = len(reqs)
	if len(reqs) > dashboardLimit {
		reqs = reqs[:dashboardLimit]
	}
	d["Pending"] = reqs
	fs, err := u.db.ListFindings(ctx, store.FindingFilter{Limit: 10})
	if err != nil {
		return err
	}
	d["Findings"] = fs
	if u.pol != nil {
		b := u.pol.CircuitBreaker(ctx)
		d["Breaker"] = &b
	}
	if u.enf != nil {
		var drift []enforce.Status
		for _, st := range u.enf.Statuses() {
			if st.State != enforce.StateApplied {
				drift = append(drift, st)
			}
		}
		d["Drift"] = drift
		d["EnfKnown"] = true
	}
	n, oldest, err := u.db.OutboxStats(ctx)
	if err != nil {
		return err
	}
	d["Unsent"], d["OldestUnsent"] = n, oldest
	ms, err := u.db.ListMails(ctx, 0, 0, 200)
	if err != nil {
		return err
	}
	var problems []mail.Queued
	for _, m := range ms {
		if m.SentAt == nil && (m.LastError != "" || u.now().Sub(m.CreatedAt) > 15*time.Minute) {
			problems = append(problems, m)
		}
	}
	d["MailProblems"] = problems
	u.render(w, r, http.StatusOK, "dashboard", s, d)
	return nil
}

func (u *UI) adminLocks(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	f := lock.LockFilter{State: lock.State(q.Get("state")), Reason: lock.Reason(q.Get("reason")), Limit: 100}
	f.CustomerID, _ = strconv.ParseInt(q.Get("customer"), 10, 64)
	f.AfterID, _ = strconv.ParseInt(q.Get("after"), 10, 64)
	problem := ""
	if v := strings.TrimSpace(q.Get("ip")); v != "" {
		ip, err := netip.ParseAddr(v)
		if err != nil {
			problem = fmt.Sprintf("%q is not an IP address.", v)
		}
		f.IP = ip
	}
	var ls []lock.Lock
	if problem == "" {
		var err error
		ls, err = u.svc.ListLocks(r.Context(), s.Actor, f)
		if errors.Is(err, lock.ErrValidation) {
			problem = message(err)
		} else if err != nil {
			return err
		}
	}
	next := ""
	if len(ls) == f.Limit {
		nq := r.URL.Query()
		nq.Set("after", strconv.FormatInt(ls[len(ls)-1].ID, 10))
		next = "/admin/locks?" + nq.Encode()
	}
	u.render(w, r, http.StatusOK, "admin_locks", s, map[string]any{"Title": "Locks", "Rows": u.lockRows(ls), "Q": q, "Next": next,
		"Problem": problem, "States": lock.States, "Reasons": lock.Reasons})
	return nil
}

// adminCreateLock locks a product by hand: a server, a storage box or
// addresses, for a reason, with a note; optionally from a finding.
func (u *UI) adminCreateLock(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	req := lock.CreateLockRequest{Reason: lock.Reason(r.PostFormValue("reason")), Note: strings.TrimSpace(r.PostFormValue("note"))}
	back := "/admin/locks"
	if b := r.PostFormValue("back"); strings.HasPrefix(b, "/admin/") {
		back = b
	}
	bad := func(field, msg string) error {
		return u.back(w, r, back, "", &lock.Error{Kind: lock.ErrValidation, Field: field, Message: msg})
	}
	if req.Note == "" {
		return bad("note", "a lock by hand needs a reason note")
	}
	target := strings.TrimSpace(r.PostFormValue("target"))
	switch kind := r.PostFormValue("kind"); kind {
	case "server", "storage_box":
		var id int64
		var err error
		if id, err = strconv.ParseInt(target, 10, 64); err != nil {
			var e error
			if kind == "server" {
				var sv inventory.Server
				sv, e = u.serverByName(r, s, target)
				id = sv.ID
			} else {
				e = errNotFound
			}
			if e != nil {
				return bad("target", fmt.Sprintf("no %s %q", strings.ReplaceAll(kind, "_", " "), target))
			}
		}
		if kind == "server" {
			req.Scope.ServerID = id
		} else {
			req.Scope.StorageBoxID = id
		}
	case "ips":
		for _, f := range strings.FieldsFunc(target, func(c rune) bool { return c == ',' || c == ' ' }) {
			ip, err := netip.ParseAddr(f)
			if err != nil {
				return bad("target", fmt.Sprintf("%q is not an IP address", f))
			}
			req.Scope.IPs = append(req.Scope.IPs, ip)
		}
	case "subnet":
		p, err := netip.ParsePrefix(target)
		if err != nil {
			return bad("target", fmt.Sprintf("%q is not a prefix", target))
		}
		req.Scope.Subnet = p
	default:
		return bad("kind", "choose what to lock")
	}
	if v := r.PostFormValue("warn_hours"); v != "" && v != "0" {
		h, err := strconv.Atoi(v)
		if err != nil || h < 0 {
			return bad("warn_hours", "the warning period is a number of hours")
		}
		t := u.now().Add(time.Duration(h) * time.Hour)
		req.WarnUntil = &t
	}
	if fid, _ := strconv.ParseInt(r.PostFormValue("finding"), 10, 64); fid > 0 {
		files, err := u.db.FindingEvidence(ctx, fid, true)
		if err != nil {
			return err
		}
		req.FindingID = fid
		for _, f := range files {
			req.Evidence = append(req.Evidence, mail.Attachment{Name: f.Name, ContentType: f.ContentType, Data: f.Data})
		}
	}
	l, err := u.svc.CreateLock(ctx, s.Actor, req, "")
	if err != nil {
		return u.back(w, r, back, "", err)
	}
	if req.FindingID != 0 {
		if err := u.db.CloseFinding(ctx, req.FindingID, l.ID, u.now()); err != nil && !errors.Is(err, lock.ErrNotFound) {
			return err
		}
	}
	return u.back(w, r, fmt.Sprintf("/admin/locks/%d", l.ID), fmt.Sprintf("Lock %s created.", l.LockingID), nil)
}

func (u *UI) serverByName(r *http.Request, s *session, name string) (inventory.Server, error) {
	res, err := u.svc.ListServers(r.Context(), s.Actor, lock.InventoryFilter{Limit: 1000})
	if err != nil {
		return inventory.Server{}, err
	}
	for _, sv := range res {
		if sv.Name == name {
			return sv, nil
		}
	}
	return inventory.Server{}, errNotFound
}

func (u *UI) adminLock(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	l, err := u.svc.GetLock(r.Context(), s.Actor, id)
	if err != nil {
		return err
	}
	v, err := u.lockView(r, s.Actor, l, false)
	if err != nil {
		return err
	}
	enf, enfErr := u.enforcementOf(l, u.now())
	cust, _ := u.svc.GetCustomer(r.Context(), s.Actor, l.CustomerID)
	u.render(w, r, http.StatusOK, "admin_lock", s, map[string]any{"Title": "Lock " + l.LockingID, "V": v, "Enforce": enf, "EnfError": enfErr, "Customer": cust})
	return nil
}

func (u *UI) adminLockEvidence(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	l, err := u.svc.GetLock(r.Context(), s.Actor, id)
	if err != nil {
		return err
	}
	return u.serveEvidence(w, r, l.FindingID)
}

// adminLockAction: unlock, relock, escalate (warning → lock), whitelist.
func (u *UI) adminLockAction(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	note := strings.TrimSpace(r.PostFormValue("note"))
	back := fmt.Sprintf("/admin/locks/%d", id)
	var l lock.Lock
	switch r.PathValue("action") {
	case "unlock", "relock", "escalate":
		if note == "" {
			return u.back(w, r, back, "", &lock.Error{Kind: lock.ErrValidation, Field: "note", Message: "a change by hand needs a reason note"})
		}
		act := map[string]lock.Action{"unlock": lock.ActionUnlock, "relock": lock.ActionRelock, "escalate": lock.ActionLock}[r.PathValue("action")]
		l, err = u.svc.Apply(ctx, s.Actor, id, act, note)
		if err == nil {
			return u.back(w, r, back, fmt.Sprintf("Lock %s is now %s.", l.LockingID, strings.ToLower(stateLabel(l.State))), nil)
		}
	case "whitelist":
		var wl lock.Whitelist
		wl, err = u.svc.AddWhitelist(ctx, s.Actor, id, r.PostFormValue("ip"))
		if err == nil {
			return u.back(w, r, back, fmt.Sprintf("%s whitelisted until %s.", wl.IP, wl.ExpiresAt.Format("2006-01-02 15:04 UTC")), nil)
		}
	default:
		return errNotFound
	}
	if errors.Is(err, lock.ErrNotFound) {
		return err
	}
	return u.back(w, r, back, "", err)
}

func (u *UI) adminWhitelistRemove(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	err = u.svc.RemoveWhitelist(r.Context(), s.Actor, id)
	if errors.Is(err, lock.ErrNotFound) {
		if _, gerr := u.svc.GetLock(r.Context(), s.Actor, id); gerr != nil {
			return gerr
		}
	}
	return u.back(w, r, fmt.Sprintf("/admin/locks/%d", id), "Whitelist entry removed.", err)
}

type requestRow struct {
	R    lock.UnlockRequest
	Lock lock.Lock
	Age  time.Duration
}

func (u *UI) adminRequests(w http.ResponseWriter, r *http.Request, s *session) error {
	state := lock.UnlockRequestState(r.URL.Query().Get("state"))
	if state == "" {
		state = lock.RequestOpen
	}
	reqs, err := u.svc.ListUnlockRequests(r.Context(), s.Actor, lock.UnlockRequestFilter{State: state, Limit: 500})
	if err != nil {
		return err
	}
	total := len(reqs)
	if state == lock.RequestOpen {
		slices.Reverse(reqs) // oldest first: they waited longest
	}
	if len(reqs) > requestsPageLimit {
		reqs = reqs[:requestsPageLimit]
	}
	// One query for the locks of the shown requests instead of one each.
	locks := map[int64]lock.Lock{}
	if len(reqs) > 0 && state == lock.RequestOpen {
		ls, err := u.svc.ListLocks(r.Context(), s.Actor, lock.LockFilter{State: lock.StateUnlockRequested, Limit: 1000})
		if err != nil {
			return err
		}
		for _, l := range ls {
			locks[l.ID] = l
		}
	}
	rows := make([]requestRow, 0, len(reqs))
	for _, q := range reqs {
		row := requestRow{R: q, Age: u.now().Sub(q.CreatedAt).Truncate(time.Minute)}
		l, ok := locks[q.LockID]
		if !ok {
			l, _ = u.svc.GetLock(r.Context(), s.Actor, q.LockID)
		}
		row.Lock = l
		rows = append(rows, row)
	}
	u.render(w, r, http.StatusOK, "admin_requests", s, map[string]any{"Title": "Unlock requests", "Rows": rows, "State": string(state), "Total": total})
	return nil
}

func (u *UI) adminDecide(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	note := strings.TrimSpace(r.PostFormValue("note"))
	back := "/admin/requests"
	if b := r.PostFormValue("back"); strings.HasPrefix(b, "/admin/") {
		back = b
	}
	var l lock.Lock
	switch r.PathValue("decision") {
	case "approve":
		_, l, err = u.svc.ApproveUnlock(r.Context(), s.Actor, id, note)
	case "reject":
		_, l, err = u.svc.RejectUnlock(r.Context(), s.Actor, id, note)
	default:
		return errNotFound
	}
	if errors.Is(err, lock.ErrNotFound) {
		return err
	}
	msg := ""
	if err == nil {
		msg = fmt.Sprintf("Unlock request #%d %sd; lock %s is now %s.", id, r.PathValue("decision"), l.LockingID, strings.ToLower(stateLabel(l.State)))
	}
	return u.back(w, r, back, msg, err)
}

func (u *UI) adminFindings(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	f := store.FindingFilter{Kind: q.Get("kind"), State: q.Get("state"), Limit: 100}
	f.BeforeID, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	if v := q.Get("ip"); v != "" {
		f.IP, _ = netip.ParseAddr(v)
	}
	fs, err := u.db.ListFindings(r.Context(), f)
	if err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "admin_findings", s, map[string]any{"Title": "Findings", "Findings": fs, "Q": q})
	return nil
}

// findingReason maps a detector kind to the lock reason staff usually pick.
func findingReason(kind string) lock.Reason {
	switch kind {
	case "netscan":
		return lock.ReasonNetscan
	case "packet_limit":
		return lock.ReasonPacketLimit
	case "spam":
		return lock.ReasonSpam
	case "incorrect_network_config":
		return lock.ReasonIncorrectNetwork
	}
	return lock.ReasonNetworkAttack
}

func (u *UI) adminFinding(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	f, err := u.db.Finding(r.Context(), id)
	if err != nil {
		return err
	}
	ev, err := u.evidenceOf(r.Context(), f.ID)
	if err != nil {
		return err
	}
	var pretty strings.Builder
	var x any
	if json.Unmarshal(f.Detail, &x) == nil {
		b, _ := json.MarshalIndent(x, "", "  ")
		pretty.Write(b)
	}
	u.render(w, r, http.StatusOK, "admin_finding", s, map[string]any{"Title": fmt.Sprintf("Finding #%d", f.ID), "F": f, "Evidence": ev,
		"Detail": pretty.String(), "Reason": findingReason(f.Kind), "Reasons": lock.Reasons})
	return nil
}

func (u *UI) adminFindingEvidence(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	return u.serveEvidence(w, r, id)
}

func (u *UI) adminInventory(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	q := r.URL.Query()
	after, _ := strconv.ParseInt(q.Get("after"), 10, 64)
	cs, err := u.svc.ListCustomers(ctx, s.Actor, lock.InventoryFilter{Limit: 100, AfterID: after})
	if err != nil {
		return err
	}
	d := map[string]any{"Title": "Inventory", "Customers": cs}
	if len(cs) == 100 {
		d["Next"] = fmt.Sprintf("/admin/inventory?after=%d", cs[len(cs)-1].ID)
	}
	if cid, _ := strconv.ParseInt(q.Get("customer"), 10, 64); cid > 0 {
		c, err := u.svc.GetCustomer(ctx, s.Actor, cid)
		if err != nil {
			return err
		}
		f := lock.InventoryFilter{CustomerID: cid, Limit: 1000}
		sv, err := u.svc.ListServers(ctx, s.Actor, f)
		if err != nil {
			return err
		}
		bx, err := u.svc.ListStorageBoxes(ctx, s.Actor, f)
		if err != nil {
			return err
		}
		ad, err := u.svc.ListAddresses(ctx, s.Actor, f)
		if err != nil {
			return err
		}
		d["Customer"], d["Servers"], d["Boxes"], d["Addresses"] = c, sv, bx, ad
	}
	u.render(w, r, http.StatusOK, "admin_inventory", s, d)
	return nil
}

// adminImport upserts an uploaded JSON or CSV inventory document.
func (u *UI) adminImport(w http.ResponseWriter, r *http.Request, s *session) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<20)
	f, hdr, err := r.FormFile("file")
	if err != nil {
		return u.back(w, r, "/admin/inventory", "", &lock.Error{Kind: lock.ErrValidation, Field: "file", Message: "choose a JSON or CSV file to import"})
	}
	defer f.Close()
	var doc inventory.Document
	if strings.HasSuffix(strings.ToLower(hdr.Filename), ".csv") || strings.HasPrefix(hdr.Header.Get("Content-Type"), "text/csv") {
		doc, err = inventory.DecodeCSV(f)
	} else {
		doc, err = inventory.DecodeJSON(f)
	}
	if err != nil {
		return u.back(w, r, "/admin/inventory", "", &lock.Error{Kind: lock.ErrValidation, Field: "file", Message: hdr.Filename + ": " + err.Error()})
	}
	res, err := u.svc.Import(r.Context(), s.Actor, doc)
	if errors.Is(err, lock.ErrForbidden) {
		return err
	}
	return u.back(w, r, "/admin/inventory", fmt.Sprintf("Imported %s: %d created, %d updated, %d unchanged.", hdr.Filename, res.Created, res.Updated, res.Unchanged), err)
}

func (u *UI) adminMails(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	lid, _ := strconv.ParseInt(q.Get("lock"), 10, 64)
	cid, _ := strconv.ParseInt(q.Get("customer"), 10, 64)
	ms, err := u.db.ListMails(r.Context(), lid, cid, 200)
	if err != nil {
		return err
	}
	filter := q.Get("state")
	var out []mail.Queued
	for _, m := range ms {
		st := mailState(m)
		if filter == "" || filter == "sent" && st == "sent" || filter == "pending" && m.SentAt == nil || filter == "failed" && m.LastError != "" && m.SentAt == nil {
			out = append(out, m)
		}
	}
	u.render(w, r, http.StatusOK, "admin_mails", s, map[string]any{"Title": "Sent mail", "Mails": out, "Q": q})
	return nil
}

func (u *UI) adminAudit(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	f := lock.AuditFilter{Action: q.Get("action"), Actor: q.Get("actor"), ObjectType: q.Get("object"), Limit: 200}
	f.LockID, _ = strconv.ParseInt(q.Get("lock"), 10, 64)
	f.CustomerID, _ = strconv.ParseInt(q.Get("customer"), 10, 64)
	f.BeforeID, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	if lid := strings.TrimSpace(q.Get("locking_id")); lid != "" {
		l, err := u.svc.GetLockByLockingID(r.Context(), s.Actor, lid)
		if err != nil {
			u.render(w, r, http.StatusOK, "admin_audit", s, map[string]any{"Title": "Audit log", "Q": q, "Problem": message(err)})
			return nil
		}
		f.LockID = l.ID
	}
	for _, k := range []string{"since", "until"} {
		if v := q.Get(k); v != "" {
			t, err := time.Parse("2006-01-02", v)
			if err != nil {
				u.render(w, r, http.StatusOK, "admin_audit", s, map[string]any{"Title": "Audit log", "Q": q, "Problem": k + " must be a date like 2026-01-02."})
				return nil
			}
			if k == "since" {
				f.Since = t
			} else {
				f.Until = t.Add(24 * time.Hour)
			}
		}
	}
	evs, err := u.svc.ListAudit(r.Context(), s.Actor, f)
	if err != nil {
		return err
	}
	next := ""
	if len(evs) == f.Limit {
		nq := r.URL.Query()
		nq.Set("before", strconv.FormatInt(evs[len(evs)-1].ID, 10))
		next = "/admin/audit?" + nq.Encode()
	}
	u.render(w, r, http.StatusOK, "admin_audit", s, map[string]any{"Title": "Audit log", "Q": q, "Events": evs, "Next": next})
	return nil
}

type policyRow struct {
	Reason lock.Reason
	Label  string
	P      lock.ReasonPolicy
}

func (u *UI) adminPolicy(w http.ResponseWriter, r *http.Request, s *session) error {
	var rows []policyRow
	for _, re := range lock.Reasons {
		p, _ := u.svc.Policy(re)
		rows = append(rows, policyRow{Reason: re, Label: reasonLabel(re), P: p})
	}
	d := map[string]any{"Title": "Policy and thresholds", "Rows": rows}
	if u.set != nil {
		b, err := json.MarshalIndent(u.set, "", "  ")
		if err != nil {
			return err
		}
		d["Settings"] = string(b)
	}
	if u.pol != nil {
		b := u.pol.CircuitBreaker(r.Context())
		d["Breaker"] = &b
	}
	u.render(w, r, http.StatusOK, "admin_policy", s, d)
	return nil
}

// adminBreakerReset closes the circuit breaker (admin and staff only; it
// turns automatic locking back on).
func (u *UI) adminBreakerReset(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Actor.Role != lock.RoleAdmin && s.Actor.Role != lock.RoleStaff {
		return &lock.Error{Kind: lock.ErrForbidden, Message: "only staff may close the circuit breaker"}
	}
	if u.pol == nil {
		return errNotFound
	}
	before := u.pol.CircuitBreaker(r.Context())
	if err := u.pol.ResetCircuitBreaker(r.Context()); err != nil {
		return err
	}
	u.log.Warn("circuit breaker closed by staff", "by", s.Actor.String(), "was", before.State, "detail", before.Detail)
	return u.back(w, r, "/admin/policy", "Circuit breaker closed: automatic locking goes on. Findings queued for review stay in the findings list.", nil)
}

func (u *UI) adminTickets(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	if state == "all" {
		state = ""
	}
	ts, err := u.svc.ListTickets(r.Context(), s.Actor, lock.TicketFilter{State: state, Kind: lock.TicketKind(q.Get("kind")), Limit: 200})
	if err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "tickets", s, map[string]any{"Title": "Tickets", "Tickets": ts})
	return nil
}
