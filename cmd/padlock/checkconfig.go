package main

import (
	"context"
	"fmt"
	"io"

	"github.com/goccy/go-yaml"

	"padlock/internal/config"
)

// cmdCheckConfig validates a configuration file: exit 0 and "ok", or the
// error naming the key. --dump prints the effective configuration.
func cmdCheckConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check-config", stderr)
	dump := fs.Bool("dump", false, "print the effective configuration (defaults filled in)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("usage: padlock check-config [--dump] FILE")
	}
	cfg, err := config.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	if *dump {
		out, err := yaml.Marshal(cfg)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", fs.Arg(0))
	return nil
}
