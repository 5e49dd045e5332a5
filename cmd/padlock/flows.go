package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"padlock/internal/decode/netflow"
	"padlock/internal/decode/pcapfile"
	"padlock/internal/decode/sflow"
	"padlock/internal/flow"
)

// cmdFlows prints the decoded flow records of capture files, like
// `nfdump -r`: pcap/pcapng (optionally gzip'ed) of raw packets or of
// NetFlow/IPFIX/sFlow export datagrams.
func cmdFlows(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("flows", stderr)
	format := fs.String("format", "table", "output format: table or json (one object per line)")
	limit := fs.Int("limit", 0, "stop after `N` records (0: all)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: padlock flows [--format table|json] [--limit N] FILE...\n\n"+
			"Prints the flow records decoded from pcap/pcapng captures (raw packets or\n"+
			"NetFlow v5/v9, IPFIX and sFlow exports; gzip is read transparently), then a\n"+
			"summary per format and exporter on stderr.\n\nflags:")
		fs.PrintDefaults()
	}
	files, err := parseFiles(fs, args)
	if err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return usageErrorf("--format must be table or json, not %q", *format)
	}
	if *limit < 0 {
		return usageErrorf("--limit must be >= 0")
	}
	if len(files) == 0 {
		return usageErrorf("no capture file given")
	}
	out := bufio.NewWriter(stdout)
	p := &flowPrinter{w: out, json: *format == "json", limit: *limit, counts: map[summaryKey]uint64{}}
	if !p.json {
		p.header()
	}
	var errs []error
	for _, path := range files {
		if p.full() {
			break
		}
		if err := p.file(ctx, path); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	p.summary(stderr, errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

type summaryKey struct {
	format   flow.Format
	exporter netip.Addr
}

type flowPrinter struct {
	w      *bufio.Writer
	json   bool
	limit  int
	n      int
	counts map[summaryKey]uint64
	files  []fileSummary
	werr   error
}

type fileSummary struct {
	path  string
	stats pcapfile.Stats
}

func (p *flowPrinter) full() bool { return p.limit > 0 && p.n >= p.limit }

// errLimit stops reading a file once --limit records are printed.
var errLimit = errors.New("record limit reached")

func (p *flowPrinter) file(ctx context.Context, path string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r, err := openCapture(path, pcapfile.Configuration{}, pcapfile.Dependencies{
		NetFlow: netflow.New(netflow.Configuration{}),
		SFlow:   sflow.New(sflow.Configuration{}),
	})
	if err != nil {
		if !strings.Contains(err.Error(), path) {
			err = fmt.Errorf("%s: %w", path, err)
		}
		return err
	}
	defer r.Close()
	st, err := r.Run(ctx, flow.SinkFunc(func(rec *flow.Record) {
		if p.full() {
			cancel(errLimit)
			return
		}
		p.record(rec)
		if p.full() {
			cancel(errLimit)
		}
	}))
	p.files = append(p.files, fileSummary{path, st})
	if err != nil && !errors.Is(context.Cause(ctx), errLimit) {
		var oe *pcapfile.OffsetError
		switch {
		case errors.As(err, &oe) && oe.Compressed:
			err = fmt.Errorf("%s: offset %d (uncompressed): %w", path, oe.Offset, oe.Err)
		case errors.As(err, &oe):
			err = fmt.Errorf("%s: offset %d: %w", path, oe.Offset, oe.Err)
		case !strings.Contains(err.Error(), path):
			err = fmt.Errorf("%s: %w", path, err)
		}
		return err
	}
	return p.werr
}

func (p *flowPrinter) record(r *flow.Record) {
	p.n++
	p.counts[summaryKey{r.Format, r.Exporter}]++
	if p.werr != nil {
		return
	}
	if p.json {
		b, err := json.Marshal(r)
		if err == nil {
			b = append(b, '\n')
			_, err = p.w.Write(b)
		}
		p.werr = err
		return
	}
	_, p.werr = p.w.WriteString(tableLine(r))
}

const tableHeader = "%-23s %9s %-8s %-15s %-5s %-45s %-8s %10s %12s %8s\n"

func (p *flowPrinter) header() {
	fmt.Fprintf(p.w, tableHeader, "start (UTC)", "duration", "format", "exporter", "proto",
		"src:port -> dst:port", "flags", "packets", "bytes", "sampling")
}

// tableLine renders one record as one line of the table.
func tableLine(r *flow.Record) string {
	exp := "-"
	if r.Exporter.IsValid() {
		exp = r.Exporter.String()
	}
	conv := endpoint(r.SrcAddr, r.SrcPort, r.Proto, false) + " -> " + endpoint(r.DstAddr, r.DstPort, r.Proto, true)
	return fmt.Sprintf(tableHeader,
		r.Start.UTC().Format("2006-01-02 15:04:05.000"),
		strconv.FormatFloat(r.Duration().Seconds(), 'f', 3, 64),
		r.Format, exp, protoName(r), conv, tcpFlags(r),
		strconv.FormatUint(r.Packets, 10), strconv.FormatUint(r.Bytes, 10), strconv.FormatUint(uint64(r.SamplingRate), 10))
}

func endpoint(a netip.Addr, port uint16, proto uint8, dst bool) string {
	if !a.IsValid() {
		return "-"
	}
	if proto == flow.ProtoICMP || proto == flow.ProtoICMPv6 {
		if !dst {
			return a.String()
		}
		// NetFlow convention: type<<8 | code in the destination port.
		return fmt.Sprintf("%s type %d/%d", a, port>>8, port&0xff)
	}
	return netip.AddrPortFrom(a, port).String()
}

func protoName(r *flow.Record) string {
	if !r.SrcAddr.IsValid() && r.Proto == 0 {
		return "-" // not IP (ARP, LLDP, ...)
	}
	switch r.Proto {
	case flow.ProtoTCP:
		return "TCP"
	case flow.ProtoUDP:
		return "UDP"
	case flow.ProtoICMP:
		return "ICMP"
	case flow.ProtoICMPv6:
		return "ICMP6"
	}
	return strconv.Itoa(int(r.Proto))
}

// tcpFlags renders the flags as nfdump does, one letter or a dot each for
// CWR ECE URG ACK PSH RST SYN FIN; blank for other protocols.
func tcpFlags(r *flow.Record) string {
	if r.Proto != flow.ProtoTCP {
		return ""
	}
	const letters = "CEUAPRSF"
	b := []byte("........")
	for i := range 8 {
		if r.TCPFlags&(0x80>>i) != 0 {
			b[i] = letters[i]
		}
	}
	return string(b)
}

// summary prints records per format and exporter, the file statistics and
// the errors.
func (p *flowPrinter) summary(w io.Writer, errs []error) {
	keys := make([]summaryKey, 0, len(p.counts))
	for k := range p.counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b summaryKey) int {
		if c := cmp.Compare(a.format, b.format); c != 0 {
			return c
		}
		return a.exporter.Compare(b.exporter)
	})
	fmt.Fprintf(w, "\n%d records", p.n)
	if p.full() {
		fmt.Fprintf(w, " (--limit %d reached)", p.limit)
	}
	fmt.Fprintln(w)
	if len(keys) > 0 {
		fmt.Fprintf(w, "  %-9s %-39s %12s\n", "format", "exporter", "records")
		for _, k := range keys {
			exp := "-"
			if k.exporter.IsValid() {
				exp = k.exporter.String()
			}
			fmt.Fprintf(w, "  %-9s %-39s %12d\n", k.format, exp, p.counts[k])
		}
	}
	for _, f := range p.files {
		fmt.Fprintf(w, "%s: %d packets, %d export datagrams, %d records decoded", f.path, f.stats.Packets, f.stats.ExportDatagrams, f.stats.Records)
		causes := make([]string, 0, len(f.stats.Errors))
		for c := range f.stats.Errors {
			causes = append(causes, c)
		}
		slices.Sort(causes)
		for i, c := range causes {
			sep := ", "
			if i == 0 {
				sep = "; problems: "
			}
			fmt.Fprintf(w, "%s%s %d", sep, c, f.stats.Errors[c])
		}
		fmt.Fprintln(w)
	}
	if len(errs) > 0 { // the errors themselves follow, printed by main
		fmt.Fprintf(w, "%d file(s) with errors:\n", len(errs))
	}
}
