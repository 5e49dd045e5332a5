package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"padlock/internal/lock"
)

// cmdUser manages web accounts (client and admin areas):
// padlock user create --data DIR --email E --role ROLE [--customer ID]   (password on stdin or --password-file)
// padlock user list --data DIR
// padlock user password --data DIR --email E                             (new password on stdin)
func cmdUser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErrorf("usage: padlock user create|list|password [flags]")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("user "+sub, stderr)
	open := storeFlags(fs)
	email := fs.String("email", "", "the account's email address (its sign-in name)")
	role := fs.String("role", "customer", "admin, staff or customer")
	customer := fs.Int64("customer", 0, "customer `ID` of a customer account")
	pwFile := fs.String("password-file", "", "read the password from this `file` instead of standard input")
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, err := open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	readPassword := func() (string, error) {
		var r io.Reader = os.Stdin
		if *pwFile != "" {
			f, err := os.Open(*pwFile)
			if err != nil {
				return "", err
			}
			defer f.Close()
			r = f
		}
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("no password given on standard input (or --password-file)")
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	switch sub {
	case "create":
		if *email == "" {
			return usageErrorf("--email is required")
		}
		pw, err := readPassword()
		if err != nil {
			return err
		}
		u, err := db.CreateUser(ctx, cliActor(), *email, pw, lock.Role(*role), *customer, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %d %s (%s) created\n", u.ID, u.Email, u.Role)
		return nil
	case "list":
		us, err := db.ListUsers(ctx)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		for _, u := range us {
			if err := enc.Encode(u); err != nil {
				return err
			}
		}
		return nil
	case "password":
		if *email == "" {
			return usageErrorf("--email is required")
		}
		pw, err := readPassword()
		if err != nil {
			return err
		}
		u, err := db.UserByEmail(ctx, *email)
		if err != nil {
			return err
		}
		if err := db.SetPassword(ctx, cliActor(), u.ID, pw, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of %s changed\n", u.Email)
		return nil
	}
	return usageErrorf("unknown user command %q (create, list, password)", sub)
}

// cliActor is who the audit log names for a change made on the command
// line: the operating-system account that ran padlock ("cli:root"; behind
// sudo, the account that called sudo), acting with the admin role.
func cliActor() lock.Actor {
	name := os.Getenv("SUDO_USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if name == "" {
		return lock.Actor{Role: lock.RoleAdmin, Name: "cli"}
	}
	return lock.Actor{Role: lock.RoleAdmin, Name: "cli:" + name}
}
