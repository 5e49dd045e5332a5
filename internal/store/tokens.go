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
	"time"

	"padlock/internal/lock"
)

// Token is an API token as stored; the secret itself is never stored, only
// its SHA-256 (the secret has 256 random bits, so a fast hash suffices).
type Token struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Role       lock.Role  `json:"role"`
	CustomerID int64      `json:"customer_id,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// TokenPrefix starts every token secret, so leaked tokens are easy to grep.
const TokenPrefix = "pl_"

func hashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// CreateToken creates an API token and returns its secret (shown once).
// Role customer needs the customer's ID; other roles must not have one.
// The creation is audited with actor.
func (s *DB) CreateToken(ctx context.Context, actor lock.Actor, name string, role lock.Role, customerID int64, now time.Time) (string, Token, error) {
	if !lock.ValidRole(role) {
		return "", Token{}, &lock.Error{Kind: lock.ErrValidation, Field: "role", Message: fmt.Sprintf("unknown role %q (want admin, staff, billing, readonly or customer)", role)}
	}
	if role == lock.RoleCustomer && customerID <= 0 {
		return "", Token{}, &lock.Error{Kind: lock.ErrValidation, Field: "customer", Message: "a customer token needs the customer's ID"}
	}
	if role != lock.RoleCustomer && customerID != 0 {
		return "", Token{}, &lock.Error{Kind: lock.ErrValidation, Field: "customer", Message: "only customer tokens belong to a customer"}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", Token{}, err
	}
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	tok := Token{Name: name, Role: role, CustomerID: customerID, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	err := s.update(ctx, func(t *txImpl) error {
		if customerID != 0 {
			if _, err := t.Customer(ctx, customerID); err != nil {
				if errors.Is(err, lock.ErrNotFound) {
					return &lock.Error{Kind: lock.ErrValidation, Field: "customer", Message: fmt.Sprintf("customer %d does not exist", customerID)}
				}
				return err
			}
		}
		id, err := t.insert(ctx, "insert token", `INSERT INTO api_tokens (name, hash, role, customer_id, created_at) VALUES (?, ?, ?, ?, ?)`,
			name, hashToken(secret), string(role), customerID, us(tok.CreatedAt))
		if err != nil {
			return err
		}
		tok.ID = id
		return t.InsertAudit(ctx, &lock.AuditEvent{At: tok.CreatedAt, Actor: actor.String(), ActorRole: actor.Role, Action: "token_create",
			ObjectType: "api_token", ObjectID: id, CustomerID: customerID,
			After: fmt.Sprintf(`{"id":%d,"name":%q,"role":%q,"customer_id":%d}`, id, name, role, customerID)})
	})
	if err != nil {
		return "", Token{}, fmt.Errorf("store: create token: %w", err)
	}
	return secret, tok, nil
}

// Authenticate returns the actor of a token secret; unknown or revoked
// tokens are ErrNotFound.
func (s *DB) Authenticate(ctx context.Context, secret string) (lock.Actor, Token, error) {
	if !strings.HasPrefix(secret, TokenPrefix) {
		return lock.Actor{}, Token{}, &lock.Error{Kind: lock.ErrNotFound, Message: "unknown token"}
	}
	var tok Token
	var role string
	var created int64
	var revoked sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT id, name, role, customer_id, created_at, revoked_at FROM api_tokens WHERE hash = ?`), hashToken(secret)).
		Scan(&tok.ID, &tok.Name, &role, &tok.CustomerID, &created, &revoked)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return lock.Actor{}, Token{}, &lock.Error{Kind: lock.ErrNotFound, Message: "unknown token"}
		}
		return lock.Actor{}, Token{}, fmt.Errorf("store: authenticate: %w", err)
	}
	tok.Role, tok.CreatedAt, tok.RevokedAt = lock.Role(role), fromUS(created), fromNull(revoked)
	if tok.RevokedAt != nil {
		return lock.Actor{}, Token{}, &lock.Error{Kind: lock.ErrNotFound, Message: "token revoked"}
	}
	name := tok.Name
	if name == "" {
		name = fmt.Sprintf("token-%d", tok.ID)
	}
	return lock.Actor{Role: tok.Role, CustomerID: tok.CustomerID, Name: name}, tok, nil
}

// RevokeToken revokes a token for good.
func (s *DB) RevokeToken(ctx context.Context, actor lock.Actor, id int64, now time.Time) error {
	return s.update(ctx, func(t *txImpl) error {
		r, err := t.exec(ctx, "revoke token", `UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, us(now), id)
		if err != nil {
			return err
		}
		if err := mustAffect(r, fmt.Sprintf("active token %d", id)); err != nil {
			return err
		}
		return t.InsertAudit(ctx, &lock.AuditEvent{At: now.UTC(), Actor: actor.String(), ActorRole: actor.Role, Action: "token_revoke",
			ObjectType: "api_token", ObjectID: id})
	})
}

// ListTokens lists all tokens (without secrets).
func (s *DB) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, role, customer_id, created_at, revoked_at FROM api_tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list tokens: %w", err)
	}
	defer rows.Close()
	out := []Token{}
	for rows.Next() {
		var tok Token
		var role string
		var created int64
		var revoked sql.NullInt64
		if err := rows.Scan(&tok.ID, &tok.Name, &role, &tok.CustomerID, &created, &revoked); err != nil {
			return nil, err
		}
		tok.Role, tok.CreatedAt, tok.RevokedAt = lock.Role(role), fromUS(created), fromNull(revoked)
		out = append(out, tok)
	}
	return out, rows.Err()
}
