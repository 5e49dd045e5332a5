package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"padlock/internal/config"
	"padlock/internal/lock"
	"padlock/internal/store"
)

// cmdToken manages API tokens directly in the database:
// padlock token create --data DIR --role ROLE [--customer ID] [--name NAME]
// padlock token list --data DIR
// padlock token revoke --data DIR ID
func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErrorf("usage: padlock token create|list|revoke [flags]")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("token "+sub, stderr)
	open := storeFlags(fs)
	role := fs.String("role", "", "role of the new token: admin, staff, billing, readonly or customer")
	customer := fs.Int64("customer", 0, "customer `ID` a customer token acts as")
	name := fs.String("name", "", "a name for the token (who or what uses it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, err := open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	admin := cliActor()
	switch sub {
	case "create":
		r := lock.Role(*role)
		if !lock.ValidRole(r) {
			return usageErrorf("--role must be one of admin, staff, billing, readonly, customer (got %q)", *role)
		}
		if (r == lock.RoleCustomer) != (*customer != 0) {
			return usageErrorf("--customer is required with --role customer and only allowed with it")
		}
		if r == lock.RoleCustomer {
			err := db.View(ctx, func(tx lock.Tx) error { _, err := tx.Customer(ctx, *customer); return err })
			if err != nil {
				return fmt.Errorf("customer %d: %w", *customer, err)
			}
		}
		n := *name
		if n == "" {
			n = string(r)
		}
		secret, _, err := db.CreateToken(ctx, admin, n, r, *customer, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, secret)
		return nil
	case "list":
		toks, err := db.ListTokens(ctx)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		for _, t := range toks {
			if err := enc.Encode(t); err != nil {
				return err
			}
		}
		return nil
	case "revoke":
		if fs.NArg() != 1 {
			return usageErrorf("usage: padlock token revoke [--data DIR] ID")
		}
		var id int64
		if _, err := fmt.Sscan(fs.Arg(0), &id); err != nil {
			return usageErrorf("token ID %q is not a number", fs.Arg(0))
		}
		return db.RevokeToken(ctx, admin, id, time.Now())
	}
	return usageErrorf("unknown token command %q (create, list, revoke)", sub)
}

// storeFlags adds --config and --data to a command that works on the
// database directly, and returns the function that opens it.
func storeFlags(fs *flag.FlagSet) func(context.Context) (*store.DB, error) {
	configPath := fs.String("config", "", "configuration `file` (for store.dsn and data)")
	dataDir := fs.String("data", "", "data `directory` (default from the configuration, ./padlock-data)")
	return func(ctx context.Context) (*store.DB, error) {
		cfg, err := config.Load(*configPath)
		if err != nil {
			return nil, err
		}
		if *dataDir != "" {
			cfg.Data = *dataDir
		}
		return openStore(ctx, cfg)
	}
}

// openStore opens the database a configuration names.
func openStore(ctx context.Context, cfg config.Config) (*store.DB, error) {
	dsn := cfg.Store.DSN
	if dsn == "" {
		dsn = store.DefaultDSN(cfg.Data)
	}
	return store.Open(ctx, dsn)
}
