package store_test

import (
	"testing"

	"padlock/internal/store/storetest"
)

func TestConformanceSQLite(t *testing.T) { storetest.Run(t, storetest.SQLite) }

// TestConformancePostgres needs the PostgreSQL on 127.0.0.1:5432 (database
// test); it skips without it, and fails when CI is set.
func TestConformancePostgres(t *testing.T) { storetest.Run(t, storetest.Postgres) }
