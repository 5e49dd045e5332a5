package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"padlock/internal/lock"
	"padlock/internal/mail"
)

// Evidence is one evidence file of a finding (netscan log, summary, traffic
// dump, pcap, JSON).
type Evidence struct {
	ID          int64     `json:"id"`
	FindingID   int64     `json:"finding_id"`
	Name        string    `json:"name"`
	ContentType string    `json:"content_type"`
	Data        []byte    `json:"-"`
	Size        int       `json:"size"`
	CreatedAt   time.Time `json:"created_at"`
}

// FindingInput is one detector finding to record.
type FindingInput struct {
	Kind       string // detect.Kind
	InternalIP netip.Addr
	CustomerID int64 // 0 when unknown
	FirstSeen  time.Time
	LastSeen   time.Time
	Detail     json.RawMessage // the finding's JSON form
	Evidence   []Evidence
	// Mails, when set, builds the mails to send about this finding (the
	// customer's notice, a staff alert) once the case is known. They are
	// queued in the transaction that records the finding: a case whose
	// detail says someone was notified always has that mail in the outbox,
	// and a failure to queue one records nothing.
	Mails func(FindingCase) []mail.Message
}

// FindingCase is the open (or closed) case of one internal IP and kind:
// repeated findings append to it instead of opening another.
type FindingCase struct {
	ID         int64           `json:"id"`
	Kind       string          `json:"kind"`
	InternalIP netip.Addr      `json:"internal_ip"`
	State      string          `json:"state"` // open, closed
	CustomerID int64           `json:"customer_id,omitempty"`
	LockID     int64           `json:"lock_id,omitempty"`
	FirstSeen  time.Time       `json:"first_seen"`
	LastSeen   time.Time       `json:"last_seen"`
	Count      int             `json:"count"`
	Detail     json.RawMessage `json:"detail"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	// Queued are the outbox IDs of the mails FindingInput.Mails built, in
	// its order (RecordFinding only).
	Queued []int64 `json:"-"`
}

// FindingFilter selects finding cases; zero fields do not filter.
type FindingFilter struct {
	IP         netip.Addr
	Kind       string
	State      string
	CustomerID int64
	Limit      int
	BeforeID   int64
}

const findingCols = `id, kind, internal_ip, state, customer_id, lock_id, first_seen, last_seen, count, detail, created_at, updated_at`

// RecordFinding appends a finding to the open case of its internal IP and
// kind, or opens one, with its evidence files and the mails of in.Mails,
// in one transaction. It reports whether a new case was opened.
func (s *DB) RecordFinding(ctx context.Context, in FindingInput, now time.Time) (FindingCase, bool, error) {
	if in.Kind == "" || !in.InternalIP.IsValid() {
		return FindingCase{}, false, &lock.Error{Kind: lock.ErrValidation, Field: "finding", Message: "kind and internal IP are required"}
	}
	if len(in.Detail) == 0 {
		in.Detail = json.RawMessage("{}")
	}
	ip := in.InternalIP.Unmap().String()
	var fc FindingCase
	var created bool
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		err = s.update(ctx, func(t *txImpl) error {
			tail := ""
			if s.dialect == Postgres {
				tail = " FOR UPDATE"
			}
			l, err := t.findings(ctx, ` WHERE internal_ip = ? AND kind = ? AND state = 'open'`+tail, ip, in.Kind)
			if err != nil {
				return err
			}
			if len(l) == 0 {
				created = true
				id, err := t.insert(ctx, "insert finding", `INSERT INTO findings (kind, internal_ip, state, customer_id, lock_id, first_seen, last_seen, count, detail, created_at, updated_at)
					VALUES (?, ?, 'open', ?, 0, ?, ?, 1, ?, ?, ?)`, in.Kind, ip, in.CustomerID, us(in.FirstSeen), us(in.LastSeen), string(in.Detail), us(now), us(now))
				if err != nil {
					return err
				}
				fc = FindingCase{ID: id}
			} else {
				created = false
				fc = l[0]
				first := fc.FirstSeen
				if in.FirstSeen.Before(first) {
					first = in.FirstSeen
				}
				last := fc.LastSeen
				if in.LastSeen.After(last) {
					last = in.LastSeen
				}
				if _, err := t.exec(ctx, "update finding", `UPDATE findings SET first_seen = ?, last_seen = ?, count = count + 1, detail = ?, updated_at = ?,
					customer_id = CASE WHEN customer_id = 0 THEN ? ELSE customer_id END WHERE id = ?`,
					us(first), us(last), string(in.Detail), us(now), in.CustomerID, fc.ID); err != nil {
					return err
				}
			}
			for _, e := range in.Evidence {
				data := e.Data
				if data == nil {
					data = []byte{}
				}
				if _, err := t.exec(ctx, "insert evidence", `INSERT INTO finding_evidence (finding_id, name, content_type, data, created_at) VALUES (?, ?, ?, ?, ?)`,
					fc.ID, e.Name, e.ContentType, data, us(now)); err != nil {
					return err
				}
			}
			l, err = t.findings(ctx, ` WHERE id = ?`, fc.ID)
			if err != nil {
				return err
			}
			fc = l[0]
			if in.Mails != nil {
				for _, m := range in.Mails(fc) {
					id, err := enqueue(ctx, t, m, now)
					if err != nil {
						return err
					}
					fc.Queued = append(fc.Queued, id)
				}
			}
			return nil
		})
		if e := lock.ErrorDetails(err); e != nil && e.Field == "finding" && errors.Is(err, lock.ErrConflict) {
			continue // another writer opened the case meanwhile: append to it
		}
		break
	}
	if err != nil {
		return FindingCase{}, false, fmt.Errorf("store: record finding: %w", err)
	}
	return fc, created, nil
}

func (t *txImpl) findings(ctx context.Context, cond string, args ...any) ([]FindingCase, error) {
	rows, err := t.query(ctx, "findings", `SELECT `+findingCols+` FROM findings`+cond, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []FindingCase{}
	for rows.Next() {
		var f FindingCase
		var ip, detail string
		var first, last, created, updated int64
		if err := rows.Scan(&f.ID, &f.Kind, &ip, &f.State, &f.CustomerID, &f.LockID, &first, &last, &f.Count, &detail, &created, &updated); err != nil {
			return nil, err
		}
		if f.InternalIP, err = netip.ParseAddr(ip); err != nil {
			return nil, err
		}
		f.Detail = json.RawMessage(detail)
		f.FirstSeen, f.LastSeen, f.CreatedAt, f.UpdatedAt = fromUS(first), fromUS(last), fromUS(created), fromUS(updated)
		out = append(out, f)
	}
	return out, rows.Err()
}

// Finding returns one finding case.
func (s *DB) Finding(ctx context.Context, id int64) (FindingCase, error) {
	l, err := (&txImpl{s: s, q: s.db}).findings(ctx, ` WHERE id = ?`, id)
	if err != nil {
		return FindingCase{}, fmt.Errorf("store: %w", err)
	}
	if len(l) == 0 {
		return FindingCase{}, &lock.Error{Kind: lock.ErrNotFound, Message: fmt.Sprintf("finding %d not found", id)}
	}
	return l[0], nil
}

// ListFindings lists finding cases, newest first.
func (s *DB) ListFindings(ctx context.Context, f FindingFilter) ([]FindingCase, error) {
	w := &where{}
	if f.IP.IsValid() {
		w.add("internal_ip = ?", f.IP.Unmap().String())
	}
	if f.Kind != "" {
		w.add("kind = ?", f.Kind)
	}
	if f.State != "" {
		w.add("state = ?", f.State)
	}
	if f.CustomerID != 0 {
		w.add("customer_id = ?", f.CustomerID)
	}
	if f.BeforeID != 0 {
		w.add("id < ?", f.BeforeID)
	}
	l, err := (&txImpl{s: s, q: s.db}).findings(ctx, w.String()+fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limitOf(f.Limit)), w.args...)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return l, nil
}

// CloseFinding closes a case (a later finding opens a new one) and records
// the lock it led to (0: none).
func (s *DB) CloseFinding(ctx context.Context, id, lockID int64, now time.Time) error {
	r, err := s.db.ExecContext(ctx, s.rebind(`UPDATE findings SET state = 'closed', lock_id = CASE WHEN ? <> 0 THEN ? ELSE lock_id END, updated_at = ? WHERE id = ? AND state = 'open'`),
		lockID, lockID, us(now), id)
	if err != nil {
		return fmt.Errorf("store: close finding %d: %w", id, err)
	}
	return mustAffect(r, fmt.Sprintf("open finding %d", id))
}

// SetFindingLock records the lock a finding led to.
func (s *DB) SetFindingLock(ctx context.Context, id, lockID int64) error {
	r, err := s.db.ExecContext(ctx, s.rebind(`UPDATE findings SET lock_id = ? WHERE id = ?`), lockID, id)
	if err != nil {
		return fmt.Errorf("store: finding %d lock: %w", id, err)
	}
	return mustAffect(r, fmt.Sprintf("finding %d", id))
}

// FindingEvidence lists a finding's evidence files; withData loads their
// contents too.
func (s *DB) FindingEvidence(ctx context.Context, findingID int64, withData bool) ([]Evidence, error) {
	cols := `id, finding_id, name, content_type, length(data), created_at`
	if withData {
		cols += `, data`
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+cols+` FROM finding_evidence WHERE finding_id = ? ORDER BY id`), findingID)
	if err != nil {
		return nil, fmt.Errorf("store: evidence of finding %d: %w", findingID, err)
	}
	defer rows.Close()
	out := []Evidence{}
	for rows.Next() {
		var e Evidence
		var created int64
		dst := []any{&e.ID, &e.FindingID, &e.Name, &e.ContentType, &e.Size, &created}
		if withData {
			dst = append(dst, &e.Data)
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, err
		}
		e.CreatedAt = fromUS(created)
		out = append(out, e)
	}
	return out, rows.Err()
}

// EvidenceFile returns one evidence file with its contents.
func (s *DB) EvidenceFile(ctx context.Context, id int64) (Evidence, error) {
	var e Evidence
	var created int64
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT id, finding_id, name, content_type, data, created_at FROM finding_evidence WHERE id = ?`), id).
		Scan(&e.ID, &e.FindingID, &e.Name, &e.ContentType, &e.Data, &created)
	if err != nil {
		return Evidence{}, fmt.Errorf("store: evidence %d: %w", id, s.mapErr(err, fmt.Sprintf("evidence %d", id)))
	}
	e.Size, e.CreatedAt = len(e.Data), fromUS(created)
	return e, nil
}
