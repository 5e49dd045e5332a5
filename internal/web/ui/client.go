package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"padlock/internal/evidence"
	"padlock/internal/inventory"
	"padlock/internal/lock"
	"padlock/internal/mail"
)

// clientLockLimit bounds how many locks the client area reads per page.
const clientLockLimit = 1000

// serverLockingLimit bounds the locks the Server locking page details
// (each needs its whitelist); the rest are counted and linked.
const serverLockingLimit = 20

// activeStates are the states a product counts as locked (or warned) in.
var activeStates = []lock.State{lock.StateWarned, lock.StateLocked, lock.StateUnlockRequested}

// getLock loads a lock by Locking ID for the actor; a malformed ID is as
// unknown as another customer's.
func (u *UI) getLock(r *http.Request, s *session) (lock.Lock, error) {
	l, err := u.svc.GetLockByLockingID(r.Context(), s.Actor, r.PathValue("lid"))
	if errors.Is(err, lock.ErrValidation) {
		return lock.Lock{}, errNotFound
	}
	return l, err
}

func pathInt(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, errNotFound
	}
	return id, nil
}

type productRow struct {
	Kind  string
	Name  string
	Addrs string
	ID    int64
	Locks []lock.Lock
}

// products lists the customer's servers, IPs and storage boxes with their
// lock state at a glance.
func (u *UI) products(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	f := lock.InventoryFilter{Limit: 1000}
	servers, err := u.svc.ListServers(ctx, s.Actor, f)
	if err != nil {
		return err
	}
	boxes, err := u.svc.ListStorageBoxes(ctx, s.Actor, f)
	if err != nil {
		return err
	}
	addrs, err := u.svc.ListAddresses(ctx, s.Actor, f)
	if err != nil {
		return err
	}
	active, err := u.activeLocks(ctx, s.Actor)
	if err != nil {
		return err
	}
	recent, err := u.svc.ListLocks(ctx, s.Actor, lock.LockFilter{State: lock.StateUnlocked, Limit: 10})
	if err != nil {
		return err
	}
	overlaps := func(l lock.Lock, ps []netip.Prefix) bool {
		for _, a := range l.Prefixes {
			for _, b := range ps {
				if a.Overlaps(b) {
					return true
				}
			}
		}
		return false
	}
	var rows []productRow
	for _, sv := range servers {
		row := productRow{Kind: "Server", Name: sv.Name, Addrs: prefixes(sv.IPs), ID: sv.ID}
		for _, l := range active {
			if l.Scope.ServerID == sv.ID || l.ScopeKind != lock.ScopeServer && l.ScopeKind != lock.ScopeStorageBox && overlaps(l, sv.IPs) {
				row.Locks = append(row.Locks, l)
			}
		}
		rows = append(rows, row)
	}
	for _, ad := range addrs {
		row := productRow{Kind: "IP address", Name: inventory.FormatPrefix(ad.Prefix), Addrs: ad.Note, ID: ad.ID}
		if !ad.Prefix.IsSingleIP() {
			row.Kind = "Subnet"
		}
		for _, l := range active {
			if l.ScopeKind != lock.ScopeServer && l.ScopeKind != lock.ScopeStorageBox && overlaps(l, []netip.Prefix{ad.Prefix}) {
				row.Locks = append(row.Locks, l)
			}
		}
		rows = append(rows, row)
	}
	for _, b := range boxes {
		row := productRow{Kind: "Storage box", Name: b.Name, Addrs: b.Host, ID: b.ID}
		for _, l := range active {
			if l.Scope.StorageBoxID == b.ID {
				row.Locks = append(row.Locks, l)
			}
		}
		rows = append(rows, row)
	}
	u.render(w, r, http.StatusOK, "products", s, map[string]any{"Title": "Your products", "Rows": rows, "Recent": recent, "ActiveCount": len(active)})
	return nil
}

type lockOffer struct {
	Lock      lock.Lock
	Product   product
	Allowed   bool
	Why       string
	Active    []lock.Whitelist
	TTL       string
	Requested bool
}

// serverLocking is "Servers → Server locking": the visitor's public IP,
// ready to whitelist with one click on each locked product that allows it.
func (u *UI) serverLocking(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	now := u.now()
	var offers []lockOffer
	more := 0
	for _, st := range activeStates {
		ls, err := u.svc.ListLocks(ctx, s.Actor, lock.LockFilter{State: st, Limit: clientLockLimit})
		if err != nil {
			return err
		}
		for _, l := range ls {
			if len(offers) == serverLockingLimit {
				more++
				continue
			}
			o := lockOffer{Lock: l, Product: u.productOf(ctx, s.Actor, l)}
			if pol, ok := u.svc.Policy(l.Reason); ok {
				o.TTL = humanDuration(pol.WhitelistTTL)
			}
			ws, err := u.svc.ListWhitelist(ctx, s.Actor, l.ID)
			if err != nil {
				return err
			}
			o.Active = activeWhitelist(ws, now)
			offers = append(offers, o)
		}
	}
	// the whitelist offers in one go: the customer's other locks are read
	// once for the page, not once per lock
	ls := make([]lock.Lock, len(offers))
	for i := range offers {
		ls[i] = offers[i].Lock
	}
	ok, why := u.svc.WhitelistOffersAt(ls, now)
	for i := range offers {
		offers[i].Allowed, offers[i].Why = ok[i], why[i]
	}
	ipProblem := ""
	if !s.IP.IsValid() {
		ipProblem = "We could not tell the address you connect from."
	} else if _, err := u.svc.CheckWhitelistIP(s.IP.String()); err != nil {
		ipProblem = message(err) + " Enter the public address of your home or office instead."
	}
	u.render(w, r, http.StatusOK, "server_locking", s, map[string]any{"Title": "Server locking", "IP": s.IP, "IPProblem": ipProblem, "Offers": offers, "More": more})
	return nil
}

type clientLockView struct {
	Lock       lock.Lock
	Policy     lock.ReasonPolicy
	Product    product
	Since      string
	Allowed    bool
	Why        string
	Whitelist  []lock.Whitelist
	Requests   []lock.UnlockRequest
	Open       *lock.UnlockRequest
	CanRequest bool
	ByPayment  bool // the payment lifts the lock: no unlock request, no evidence
	Evidence   []evidenceView
	Timeline   []timelineEntry
	Mails      []mail.Queued
	Tickets    []lock.Ticket
	Addrs      []string
	Subnets    []string
	IP         string
	Base       string // URL of the lock page
	Downloads  bool
}

func (u *UI) lockView(r *http.Request, a lock.Actor, l lock.Lock, forCustomer bool) (*clientLockView, error) {
	ctx := r.Context()
	now := u.now()
	v := &clientLockView{Lock: l, Product: u.productOf(ctx, a, l)}
	v.Policy, _ = u.svc.Policy(l.Reason)
	v.Allowed, v.Why = u.whitelistOffer(l, now)
	ws, err := u.svc.ListWhitelist(ctx, a, l.ID)
	if err != nil {
		return nil, err
	}
	v.Whitelist = activeWhitelist(ws, now)
	if v.Requests, err = u.svc.ListUnlockRequests(ctx, a, lock.UnlockRequestFilter{LockID: l.ID, Limit: 50}); err != nil {
		return nil, err
	}
	for i := range v.Requests {
		if v.Requests[i].State == lock.RequestOpen {
			v.Open = &v.Requests[i]
		}
	}
	v.ByPayment = l.LiftedByPayment()
	v.CanRequest = v.Open == nil && l.State == lock.StateLocked && !v.ByPayment
	evs, err := u.svc.ListAudit(ctx, a, lock.AuditFilter{LockID: l.ID, Limit: 500})
	if err != nil {
		return nil, err
	}
	v.Timeline = timeline(evs, forCustomer)
	if v.Mails, err = u.db.ListMails(ctx, l.ID, l.CustomerID, 100); err != nil {
		return nil, err
	}
	if v.Evidence, err = u.evidenceOf(ctx, l.FindingID); err != nil {
		return nil, err
	}
	if forCustomer {
		// the customer's page shows what the mails carried; the finding's
		// JSON is for staff and the API
		v.Evidence = slices.DeleteFunc(v.Evidence, func(e evidenceView) bool { return e.Name == evidence.NameJSON })
	}
	if len(v.Evidence) == 0 {
		v.Evidence = mailEvidence(v.Mails)
	}
	if v.Tickets, err = u.svc.ListTickets(ctx, a, lock.TicketFilter{LockID: l.ID, Limit: 50}); err != nil {
		return nil, err
	}
	if v.Product.ServerID != 0 {
		kvm, err := u.svc.ListTickets(ctx, a, lock.TicketFilter{Kind: lock.TicketKVMConsole, Limit: 100})
		if err != nil {
			return nil, err
		}
		for _, t := range kvm {
			if t.ProductID == v.Product.ServerID && t.LockID == 0 {
				v.Tickets = append(v.Tickets, t)
			}
		}
	}
	for _, p := range l.Prefixes {
		if p.IsSingleIP() {
			v.Addrs = append(v.Addrs, p.Addr().String())
		} else {
			v.Subnets = append(v.Subnets, p.String())
		}
	}
	for _, e := range v.Evidence {
		if e.ID != 0 {
			v.Downloads = true
		}
	}
	v.Base = lockURL(l)
	if !forCustomer {
		v.Base = fmt.Sprintf("/admin/locks/%d", l.ID)
	}
	v.Since = l.CreatedAt.Format("2006-01-02 15:04 UTC")
	if l.LockedAt != nil {
		v.Since = l.LockedAt.Format("2006-01-02 15:04 UTC")
	}
	return v, nil
}

func (u *UI) clientLock(w http.ResponseWriter, r *http.Request, s *session) error {
	l, err := u.getLock(r, s)
	if err != nil {
		return err
	}
	v, err := u.lockView(r, s.Actor, l, true)
	if err != nil {
		return err
	}
	v.IP = s.IP.String()
	u.render(w, r, http.StatusOK, "client_lock", s, map[string]any{"Title": "Lock " + l.LockingID, "V": v})
	return nil
}

func (u *UI) clientEvidence(w http.ResponseWriter, r *http.Request, s *session) error {
	l, err := u.getLock(r, s)
	if err != nil {
		return err
	}
	return u.serveEvidence(w, r, l.FindingID)
}

func (u *UI) serveEvidence(w http.ResponseWriter, r *http.Request, findingID int64) error {
	eid, err := pathInt(r, "eid")
	if err != nil {
		return err
	}
	e, err := u.db.EvidenceFile(r.Context(), eid)
	if err != nil {
		return err
	}
	if findingID == 0 || e.FindingID != findingID {
		return errNotFound
	}
	w.Header().Set("Content-Type", e.ContentType)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", e.Name))
	w.Header().Set("Content-Length", strconv.Itoa(len(e.Data)))
	_, _ = w.Write(e.Data)
	return nil
}

func lockURL(l lock.Lock) string { return "/client/locks/" + l.LockingID }

// clientBack is where a client POST returns to: the form's "back" field
// when it is a client page, else def.
func clientBack(r *http.Request, def string) string {
	if b := r.PostFormValue("back"); strings.HasPrefix(b, "/client/") && !strings.HasPrefix(b, "//") {
		return b
	}
	return def
}

func (u *UI) clientWhitelist(w http.ResponseWriter, r *http.Request, s *session) error {
	l, err := u.getLock(r, s)
	if err != nil {
		return err
	}
	wl, err := u.svc.AddWhitelist(r.Context(), s.Actor, l.ID, r.PostFormValue("ip"))
	msg := ""
	if err == nil {
		msg = fmt.Sprintf("%s is whitelisted for %s until %s.", wl.IP, l.LockingID, wl.ExpiresAt.Format("2006-01-02 15:04 UTC"))
	}
	return u.back(w, r, clientBack(r, lockURL(l)), msg, err)
}

func (u *UI) clientWhitelistRemove(w http.ResponseWriter, r *http.Request, s *session) error {
	l, err := u.getLock(r, s)
	if err != nil {
		return err
	}
	err = u.svc.RemoveWhitelist(r.Context(), s.Actor, l.ID)
	return u.back(w, r, clientBack(r, lockURL(l)), "The whitelist entry was removed.", err)
}

func (u *UI) clientUnlockRequest(w http.ResponseWriter, r *http.Request, s *session) error {
	l, err := u.getLock(r, s)
	if err != nil {
		return err
	}
	cause := strings.TrimSpace(r.PostFormValue("cause"))
	fixed := strings.TrimSpace(r.PostFormValue("fixed"))
	if cause == "" || fixed == "" {
		return u.back(w, r, lockURL(l)+"#unlock", "", &lock.Error{Kind: lock.ErrValidation, Field: "cause",
			Message: "please tell us what caused the problem and what you did about it"})
	}
	msg := "What caused the problem:\n" + cause + "\n\nWhat was done about it:\n" + fixed
	_, err = u.svc.RequestUnlock(r.Context(), s.Actor, l.ID, msg)
	return u.back(w, r, lockURL(l)+"#unlock", "Your unlock request was sent. We will process it as soon as we can.", err)
}

func (u *UI) clientKVM(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := pathInt(r, "id")
	if err != nil {
		return err
	}
	tk, err := u.svc.OrderKVM(r.Context(), s.Actor, id, r.PostFormValue("message"))
	if errors.Is(err, lock.ErrNotFound) {
		return err
	}
	msg := ""
	if err == nil {
		msg = fmt.Sprintf("Your KVM console order was sent as ticket #%d.", tk.ID)
	}
	return u.back(w, r, clientBack(r, "/client/tickets"), msg, err)
}

// activeLocks are the actor's locks in an active state (warned, locked,
// unlock requested), each state up to clientLockLimit.
func (u *UI) activeLocks(ctx context.Context, a lock.Actor) ([]lock.Lock, error) {
	var active []lock.Lock
	for _, st := range activeStates {
		ls, err := u.svc.ListLocks(ctx, a, lock.LockFilter{State: st, Limit: clientLockLimit})
		if err != nil {
			return nil, err
		}
		active = append(active, ls...)
	}
	return active, nil
}

func (u *UI) clientTickets(w http.ResponseWriter, r *http.Request, s *session) error {
	return u.ticketsPage(w, r, s, http.StatusOK, nil)
}

// ticketsPage lists the customer's tickets above the form for a new one;
// form (nil: empty) is a refused submission shown again with its problem.
func (u *UI) ticketsPage(w http.ResponseWriter, r *http.Request, s *session, status int, form map[string]string) error {
	ctx := r.Context()
	ts, err := u.svc.ListTickets(ctx, s.Actor, lock.TicketFilter{Limit: 200})
	if err != nil {
		return err
	}
	active, err := u.activeLocks(ctx, s.Actor)
	if err != nil {
		return err
	}
	if form == nil {
		form = map[string]string{"lock": r.URL.Query().Get("lock")}
	}
	u.render(w, r, status, "tickets", s, map[string]any{"Title": "Support tickets", "Tickets": ts, "Locks": active, "Form": form})
	return nil
}

func (u *UI) clientOpenTicket(w http.ResponseWriter, r *http.Request, s *session) error {
	nt := lock.NewTicket{Subject: r.PostFormValue("subject"), Message: r.PostFormValue("message")}
	back := clientBack(r, "/client/tickets")
	if lid := r.PostFormValue("lock"); lid != "" {
		l, err := u.svc.GetLockByLockingID(r.Context(), s.Actor, lid)
		if err != nil {
			return errNotFound
		}
		nt.LockID = l.ID
	}
	if sid := r.PostFormValue("server"); sid != "" {
		id, err := strconv.ParseInt(sid, 10, 64)
		if err != nil {
			return errNotFound
		}
		nt.ProductType, nt.ProductID = string(inventory.ProductServer), id
	}
	tk, err := u.svc.OpenTicket(r.Context(), s.Actor, nt)
	if errors.Is(err, lock.ErrNotFound) {
		return err
	}
	if errors.Is(err, lock.ErrValidation) && back == "/client/tickets" {
		// the form of the tickets page: shown again with what was typed
		return u.ticketsPage(w, r, s, http.StatusBadRequest, map[string]string{
			"lock": r.PostFormValue("lock"), "subject": nt.Subject, "message": nt.Message, "problem": message(err)})
	}
	if err == nil {
		back = fmt.Sprintf("/client/tickets/%d", tk.ID)
	}
	return u.back(w, r, back, "Your ticket was sent.", err)
}

// ticketPage shows one ticket's thread in an area ("client" or "admin");
// the service decides whether the actor may see it.
func (u *UI) ticketPage(area string) func(http.ResponseWriter, *http.Request, *session) error {
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		id, err := pathInt(r, "id")
		if err != nil {
			return err
		}
		tk, err := u.svc.GetTicket(r.Context(), s.Actor, id)
		if err != nil {
			return err
		}
		var l *lock.Lock
		if tk.LockID != 0 {
			if x, err := u.svc.GetLock(r.Context(), s.Actor, tk.LockID); err == nil {
				l = &x
			}
		}
		u.render(w, r, http.StatusOK, "ticket", s, map[string]any{"Title": fmt.Sprintf("Ticket #%d", tk.ID), "T": tk, "Lock": l,
			"Reply": fmt.Sprintf("/%s/tickets/%d/reply", area, tk.ID)})
		return nil
	}
}

// ticketReply adds a message to a ticket and goes back to its thread.
func (u *UI) ticketReply(area, done string) func(http.ResponseWriter, *http.Request, *session) error {
	return func(w http.ResponseWriter, r *http.Request, s *session) error {
		id, err := pathInt(r, "id")
		if err != nil {
			return err
		}
		_, err = u.svc.AddTicketMessage(r.Context(), s.Actor, id, r.PostFormValue("body"))
		if errors.Is(err, lock.ErrNotFound) {
			return err
		}
		return u.back(w, r, fmt.Sprintf("/%s/tickets/%d", area, id), done, err)
	}
}
