package evidence

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"padlock/internal/detect"
)

// defaultWindow is used when a summary does not say which period it covers.
const defaultWindow = 300 * time.Second

// Summary writes the seed's "Summary on exceeded packet limits" for s:
//
//	Direction OUT
//	Internal 198.51.100.1
//	Threshold Packets 100,000 packets/s
//	Sum                40,674,000 packets/300s (135,580 packets/s), ...
//	External 10.0.0.6, 40,668,000 packets/300s (135,560 packets/s), ...
//
// Every column is aligned over all lines: labels and parenthesised rates
// left-aligned, counts right-aligned. Rates are truncated to integers;
// GByte is bytes/2^30 with three decimals, MBit/s is bits/2^20 per second.
// The period ("/300s") is s.Window in whole seconds.
func Summary(w io.Writer, s *detect.Summary) error {
	var b strings.Builder
	writeSummary(&b, s)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

type summaryRow struct {
	label, packets, pps, flows, fps, gbyte, mbit string
}

func writeSummary(w io.Writer, s *detect.Summary) {
	secs := uint64(s.Window / time.Second)
	if secs == 0 {
		secs = uint64(defaultWindow / time.Second)
	}
	period := strconv.FormatUint(secs, 10) + "s"
	row := func(label string, c detect.Counters) summaryRow {
		return summaryRow{
			label:   label,
			packets: thousands(c.Packets),
			pps:     "(" + thousands(c.Packets/secs) + " packets/s),",
			flows:   thousands(c.Flows),
			fps:     "(" + thousands(c.Flows/secs) + " flows/s),",
			gbyte:   gbytes(c.Bytes),
			// bits/2^20/secs = bytes*8/2^20/secs = bytes/2^17/secs
			mbit: "(" + thousands(c.Bytes/(1<<17)/secs) + " MBit/s)",
		}
	}
	rows := []summaryRow{row("Sum", s.Sum)}
	for _, e := range s.Externals {
		rows = append(rows, row("External "+e.Addr.String()+",", e.Counters))
	}
	var wl, wp, wpps, wf, wfps, wg int
	for _, r := range rows {
		wl = max(wl, len(r.label))
		wp = max(wp, len(r.packets))
		wpps = max(wpps, len(r.pps))
		wf = max(wf, len(r.flows))
		wfps = max(wfps, len(r.fps))
		wg = max(wg, len(r.gbyte))
	}
	fmt.Fprintf(w, "Direction %s\n", strings.ToUpper(string(s.Direction)))
	fmt.Fprintf(w, "Internal %s\n", s.Internal)
	fmt.Fprintf(w, "Threshold Packets %s packets/s\n", thousands(s.ThresholdPPS))
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s %*s packets/%s %-*s %*s flows/%s %-*s %*s GByte/%s %s\n",
			wl, r.label, wp, r.packets, period, wpps, r.pps,
			wf, r.flows, period, wfps, r.fps, wg, r.gbyte, period, r.mbit)
	}
	if s.ExternalsOmitted > 0 {
		io.WriteString(w, omittedLine(s.ExternalsOmitted, "external addresses"))
	}
}

// gbytes renders bytes/2^30 with three decimals (rounded) and thousands
// separators in the integer part, computed in integers so that no float
// rounding shows.
func gbytes(b uint64) string {
	// milli-GByte, rounded half up: (b*1000 + 2^29) / 2^30 without overflow.
	whole := b >> 30
	rem := b & (1<<30 - 1)
	milli := (rem*1000 + 1<<29) >> 30
	if milli == 1000 {
		whole++
		milli = 0
	}
	return fmt.Sprintf("%s.%03d", thousands(whole), milli)
}
