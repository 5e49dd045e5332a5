package notify

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	case KindNotice:
		// Nothing is locked: a notice has no lock.
		ev.LockID, ev.LockingID, ev.ClientAreaURL = 0, "", ""
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
	if kind == KindNotice || kind == KindWarning || kind == KindLock {
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

var (
	sharedRenderer     *Renderer
	sharedRendererErr  error
	sharedRendererOnce sync.Once
)

// newTestRenderer returns a renderer of the built-in templates (shared:
// parsing and the self-test take a while under -race) or of dir.
func newTestRenderer(t *testing.T, dir string) *Renderer {
	t.Helper()
	if dir == "" {
		sharedRendererOnce.Do(func() {
			sharedRenderer, sharedRendererErr = NewRenderer(RendererConfig{ClientAreaURL: "https://robot.example.net/"})
		})
		if sharedRendererErr != nil {
			t.Fatal(sharedRendererErr)
		}
		return sharedRenderer
	}
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
		{"en", "packet_limit", []Kind{KindNotice, KindWarning, KindLock}, false},
		{"en", "abuse", []Kind{KindNotice}, false},
		{"en", "packet_limit", []Kind{KindLock, KindUnlock}, true},
		{"en", "non_payment", []Kind{KindWarning, KindLock, KindUnlock}, false},
		{"en", "illegal_content", []Kind{KindLock, KindUnlockRequestRejected}, false},
		{"en", "spam", []Kind{KindLock}, false},
		{"en", "network_attack", []Kind{KindLock}, false},
		{"en", "abuse", []Kind{KindLock}, false},
		{"en", "incorrect_network_config", []Kind{KindLock}, false},
		{"de", "netscan", Kinds, false},
		{"de", "packet_limit", []Kind{KindLock}, true},
		{"de", "non_payment", []Kind{KindLock}, false},
		{"de", "packet_limit", []Kind{KindNotice}, false},
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

// TestRenderAllKindsReasons renders every kind, reason and variant in every
// shipped language: the Locking ID is in the subject, both parts exist, no
// template value is missing, and evidence goes only with notices, warnings
// and locks. A notice has no Locking ID and says nothing is locked.
func TestRenderAllKindsReasons(t *testing.T) {
	r := newTestRenderer(t, "")
	if diff := cmp.Diff([]string{"de", "en"}, r.Languages()); diff != "" {
		t.Fatalf("languages (-want +got):\n%s", diff)
	}
	for _, lang := range r.Languages() {
		for _, k := range Kinds {
			for _, reason := range Reasons {
				for _, inbound := range []bool{false, true} {
					ev := testEvent(k, reason)
					ev.Customer.Language = lang
					ev.InboundProtection = inbound
					ev.Evidence = []mail.Attachment{{Name: "netscan.log", ContentType: "text/plain", Data: []byte(netscanLog)}}
					m, err := r.Render(ev)
					if err != nil {
						t.Fatalf("%s %s %s: %v", lang, k, reason, err)
					}
					lockID := "L0029DB12"
					if k == KindNotice {
						lockID = ""
						if strings.Contains(m.Subject, "[") || !strings.Contains(m.Subject, "web1 (203.0.113.10)") {
							t.Errorf("%s %s %s: notice subject %q", lang, k, reason, m.Subject)
						}
						if !strings.Contains(m.Text, map[string]string{"en": "Nothing has been locked", "de": "Es wurde nichts gesperrt"}[lang]) ||
							strings.Contains(m.Text, "traceroute") || strings.Contains(m.Text, "Locking ID:") || strings.Contains(m.Text, "Sperr-ID (") {
							t.Errorf("%s %s %s: notice text does not say that nothing is locked, or talks about a lock:\n%s", lang, k, reason, m.Text)
						}
					} else if !strings.HasPrefix(m.Subject, "[L0029DB12] ") {
						t.Errorf("%s %s %s: subject %q lacks the Locking ID", lang, k, reason, m.Subject)
					}
					for part, s := range map[string]string{"text": m.Text, "html": m.HTML} {
						if s == "" || strings.Contains(s, "<no value>") || !strings.Contains(s, lockID) {
							t.Errorf("%s %s %s: bad %s part:\n%s", lang, k, reason, part, s)
						}
					}
					wantAtt := k == KindNotice || k == KindWarning || k == KindLock
					if got := len(m.Attachments) == 1; got != wantAtt {
						t.Errorf("%s %s %s: %d attachments, want evidence=%v", lang, k, reason, len(m.Attachments), wantAtt)
					}
					wantLock := int64(42)
					if k == KindNotice {
						wantLock = 0
					}
					if m.To != "erika@example.org" || m.Kind != string(k) || m.LockID != wantLock || m.CustomerID != 7 {
						t.Errorf("%s %s %s: message metadata %+v", lang, k, reason, m)
					}
					for _, l := range strings.Split(m.Text, "\n") {
						if len([]rune(l)) > 78 && !strings.Contains(l, "://") && !strings.HasPrefix(l, "Subject") {
							t.Errorf("%s %s %s: text line longer than 78: %q", lang, k, reason, l)
						}
					}
				}
			}
		}
	}
}

func TestRenderLanguageChoice(t *testing.T) {
	r := newTestRenderer(t, "")
	for lang, want := range map[string]string{
		"de": "gesperrt", "DE-at": "gesperrt", "de_CH": "gesperrt",
		"en": "has been locked", "en-GB": "has been locked", "fr": "has been locked", "": "has been locked",
	} {
		ev := testEvent(KindLock, "netscan")
		ev.Customer.Language = lang
		m, err := r.Render(ev)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(m.Subject, want) {
			t.Errorf("language %q: subject %q, want it to contain %q", lang, m.Subject, want)
		}
	}
}

func TestRenderEscapesCustomerAndStaffText(t *testing.T) {
	r := newTestRenderer(t, "")
	ev := testEvent(KindUnlockRequestRejected, "netscan")
	ev.Customer.Name = `Eve <script>alert(1)</script>`
	ev.Note = `see <a href="http://evil.example">here</a> & fix`
	m, err := r.Render(ev)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") || strings.Contains(m.HTML, `<a href="http://evil`) {
		t.Errorf("HTML part contains unescaped customer or staff text:\n%s", m.HTML)
	}
	if !strings.Contains(m.HTML, "&lt;script&gt;") || !strings.Contains(m.HTML, "&amp; fix") {
		t.Errorf("HTML part lost the escaped text:\n%s", m.HTML)
	}
	if !strings.Contains(m.Text, `> see <a href="http://evil.example">here</a> & fix`) {
		t.Errorf("text part should quote the note verbatim:\n%s", m.Text)
	}
}

func TestRenderRejectsBadEvents(t *testing.T) {
	r := newTestRenderer(t, "")
	for name, mod := range map[string]func(*Event){
		"kind":       func(e *Event) { e.Kind = "bogus" },
		"reason":     func(e *Event) { e.Reason = "bogus" },
		"locking id": func(e *Event) { e.LockingID = "" },
		"email":      func(e *Event) { e.Customer.Email = "" },
	} {
		ev := testEvent(KindLock, "netscan")
		mod(&ev)
		if _, err := r.Render(ev); err == nil {
			t.Errorf("%s: Render accepted a bad event", name)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRenderOverrides replaces one built-in file and adds a language; a
// broken or incomplete override fails NewRenderer with the file's name.
func TestRenderOverrides(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "en", "subjects.tmpl"),
		strings.Replace(mustRead(t, "templates/en/subjects.tmpl"), "has been locked:", "is LOCKED:", 1))
	for _, f := range templateFiles() {
		writeFile(t, filepath.Join(dir, "nl", f), mustRead(t, "templates/en/"+f))
	}
	writeFile(t, filepath.Join(dir, "nl", "subjects.tmpl"), strings.Replace(mustRead(t, "templates/en/subjects.tmpl"),
		"Your {{.ProductText}} has been locked: {{.ReasonTitle}}", "Uw {{.ProductText}} is geblokkeerd", 1))
	r := newTestRenderer(t, dir)
	ev := testEvent(KindLock, "netscan")
	m, err := r.Render(ev)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[L0029DB12] Your server web1 (203.0.113.10) is LOCKED: network scan"; m.Subject != want {
		t.Errorf("override subject %q, want %q", m.Subject, want)
	}
	ev.Customer.Language = "nl"
	if m, err = r.Render(ev); err != nil {
		t.Fatal(err)
	}
	if want := "[L0029DB12] Uw server web1 (203.0.113.10) is geblokkeerd"; m.Subject != want {
		t.Errorf("nl subject %q, want %q", m.Subject, want)
	}

	for name, tc := range map[string]struct{ file, content, want string }{
		"syntax":   {"en/lock.txt.tmpl", "{{if}}", "en/lock.txt.tmpl"},
		"snippet":  {"en/lock.txt.tmpl", `{{msg "no.such.snippet" .}}`, "no.such.snippet"},
		"field":    {"de/unlock.html.tmpl", `{{.NoSuchField}}`, "NoSuchField"},
		"unknown":  {"en/lokc.txt.tmpl", "x", "en/lokc.txt.tmpl"},
		"language": {"fr/subjects.tmpl", mustRead(t, "templates/en/subjects.tmpl"), "fr/messages.tmpl: missing"},
	} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, tc.file), tc.content)
		_, err := NewRenderer(RendererConfig{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewRenderer error %v, want one naming %q", name, err, tc.want)
		}
	}
	if _, err := NewRenderer(RendererConfig{Dir: filepath.Join(dir, "missing")}); err == nil {
		t.Error("a missing template directory was accepted")
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := embedded.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRenderStorageBox: a product without addresses gets no traceroute
// advice (there is nothing to trace) and reads as a storage box.
func TestRenderStorageBox(t *testing.T) {
	ev := testEvent(KindLock, "illegal_content")
	ev.ProductKind, ev.Product, ev.Addresses = "storage_box", "BX11 #4711", nil
	m, err := newTestRenderer(t, "").Render(ev)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "[L0029DB12] Your storage box BX11 #4711 has been locked: illegal content" {
		t.Errorf("subject %q", m.Subject)
	}
	if strings.Contains(m.Text, "traceroute") || strings.Contains(m.HTML, "tracert") {
		t.Errorf("storage box mail advises a traceroute:\n%s", m.Text)
	}
	if strings.Contains(m.Text, "KVM") {
		t.Errorf("storage box mail offers a KVM console:\n%s", m.Text)
	}
}

// A password reset mail is written in the language of the user's customer,
// says how long the link works in words, and carries the link in both
// parts (escaped in HTML).
func TestRenderPasswordReset(t *testing.T) {
	r := newTestRenderer(t, "")
	link := "https://robot.example.net/client/reset/abc&def"
	for _, c := range []struct {
		lang  string
		valid time.Duration
		want  []string
	}{
		{"en", time.Hour, []string{"Reset your password", "Hello,", "within 1 hour to", "The link works once"}},
		{"", 90 * time.Minute, []string{"Reset your password", "within 90 minutes to"}},
		{"de-AT", time.Hour, []string{"Passwort zurücksetzen", "Guten Tag,", "innerhalb von einer Stunde", "nur einmal"}},
		{"de", 48 * time.Hour, []string{"innerhalb von 48 Stunden"}},
	} {
		m, err := r.RenderPasswordReset(PasswordReset{Customer: Customer{ID: 7, Email: "bob@beta.example", Language: c.lang}, Link: link, Valid: c.valid})
		if err != nil {
			t.Fatal(err)
		}
		all := m.Subject + "\n" + m.Text
		for _, w := range c.want {
			if !strings.Contains(all, w) {
				t.Errorf("%q: mail lacks %q:\n%s", c.lang, w, all)
			}
		}
		if !strings.Contains(m.Text, "\n"+link+"\n") || !strings.Contains(m.Text, "bob@beta.example") {
			t.Errorf("%q: text lacks the link on its own line or the account:\n%s", c.lang, m.Text)
		}
		if !strings.Contains(m.HTML, `href="https://robot.example.net/client/reset/abc&amp;def"`) {
			t.Errorf("%q: HTML lacks the escaped link:\n%s", c.lang, m.HTML)
		}
		if m.To != "bob@beta.example" || m.CustomerID != 7 || m.Kind != KindPasswordReset || m.LockID != 0 {
			t.Errorf("%q: envelope %q %d %q %d", c.lang, m.To, m.CustomerID, m.Kind, m.LockID)
		}
	}
	if _, err := r.RenderPasswordReset(PasswordReset{Customer: Customer{Email: "bob@beta.example"}, Valid: time.Hour}); err == nil {
		t.Error("a reset without a link rendered")
	}
}

// traceroute takes an address, not a prefix: a mail gives the first single
// locked address, or asks to trace an address of the locked range.
func TestRenderTraceTarget(t *testing.T) {
	r := newTestRenderer(t, "")
	for _, c := range []struct {
		lang  string
		addrs []string
		want  string
	}{
		{"en", []string{"203.0.113.64/28"}, "run a traceroute to one of the\naddresses you use in 203.0.113.64/28"},
		{"en", []string{"203.0.113.64/28", "203.0.113.10/32"}, "traceroute 203.0.113.10\n"},
		{"en", []string{"2001:db8:77::/64", "2001:db8::5"}, "tracert 2001:db8::5\n"},
		{"de", []string{"2001:db8:77::/64"}, "Adressen prüfen, die Sie in 2001:db8:77::/64 verwenden"},
	} {
		ev := testEvent(KindLock, "netscan")
		ev.ProductKind, ev.Product, ev.Addresses = "subnet", c.addrs[0], c.addrs
		ev.Customer.Language = c.lang
		m, err := r.Render(ev)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(m.Text, c.want) {
			t.Errorf("%v (%s): text lacks %q:\n%s", c.addrs, c.lang, c.want, m.Text)
		}
		for _, a := range c.addrs {
			if strings.Contains(a, "/") && (strings.Contains(m.Text, "traceroute "+a) || strings.Contains(m.Text, "tracert "+a)) {
				t.Errorf("%v: mail tells to trace the prefix %s", c.addrs, a)
			}
		}
		if strings.Contains(m.HTML, "<address>") {
			t.Errorf("%v: unescaped placeholder in HTML", c.addrs)
		}
	}
}

// A warning that lapsed (or was lifted before its deadline) is closed in
// the mail; it does not claim the product was unlocked and is reachable
// again, since it was never locked.
func TestRenderUnlockOfAWarning(t *testing.T) {
	r := newTestRenderer(t, "")
	for lang, want := range map[string][]string{
		"en": {"The warning for your server web1 (203.0.113.10) is closed", "nothing was locked", "we will lock it immediately"},
		"de": {"Die Warnung zu Ihrem Produkt Server web1 (203.0.113.10) ist erledigt", "Es wurde nichts gesperrt", "sperren wir ihn sofort, ohne"},
	} {
		ev := testEvent(KindUnlock, "netscan")
		ev.WarningOnly, ev.Customer.Language = true, lang
		m, err := r.Render(ev)
		if err != nil {
			t.Fatal(err)
		}
		all := m.Subject + "\n" + m.Text
		for _, w := range want {
			if !strings.Contains(strings.Join(strings.Fields(all), " "), w) {
				t.Errorf("%s: lacks %q:\n%s", lang, w, all)
			}
		}
		if strings.Contains(all, "unlocked") || strings.Contains(all, "entsperrt") {
			t.Errorf("%s: a closed warning reads as an unlock:\n%s", lang, all)
		}
	}
}
