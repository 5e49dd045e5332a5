package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/argon2id"

	"padlock/internal/lock"
)

// User is a web account of the client area (role customer, with its
// customer) or the admin area (admin, staff, billing, readonly). The
// password is stored only as an argon2id hash.
type User struct {
	ID         int64     `json:"id"`
	Email      string    `json:"email"`
	Role       lock.Role `json:"role"`
	CustomerID int64     `json:"customer_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// Actor is the lock service actor the user acts as.
func (u User) Actor() lock.Actor {
	return lock.Actor{Role: u.Role, CustomerID: u.CustomerID, Name: u.Email}
}

// PasswordParams are the argon2id parameters new hashes use (RFC 9106's
// second recommended option, lighter on memory than the first).
var PasswordParams = &argon2id.Params{Memory: 64 * 1024, Iterations: 3, Parallelism: 2, SaltLength: 16, KeyLength: 32}

// MinPasswordLength is the shortest password CreateUser and SetPassword accept.
const MinPasswordLength = 10

func emailKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

func checkPassword(pw string) error {
	if len(pw) < MinPasswordLength {
		return &lock.Error{Kind: lock.ErrValidation, Field: "password", Message: fmt.Sprintf("the password must have at least %d characters", MinPasswordLength)}
	}
	if len(pw) > 1024 {
		return &lock.Error{Kind: lock.ErrValidation, Field: "password", Message: "the password is longer than 1024 characters"}
	}
	return nil
}

// CreateUser creates a web account and its audit record (user_create, by
// actor). Role customer needs an existing customer's ID; other roles must
// not have one. A second account with the same email (case-insensitive)
// is ErrConflict (field "email").
func (s *DB) CreateUser(ctx context.Context, actor lock.Actor, email, password string, role lock.Role, customerID int64, now time.Time) (User, error) {
	email = strings.TrimSpace(email)
	if !strings.Contains(email, "@") || len(email) > 320 {
		return User{}, &lock.Error{Kind: lock.ErrValidation, Field: "email", Message: fmt.Sprintf("%q is not an email address", email)}
	}
	if !lock.ValidRole(role) {
		return User{}, &lock.Error{Kind: lock.ErrValidation, Field: "role", Message: fmt.Sprintf("unknown role %q (want admin, staff, billing, readonly or customer)", role)}
	}
	if role == lock.RoleCustomer && customerID <= 0 {
		return User{}, &lock.Error{Kind: lock.ErrValidation, Field: "customer", Message: "a customer account needs the customer's ID"}
	}
	if role != lock.RoleCustomer && customerID != 0 {
		return User{}, &lock.Error{Kind: lock.ErrValidation, Field: "customer", Message: "only customer accounts belong to a customer"}
	}
	if err := checkPassword(password); err != nil {
		return User{}, err
	}
	hash, err := argon2id.CreateHash(password, PasswordParams)
	if err != nil {
		return User{}, fmt.Errorf("store: hash password: %w", err)
	}
	u := User{Email: email, Role: role, CustomerID: customerID, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	err = s.update(ctx, func(t *txImpl) error {
		if customerID != 0 {
			if _, err := t.Customer(ctx, customerID); err != nil {
				if errors.Is(err, lock.ErrNotFound) {
					return &lock.Error{Kind: lock.ErrValidation, Field: "customer", Message: fmt.Sprintf("customer %d does not exist", customerID)}
				}
				return err
			}
		}
		var err error
		u.ID, err = t.insert(ctx, "create user", `INSERT INTO web_users (email, email_key, password_hash, role, customer_id, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			email, emailKey(email), hash, string(role), customerID, us(u.CreatedAt))
		if e := lock.ErrorDetails(err); e != nil && errors.Is(err, lock.ErrConflict) {
			return &lock.Error{Kind: lock.ErrConflict, Field: "email", Message: "an account with this email already exists"}
		}
		if err != nil {
			return err
		}
		return t.InsertAudit(ctx, &lock.AuditEvent{At: u.CreatedAt, Actor: actor.String(), ActorRole: actor.Role, Action: "user_create",
			ObjectType: "web_user", ObjectID: u.ID, CustomerID: customerID,
			After: fmt.Sprintf(`{"id":%d,"email":%q,"role":%q,"customer_id":%d}`, u.ID, email, role, customerID)})
	})
	if err != nil {
		return User{}, fmt.Errorf("store: create user: %w", err)
	}
	return u, nil
}

const userCols = `id, email, role, customer_id, created_at`

func (s *DB) userWhere(ctx context.Context, cond string, arg any) (User, string, error) {
	var u User
	var role, hash string
	var created int64
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT `+userCols+`, password_hash FROM web_users WHERE `+cond), arg).
		Scan(&u.ID, &u.Email, &role, &u.CustomerID, &created, &hash)
	if err != nil {
		return User{}, "", s.mapErr(err, "user")
	}
	u.Role, u.CreatedAt = lock.Role(role), fromUS(created)
	return u, hash, nil
}

// User returns the account with this ID (ErrNotFound when none).
func (s *DB) User(ctx context.Context, id int64) (User, error) {
	u, _, err := s.userWhere(ctx, `id = ?`, id)
	if err != nil {
		return User{}, fmt.Errorf("store: user %d: %w", id, err)
	}
	return u, nil
}

// UserByEmail returns the account with this email (case-insensitive).
func (s *DB) UserByEmail(ctx context.Context, email string) (User, error) {
	u, _, err := s.userWhere(ctx, `email_key = ?`, emailKey(email))
	if err != nil {
		return User{}, fmt.Errorf("store: user: %w", err)
	}
	return u, nil
}

// ListUsers returns every web account, oldest first.
func (s *DB) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userCols+` FROM web_users ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: users: %w", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		var u User
		var role string
		var created int64
		if err := rows.Scan(&u.ID, &u.Email, &role, &u.CustomerID, &created); err != nil {
			return nil, err
		}
		u.Role, u.CreatedAt = lock.Role(role), fromUS(created)
		out = append(out, u)
	}
	return out, rows.Err()
}

// ErrBadCredentials is returned by CheckPassword for an unknown email or a
// wrong password (the caller cannot tell which).
var ErrBadCredentials = errors.New("wrong email or password")

// dummyHash is compared against when the email is unknown, so both cases
// take the same time. It is made on first use, with PasswordParams as set
// then.
var dummyHash = sync.OnceValue(func() string {
	h, _ := argon2id.CreateHash("padlock-no-such-user", PasswordParams)
	return h
})

// CheckPassword returns the account when email and password match, or
// ErrBadCredentials.
func (s *DB) CheckPassword(ctx context.Context, email, password string) (User, error) {
	u, hash, err := s.userWhere(ctx, `email_key = ?`, emailKey(email))
	if errors.Is(err, lock.ErrNotFound) {
		_, _ = argon2id.ComparePasswordAndHash(password, dummyHash())
		return User{}, ErrBadCredentials
	}
	if err != nil {
		return User{}, fmt.Errorf("store: check password: %w", err)
	}
	ok, err := argon2id.ComparePasswordAndHash(password, hash)
	if err != nil {
		return User{}, fmt.Errorf("store: check password: %w", err)
	}
	if !ok {
		return User{}, ErrBadCredentials
	}
	return u, nil
}

// SetPassword replaces an account's password, with an audit record
// (user_password, by actor; the record holds no password or hash).
func (s *DB) SetPassword(ctx context.Context, actor lock.Actor, userID int64, password string, now time.Time) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, err := argon2id.CreateHash(password, PasswordParams)
	if err != nil {
		return fmt.Errorf("store: hash password: %w", err)
	}
	err = s.update(ctx, func(t *txImpl) error {
		u, err := t.user(ctx, userID)
		if err != nil {
			return err
		}
		return t.setPassword(ctx, actor, u, hash, "user_password", now)
	})
	if err != nil {
		return fmt.Errorf("store: set password: %w", err)
	}
	return nil
}

// user is User inside a transaction.
func (t *txImpl) user(ctx context.Context, id int64) (User, error) {
	rows, err := t.query(ctx, "user", `SELECT `+userCols+` FROM web_users WHERE id = ?`, id)
	if err != nil {
		return User{}, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return User{}, err
		}
		return User{}, &lock.Error{Kind: lock.ErrNotFound, Message: fmt.Sprintf("user %d not found", id)}
	}
	var u User
	var role string
	var created int64
	if err := rows.Scan(&u.ID, &u.Email, &role, &u.CustomerID, &created); err != nil {
		return User{}, err
	}
	u.Role, u.CreatedAt = lock.Role(role), fromUS(created)
	return u, rows.Err()
}

// setPassword stores u's new password hash and audits the change as
// action.
func (t *txImpl) setPassword(ctx context.Context, actor lock.Actor, u User, hash, action string, now time.Time) error {
	if _, err := t.exec(ctx, "set password", `UPDATE web_users SET password_hash = ? WHERE id = ?`, hash, u.ID); err != nil {
		return err
	}
	return t.InsertAudit(ctx, &lock.AuditEvent{At: now.UTC().Truncate(time.Microsecond), Actor: actor.String(), ActorRole: actor.Role,
		Action: action, ObjectType: "web_user", ObjectID: u.ID, CustomerID: u.CustomerID})
}

// CreatePasswordReset returns a new reset secret for the account, valid
// until now+ttl and usable once. Only its SHA-256 is stored.
func (s *DB) CreatePasswordReset(ctx context.Context, userID int64, now time.Time, ttl time.Duration) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	_, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO web_password_resets (hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)`),
		hashSecret(secret), userID, us(now), us(now.Add(ttl)))
	if err != nil {
		return "", fmt.Errorf("store: password reset: %w", s.mapErr(err, "user"))
	}
	return secret, nil
}

func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// PasswordResetUser returns the account of an unused, unexpired reset
// secret (ErrNotFound otherwise) without using it.
func (s *DB) PasswordResetUser(ctx context.Context, secret string, now time.Time) (User, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT user_id FROM web_password_resets WHERE hash = ? AND used_at IS NULL AND expires_at > ?`),
		hashSecret(secret), us(now)).Scan(&id)
	if err != nil {
		return User{}, fmt.Errorf("store: password reset: %w", s.mapErr(err, "password reset link"))
	}
	return s.User(ctx, id)
}

// ResetPassword uses a reset secret: in one transaction the secret is
// marked used (a second use is ErrNotFound), the password replaced and
// the change audited (user_password_reset, by the account itself).
func (s *DB) ResetPassword(ctx context.Context, secret, password string, now time.Time) (User, error) {
	if err := checkPassword(password); err != nil {
		return User{}, err
	}
	hash, err := argon2id.CreateHash(password, PasswordParams)
	if err != nil {
		return User{}, fmt.Errorf("store: hash password: %w", err)
	}
	var uid int64
	err = s.update(ctx, func(t *txImpl) error {
		rows, err := t.query(ctx, "use password reset", `UPDATE web_password_resets SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ? RETURNING user_id`,
			us(now), hashSecret(secret), us(now))
		if err != nil {
			return err
		}
		found := rows.Next()
		if found {
			err = rows.Scan(&uid)
		}
		rows.Close()
		if err != nil {
			return err
		}
		if !found {
			return &lock.Error{Kind: lock.ErrNotFound, Message: "the password reset link is unknown, used or expired"}
		}
		u, err := t.user(ctx, uid)
		if err != nil {
			return err
		}
		return t.setPassword(ctx, u.Actor(), u, hash, "user_password_reset", now)
	})
	if err != nil {
		return User{}, fmt.Errorf("store: reset password: %w", err)
	}
	return s.User(ctx, uid)
}

// RecordLogin records a sign-in attempt for rate limiting.
func (s *DB) RecordLogin(ctx context.Context, email, ip string, ok bool, now time.Time) error {
	okv := 0
	if ok {
		okv = 1
	}
	_, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO web_login_attempts (email_key, ip, ok, at) VALUES (?, ?, ?, ?)`), emailKey(email), ip, okv, us(now))
	if err != nil {
		return fmt.Errorf("store: record login: %w", err)
	}
	return nil
}

// FailedLogins counts the failed sign-in attempts since a time for the
// account (email) and for the client address (ip), each counted after the
// last successful sign-in of that account (or address).
func (s *DB) FailedLogins(ctx context.Context, email, ip string, since time.Time) (account, addr int, err error) {
	count := func(col, val string) (int, error) {
		var n int
		err := s.db.QueryRowContext(ctx, s.rebind(`SELECT count(*) FROM web_login_attempts WHERE `+col+` = ? AND ok = 0 AND at > ?
			AND at > COALESCE((SELECT max(at) FROM web_login_attempts WHERE `+col+` = ? AND ok = 1), 0)`), val, us(since), val).Scan(&n)
		return n, err
	}
	if account, err = count("email_key", emailKey(email)); err != nil {
		return 0, 0, fmt.Errorf("store: failed logins: %w", err)
	}
	if addr, err = count("ip", ip); err != nil {
		return 0, 0, fmt.Errorf("store: failed logins: %w", err)
	}
	return account, addr, nil
}

// PruneWebState deletes expired sessions, used or expired reset links and
// login attempts older than before.
func (s *DB) PruneWebState(ctx context.Context, now, before time.Time) error {
	for _, q := range []struct {
		q string
		a any
	}{
		{`DELETE FROM web_sessions WHERE expiry <= ?`, us(now)},
		{`DELETE FROM web_password_resets WHERE expires_at <= ? OR used_at IS NOT NULL`, us(now)},
		{`DELETE FROM web_login_attempts WHERE at < ?`, us(before)},
	} {
		if _, err := s.db.ExecContext(ctx, s.rebind(q.q), q.a); err != nil {
			return fmt.Errorf("store: prune web state: %w", err)
		}
	}
	return nil
}

// SessionStore keeps scs sessions in the database, so sign-ins survive a
// restart and work across several padlock nodes. It implements
// scs.CtxStore.
type SessionStore struct{ db *DB }

// Sessions returns the database's session store.
func (s *DB) Sessions() *SessionStore { return &SessionStore{db: s} }

// FindCtx returns the data of an unexpired session.
func (ss *SessionStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	var b []byte
	err := ss.db.db.QueryRowContext(ctx, ss.db.rebind(`SELECT data FROM web_sessions WHERE token = ? AND expiry > ?`), token, us(time.Now())).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: session: %w", err)
	}
	return b, true, nil
}

// CommitCtx stores (or replaces) a session.
func (ss *SessionStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	_, err := ss.db.db.ExecContext(ctx, ss.db.rebind(`INSERT INTO web_sessions (token, data, expiry) VALUES (?, ?, ?)
		ON CONFLICT (token) DO UPDATE SET data = excluded.data, expiry = excluded.expiry`), token, b, us(expiry))
	if err != nil {
		return fmt.Errorf("store: commit session: %w", err)
	}
	return nil
}

// DeleteCtx deletes a session (no error when it does not exist).
func (ss *SessionStore) DeleteCtx(ctx context.Context, token string) error {
	if _, err := ss.db.db.ExecContext(ctx, ss.db.rebind(`DELETE FROM web_sessions WHERE token = ?`), token); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// Find is FindCtx without a context (scs.Store).
func (ss *SessionStore) Find(token string) ([]byte, bool, error) {
	return ss.FindCtx(context.Background(), token)
}

// Commit is CommitCtx without a context (scs.Store).
func (ss *SessionStore) Commit(token string, b []byte, expiry time.Time) error {
	return ss.CommitCtx(context.Background(), token, b, expiry)
}

// Delete is DeleteCtx without a context (scs.Store).
func (ss *SessionStore) Delete(token string) error {
	return ss.DeleteCtx(context.Background(), token)
}
