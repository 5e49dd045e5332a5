package store

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// MigrateTo moves the schema up or down to version (tests of migrations).
func MigrateTo(ctx context.Context, s *DB, version int64) error {
	dir, gd := "migrations/sqlite", goose.DialectSQLite3
	if s.dialect == Postgres {
		dir, gd = "migrations/postgres", goose.DialectPostgres
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(gd, s.db, sub)
	if err != nil {
		return err
	}
	cur, err := p.GetDBVersion(ctx)
	if err != nil {
		return err
	}
	switch {
	case version < cur:
		_, err = p.DownTo(ctx, version)
	case version > cur:
		_, err = p.UpTo(ctx, version)
	}
	if err != nil {
		return fmt.Errorf("migrate %d → %d: %w", cur, version, err)
	}
	return nil
}
