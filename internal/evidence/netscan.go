package evidence

import (
	"fmt"
	"io"
	"strings"

	"padlock/internal/detect"
)

// The seed's netscan log is 67 columns wide.
const netscanWidth = 67

// ctimeLayout is C ctime(3) without the trailing newline.
const ctimeLayout = "Mon Jan _2 15:04:05 2006"

// Column widths of a probe line in the seed: the source right-aligned in 14
// columns after the colon, the destination in 19 after "=>", the port in 5
// after the second colon: 24+1+14+3+19+1+5 = 67.
const (
	probeSrcWidth  = 14
	probeDstWidth  = 19
	probePortWidth = 5
)

// NetscanLog writes the seed's netscan log for f: banner, header, one line
// per probe (at most l.MaxProbeLines) and, when probes were left out (by the
// detector or by the cap), a last line saying how many.
//
// Times use Go's ctime layout, which derives the weekday from the date, so
// the seed's own example date "Thu Nov 13 18:14:27 2021" cannot be produced
// (13 Nov 2021 was a Saturday); the golden test renders 13 Nov 2025, a
// Thursday, and compares the rest of each line byte for byte.
//
// IPv4 lines have the seed's exact widths. Longer addresses (IPv6) widen
// their column for the whole log, so columns stay aligned; the banner and the
// rule grow with the header line when an address does not fit.
func NetscanLog(w io.Writer, f detect.Finding, l Limits) error {
	var b strings.Builder
	writeNetscanLog(&b, f, l)
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write netscan log: %w", err)
	}
	return nil
}

func writeNetscanLog(w io.Writer, f detect.Finding, l Limits) {
	probes := f.Probes
	omitted := f.ProbesOmitted
	if max := l.probes(); len(probes) > max {
		omitted += len(probes) - max
		probes = probes[:max]
	}
	srcW, dstW := probeSrcWidth, probeDstWidth
	for _, p := range probes {
		// At least one space before each address, as in the seed.
		if n := len(p.Src.String()) + 1; n > srcW {
			srcW = n
		}
		if n := len(p.Dst.String()) + 1; n > dstW {
			dstW = n
		}
	}
	// "#          Netscan detected from host   <ip>", padding, "#"; a spam
	// finding's connections to mail servers have the same layout
	what := "Netscan"
	if f.Kind == detect.KindSpam {
		what = "Spam"
	}
	title := "#          " + what + " detected from host   " + f.InternalIP.String()
	width := max(netscanWidth, len(title)+2, len(ctimeLayout)+1+srcW+3+dstW+1+probePortWidth)
	title += strings.Repeat(" ", width-1-len(title)) + "#"
	hashes := strings.Repeat("#", width)
	fmt.Fprintf(w, "%s\n%s\n%s\n\n", hashes, title, hashes)
	fmt.Fprintf(w, "time                        src_ip\t\t  dest_ip:dest_port\n")
	fmt.Fprintf(w, "%s\n", strings.Repeat("-", width))
	for _, p := range probes {
		fmt.Fprintf(w, "%s:%*s =>%*s:%*d\n", p.Time.Format(ctimeLayout),
			srcW, p.Src.String(), dstW, p.Dst.String(), probePortWidth, p.DstPort)
	}
	if omitted > 0 {
		io.WriteString(w, omittedLine(omitted, "lines"))
	}
}
