package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"padlock/internal/config"
	"padlock/internal/decode"
	"padlock/internal/decode/pcapfile"
	"padlock/internal/detect"
	"padlock/internal/evidence"
	"padlock/internal/flow"
)

// cmdAnalyze runs every detector over capture files and prints the
// findings: the seed's report formats (text) or one JSON object per finding.
// Exit status 0 when the analysis ran, with or without findings; 1 when a
// file could not be read (after reporting what the readable part showed);
// 2 on a bad command line or configuration.
func cmdAnalyze(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("analyze", stderr)
	configPath := fs.String("config", "", "configuration `file` (YAML: customers, protected, detect)")
	customers := fs.String("customers", "", "internal networks, comma-separated `CIDR`s (overrides customers:)")
	format := fs.String("format", "text", "output: text (the report formats customers receive) or json (one finding per line)")
	evidenceDir := fs.String("evidence-dir", "", "write each finding's evidence files (text, pcap, json) below `DIR`")
	progress := fs.String("progress", "auto", "progress bar on stderr: auto (when stderr is a terminal), always, never")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: padlock analyze [--config FILE] [--customers CIDR,...] [--format text|json] [--evidence-dir DIR] FILE...\n\n"+
			"Runs every detector over captures (pcap/pcapng, gzip, raw packets or NetFlow/IPFIX/sFlow\n"+
			"exports) and prints the findings.\n\nflags:")
		fs.PrintDefaults()
	}
	files, err := parseFiles(fs, args)
	if err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usageErrorf("--format must be text or json, not %q", *format)
	}
	if len(files) == 0 {
		return usageErrorf("no capture file given")
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return usageError{err}
	}
	if *customers != "" {
		cfg.Customers = nil
		for i, s := range strings.Split(*customers, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				return usageErrorf("--customers[%d]: %q is not a prefix like 203.0.113.0/24", i, s)
			}
			if p.Masked() != p {
				return usageErrorf("--customers[%d]: %s has host bits set (did you mean %s?)", i, p, p.Masked())
			}
			cfg.Customers = append(cfg.Customers, p)
		}
	}
	if len(cfg.Customers) == 0 {
		return usageErrorf("no internal networks: give --customers CIDR,... or customers: in --config")
	}
	if *evidenceDir != "" { // a directory that cannot be written fails now, not after the analysis
		if err := prepareEvidenceDir(*evidenceDir); err != nil {
			return err
		}
	}
	var findings []detect.Finding
	engine, err := detect.New(cfg.Detect, detect.Dependencies{
		Networks:  detect.NewPrefixes(cfg.Customers),
		Protected: cfg.Protected,
		OnFinding: func(f detect.Finding) { findings = append(findings, f) },
	})
	if err != nil {
		return usageError{fmt.Errorf("detect: %w", err)}
	}
	dec := exportDecoders(cfg)
	deps := pcapfile.Dependencies{NetFlow: dec.NetFlow(), SFlow: dec.SFlow()}
	// exporters whose clock was off by more than collect.max_clock_skew
	// (0: not checked); the capture time is the receive time
	skewed := map[netip.Addr]*clockSkew{}
	if cc, ok := deps.NetFlow.(decode.ClockChecker); ok {
		cc.CheckClock(cfg.Collect.MaxClockSkew, func(exp netip.AddrPort, ahead time.Duration) {
			s := skewed[exp.Addr()]
			if s == nil {
				s = &clockSkew{}
				skewed[exp.Addr()] = s
			}
			s.datagrams++
			s.ahead = ahead
		})
	}
	bar := newProgressBar(stderr, *progress)
	var readErrs []error
	var total pcapfile.Stats
	// Reading and decoding run on this goroutine, detection on another:
	// batches of records cross a small channel, so the two halves use
	// both cores and the engine still sees the records in file order.
	feed := newBatchFeed(engine)
	for _, path := range files {
		rd, err := openCapture(path, pcapfile.Configuration{Progress: bar.update(path)}, deps)
		if err != nil {
			readErrs = append(readErrs, err)
			continue
		}
		st, err := rd.Run(ctx, feed)
		rd.Close()
		bar.done()
		total.Packets += st.Packets
		total.Records += st.Records
		if err != nil {
			if ctx.Err() != nil {
				feed.close()
				return ctx.Err()
			}
			readErrs = append(readErrs, err)
		}
	}
	feed.close()
	engine.Flush()
	slices.SortStableFunc(findings, func(a, b detect.Finding) int {
		if c := a.FirstSeen.Compare(b.FirstSeen); c != 0 {
			return c
		}
		return strings.Compare(a.InternalIP.String(), b.InternalIP.String())
	})

	out := bufio.NewWriter(stdout)
	for i, f := range findings {
		if *format == "json" {
			var buf bytes.Buffer
			if err := json.Compact(&buf, evidence.JSON(f, evidence.Limits{})); err != nil {
				return err
			}
			buf.WriteByte('\n')
			out.Write(buf.Bytes())
		} else {
			writeFindingText(out, i+1, f)
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	var evErr error
	switch {
	case *evidenceDir == "":
	case total.Packets == 0 && len(readErrs) > 0:
		// nothing was read (a mistyped file name): the previous run's
		// evidence stays
		evErr = fmt.Errorf("--evidence-dir: no input could be read; %s left as it was", *evidenceDir)
	default:
		evErr = replaceEvidence(*evidenceDir, findings)
	}
	fmt.Fprintf(stderr, "analyze: %d files, %d packets, %d records, %d findings\n", len(files), total.Packets, total.Records, len(findings))
	for _, exp := range slices.SortedFunc(maps.Keys(skewed), netip.Addr.Compare) {
		s := skewed[exp]
		fmt.Fprintf(stderr, "analyze: exporter %s: clock %s the capture by %s in %d datagrams; their record times were moved onto the capture's clock\n",
			exp, map[bool]string{true: "ahead of", false: "behind"}[s.ahead > 0], s.ahead.Abs().Round(time.Second), s.datagrams)
	}
	return errors.Join(append(readErrs, evErr)...)
}

// writeFindingText prints one finding: a headline with the rule, the
// measured value and threshold, then its report in the seed's format and a
// short traffic dump.
func writeFindingText(w io.Writer, n int, f detect.Finding) {
	prot := ""
	if f.Protected {
		prot = " [protected: never acted on]"
	}
	fmt.Fprintf(w, "=== finding %d: %s %s %s%s\n", n, f.Kind, strings.ToUpper(string(f.Direction)), subject(f), prot)
	fmt.Fprintf(w, "rule %s: measured %s %s, threshold %s; sampling 1:%d, %d samples; %s .. %s\n",
		f.Rule, num(f.Measured), f.Unit, num(f.Threshold), max(f.SamplingRate, 1), f.Samples,
		f.FirstSeen.UTC().Format(time.RFC3339), f.LastSeen.UTC().Format(time.RFC3339))
	if f.Detail != "" {
		fmt.Fprintln(w, f.Detail)
	}
	fmt.Fprintln(w)
	if len(f.Probes) > 0 {
		_ = evidence.NetscanLog(w, f, evidence.Limits{MaxProbeLines: 50})
		fmt.Fprintln(w)
	}
	if f.Summary != nil {
		_ = evidence.Summary(w, f.Summary)
		fmt.Fprintln(w)
	}
	if len(f.Packets) > 0 {
		_ = evidence.TrafficDump(w, f.Packets, f.PacketsOmitted, evidence.Limits{MaxPacketLines: 10})
		fmt.Fprintln(w)
	}
}

func num(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}

// subject names whom a finding is about: its internal address, or for a
// spoofed source (neither end a customer's) the source address.
func subject(f detect.Finding) string {
	if !f.InternalIP.IsValid() && f.Source.IsValid() {
		return "source " + f.Source.String()
	}
	return f.InternalIP.String()
}

// evidenceDirName matches the directories writeEvidence makes: number,
// finding kind, IPv4 address or IPv6 address with "_" for ":" — and
// nothing a user is likely to keep beside them (dated folders and the like).
var evidenceDirName = func() *regexp.Regexp {
	var kinds []string
	for _, k := range detect.Kinds {
		kinds = append(kinds, regexp.QuoteMeta(string(k)))
	}
	return regexp.MustCompile(`^[0-9]{3,}-(` + strings.Join(kinds, "|") + `)-(([0-9]{1,3}\.){3}[0-9]{1,3}|[0-9a-f]*_[0-9a-f_.]*)$`)
}()

// prepareEvidenceDir creates dir and checks that it can be written, before
// the analysis; it also removes the temporary directories of a run that
// was cut short. The previous run's finding directories are replaced only
// once this run's evidence is complete (replaceEvidence).
func prepareEvidenceDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--evidence-dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("--evidence-dir: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".tmp-") {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("--evidence-dir: %w", err)
			}
		}
	}
	probe, err := os.CreateTemp(dir, ".tmp-probe-")
	if err != nil {
		return fmt.Errorf("--evidence-dir: %w", err)
	}
	probe.Close()
	return os.Remove(probe.Name())
}

// replaceEvidence writes every finding's evidence into a temporary
// directory inside dir and, once all of it is written, replaces the finding
// directories an earlier run left in dir (their numbers would mix with
// this run's) by the new ones; anything else in dir is left alone. When a
// write fails (a full disk) or a new directory's name is taken by
// something that is not a finding directory, dir is left as it was.
func replaceEvidence(dir string, findings []detect.Finding) error {
	stage, err := os.MkdirTemp(dir, ".tmp-run-")
	if err != nil {
		return fmt.Errorf("--evidence-dir: %w", err)
	}
	defer os.RemoveAll(stage)
	names := make([]string, len(findings))
	for i, f := range findings {
		if names[i], err = writeEvidence(stage, i+1, f); err != nil {
			return fmt.Errorf("--evidence-dir: %w; %s left as it was", err, dir)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("--evidence-dir: %w", err)
	}
	var old []string
	for _, e := range entries {
		switch {
		case e.IsDir() && evidenceDirName.MatchString(e.Name()):
			old = append(old, e.Name())
		case slices.Contains(names, e.Name()):
			return fmt.Errorf("--evidence-dir: %s is in the way of finding %d's evidence; %s left as it was",
				filepath.Join(dir, e.Name()), slices.Index(names, e.Name())+1, dir)
		}
	}
	for _, name := range old {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("--evidence-dir: %w", err)
		}
	}
	for _, name := range names {
		if err := os.Rename(filepath.Join(stage, name), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("--evidence-dir: %w", err)
		}
	}
	return nil
}

// writeEvidence writes a finding's evidence files into DIR/NNN-kind-addr/
// (the internal address, or the spoofed source) and returns the
// directory's name. replaceEvidence writes into its staging directory,
// which it discards when a write fails.
func writeEvidence(dir string, n int, f detect.Finding) (string, error) {
	addr := f.InternalIP
	if !addr.IsValid() {
		addr = f.Source
	}
	name := fmt.Sprintf("%03d-%s-%s", n, f.Kind, strings.ReplaceAll(addr.String(), ":", "_"))
	path := filepath.Join(dir, name)
	if err := os.Mkdir(path, 0o755); err != nil {
		return "", err
	}
	for _, file := range evidence.Files(f) {
		if err := os.WriteFile(filepath.Join(path, file.Name), file.Data, 0o644); err != nil {
			return "", err
		}
	}
	return name, nil
}

// progressBar draws one line on stderr while files are read, when stderr
// is a terminal (or always/never as asked).
type progressBar struct {
	w    io.Writer
	on   bool
	last time.Time
}

func newProgressBar(w io.Writer, mode string) *progressBar {
	on := mode == "always"
	if mode == "auto" {
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				on = true
			}
		}
	}
	return &progressBar{w: w, on: on}
}

func (p *progressBar) update(name string) func(read, total int64) {
	if !p.on {
		return nil
	}
	full := false // the bar stands at 100 %: a gzip stream reports its end more than once
	return func(read, total int64) {
		end := total > 0 && read >= total
		if end && full || !end && time.Since(p.last) < 100*time.Millisecond {
			return
		}
		p.last, full = time.Now(), end
		if total <= 0 { // standard input: no size to compare with
			fmt.Fprintf(p.w, "\r%-30.30s %d MB", filepath.Base(name), read>>20)
			return
		}
		pct := min(100*float64(read)/float64(total), 100)
		const width = 30
		fill := int(pct / 100 * width)
		fmt.Fprintf(p.w, "\r%-30.30s [%s%s] %5.1f%% %d MB", filepath.Base(name), strings.Repeat("#", fill), strings.Repeat(".", width-fill), pct, read>>20)
	}
}

func (p *progressBar) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// batchFeed hands records to the engine's own goroutine in batches; it
// blocks when the engine falls behind (an analysis never drops records).
type batchFeed struct {
	buf  []flow.Record
	full chan []flow.Record
	free chan []flow.Record
	done chan struct{}
}

const feedBatch = 512

func newBatchFeed(engine *detect.Engine) *batchFeed {
	f := &batchFeed{full: make(chan []flow.Record, 4), free: make(chan []flow.Record, 6), done: make(chan struct{})}
	for range 6 {
		f.free <- make([]flow.Record, 0, feedBatch)
	}
	f.buf = <-f.free
	go func() {
		defer close(f.done)
		for b := range f.full {
			engine.Records(b)
			f.free <- b[:0]
		}
	}()
	return f
}

// Record implements flow.Sink for the reader.
func (f *batchFeed) Record(r *flow.Record) {
	*f.Slot() = *r
	f.Commit()
}

// Slot implements flow.Filler: the reader parses packets straight into
// the batch.
func (f *batchFeed) Slot() *flow.Record {
	return &f.buf[:len(f.buf)+1][len(f.buf)]
}

// Commit implements flow.Filler.
func (f *batchFeed) Commit() {
	f.buf = f.buf[:len(f.buf)+1]
	if len(f.buf) == feedBatch {
		f.full <- f.buf
		f.buf = <-f.free
	}
}

// close hands over the last partial batch and waits until the engine has
// seen every record.
func (f *batchFeed) close() {
	if len(f.buf) > 0 {
		f.full <- f.buf
	}
	close(f.full)
	<-f.done
}

// clockSkew is what analyze reports of an exporter whose clock was off.
type clockSkew struct {
	datagrams int
	ahead     time.Duration // the last datagram's
}
