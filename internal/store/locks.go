package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"padlock/internal/lock"
	"padlock/internal/mail"
)

const lockCols = `id, locking_id, customer_id, reason, state, scope_kind, scope, scope_key, note, finding_id,
	warn_until, locked_at, unlocked_at, probation_until, created_at, updated_at, created_by,
	expires_at, staff_unlock_only, inbound_protection, method`

func (t *txImpl) InsertLock(ctx context.Context, l *lock.Lock) error {
	scope, err := json.Marshal(l.Scope)
	if err != nil {
		return err
	}
	id, err := t.insert(ctx, "insert lock", `INSERT INTO locks (locking_id, customer_id, reason, state, scope_kind, scope, scope_key,
		storage_box_id, note, finding_id, warn_until, locked_at, unlocked_at, probation_until, created_at, updated_at, created_by,
		expires_at, staff_unlock_only, inbound_protection, method)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		l.LockingID, l.CustomerID, string(l.Reason), string(l.State), string(l.ScopeKind), string(scope), l.ScopeKey,
		l.Scope.StorageBoxID, l.Note, l.FindingID, usPtr(l.WarnUntil), usPtr(l.LockedAt), usPtr(l.UnlockedAt), usPtr(l.ProbationUntil),
		us(l.CreatedAt), us(l.UpdatedAt), l.CreatedBy, usPtr(l.ExpiresAt), l.StaffUnlockOnly, l.InboundProtection, l.Method)
	if err != nil {
		return err
	}
	l.ID = id
	for _, p := range l.Prefixes {
		if _, err := t.exec(ctx, "insert lock prefix", `INSERT INTO lock_prefixes (lock_id, prefix) VALUES (?, ?)`, id, p.String()); err != nil {
			return err
		}
	}
	return nil
}

// UpdateLock writes the lifecycle fields (a relock may also change the
// expiry, the flags and the method); scope and prefixes never change.
func (t *txImpl) UpdateLock(ctx context.Context, l *lock.Lock) error {
	r, err := t.exec(ctx, "update lock", `UPDATE locks SET state = ?, note = ?, warn_until = ?, locked_at = ?, unlocked_at = ?,
		probation_until = ?, updated_at = ?, expires_at = ?, staff_unlock_only = ?, inbound_protection = ?, method = ? WHERE id = ?`,
		string(l.State), l.Note, usPtr(l.WarnUntil), usPtr(l.LockedAt), usPtr(l.UnlockedAt), usPtr(l.ProbationUntil), us(l.UpdatedAt),
		usPtr(l.ExpiresAt), l.StaffUnlockOnly, l.InboundProtection, l.Method, l.ID)
	if err != nil {
		return err
	}
	return mustAffect(r, fmt.Sprintf("lock %d", l.ID))
}

func (t *txImpl) locks(ctx context.Context, what, cond, tail string, args ...any) ([]lock.Lock, error) {
	rows, err := t.query(ctx, what, `SELECT `+lockCols+` FROM locks`+cond+tail, args...)
	if err != nil {
		return nil, err
	}
	out := []lock.Lock{}
	idx := map[int64]int{}
	for rows.Next() {
		var l lock.Lock
		var reason, state, kind, scope string
		var warn, locked, unlocked, prob, expires sql.NullInt64
		var created, updated int64
		if err := rows.Scan(&l.ID, &l.LockingID, &l.CustomerID, &reason, &state, &kind, &scope, &l.ScopeKey, &l.Note, &l.FindingID,
			&warn, &locked, &unlocked, &prob, &created, &updated, &l.CreatedBy, &expires, &l.StaffUnlockOnly, &l.InboundProtection, &l.Method); err != nil {
			rows.Close()
			return nil, err
		}
		l.Reason, l.State, l.ScopeKind = lock.Reason(reason), lock.State(state), lock.ScopeKind(kind)
		if err := json.Unmarshal([]byte(scope), &l.Scope); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: lock %d scope: %w", what, l.ID, err)
		}
		l.WarnUntil, l.LockedAt, l.UnlockedAt, l.ProbationUntil = fromNull(warn), fromNull(locked), fromNull(unlocked), fromNull(prob)
		l.ExpiresAt = fromNull(expires)
		l.CreatedAt, l.UpdatedAt = fromUS(created), fromUS(updated)
		l.Prefixes = []netip.Prefix{}
		idx[l.ID] = len(out)
		out = append(out, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return out, err
	}
	ids := make([]string, len(out))
	for i, l := range out {
		ids[i] = fmt.Sprint(l.ID)
	}
	prows, err := t.query(ctx, what+": prefixes", `SELECT lock_id, prefix FROM lock_prefixes WHERE lock_id IN (`+strings.Join(ids, ",")+`)`)
	if err != nil {
		return nil, err
	}
	defer prows.Close()
	for prows.Next() {
		var id int64
		var ps string
		if err := prows.Scan(&id, &ps); err != nil {
			return nil, err
		}
		p, err := netip.ParsePrefix(ps)
		if err != nil {
			return nil, fmt.Errorf("%s: stored prefix %q: %w", what, ps, err)
		}
		out[idx[id]].Prefixes = append(out[idx[id]].Prefixes, p)
	}
	if err := prows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		sortPrefixes(out[i].Prefixes)
	}
	return out, nil
}

func sortPrefixes(ps []netip.Prefix) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && comparePrefix(ps[j], ps[j-1]) < 0; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

func (t *txImpl) oneLock(ctx context.Context, what, cond string, arg any, forUpdate bool) (lock.Lock, error) {
	tail := ""
	if forUpdate && t.inTx && t.s.dialect == Postgres {
		tail = " FOR UPDATE"
	}
	l, err := t.locks(ctx, what, " WHERE "+cond, tail, arg)
	if err != nil {
		return lock.Lock{}, err
	}
	if len(l) == 0 {
		return lock.Lock{}, &lock.Error{Kind: lock.ErrNotFound, Message: what + " not found"}
	}
	return l[0], nil
}

func (t *txImpl) Lock(ctx context.Context, id int64, forUpdate bool) (lock.Lock, error) {
	return t.oneLock(ctx, fmt.Sprintf("lock %d", id), "id = ?", id, forUpdate)
}

func (t *txImpl) LockByLockingID(ctx context.Context, lid string) (lock.Lock, error) {
	return t.oneLock(ctx, "lock "+lid, "locking_id = ?", lid, false)
}

// containing returns every prefix (as stored) that contains a.
func containing(a netip.Addr) []any {
	out := make([]any, 0, a.BitLen()+1)
	for bits := a.BitLen(); bits >= 0; bits-- {
		p, _ := a.Prefix(bits)
		out = append(out, p.String())
	}
	return out
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func (t *txImpl) ListLocks(ctx context.Context, f lock.LockFilter) ([]lock.Lock, error) {
	w := &where{}
	if f.State != "" {
		w.add("state = ?", string(f.State))
	}
	if f.CustomerID != 0 {
		w.add("customer_id = ?", f.CustomerID)
	}
	if f.Reason != "" {
		w.add("reason = ?", string(f.Reason))
	}
	if f.ServerID != 0 {
		w.add("scope_key = ?", fmt.Sprintf("server:%d", f.ServerID))
	}
	if f.AfterID != 0 {
		w.add("id < ?", f.AfterID)
	}
	if f.IP.IsValid() {
		c := containing(f.IP.Unmap())
		w.add("id IN (SELECT lock_id FROM lock_prefixes WHERE prefix IN ("+placeholders(len(c))+"))", c...)
	}
	return t.locks(ctx, "list locks", w.String(), fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limitOf(f.Limit)), w.args...)
}

func (t *txImpl) ProbationLock(ctx context.Context, customerID int64, scopeKey string, reason lock.Reason, now time.Time) (lock.Lock, error) {
	tail := " ORDER BY id DESC LIMIT 1"
	if t.inTx && t.s.dialect == Postgres {
		tail += " FOR UPDATE"
	}
	l, err := t.locks(ctx, "probation lock", ` WHERE customer_id = ? AND scope_key = ? AND reason = ? AND state = 'unlocked' AND probation_until > ?`,
		tail, customerID, scopeKey, string(reason), us(now))
	if err != nil {
		return lock.Lock{}, err
	}
	if len(l) == 0 {
		return lock.Lock{}, &lock.Error{Kind: lock.ErrNotFound, Message: "no lock in probation"}
	}
	return l[0], nil
}

// ExpiredLocks returns the locks not unlocked whose expiry is at or before
// now, oldest expiry first.
func (t *txImpl) ExpiredLocks(ctx context.Context, now time.Time, limit int) ([]lock.Lock, error) {
	return t.locks(ctx, "expired locks", ` WHERE expires_at IS NOT NULL AND expires_at <= ? AND state <> 'unlocked'`,
		fmt.Sprintf(" ORDER BY expires_at, id LIMIT %d", limitOf(limit)), us(now))
}

// Whitelist.

func (t *txImpl) InsertWhitelist(ctx context.Context, w *lock.Whitelist) error {
	id, err := t.insert(ctx, "insert whitelist", `INSERT INTO whitelist (lock_id, ip, created_at, expires_at, removed_at, created_by) VALUES (?, ?, ?, ?, ?, ?)`,
		w.LockID, w.IP.String(), us(w.CreatedAt), us(w.ExpiresAt), usPtr(w.RemovedAt), w.CreatedBy)
	w.ID = id
	return err
}

func (t *txImpl) whitelist(ctx context.Context, cond, tail string, args ...any) ([]lock.Whitelist, error) {
	rows, err := t.query(ctx, "whitelist", `SELECT id, lock_id, ip, created_at, expires_at, removed_at, created_by FROM whitelist WHERE `+cond+` ORDER BY id`+tail, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []lock.Whitelist{}
	for rows.Next() {
		var w lock.Whitelist
		var ip string
		var created, expires int64
		var removed sql.NullInt64
		if err := rows.Scan(&w.ID, &w.LockID, &ip, &created, &expires, &removed, &w.CreatedBy); err != nil {
			return nil, err
		}
		if w.IP, err = netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("whitelist %d: stored ip %q: %w", w.ID, ip, err)
		}
		w.CreatedAt, w.ExpiresAt, w.RemovedAt = fromUS(created), fromUS(expires), fromNull(removed)
		out = append(out, w)
	}
	return out, rows.Err()
}

func (t *txImpl) ActiveWhitelistOf(ctx context.Context, lockID int64, now time.Time) ([]lock.Whitelist, error) {
	return t.whitelist(ctx, "lock_id = ? AND removed_at IS NULL AND expires_at > ?", "", lockID, us(now))
}

func (t *txImpl) ListWhitelist(ctx context.Context, lockID int64) ([]lock.Whitelist, error) {
	return t.whitelist(ctx, "lock_id = ?", "", lockID)
}

func (t *txImpl) ExpiredWhitelist(ctx context.Context, now time.Time, limit int) ([]lock.Whitelist, error) {
	return t.whitelist(ctx, "removed_at IS NULL AND expires_at <= ?", fmt.Sprintf(" LIMIT %d", limitOf(limit)), us(now))
}

func (t *txImpl) RemoveWhitelist(ctx context.Context, id int64, at time.Time) error {
	r, err := t.exec(ctx, "remove whitelist", `UPDATE whitelist SET removed_at = ? WHERE id = ? AND removed_at IS NULL`, us(at), id)
	if err != nil {
		return err
	}
	return mustAffect(r, fmt.Sprintf("whitelist entry %d", id))
}

// Unlock requests.

const reqCols = `id, lock_id, locking_id, customer_id, message, state, created_at, created_by, decided_at, decided_by, note`

func (t *txImpl) InsertUnlockRequest(ctx context.Context, r *lock.UnlockRequest) error {
	id, err := t.insert(ctx, "insert unlock request", `INSERT INTO unlock_requests (lock_id, locking_id, customer_id, message, state, created_at, created_by, decided_at, decided_by, note)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.LockID, r.LockingID, r.CustomerID, r.Message, string(r.State), us(r.CreatedAt), r.CreatedBy, usPtr(r.DecidedAt), r.DecidedBy, r.Note)
	r.ID = id
	return err
}

func (t *txImpl) UpdateUnlockRequest(ctx context.Context, r lock.UnlockRequest) error {
	res, err := t.exec(ctx, "update unlock request", `UPDATE unlock_requests SET state = ?, decided_at = ?, decided_by = ?, note = ? WHERE id = ?`,
		string(r.State), usPtr(r.DecidedAt), r.DecidedBy, r.Note, r.ID)
	if err != nil {
		return err
	}
	return mustAffect(res, fmt.Sprintf("unlock request %d", r.ID))
}

func (t *txImpl) requests(ctx context.Context, what, cond, tail string, args ...any) ([]lock.UnlockRequest, error) {
	rows, err := t.query(ctx, what, `SELECT `+reqCols+` FROM unlock_requests`+cond+tail, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []lock.UnlockRequest{}
	for rows.Next() {
		var r lock.UnlockRequest
		var state string
		var created int64
		var decided sql.NullInt64
		if err := rows.Scan(&r.ID, &r.LockID, &r.LockingID, &r.CustomerID, &r.Message, &state, &created, &r.CreatedBy, &decided, &r.DecidedBy, &r.Note); err != nil {
			return nil, err
		}
		r.State, r.CreatedAt, r.DecidedAt = lock.UnlockRequestState(state), fromUS(created), fromNull(decided)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (t *txImpl) oneRequest(ctx context.Context, what, cond, tail string, arg any) (lock.UnlockRequest, error) {
	l, err := t.requests(ctx, what, " WHERE "+cond, tail, arg)
	if err != nil {
		return lock.UnlockRequest{}, err
	}
	if len(l) == 0 {
		return lock.UnlockRequest{}, &lock.Error{Kind: lock.ErrNotFound, Message: what + " not found"}
	}
	return l[0], nil
}

func (t *txImpl) UnlockRequest(ctx context.Context, id int64, forUpdate bool) (lock.UnlockRequest, error) {
	tail := ""
	if forUpdate && t.inTx && t.s.dialect == Postgres {
		tail = " FOR UPDATE"
	}
	return t.oneRequest(ctx, fmt.Sprintf("unlock request %d", id), "id = ?", tail, id)
}

func (t *txImpl) OpenUnlockRequest(ctx context.Context, lockID int64) (lock.UnlockRequest, error) {
	return t.oneRequest(ctx, fmt.Sprintf("open unlock request of lock %d", lockID), "lock_id = ? AND state = 'open'", "", lockID)
}

func (t *txImpl) ListUnlockRequests(ctx context.Context, f lock.UnlockRequestFilter) ([]lock.UnlockRequest, error) {
	w := &where{}
	if f.State != "" {
		w.add("state = ?", string(f.State))
	}
	if f.LockID != 0 {
		w.add("lock_id = ?", f.LockID)
	}
	if f.CustomerID != 0 {
		w.add("customer_id = ?", f.CustomerID)
	}
	return t.requests(ctx, "list unlock requests", w.String(), fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limitOf(f.Limit)), w.args...)
}

// Tickets.

func (t *txImpl) InsertTicket(ctx context.Context, tk *lock.Ticket) error {
	id, err := t.insert(ctx, "insert ticket", `INSERT INTO tickets (customer_id, kind, lock_id, product_type, product_id, subject, state, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tk.CustomerID, string(tk.Kind), tk.LockID, tk.ProductType, tk.ProductID, tk.Subject, tk.State, us(tk.CreatedAt), us(tk.UpdatedAt))
	tk.ID = id
	return err
}

func (t *txImpl) UpdateTicket(ctx context.Context, tk lock.Ticket) error {
	r, err := t.exec(ctx, "update ticket", `UPDATE tickets SET state = ?, subject = ?, updated_at = ? WHERE id = ?`, tk.State, tk.Subject, us(tk.UpdatedAt), tk.ID)
	if err != nil {
		return err
	}
	return mustAffect(r, fmt.Sprintf("ticket %d", tk.ID))
}

func (t *txImpl) tickets(ctx context.Context, what, cond, tail string, args ...any) ([]lock.Ticket, error) {
	rows, err := t.query(ctx, what, `SELECT id, customer_id, kind, lock_id, product_type, product_id, subject, state, created_at, updated_at FROM tickets`+cond+tail, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []lock.Ticket{}
	for rows.Next() {
		var tk lock.Ticket
		var kind string
		var created, updated int64
		if err := rows.Scan(&tk.ID, &tk.CustomerID, &kind, &tk.LockID, &tk.ProductType, &tk.ProductID, &tk.Subject, &tk.State, &created, &updated); err != nil {
			return nil, err
		}
		tk.Kind, tk.CreatedAt, tk.UpdatedAt = lock.TicketKind(kind), fromUS(created), fromUS(updated)
		out = append(out, tk)
	}
	return out, rows.Err()
}

func (t *txImpl) Ticket(ctx context.Context, id int64) (lock.Ticket, error) {
	l, err := t.tickets(ctx, "ticket", " WHERE id = ?", "", id)
	if err != nil {
		return lock.Ticket{}, err
	}
	if len(l) == 0 {
		return lock.Ticket{}, &lock.Error{Kind: lock.ErrNotFound, Message: fmt.Sprintf("ticket %d not found", id)}
	}
	return l[0], nil
}

func (t *txImpl) ListTickets(ctx context.Context, f lock.TicketFilter) ([]lock.Ticket, error) {
	w := &where{}
	if f.CustomerID != 0 {
		w.add("customer_id = ?", f.CustomerID)
	}
	if f.LockID != 0 {
		w.add("lock_id = ?", f.LockID)
	}
	if f.Kind != "" {
		w.add("kind = ?", string(f.Kind))
	}
	if f.State != "" {
		w.add("state = ?", f.State)
	}
	return t.tickets(ctx, "list tickets", w.String(), fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limitOf(f.Limit)), w.args...)
}

func (t *txImpl) InsertTicketMessage(ctx context.Context, m *lock.TicketMessage) error {
	id, err := t.insert(ctx, "insert ticket message", `INSERT INTO ticket_messages (ticket_id, author_role, author, body, created_at) VALUES (?, ?, ?, ?, ?)`,
		m.TicketID, string(m.AuthorRole), m.Author, m.Body, us(m.CreatedAt))
	m.ID = id
	return err
}

func (t *txImpl) TicketMessages(ctx context.Context, ticketID int64) ([]lock.TicketMessage, error) {
	rows, err := t.query(ctx, "ticket messages", `SELECT id, ticket_id, author_role, author, body, created_at FROM ticket_messages WHERE ticket_id = ? ORDER BY id`, ticketID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []lock.TicketMessage{}
	for rows.Next() {
		var m lock.TicketMessage
		var role string
		var created int64
		if err := rows.Scan(&m.ID, &m.TicketID, &role, &m.Author, &m.Body, &created); err != nil {
			return nil, err
		}
		m.AuthorRole, m.CreatedAt = lock.Role(role), fromUS(created)
		out = append(out, m)
	}
	return out, rows.Err()
}

// Audit log (append-only: there is no update or delete, and triggers
// refuse them).

func (t *txImpl) InsertAudit(ctx context.Context, e *lock.AuditEvent) error {
	id, err := t.insert(ctx, "insert audit event", `INSERT INTO audit_events (at, actor, actor_role, action, object_type, object_id, lock_id, customer_id, before, after, note)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		us(e.At), e.Actor, string(e.ActorRole), e.Action, e.ObjectType, e.ObjectID, e.LockID, e.CustomerID, e.Before, e.After, e.Note)
	e.ID = id
	return err
}

func (t *txImpl) ListAudit(ctx context.Context, f lock.AuditFilter) ([]lock.AuditEvent, error) {
	w := &where{}
	if f.LockID != 0 {
		w.add("lock_id = ?", f.LockID)
	}
	if f.CustomerID != 0 {
		w.add("customer_id = ?", f.CustomerID)
	}
	if f.ObjectType != "" {
		w.add("object_type = ?", f.ObjectType)
	}
	if f.ObjectID != 0 {
		w.add("object_id = ?", f.ObjectID)
	}
	if f.Action != "" {
		w.add("action = ?", f.Action)
	}
	if f.Actor != "" {
		w.add("actor = ?", f.Actor)
	}
	if !f.Since.IsZero() {
		w.add("at >= ?", us(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("at < ?", us(f.Until))
	}
	if f.BeforeID != 0 {
		w.add("id < ?", f.BeforeID)
	}
	rows, err := t.query(ctx, "list audit", `SELECT id, at, actor, actor_role, action, object_type, object_id, lock_id, customer_id, before, after, note FROM audit_events`+
		w.String()+fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limitOf(f.Limit)), w.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []lock.AuditEvent{}
	for rows.Next() {
		var e lock.AuditEvent
		var at int64
		var role string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &role, &e.Action, &e.ObjectType, &e.ObjectID, &e.LockID, &e.CustomerID, &e.Before, &e.After, &e.Note); err != nil {
			return nil, err
		}
		e.At, e.ActorRole = fromUS(at), lock.Role(role)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Idempotency keys.

func (t *txImpl) IdempotencyKey(ctx context.Context, scope, key string) (string, int64, error) {
	var hash string
	var id int64
	err := t.q.QueryRowContext(ctx, t.s.rebind(`SELECT hash, lock_id FROM idempotency_keys WHERE scope = ? AND key = ?`), scope, key).Scan(&hash, &id)
	if err != nil {
		return "", 0, fmt.Errorf("idempotency key: %w", t.s.mapErr(err, "idempotency key"))
	}
	return hash, id, nil
}

func (t *txImpl) PutIdempotencyKey(ctx context.Context, scope, key, hash string, lockID int64, now time.Time) error {
	_, err := t.exec(ctx, "put idempotency key", `INSERT INTO idempotency_keys (scope, key, hash, lock_id, created_at) VALUES (?, ?, ?, ?, ?)`,
		scope, key, hash, lockID, us(now))
	return err
}

// EnqueueMail adds a message to the outbox, due at once.
func (t *txImpl) EnqueueMail(ctx context.Context, m mail.Message, now time.Time) (int64, error) {
	return enqueue(ctx, t, m, now)
}

// activeLocks is the condition of an active lock at a time (two
// placeholders, both now): locked, unlock_requested or warned past the
// deadline, and not past its expiry. q qualifies the columns ("l.").
func activeLocks(q string) string {
	return `((` + q + `state IN ('locked', 'unlock_requested') OR (` + q + `state = 'warned' AND ` + q + `warn_until IS NOT NULL AND ` + q + `warn_until <= ?))
		AND (` + q + `expires_at IS NULL OR ` + q + `expires_at > ?))`
}

// DesiredState returns the active locks (locked, unlock_requested, warned
// past the deadline; not past their expiry) with their prefixes or storage
// box, and the unexpired, unremoved whitelist entries of those locks.
func (t *txImpl) DesiredState(ctx context.Context, now time.Time) (lock.DesiredState, error) {
	ds := lock.DesiredState{At: now, Locks: []lock.ActiveLock{}, Whitelist: []lock.ActiveWhitelist{}}
	rows, err := t.query(ctx, "desired state", `SELECT id, locking_id, customer_id, reason, state, scope_kind, storage_box_id, expires_at, method FROM locks WHERE `+activeLocks("")+` ORDER BY id`, us(now), us(now))
	if err != nil {
		return ds, err
	}
	idx := map[int64]int{}
	for rows.Next() {
		var l lock.ActiveLock
		var reason, state, kind string
		var expires sql.NullInt64
		if err := rows.Scan(&l.ID, &l.LockingID, &l.CustomerID, &reason, &state, &kind, &l.StorageBoxID, &expires, &l.Method); err != nil {
			rows.Close()
			return ds, err
		}
		l.Reason, l.State, l.ScopeKind = lock.Reason(reason), lock.State(state), lock.ScopeKind(kind)
		l.ExpiresAt = fromNull(expires)
		l.Prefixes = []netip.Prefix{}
		idx[l.ID] = len(ds.Locks)
		ds.Locks = append(ds.Locks, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return ds, err
	}
	prows, err := t.query(ctx, "desired state prefixes", `SELECT lp.lock_id, lp.prefix FROM lock_prefixes lp JOIN locks l ON l.id = lp.lock_id WHERE `+activeLocks("l."), us(now), us(now))
	if err != nil {
		return ds, err
	}
	for prows.Next() {
		var id int64
		var ps string
		if err := prows.Scan(&id, &ps); err != nil {
			prows.Close()
			return ds, err
		}
		p, err := netip.ParsePrefix(ps)
		if err != nil {
			prows.Close()
			return ds, err
		}
		if i, ok := idx[id]; ok {
			ds.Locks[i].Prefixes = append(ds.Locks[i].Prefixes, p)
		}
	}
	prows.Close()
	if err := prows.Err(); err != nil {
		return ds, err
	}
	for i := range ds.Locks {
		sortPrefixes(ds.Locks[i].Prefixes)
	}
	wrows, err := t.query(ctx, "desired state whitelist", `SELECT w.id, w.lock_id, w.ip, w.expires_at FROM whitelist w JOIN locks l ON l.id = w.lock_id
		WHERE w.removed_at IS NULL AND w.expires_at > ? AND `+activeLocks("l.")+` ORDER BY w.id`, us(now), us(now), us(now))
	if err != nil {
		return ds, err
	}
	defer wrows.Close()
	for wrows.Next() {
		var w lock.ActiveWhitelist
		var ip string
		var exp int64
		if err := wrows.Scan(&w.ID, &w.LockID, &ip, &exp); err != nil {
			return ds, err
		}
		if w.IP, err = netip.ParseAddr(ip); err != nil {
			return ds, err
		}
		w.ExpiresAt = fromUS(exp)
		ds.Whitelist = append(ds.Whitelist, w)
	}
	return ds, wrows.Err()
}
