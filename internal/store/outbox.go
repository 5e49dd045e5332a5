package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"padlock/internal/mail"
)

// enqueue inserts one outbox message and its attachments.
func enqueue(ctx context.Context, t *txImpl, m mail.Message, now time.Time) (int64, error) {
	id, err := t.insert(ctx, "enqueue mail", `INSERT INTO mails (to_addr, subject, text_body, html_body, kind, lock_id, customer_id, attempts, created_at, next_attempt, lease_until)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, 0)`,
		m.To, m.Subject, m.Text, m.HTML, m.Kind, m.LockID, m.CustomerID, us(now), us(now))
	if err != nil {
		return 0, err
	}
	for _, a := range m.Attachments {
		data := a.Data
		if data == nil {
			data = []byte{}
		}
		if _, err := t.exec(ctx, "enqueue mail attachment", `INSERT INTO mail_attachments (mail_id, name, content_type, data) VALUES (?, ?, ?, ?)`,
			id, a.Name, a.ContentType, data); err != nil {
			return 0, err
		}
	}
	return id, nil
}

// EnqueueMail adds a message to the outbox outside a lock change (for
// example a test mail).
func (s *DB) EnqueueMail(ctx context.Context, m mail.Message, now time.Time) (int64, error) {
	var id int64
	err := s.update(ctx, func(t *txImpl) error {
		var err error
		id, err = enqueue(ctx, t, m, now)
		return err
	})
	return id, err
}

func (s *DB) update(ctx context.Context, fn func(t *txImpl) error) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err := fn(&txImpl{s: s, q: tx, inTx: true}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", s.mapErr(err, ""))
	}
	return nil
}

const mailCols = `id, to_addr, subject, text_body, html_body, kind, lock_id, customer_id, attempts, created_at, next_attempt, sent_at, last_error`

func (t *txImpl) mails(ctx context.Context, what, q string, args ...any) ([]mail.Queued, error) {
	rows, err := t.query(ctx, what, q, args...)
	if err != nil {
		return nil, err
	}
	out := []mail.Queued{}
	idx := map[int64]int{}
	for rows.Next() {
		var m mail.Queued
		var created, next int64
		var sent sql.NullInt64
		if err := rows.Scan(&m.ID, &m.To, &m.Subject, &m.Text, &m.HTML, &m.Kind, &m.LockID, &m.CustomerID, &m.Attempts, &created, &next, &sent, &m.LastError); err != nil {
			rows.Close()
			return nil, err
		}
		m.CreatedAt, m.NextAttempt, m.SentAt = fromUS(created), fromUS(next), fromNull(sent)
		idx[m.ID] = len(out)
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return out, err
	}
	ids := make([]string, len(out))
	for i, m := range out {
		ids[i] = fmt.Sprint(m.ID)
	}
	arows, err := t.query(ctx, what+": attachments", `SELECT mail_id, name, content_type, data FROM mail_attachments WHERE mail_id IN (`+strings.Join(ids, ",")+`) ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer arows.Close()
	for arows.Next() {
		var id int64
		var a mail.Attachment
		if err := arows.Scan(&id, &a.Name, &a.ContentType, &a.Data); err != nil {
			return nil, err
		}
		out[idx[id]].Attachments = append(out[idx[id]].Attachments, a)
	}
	return out, arows.Err()
}

// ClaimMails returns up to limit queued, unsent mails due at now, leased
// until leaseUntil so no other worker sends them meanwhile. Claiming counts
// as an attempt (Attempts is incremented). A mail whose lease ran out
// without MarkMailSent or MarkMailFailed (the worker died) is due again.
func (s *DB) ClaimMails(ctx context.Context, now, leaseUntil time.Time, limit int) ([]mail.Queued, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []mail.Queued
	err := s.update(ctx, func(t *txImpl) error {
		pick := `SELECT id FROM mails WHERE sent_at IS NULL AND next_attempt <= ? AND lease_until <= ? ORDER BY next_attempt, id LIMIT ?`
		if s.dialect == Postgres {
			pick += ` FOR UPDATE SKIP LOCKED`
		}
		rows, err := t.query(ctx, "claim mails", `UPDATE mails SET lease_until = ?, attempts = attempts + 1 WHERE id IN (`+pick+`) RETURNING id`,
			us(leaseUntil), us(now), us(now), limit)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, fmt.Sprint(id))
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			out = []mail.Queued{}
			return err
		}
		out, err = t.mails(ctx, "claimed mails", `SELECT `+mailCols+` FROM mails WHERE id IN (`+strings.Join(ids, ",")+`) ORDER BY next_attempt, id`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim mails: %w", err)
	}
	return out, nil
}

// MarkMailSent records that a mail was delivered.
func (s *DB) MarkMailSent(ctx context.Context, id int64, at time.Time) error {
	r, err := s.db.ExecContext(ctx, s.rebind(`UPDATE mails SET sent_at = ?, lease_until = 0, last_error = '' WHERE id = ?`), us(at), id)
	if err != nil {
		return fmt.Errorf("store: mark mail %d sent: %w", id, err)
	}
	return mustAffect(r, fmt.Sprintf("mail %d", id))
}

// MarkMailFailed records a failed attempt and when to try again.
func (s *DB) MarkMailFailed(ctx context.Context, id int64, errText string, next time.Time) error {
	r, err := s.db.ExecContext(ctx, s.rebind(`UPDATE mails SET last_error = ?, next_attempt = ?, lease_until = 0 WHERE id = ? AND sent_at IS NULL`), errText, us(next), id)
	if err != nil {
		return fmt.Errorf("store: mark mail %d failed: %w", id, err)
	}
	return mustAffect(r, fmt.Sprintf("unsent mail %d", id))
}

// ListMails returns the newest mails of a lock and/or a customer (0: any),
// sent or not, with attachments.
func (s *DB) ListMails(ctx context.Context, lockID, customerID int64, limit int) ([]mail.Queued, error) {
	w := &where{}
	if lockID != 0 {
		w.add("lock_id = ?", lockID)
	}
	if customerID != 0 {
		w.add("customer_id = ?", customerID)
	}
	t := &txImpl{s: s, q: s.db}
	out, err := t.mails(ctx, "list mails", `SELECT `+mailCols+` FROM mails`+w.String()+fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, limitOf(limit)), w.args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return out, nil
}

// OutboxStats returns the number of unsent mails and the creation time of
// the oldest (zero when none), for the notifier's metrics.
func (s *DB) OutboxStats(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT count(*), min(created_at) FROM mails WHERE sent_at IS NULL`).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("store: outbox stats: %w", err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, fromUS(oldest.Int64), nil
}
