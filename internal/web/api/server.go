package api

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"padlock/internal/enforce"
	"padlock/internal/lock"
)

// Authenticator resolves a bearer token to the actor it acts as.
// It returns an error wrapping lock.ErrNotFound for an unknown token.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (lock.Actor, error)
}

// FindingSource serves findings and their evidence files to the API; nil
// disables the findings endpoints.
type FindingSource interface {
	ListFindings(ctx context.Context, a lock.Actor, f FindingFilter) ([]FindingSummary, error)
	EvidenceFile(ctx context.Context, a lock.Actor, findingID int64, name string) (contentType string, data []byte, err error)
}

// Enforcement tells whether a lock is in effect on the network
// (enforce.Loop implements it); nil leaves the field out.
type Enforcement interface {
	Status(lockID int64) (enforce.Status, bool)
}

// Dependencies are what the API needs.
type Dependencies struct {
	Service     *lock.Service
	Auth        Authenticator
	Findings    FindingSource
	Enforcement Enforcement
	Logger      *slog.Logger
	Clock       func() time.Time
}

// API is the REST API handler.
type API struct {
	svc      *lock.Service
	auth     Authenticator
	findings FindingSource
	enf      Enforcement
	log      *slog.Logger
	now      func() time.Time
	mux      *http.ServeMux
}

//go:embed openapi.json
var openapiDoc []byte

// OpenAPI returns the OpenAPI 3 document of this API.
func OpenAPI() []byte { return openapiDoc }

// New builds the API handler. It does no I/O.
func New(deps Dependencies) *API {
	a := &API{svc: deps.Service, auth: deps.Auth, findings: deps.Findings, enf: deps.Enforcement, log: deps.Logger, now: deps.Clock, mux: http.NewServeMux()}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.routes()
	return a
}

func (a *API) routes() {
	m := a.mux
	m.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapiDoc)
	})
	h := func(pattern string, fn handlerFunc) { m.Handle(pattern, a.authed(fn)) }
	h("GET /api/v1/customers", a.listCustomers)
	h("POST /api/v1/customers", a.createCustomer)
	h("GET /api/v1/customers/{id}", byID(a.svc.GetCustomer))
	// billing: the customer paid; every non-payment lock of theirs ends
	h("POST /api/v1/customers/{id}/payment-received", onID(http.StatusOK, true, func(ctx context.Context, ac lock.Actor, id int64, in noteIn) (map[string]any, error) {
		ls, err := a.svc.ClearNonPayment(ctx, ac, id, in.Note)
		views := make([]lockView, 0, len(ls))
		for _, l := range ls {
			views = append(views, a.view(ac, l))
		}
		return list(views), err
	}))
	h("GET /api/v1/servers", a.listServers)
	h("POST /api/v1/servers", a.createServer)
	h("GET /api/v1/servers/{id}", byID(a.svc.GetServer))
	h("POST /api/v1/servers/{id}/kvm", onID(http.StatusCreated, true, func(ctx context.Context, ac lock.Actor, id int64, in messageIn) (lock.Ticket, error) {
		return a.svc.OrderKVM(ctx, ac, id, in.Message)
	}))
	h("GET /api/v1/storage-boxes", a.listStorageBoxes)
	h("POST /api/v1/storage-boxes", a.createStorageBox)
	h("GET /api/v1/storage-boxes/{id}", byID(a.svc.GetStorageBox))
	h("GET /api/v1/addresses", a.listAddresses)
	h("POST /api/v1/addresses", a.createAddress)
	h("GET /api/v1/lookup", a.lookup)
	h("POST /api/v1/inventory/import", a.importInventory)
	h("GET /api/v1/inventory/export", a.exportInventory)
	h("POST /api/v1/locks", a.createLock)
	h("GET /api/v1/locks", a.listLocks)
	h("GET /api/v1/locks/{id}", byID(a.viewed(a.svc.GetLock)))
	h("POST /api/v1/locks/{id}/unlock", onID(http.StatusOK, true, withNote(a.viewedNote(a.svc.Unlock))))
	h("POST /api/v1/locks/{id}/relock", onID(http.StatusOK, true, withNote(a.viewedNote(a.svc.Relock))))
	h("POST /api/v1/locks/{id}/escalate", onID(http.StatusOK, true, withNote(a.viewedNote(a.svc.Escalate))))
	h("GET /api/v1/locks/{id}/whitelist", listByID(a.svc.ListWhitelist))
	h("POST /api/v1/locks/{id}/whitelist", onID(http.StatusCreated, false, func(ctx context.Context, ac lock.Actor, id int64, in struct {
		IP string `json:"ip"`
	}) (lock.Whitelist, error) {
		return a.svc.AddWhitelist(ctx, ac, id, in.IP)
	}))
	h("DELETE /api/v1/locks/{id}/whitelist", a.removeWhitelist)
	h("GET /api/v1/locks/{id}/unlock-requests", listByID(func(ctx context.Context, ac lock.Actor, id int64) ([]lock.UnlockRequest, error) {
		if _, err := a.svc.GetLock(ctx, ac, id); err != nil {
			return nil, err
		}
		return a.svc.ListUnlockRequests(ctx, ac, lock.UnlockRequestFilter{LockID: id})
	}))
	h("POST /api/v1/locks/{id}/unlock-requests", onID(http.StatusCreated, false, func(ctx context.Context, ac lock.Actor, id int64, in messageIn) (lock.UnlockRequest, error) {
		return a.svc.RequestUnlock(ctx, ac, id, in.Message)
	}))
	h("GET /api/v1/unlock-requests", a.listUnlockRequests)
	h("GET /api/v1/unlock-requests/{id}", byID(a.svc.GetUnlockRequest))
	h("POST /api/v1/unlock-requests/{id}/approve", a.decide(a.svc.ApproveUnlock))
	h("POST /api/v1/unlock-requests/{id}/reject", a.decide(a.svc.RejectUnlock))
	h("GET /api/v1/tickets", a.listTickets)
	h("POST /api/v1/tickets", a.openTicket)
	h("GET /api/v1/tickets/{id}", byID(a.svc.GetTicket))
	h("POST /api/v1/tickets/{id}/messages", onID(http.StatusCreated, false, func(ctx context.Context, ac lock.Actor, id int64, in struct {
		Body string `json:"body"`
	}) (lock.TicketMessage, error) {
		return a.svc.AddTicketMessage(ctx, ac, id, in.Body)
	}))
	h("GET /api/v1/audit", a.listAudit)
	h("GET /api/v1/findings", a.listFindings)
	h("GET /api/v1/findings/{id}/evidence/{name}", a.evidenceFile)
	m.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// handlerFunc is an authenticated handler; a returned error is written as
// the API's error body.
type handlerFunc func(w http.ResponseWriter, r *http.Request, actor lock.Actor) error

func (a *API) authed(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(tok) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="padlock"`)
			writeAPIError(w, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "a bearer token is required (Authorization: Bearer ...)"})
			return
		}
		actor, err := a.auth.Authenticate(r.Context(), strings.TrimSpace(tok))
		if err != nil {
			if !errors.Is(err, lock.ErrNotFound) {
				a.log.Error("authenticate", "err", err)
				writeAPIError(w, &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"})
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="padlock", error="invalid_token"`)
			writeAPIError(w, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "invalid or revoked token"})
			return
		}
		if err := fn(w, r, actor); err != nil {
			a.writeErr(w, r, err)
		}
	})
}

// writeErr maps service errors to statuses: not found 404, conflict and
// invalid transitions 409, forbidden 403, validation 400.
func (a *API) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeAPIError(w, ae)
		return
	}
	e := &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	d := lock.ErrorDetails(err)
	switch {
	case errors.Is(err, lock.ErrNotFound):
		e.Status, e.Code = http.StatusNotFound, "not_found"
	case errors.Is(err, lock.ErrConflict):
		e.Status, e.Code = http.StatusConflict, "conflict"
	case errors.Is(err, lock.ErrInvalidTransition):
		e.Status, e.Code = http.StatusConflict, "invalid_transition"
	case errors.Is(err, lock.ErrForbidden):
		e.Status, e.Code = http.StatusForbidden, "forbidden"
	case errors.Is(err, lock.ErrValidation):
		e.Status, e.Code = http.StatusBadRequest, "invalid_request"
	default:
		a.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeAPIError(w, e)
		return
	}
	if d != nil {
		e.Message, e.Field = d.Message, d.Field
		if d.ExistingID != 0 {
			e.Extra = map[string]any{"existing_id": d.ExistingID}
		}
	} else {
		e.Message = err.Error()
	}
	writeAPIError(w, e)
}

// pathID parses the {id} path value.
func pathID(r *http.Request, name string) (int64, error) {
	v := r.PathValue(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such " + name + ": " + v}
	}
	return id, nil
}

// queryInt parses an optional integer query parameter.
func queryInt(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest(name, "%s must be a non-negative whole number, not %q", name, v)
	}
	return n, nil
}

// queryInts parses several optional integer query parameters into dst
// (name → field) and the optional limit.
func queryInts(r *http.Request, limit *int, dst map[string]*int64) error {
	for name, p := range dst {
		v, err := queryInt(r, name)
		if err != nil {
			return err
		}
		*p = v
	}
	l, err := queryInt(r, "limit")
	*limit = int(l)
	return err
}

// queryTime parses an optional RFC 3339 query parameter.
func queryTime(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, badRequest(name, "%s must be an RFC 3339 time like 2026-01-02T15:04:05Z, not %q", name, v)
	}
	return t, nil
}

// list wraps a slice so that list responses are {"items":[...]} and never null.
func list[T any](items []T) map[string]any {
	if items == nil {
		items = []T{}
	}
	return map[string]any{"items": items}
}

// withNote adapts a service call taking a note to a handler body {"note":...}.
func withNote[Out any](call func(context.Context, lock.Actor, int64, string) (Out, error)) func(context.Context, lock.Actor, int64, noteIn) (Out, error) {
	return func(ctx context.Context, ac lock.Actor, id int64, in noteIn) (Out, error) {
		return call(ctx, ac, id, in.Note)
	}
}
