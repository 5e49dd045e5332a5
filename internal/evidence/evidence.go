// Package evidence renders a detect.Finding into the files a customer
// receives and the client area offers: the seed's netscan log, the seed's
// "Summary on exceeded packet limits", a detailed traffic dump in tcpdump's
// default one-line format, the same packets as a pcap file, and a JSON form
// of the finding.
//
// It owns only rendering: it reads findings and records and never decides
// anything. It imports detect and flow (for their value types) and gopacket
// (to parse packet headers and write pcap); it must not import detectors,
// storage, mail, web or enforcement packages.
//
// Times are rendered in the location of the time values they are given
// (decoders produce UTC); callers that want another zone convert first.
package evidence

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"padlock/internal/detect"
)

// Limits bound the size of rendered evidence. The detectors already cap what
// a finding carries; these caps protect the renderers against findings built
// elsewhere.
type Limits struct {
	MaxProbeLines  int // netscan log lines (default 1000)
	MaxPacketLines int // traffic dump lines and pcap packets (default 1000)
}

// DefaultLimits are the caps Files uses.
var DefaultLimits = Limits{MaxProbeLines: 1000, MaxPacketLines: 1000}

func (l Limits) probes() int {
	if l.MaxProbeLines <= 0 {
		return DefaultLimits.MaxProbeLines
	}
	return l.MaxProbeLines
}

func (l Limits) packets() int {
	if l.MaxPacketLines <= 0 {
		return DefaultLimits.MaxPacketLines
	}
	return l.MaxPacketLines
}

// File is one evidence file of a finding, as attached to the email and
// offered for download in the client area.
type File struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Data        []byte `json:"-"`
}

// Content types of the evidence files.
const (
	ContentTypeText = "text/plain; charset=utf-8"
	ContentTypePcap = "application/vnd.tcpdump.pcap"
	ContentTypeJSON = "application/json"
)

// File names of the evidence files.
const (
	NameNetscanLog = "netscan.log"
	NameSpamLog    = "spam.log" // a spam finding's connections, in the netscan log's layout
	NameSummary    = "summary.txt"
	NameTraffic    = "traffic.txt"
	NamePcap       = "traffic.pcap"
	NameJSON       = "finding.json"
)

// Files returns the evidence files finding f has, in a fixed order:
// netscan.log (when it has probes; spam.log for a spam finding), summary.txt (when it has a summary),
// traffic.txt (when it has sample packets), traffic.pcap (when at least one
// sample packet carries header bytes) and finding.json (always).
func Files(f detect.Finding) []File {
	return FilesWithLimits(f, DefaultLimits)
}

// FilesWithLimits is Files with explicit caps.
func FilesWithLimits(f detect.Finding, l Limits) []File {
	var out []File
	if len(f.Probes) > 0 {
		var b bytes.Buffer
		writeNetscanLog(&b, f, l)
		out = append(out, File{Name: probeLogName(f), ContentType: ContentTypeText, Data: b.Bytes()})
	}
	if f.Summary != nil {
		var b bytes.Buffer
		writeSummary(&b, f.Summary)
		out = append(out, File{Name: NameSummary, ContentType: ContentTypeText, Data: b.Bytes()})
	}
	if len(f.Packets) > 0 {
		var b bytes.Buffer
		writeTrafficDump(&b, f.Packets, f.PacketsOmitted, l)
		out = append(out, File{Name: NameTraffic, ContentType: ContentTypeText, Data: b.Bytes()})
		var p bytes.Buffer
		if n, err := writePcap(&p, f.Packets, l); err == nil && n > 0 {
			out = append(out, File{Name: NamePcap, ContentType: ContentTypePcap, Data: p.Bytes()})
		}
	}
	out = append(out, File{Name: NameJSON, ContentType: ContentTypeJSON, Data: JSON(f, l)})
	return out
}

// probeLogName is the file name of f's probe log.
func probeLogName(f detect.Finding) string {
	if f.Kind == detect.KindSpam {
		return NameSpamLog
	}
	return NameNetscanLog
}

// thousands formats n with comma thousands separators ("40,674,000").
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// omittedLine is the last line of a capped listing.
func omittedLine(n int, what string) string {
	return fmt.Sprintf("..... %s more %s left out\n", thousands(uint64(n)), what)
}
