// Command padlock is the one binary of padlock: the network-abuse detector,
// lock manager, enforcement driver, notifier and web areas of a hosting
// provider. The first argument picks the job; wiring of components happens
// here and nowhere else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"padlock/internal/decode/pcapfile"
)

// command is one sub-command. run gets the arguments after the command name.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the table of sub-commands. Each lives in its own file.
var commands = map[string]command{
	"version":      {"print the version", cmdVersion},
	"check-config": {"validate a configuration file (--dump prints the effective one)", cmdCheckConfig},
	"import":       {"import an inventory file (JSON or CSV) into a running padlock", cmdImport},
	"lock":         {"lock a product through a running padlock's API", cmdLock},
	"locks":        {"list locks of a running padlock", cmdLocks},
	"unlock":       {"unlock a lock through a running padlock's API", cmdUnlock},
	"serve":        {"run padlock: collectors, detection, locks, enforcement, mail, web, API", cmdServe},
	"token":        {"create, list or revoke API tokens", cmdToken},
	"flows":        {"print the decoded flow records of capture files", cmdFlows},
	"analyze":      {"run every detector over capture files and print the findings", cmdAnalyze},
	"user":         {"create or list web accounts, change passwords", cmdUser},
	"sensor":       {"collectors and detection only (edge probe, benchmarks): findings on stdout, /api/v1/flagged", cmdSensor},
	"export":       {"print the inventory of a running padlock as JSON or CSV (padlock import reads it back)", cmdExport},
	// commands: keep one line per command, sorted by file
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func cmdVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	_, err := fmt.Fprintf(stdout, "padlock %s\n", version)
	return err
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: padlock COMMAND [flags] [args]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'padlock COMMAND -h' for the flags of a command.")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit status: 0 on
// success, 2 on a usage error, 1 on any other error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "padlock: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "padlock %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "padlock %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// usageError marks an error in the command line (exit status 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// usageErrorf formats a usage error.
func usageErrorf(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("padlock "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFiles parses the flags of fs from args and returns the other
// arguments, the files: flags may also follow or sit between them
// (`padlock analyze a.pcap --format json`); everything after "--" is a file.
func parseFiles(fs *flag.FlagSet, args []string) ([]string, error) {
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return files, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(files, rest...), nil
		}
		files = append(files, rest[0])
		args = rest[1:]
	}
}

// openCapture opens a capture for analyze and flows; "-" is standard input.
func openCapture(path string, conf pcapfile.Configuration, deps pcapfile.Dependencies) (*pcapfile.Reader, error) {
	if path == "-" {
		return pcapfile.NewReader(os.Stdin, "stdin", conf, deps)
	}
	return pcapfile.Open(path, conf, deps)
}
