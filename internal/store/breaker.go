package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// BreakerRecord is the policy's circuit breaker as stored: it survives a
// restart, so a crash does not turn automatic locking back on.
type BreakerRecord struct {
	Open   bool
	Reason string
	Since  time.Time
}

// Breaker returns the stored circuit breaker (closed if none was stored).
func (s *DB) Breaker(ctx context.Context) (BreakerRecord, error) {
	var r BreakerRecord
	var open, since int64
	err := s.db.QueryRowContext(ctx, `SELECT open, reason, since FROM policy_breaker WHERE id = 1`).Scan(&open, &r.Reason, &since)
	if errors.Is(err, sql.ErrNoRows) {
		return BreakerRecord{}, nil
	}
	if err != nil {
		return BreakerRecord{}, fmt.Errorf("store: breaker: %w", err)
	}
	r.Open = open != 0
	if since != 0 {
		r.Since = fromUS(since)
	}
	return r, nil
}

// SetBreaker stores the circuit breaker's state.
func (s *DB) SetBreaker(ctx context.Context, r BreakerRecord, now time.Time) error {
	open, since := int64(0), int64(0)
	if r.Open {
		open = 1
	}
	if !r.Since.IsZero() {
		since = us(r.Since)
	}
	_, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO policy_breaker (id, open, reason, since, updated_at) VALUES (1, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET open = excluded.open, reason = excluded.reason, since = excluded.since, updated_at = excluded.updated_at`),
		open, r.Reason, since, us(now))
	if err != nil {
		return fmt.Errorf("store: set breaker: %w", err)
	}
	return nil
}
