package ui

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"padlock/internal/lock"
	"padlock/internal/mail"
	"padlock/internal/notify"
	"padlock/internal/store"
	"padlock/internal/web/auth"
)

func newToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// safeNext keeps a post-sign-in redirect on this site's own areas.
func safeNext(next string) string {
	if (strings.HasPrefix(next, "/client/") || strings.HasPrefix(next, "/admin/")) && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") {
		return next
	}
	return ""
}

func (u *UI) signinForm(w http.ResponseWriter, r *http.Request) {
	s, err := u.current(r)
	if err != nil {
		u.fail(w, r, nil, err)
		return
	}
	if s != nil {
		u.root(w, r)
		return
	}
	u.render(w, r, http.StatusOK, "signin", nil, map[string]any{"Title": "Sign in", "Action": r.URL.Path, "Next": safeNext(r.URL.Query().Get("next")), "Email": ""})
}

func (u *UI) signin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	email := strings.TrimSpace(r.PostFormValue("email"))
	pw := r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	ip := auth.ClientIP(r, u.cfg.TrustedProxies)
	now := u.now()
	data := map[string]any{"Title": "Sign in", "Action": r.URL.Path, "Next": next, "Email": email}
	limited, err := u.cfg.LoginLimits.Limited(ctx, u.db, email, ip, now)
	if err != nil {
		u.fail(w, r, nil, err)
		return
	}
	if limited {
		data["Problem"] = "Too many failed sign-ins. Please wait 15 minutes or reset your password."
		u.render(w, r, http.StatusTooManyRequests, "signin", nil, data)
		return
	}
	usr, err := u.db.CheckPassword(ctx, email, pw)
	if err != nil && !errors.Is(err, store.ErrBadCredentials) {
		u.fail(w, r, nil, err)
		return
	}
	if rerr := u.db.RecordLogin(ctx, email, ip.String(), err == nil, now); rerr != nil {
		u.fail(w, r, nil, rerr)
		return
	}
	if err != nil {
		data["Problem"] = "Wrong email or password."
		u.render(w, r, http.StatusUnauthorized, "signin", nil, data)
		return
	}
	if err := u.sm.RenewToken(ctx); err != nil {
		u.fail(w, r, nil, err)
		return
	}
	u.sm.Put(ctx, keyUser, usr.ID)
	u.sm.Put(ctx, keyCSRF, newToken())
	u.log.Info("sign-in", "user_id", usr.ID, "role", string(usr.Role))
	dest := "/admin/"
	if usr.Role == lock.RoleCustomer {
		dest = "/client/"
	}
	if next != "" && strings.HasPrefix(next, dest) {
		dest = next
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
}

func (u *UI) signout(w http.ResponseWriter, r *http.Request) {
	s, _ := u.current(r)
	if s != nil && r.PostFormValue("csrf") != s.CSRF {
		http.Error(w, "form expired", http.StatusForbidden)
		return
	}
	if err := u.sm.Destroy(r.Context()); err != nil {
		u.fail(w, r, nil, err)
		return
	}
	http.Redirect(w, r, "/client/signin", http.StatusSeeOther)
}

func (u *UI) resetRequestForm(w http.ResponseWriter, r *http.Request) {
	u.render(w, r, http.StatusOK, "reset_request", nil, map[string]any{"Title": "Reset your password"})
}

// resetRequest queues a reset link mail when the account exists and says
// the same either way, so the form does not reveal who has an account.
func (u *UI) resetRequest(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	email := strings.TrimSpace(r.PostFormValue("email"))
	ip := auth.ClientIP(r, u.cfg.TrustedProxies)
	now := u.now()
	// Reset requests count against the same limits as failed sign-ins, so
	// the form cannot be used to flood someone's mailbox.
	limited, err := u.cfg.LoginLimits.Limited(ctx, u.db, email, ip, now)
	if err != nil {
		u.fail(w, r, nil, err)
		return
	}
	if !limited {
		if rerr := u.db.RecordLogin(ctx, email, ip.String(), false, now); rerr != nil {
			u.fail(w, r, nil, rerr)
			return
		}
		usr, err := u.db.UserByEmail(ctx, email)
		switch {
		case err == nil:
			secret, err := u.db.CreatePasswordReset(ctx, usr.ID, now, u.cfg.ResetLinkTTL)
			if err != nil {
				u.fail(w, r, nil, err)
				return
			}
			m, err := u.resetMail(ctx, usr, u.cfg.BaseURL+"/client/reset/"+secret)
			if err != nil {
				u.fail(w, r, nil, err)
				return
			}
			if _, err := u.db.EnqueueMail(ctx, m, now); err != nil {
				u.fail(w, r, nil, err)
				return
			}
		case !errors.Is(err, lock.ErrNotFound):
			u.fail(w, r, nil, err)
			return
		}
	}
	u.render(w, r, http.StatusOK, "reset_request", nil, map[string]any{"Title": "Reset your password", "Sent": true})
}

// resetMail renders the reset link mail in the language of the user's
// customer (staff: the default language).
func (u *UI) resetMail(ctx context.Context, usr store.User, link string) (mail.Message, error) {
	to := notify.Customer{Email: usr.Email}
	if usr.CustomerID != 0 {
		c, err := u.svc.GetCustomer(ctx, lock.System, usr.CustomerID)
		if err != nil {
			return mail.Message{}, err
		}
		to.ID, to.Language = c.ID, c.Language
	}
	return u.mails.RenderPasswordReset(notify.PasswordReset{Customer: to, Link: link, Valid: u.cfg.ResetLinkTTL})
}

func (u *UI) resetForm(w http.ResponseWriter, r *http.Request) {
	_, err := u.db.PasswordResetUser(r.Context(), r.PathValue("token"), u.now())
	if err != nil && !errors.Is(err, lock.ErrNotFound) {
		u.fail(w, r, nil, err)
		return
	}
	status := http.StatusOK
	if err != nil {
		status = http.StatusNotFound
	}
	u.render(w, r, status, "reset", nil, map[string]any{"Title": "Choose a new password", "Valid": err == nil, "Token": r.PathValue("token")})
}

func (u *UI) reset(w http.ResponseWriter, r *http.Request) {
	pw, pw2 := r.PostFormValue("password"), r.PostFormValue("password2")
	data := map[string]any{"Title": "Choose a new password", "Valid": true, "Token": r.PathValue("token")}
	if pw != pw2 {
		data["Problem"] = "The two passwords differ."
		u.render(w, r, http.StatusBadRequest, "reset", nil, data)
		return
	}
	_, err := u.db.ResetPassword(r.Context(), r.PathValue("token"), pw, u.now())
	switch {
	case errors.Is(err, lock.ErrValidation):
		data["Problem"] = message(err)
		u.render(w, r, http.StatusBadRequest, "reset", nil, data)
		return
	case errors.Is(err, lock.ErrNotFound):
		data["Valid"] = false
		u.render(w, r, http.StatusNotFound, "reset", nil, data)
		return
	case err != nil:
		u.fail(w, r, nil, err)
		return
	}
	_ = u.sm.Destroy(r.Context())
	u.sm.Put(r.Context(), keyFlash, "Your password was changed. Please sign in with it.")
	http.Redirect(w, r, "/client/signin", http.StatusSeeOther)
}
