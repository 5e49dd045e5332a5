// Package store persists padlock's state in SQLite (default: pure Go, WAL,
// one file under the data directory) or PostgreSQL, chosen by the DSN. It
// owns the schema and its embedded goose migrations (one directory per
// dialect, run at Open), and implements lock.Store (inventory, locks,
// whitelist, unlock requests, tickets, audit log, idempotency keys), the
// mail outbox the notifier consumes, API tokens, findings with their
// evidence, and the desired-state query enforcement reconciles towards.
//
// Every multi-step change runs in one transaction (lock.Store.Update), so
// a crash leaves no half-written lock. Times are stored as Unix
// microseconds in UTC. The package imports lock, inventory and mail; it must
// not import web, enforcement, notification or detection packages.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"padlock/internal/lock"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// Dialect is the database engine.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is an open padlock database.
type DB struct {
	db      *sql.DB
	dialect Dialect
	stop    chan struct{}
	done    chan struct{}
	closed  sync.Once
}

// CheckpointInterval is how often the SQLite WAL is checkpointed in the
// background.
var CheckpointInterval = time.Second

var _ lock.Store = (*DB)(nil)

// DefaultDSN is the SQLite database in a data directory.
func DefaultDSN(dataDir string) string { return filepath.Join(dataDir, "padlock.db") }

// ParseDSN tells the engine and the driver's data source from a DSN:
// postgres://... or postgresql://... select PostgreSQL; sqlite:///path,
// sqlite:path or a plain file path select SQLite.
func ParseDSN(dsn string) (Dialect, string, error) {
	switch {
	case dsn == "":
		return "", "", errors.New("empty database DSN")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return Postgres, dsn, nil
	case strings.HasPrefix(dsn, "sqlite://"):
		return SQLite, strings.TrimPrefix(dsn, "sqlite://"), nil
	case strings.HasPrefix(dsn, "sqlite:"):
		return SQLite, strings.TrimPrefix(dsn, "sqlite:"), nil
	case strings.Contains(dsn, "://"):
		return "", "", fmt.Errorf("database DSN %q: unknown scheme (want sqlite:///path or postgres://...)", dsn)
	}
	return SQLite, dsn, nil
}

// Open opens (creating if needed) the database named by dsn and migrates it
// to the latest schema.
func Open(ctx context.Context, dsn string) (*DB, error) {
	dialect, src, err := ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var db *sql.DB
	switch dialect {
	case SQLite:
		if src == "" || strings.ContainsAny(src, "?#") {
			return nil, fmt.Errorf("store: invalid SQLite path %q", src)
		}
		if err := os.MkdirAll(filepath.Dir(src), 0o750); err != nil {
			return nil, fmt.Errorf("store: data directory: %w", err)
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "foreign_keys(1)")
		// Commits never checkpoint (an fsync of the database file in the
		// middle of a lock request); a background goroutine does it.
		q.Add("_pragma", "wal_autocheckpoint(0)")
		q.Set("_txlock", "immediate") // writers queue on BEGIN instead of failing on upgrade
		db, err = sql.Open("sqlite", "file:"+src+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
		db.SetConnMaxIdleTime(0)
	case Postgres:
		db, err = sql.Open("pgx", src)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(10)
		db.SetConnMaxIdleTime(5 * time.Minute)
	}
	s := &DB{db: db, dialect: dialect}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect %s: %w", dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if dialect == SQLite {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.checkpointLoop()
	}
	return s, nil
}

// checkpointLoop copies the WAL into the database file outside the commit
// path, so lock requests never wait for it.
func (s *DB) checkpointLoop() {
	defer close(s.done)
	t := time.NewTicker(CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// PASSIVE never blocks readers or writers; errors (busy) just
			// mean "next time".
			_, _ = s.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}

func (s *DB) migrate(ctx context.Context) error {
	dir, gd := "migrations/sqlite", goose.DialectSQLite3
	if s.dialect == Postgres {
		dir, gd = "migrations/postgres", goose.DialectPostgres
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	p, err := goose.NewProvider(gd, s.db, sub)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate %s: %w", s.dialect, err)
	}
	return nil
}

// Dialect returns the engine in use.
func (s *DB) Dialect() Dialect { return s.dialect }

// SQL returns the underlying database handle (for tests and diagnostics).
func (s *DB) SQL() *sql.DB { return s.db }

// Close stops the background checkpoints, checkpoints a last time and
// closes the database.
func (s *DB) Close() error {
	s.closed.Do(func() {
		if s.stop != nil {
			close(s.stop)
			<-s.done
			_, _ = s.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		}
	})
	return s.db.Close()
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Update runs fn in one read-write transaction (lock.Store).
func (s *DB) Update(ctx context.Context, fn func(lock.Tx) error) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", s.mapErr(err, ""))
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

// View runs fn with read access outside a transaction (lock.Store).
func (s *DB) View(ctx context.Context, fn func(lock.Tx) error) error {
	return fn(&txImpl{s: s, q: s.db})
}

// rebind turns ? placeholders into $n for PostgreSQL.
func (s *DB) rebind(q string) string {
	if s.dialect != Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// mapErr turns driver errors into lock error kinds: no rows → ErrNotFound,
// unique violations → ErrConflict with the key's field name.
func (s *DB) mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return &lock.Error{Kind: lock.ErrNotFound, Message: what + " not found"}
	}
	msg := err.Error()
	unique := strings.Contains(msg, "UNIQUE constraint failed")
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		unique = true
		msg += " " + pe.ConstraintName
	}
	if !unique {
		return err
	}
	field, text := "", "already exists"
	switch {
	case strings.Contains(msg, "unlock_requests"):
		field, text = "unlock_request", "an unlock request is already open for this lock"
	case strings.Contains(msg, "idempotency_keys"):
		field, text = "idempotency_key", "the idempotency key is being used concurrently"
	case strings.Contains(msg, "locking_id"):
		field, text = "locking_id", "locking ID collision"
	case strings.Contains(msg, "customers"):
		field, text = "email", "a customer with this email already exists"
	case strings.Contains(msg, "servers"):
		field, text = "name", "a server with this name already exists"
	case strings.Contains(msg, "storage_boxes"):
		field, text = "name", "a storage box with this name already exists"
	case strings.Contains(msg, "addresses"):
		field, text = "ips", "an address is already assigned to another product"
	case strings.Contains(msg, "findings"):
		field, text = "finding", "an open finding already exists"
	case strings.Contains(msg, "api_tokens"):
		field, text = "token", "token collision"
	}
	return &lock.Error{Kind: lock.ErrConflict, Field: field, Message: text}
}

// Time encoding: Unix microseconds, UTC.

func us(t time.Time) int64 { return t.UnixMicro() }

func fromUS(v int64) time.Time { return time.UnixMicro(v).UTC() }

func usPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromNull(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromUS(v.Int64)
	return &t
}
