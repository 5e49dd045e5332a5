package notify

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"padlock/internal/mail"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// netscanLog is the start of the seed's netscan log, as the evidence
// package renders it.
const netscanLog = `###################################################################
#          Netscan detected from host   203.0.113.10              #
###################################################################

time                        src_ip		  dest_ip:dest_port
-------------------------------------------------------------------
Thu Nov 13 18:14:27 2021:  203.0.113.10 =>      198.51.100.2:   22
Thu Nov 13 18:14:27 2021:  203.0.113.10 =>      198.51.100.3:   22
`

func testEvent(kind Kind, reason string) Event {
	t0 := time.Date(2026, 11, 25, 14, 22, 0, 0, time.UTC)
	ev := Event{
		Kind: kind, LockID: 42, LockingID: "L0029DB12", Reason: reason,
		Customer:    Customer{ID: 7, Name: "Erika Mustermann", Email: "erika@example.org", Language: "en"},
		ProductKind: "server", Product: "web1 (203.0.113.10)",
		Addresses:     []string{"203.0.113.10"},
		At:            t0.Add(26 * time.Hour),
		Since:         t0,
		ClientAreaURL: "https://robot.example.net/locks/L0029DB12",
	}
	switch reason {
	case "non_payment", "illegal_content":
	default:
		ev.WhitelistOffered = true
	}
	switch kind {
	case KindWarning:
		ev.Deadline = t0.Add(24 * time.Hour)
	case KindWhitelistAdded, KindWhitelistExpired:
		ev.WhitelistIP = "198.51.100.77"
		ev.WhitelistExpires = t0.Add(24 * time.Hour)
	case KindUnlockRequestRejected:
		ev.Note = "The scanner is still running: we saw new probes at 15:02 UTC.\nPlease check the cron jobs of user www-data."
	case KindUnlock:
		ev.ProbationUntil = t0.Add(30 * 24 * time.Hour)
	}
	if kind == KindWarning || kind == KindLock {
		switch reason {
		case "netscan":
			ev.Evidence = []mail.Attachment{{Name: "netscan.log", ContentType: "text/plain", Data: []byte(netscanLog)}}
		case "packet_limit":
			ev.Addresses = []string{"203.0.113.10", "2001:db8::10"}
			ev.Evidence = []mail.Attachment{
				{Name: "summary.txt", ContentType: "text/plain", Data: []byte("Direction OUT\n")},
				{Name: "traffic.txt", ContentType: "text/plain", Data: []byte("21:44:53.145756 IP 203.0.113.10.55008 > 198.51.100.2.29615: UDP, length 9216\n")},
				{Name: "traffic.pcap", ContentType: "application/vnd.tcpdump.pcap", Data: []byte{0xd4, 0xc3, 0xb2, 0xa1}},
			}
		}
	}
	return ev
}

func newTestRenderer(t *testing.T, dir string) *Renderer {
	t.Helper()
	r, err := NewRenderer(RendererConfig{Dir: dir, ClientAreaURL: "https://robot.example.net/"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// goldenText is the text form of a rendered mail compared with the golden
// file: headers that matter, then the text part.
func goldenText(m mail.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "To: %s\nSubject: %s\nKind: %s\nLock: %d\n", m.To, m.Subject, m.Kind, m.LockID)
	for _, a := range m.Attachments {
		fmt.Fprintf(&b, "Attachment: %s (%s, %d bytes)\n", a.Name, a.ContentType, len(a.Data))
	}
	b.WriteString("\n" + m.Text)
	return b.String()
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from golden file (-want +got):\n%s", path, diff)
	}
}

// TestRenderGolden renders every kind for a few reasons in English and
// German and compares subject, text and HTML with the golden files.
func TestRenderGolden(t *testing.T) {
	r := newTestRenderer(t, "")
	type tc struct {
		lang, reason string
		kinds        []Kind
		inbound      bool
	}
	cases := []tc{
		{"en", "netscan", Kinds, false},
		{"en", "packet_limit", []Kind{KindWarning, KindLock}, false},
		{"en", "packet_limit", []Kind{KindLock, KindUnlock}, true},
		{"en", "non_payment", []Kind{KindLock, KindUnlock}, false},
		{"en", "illegal_content", []Kind{KindLock, KindUnlockRequestRejected}, false},
		{"en", "spam", []Kind{KindLock}, false},
		{"en", "network_attack", []Kind{KindLock}, false},
		{"en", "abuse", []Kind{KindLock}, false},
		{"en", "incorrect_network_config", []Kind{KindLock}, false},
		{"de", "netscan", Kinds, false},
		{"de", "packet_limit", []Kind{KindLock}, true},
		{"de", "non_payment", []Kind{KindLock}, false},
	}
	for _, c := range cases {
		for _, k := range c.kinds {
			name := fmt.Sprintf("%s/%s_%s", c.lang, k, c.reason)
			if c.inbound {
				name += "_inbound"
			}
			t.Run(name, func(t *testing.T) {
				ev := testEvent(k, c.reason)
				ev.Customer.Language = c.lang
				if c.inbound {
					ev.InboundProtection = true
					ev.Until = ev.Since.Add(6 * time.Hour)
				}
				m, err := r.Render(ev)
				if err != nil {
					t.Fatal(err)
				}
				checkGolden(t, name+".txt", goldenText(m))
				checkGolden(t, name+".html", m.HTML)
			})
		}
	}
}
