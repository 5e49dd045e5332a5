// Package ui owns the client area (customers) and the admin area (staff):
// server-rendered pages with html/template, enhanced by the vendored htmx
// but usable without JavaScript (plain forms, POST-redirect-GET). Every read
// and change of locks, whitelist entries, unlock requests, tickets and the
// inventory goes through lock.Service with the signed-in user's lock.Actor,
// so authorization is exactly that of the REST API; the store is used only
// for web accounts and sessions, findings with their evidence files and the
// mail outbox (staff views, and a customer's own mails after the service
// showed it the lock).
//
// ui must not import the enforcement drivers, notify or the API package; it
// reads enforcement status and the circuit breaker through the small
// interfaces it declares (Enforcement, Policy).
package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"

	"padlock/internal/enforce"
	"padlock/internal/lock"
	"padlock/internal/notify"
	"padlock/internal/store"
	"padlock/internal/web/auth"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Configuration of the web areas.
type Configuration struct {
	// BaseURL is the public URL of padlock (for the password reset link
	// in mails), e.g. https://padlock.example.
	BaseURL string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed when showing the customer's public IP.
	TrustedProxies []netip.Prefix
	// SessionLifetime is how long a sign-in lasts (default 12h); a session
	// idle for an hour ends earlier.
	SessionLifetime time.Duration
	// SecureCookies marks the session cookie Secure (set it behind HTTPS).
	SecureCookies bool
	// ResetLinkTTL is how long a password reset link works (default 1h).
	ResetLinkTTL time.Duration
	// LoginLimits bound failed sign-ins (default auth.DefaultLimits).
	LoginLimits auth.Limits
}

// Enforcement tells whether each lock is applied on the network
// (enforce.Loop implements it).
type Enforcement interface {
	Status(lockID int64) (enforce.Status, bool)
	Statuses() []enforce.Status
}

// BreakerState is the circuit breaker of the automatic locking policy.
type BreakerState struct {
	State  string // closed, open, half_open
	Detail string
	Since  time.Time
}

// Policy is the automatic locking policy (nil: not configured).
type Policy interface {
	CircuitBreaker(ctx context.Context) BreakerState
	// ResetCircuitBreaker closes an open breaker: staff decided that
	// automatic locking may go on (findings queued for review stay).
	ResetCircuitBreaker(ctx context.Context) error
}

// Dependencies of the web areas.
type Dependencies struct {
	Service     *lock.Service
	Store       *store.DB
	Enforcement Enforcement // nil: enforcement status unknown
	Policy      Policy      // nil: "not configured"
	// Settings is the effective configuration shown on the admin policy
	// page (rendered as JSON); nil shows only the reason policies.
	Settings any
	Logger   *slog.Logger
	Clock    func() time.Time
	// Mails renders the password reset mail in the user's language; nil:
	// the built-in templates.
	Mails *notify.Renderer
}

// UI serves /, /client/..., /admin/... and /static/....
type UI struct {
	cfg     Configuration
	svc     *lock.Service
	db      *store.DB
	enf     Enforcement
	pol     Policy
	set     any
	mails   *notify.Renderer
	log     *slog.Logger
	now     func() time.Time
	sm      *scs.SessionManager
	pages   map[string]*template.Template
	handler http.Handler
	stop    context.CancelFunc
	done    chan struct{}
}

// New builds the handler; it does no I/O.
func New(cfg Configuration, deps Dependencies) (*UI, error) {
	if deps.Service == nil || deps.Store == nil {
		return nil, errors.New("ui: Service and Store are required")
	}
	if cfg.SessionLifetime <= 0 {
		cfg.SessionLifetime = 12 * time.Hour
	}
	if cfg.ResetLinkTTL <= 0 {
		cfg.ResetLinkTTL = time.Hour
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	cfg.LoginLimits = cfg.LoginLimits.WithDefaults()
	u := &UI{cfg: cfg, svc: deps.Service, db: deps.Store, enf: deps.Enforcement, pol: deps.Policy, set: deps.Settings,
		mails: deps.Mails, log: deps.Logger, now: deps.Clock}
	if u.mails == nil {
		var err error
		if u.mails, err = notify.NewRenderer(notify.RendererConfig{}); err != nil {
			return nil, fmt.Errorf("ui: %w", err)
		}
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if u.now == nil {
		u.now = time.Now
	}
	sm := scs.New()
	sm.Store = deps.Store.Sessions()
	sm.Lifetime = cfg.SessionLifetime
	sm.IdleTimeout = time.Hour
	sm.Cookie.Name = "padlock_session"
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = cfg.SecureCookies
	sm.Cookie.Path = "/"
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		u.log.Error("session", "err", err, "path", r.URL.Path)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
	u.sm = sm
	var err error
	if u.pages, err = parsePages(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	u.routes(mux)
	// Cross-site POSTs are refused before anything else (Sec-Fetch-Site /
	// Origin checks); the per-session token in every form is the second
	// line, SameSite=Lax the third.
	u.handler = http.NewCrossOriginProtection().Handler(sm.LoadAndSave(securityHeaders(mux)))
	return u, nil
}

// Start runs the housekeeping of web state: expired sessions, used or
// expired reset links and old login attempts are deleted at start and
// hourly.
func (u *UI) Start(ctx context.Context) error {
	ctx, u.stop = context.WithCancel(context.WithoutCancel(ctx))
	u.done = make(chan struct{})
	go func() {
		defer close(u.done)
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			now := u.now()
			if err := u.db.PruneWebState(ctx, now, now.Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
				u.log.Error("prune web state", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stop ends the housekeeping.
func (u *UI) Stop(ctx context.Context) error {
	if u.stop == nil {
		return nil
	}
	u.stop()
	select {
	case <-u.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServeHTTP serves the web areas.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.handler.ServeHTTP(w, r) }

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

func (u *UI) routes(m *http.ServeMux) {
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	m.HandleFunc("GET /{$}", u.root)
	m.HandleFunc("GET /client/signin", u.signinForm)
	m.HandleFunc("POST /client/signin", u.signin)
	m.HandleFunc("GET /admin/signin", u.signinForm)
	m.HandleFunc("POST /admin/signin", u.signin)
	m.HandleFunc("POST /client/signout", u.signout)
	m.HandleFunc("POST /admin/signout", u.signout)
	m.HandleFunc("GET /client/reset", u.resetRequestForm)
	m.HandleFunc("POST /client/reset", u.resetRequest)
	m.HandleFunc("GET /client/reset/{token}", u.resetForm)
	m.HandleFunc("POST /client/reset/{token}", u.reset)

	c := func(pattern string, fn handlerFunc) { m.Handle(pattern, u.customer(fn)) }
	c("GET /client/{$}", u.products)
	c("GET /client/server-locking", u.serverLocking)
	c("GET /client/locks/{lid}", u.clientLock)
	c("GET /client/locks/{lid}/evidence/{eid}", u.clientEvidence)
	c("POST /client/locks/{lid}/whitelist", u.clientWhitelist)
	c("POST /client/locks/{lid}/whitelist/remove", u.clientWhitelistRemove)
	c("POST /client/locks/{lid}/unlock-request", u.clientUnlockRequest)
	c("POST /client/servers/{id}/kvm", u.clientKVM)
	c("GET /client/tickets", u.clientTickets)
	c("POST /client/tickets", u.clientOpenTicket)
	c("GET /client/tickets/{id}", u.ticketPage("client"))
	c("POST /client/tickets/{id}/reply", u.ticketReply("client", "Your reply was sent."))
	m.Handle("/client/", u.customer(func(w http.ResponseWriter, r *http.Request, s *session) error { return errNotFound }))

	a := func(pattern string, fn handlerFunc) { m.Handle(pattern, u.staff(fn)) }
	a("GET /admin/{$}", u.dashboard)
	a("GET /admin/locks", u.adminLocks)
	a("POST /admin/locks", u.adminCreateLock)
	a("GET /admin/locks/{id}", u.adminLock)
	a("GET /admin/locks/{id}/evidence/{eid}", u.adminLockEvidence)
	a("POST /admin/locks/{id}/{action}", u.adminLockAction)
	a("POST /admin/locks/{id}/whitelist/remove", u.adminWhitelistRemove)
	a("GET /admin/requests", u.adminRequests)
	a("POST /admin/requests/{id}/{decision}", u.adminDecide)
	a("GET /admin/findings", u.adminFindings)
	a("GET /admin/findings/{id}", u.adminFinding)
	a("GET /admin/findings/{id}/evidence/{eid}", u.adminFindingEvidence)
	a("GET /admin/inventory", u.adminInventory)
	a("POST /admin/inventory/import", u.adminImport)
	a("GET /admin/mails", u.adminMails)
	a("GET /admin/audit", u.adminAudit)
	a("GET /admin/policy", u.adminPolicy)
	a("POST /admin/policy/breaker/reset", u.adminBreakerReset)
	a("GET /admin/tickets", u.adminTickets)
	a("GET /admin/tickets/{id}", u.ticketPage("admin"))
	a("POST /admin/tickets/{id}/reply", u.ticketReply("admin", "Reply sent to the customer."))
	m.Handle("/admin/", u.staff(func(w http.ResponseWriter, r *http.Request, s *session) error { return errNotFound }))
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// session is the signed-in user of a request.
type session struct {
	User  store.User
	Actor lock.Actor
	CSRF  string
	IP    netip.Addr
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session) error

var errNotFound = &lock.Error{Kind: lock.ErrNotFound, Message: "page not found"}

const (
	keyUser  = "uid"
	keyCSRF  = "csrf"
	keyFlash = "flash"
	keyError = "flash_error"
)

// current returns the signed-in user, or nil.
func (u *UI) current(r *http.Request) (*session, error) {
	id := u.sm.GetInt64(r.Context(), keyUser)
	if id == 0 {
		return nil, nil
	}
	usr, err := u.db.User(r.Context(), id)
	if errors.Is(err, lock.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &session{User: usr, Actor: usr.Actor(), CSRF: u.sm.GetString(r.Context(), keyCSRF), IP: auth.ClientIP(r, u.cfg.TrustedProxies)}, nil
}

func (u *UI) authed(fn handlerFunc, staff bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := u.current(r)
		if err != nil {
			u.fail(w, r, nil, err)
			return
		}
		if s == nil {
			dest := "/client/signin"
			if strings.HasPrefix(r.URL.Path, "/admin/") {
				dest = "/admin/signin"
			}
			if r.Method == http.MethodGet {
				dest += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, dest, http.StatusSeeOther)
			return
		}
		isCustomer := s.User.Role == lock.RoleCustomer
		if staff == isCustomer {
			// Customers never learn what the admin area has, and staff
			// have no client area of their own.
			u.fail(w, r, s, errNotFound)
			return
		}
		if r.Method == http.MethodPost {
			if s.CSRF == "" || r.PostFormValue("csrf") != s.CSRF {
				u.render(w, r, http.StatusForbidden, "error", s, map[string]any{"Title": "Form expired", "Message": "The form was too old or came from another site. Please go back, reload the page and try again."})
				return
			}
		}
		if err := fn(w, r, s); err != nil {
			u.fail(w, r, s, err)
		}
	})
}

func (u *UI) customer(fn handlerFunc) http.Handler { return u.authed(fn, false) }
func (u *UI) staff(fn handlerFunc) http.Handler    { return u.authed(fn, true) }

// fail renders a service error as a page: not found 404 (the same page
// whether the object does not exist or belongs to someone else),
// forbidden 403, anything else 500 (logged).
func (u *UI) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	switch {
	case errors.Is(err, lock.ErrNotFound):
		u.render(w, r, http.StatusNotFound, "error", s, map[string]any{"Title": "Not found", "Message": "There is nothing here, or it is not yours to see."})
	case errors.Is(err, lock.ErrForbidden):
		u.render(w, r, http.StatusForbidden, "error", s, map[string]any{"Title": "Not allowed", "Message": message(err)})
	case errors.Is(err, lock.ErrValidation), errors.Is(err, lock.ErrConflict), errors.Is(err, lock.ErrInvalidTransition):
		u.render(w, r, http.StatusBadRequest, "error", s, map[string]any{"Title": "Not possible", "Message": message(err)})
	default:
		u.log.Error("web request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		u.render(w, r, http.StatusInternalServerError, "error", s, map[string]any{"Title": "Something went wrong", "Message": "Please try again in a moment."})
	}
}

// message is the user-facing text of a service error.
func message(err error) string {
	if d := lock.ErrorDetails(err); d != nil {
		m := d.Message
		if m != "" {
			return strings.ToUpper(m[:1]) + m[1:] + "."
		}
	}
	return err.Error()
}

// back redirects (303) after a POST, with a flash message or error.
func (u *UI) back(w http.ResponseWriter, r *http.Request, to, flash string, err error) error {
	switch {
	case err == nil:
		if flash != "" {
			u.sm.Put(r.Context(), keyFlash, flash)
		}
	case errors.Is(err, lock.ErrValidation), errors.Is(err, lock.ErrConflict), errors.Is(err, lock.ErrInvalidTransition), errors.Is(err, lock.ErrForbidden):
		u.sm.Put(r.Context(), keyError, message(err))
	default:
		return err
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// view is what every page template gets.
type view struct {
	Title string
	Area  string // client, admin or "" (signed out)
	Path  string
	S     *session
	CSRF  string
	Flash string
	Error string
	Now   time.Time
	D     any
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, s *session, d any) {
	t, ok := u.pages[name]
	if !ok {
		http.Error(w, "no template "+name, http.StatusInternalServerError)
		return
	}
	v := view{Path: r.URL.Path, S: s, Now: u.now(), D: d}
	if s != nil {
		v.CSRF = s.CSRF
		v.Area = "client"
		if s.User.Role != lock.RoleCustomer {
			v.Area = "admin"
		}
	}
	if m, ok := d.(map[string]any); ok {
		if t, ok := m["Title"].(string); ok {
			v.Title = t
		}
	}
	if t, ok := d.(interface{ title() string }); ok {
		v.Title = t.title()
	}
	v.Flash = u.sm.PopString(r.Context(), keyFlash)
	v.Error = u.sm.PopString(r.Context(), keyError)
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		u.log.Error("render", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprint(w, b.String())
}

func (u *UI) root(w http.ResponseWriter, r *http.Request) {
	s, err := u.current(r)
	switch {
	case err != nil:
		u.fail(w, r, nil, err)
	case s == nil:
		http.Redirect(w, r, "/client/signin", http.StatusSeeOther)
	case s.User.Role == lock.RoleCustomer:
		http.Redirect(w, r, "/client/", http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/admin/", http.StatusSeeOther)
	}
}
