package notify

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htemplate "html/template"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	ttemplate "text/template"
	"time"
	"unicode/utf8"

	"padlock/internal/mail"
)

//go:embed templates
var embedded embed.FS

// DefaultLanguage is used when no templates exist for a customer's language.
const DefaultLanguage = "en"

// RendererConfig says where override templates live and which link a mail
// gives when the event has none.
type RendererConfig struct {
	// Dir holds override templates as Dir/<lang>/<file>; a file there
	// replaces the built-in file of the same name, and a new <lang>
	// directory adds a language (it must then hold every file). Empty: only
	// the built-in templates.
	Dir string
	// ClientAreaURL is the default link to the client area.
	ClientAreaURL string
}

// templateFiles are the files every language must have.
func templateFiles() []string {
	files := []string{"messages.tmpl", "subjects.tmpl", "layout.html.tmpl", "password_reset.txt.tmpl", "password_reset.html.tmpl"}
	for _, k := range Kinds {
		files = append(files, string(k)+".txt.tmpl", string(k)+".html.tmpl")
	}
	return files
}

// Renderer turns events into mails. It is safe for concurrent use.
type Renderer struct {
	langs      map[string]*langSet
	defaultURL string
}

// langSet is the parsed templates of one language.
type langSet struct {
	lang       string
	dateLayout string              // Go time layout from the snippet format.date
	text       *ttemplate.Template // messages, subjects and the kinds' text parts
	html       *htemplate.Template // layout and the kinds' HTML parts
}

// NewRenderer reads and parses the built-in templates and the overrides in
// conf.Dir, then renders every kind and reason once so that a broken
// override fails here, at start, and not when a customer needs the mail.
func NewRenderer(conf RendererConfig) (*Renderer, error) {
	r := &Renderer{langs: map[string]*langSet{}, defaultURL: conf.ClientAreaURL}
	sources := map[string]map[string][]byte{} // lang -> file -> content
	builtin, err := fs.Sub(embedded, "templates")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	if err := readLanguages(builtin, sources); err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	if conf.Dir != "" {
		if _, err := os.Stat(conf.Dir); err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		if err := readLanguages(os.DirFS(conf.Dir), sources); err != nil {
			return nil, fmt.Errorf("templates %s: %w", conf.Dir, err)
		}
	}
	langs := make([]string, 0, len(sources))
	for l := range sources {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	for _, lang := range langs {
		ls, err := parseLanguage(lang, sources[lang])
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		r.langs[lang] = ls
	}
	if r.langs[DefaultLanguage] == nil {
		return nil, fmt.Errorf("templates: no %q templates", DefaultLanguage)
	}
	if err := r.selfTest(); err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	return r, nil
}

// readLanguages adds the files <lang>/<file> of fsys to sources; later
// calls override earlier ones file by file.
func readLanguages(fsys fs.FS, sources map[string]map[string][]byte) error {
	dirs, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		lang := strings.ToLower(d.Name())
		files, err := fs.ReadDir(fsys, d.Name())
		if err != nil {
			return err
		}
		for _, f := range files {
			if f.IsDir() || !strings.HasSuffix(f.Name(), ".tmpl") {
				continue
			}
			if !slices.Contains(templateFiles(), f.Name()) {
				return fmt.Errorf("%s/%s: unknown template file (want one of %s)",
					d.Name(), f.Name(), strings.Join(templateFiles(), ", "))
			}
			b, err := fs.ReadFile(fsys, path.Join(d.Name(), f.Name()))
			if err != nil {
				return err
			}
			if sources[lang] == nil {
				sources[lang] = map[string][]byte{}
			}
			sources[lang][f.Name()] = b
		}
	}
	return nil
}

func parseLanguage(lang string, files map[string][]byte) (*langSet, error) {
	ls := &langSet{lang: lang}
	for _, name := range templateFiles() {
		if _, ok := files[name]; !ok {
			return nil, fmt.Errorf("%s/%s: missing", lang, name)
		}
	}
	ls.text = ttemplate.New(lang).Option("missingkey=error").Funcs(ls.textFuncs())
	ls.html = htemplate.New(lang).Option("missingkey=error").Funcs(ls.htmlFuncs())
	for _, name := range templateFiles() {
		var err error
		if strings.HasSuffix(name, ".html.tmpl") {
			_, err = ls.html.New(name).Parse(string(files[name]))
		} else {
			_, err = ls.text.New(name).Parse(string(files[name]))
		}
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", lang, name, err)
		}
	}
	ls.dateLayout = "2006-01-02 15:04 MST"
	if l, err := ls.snippet("format.date", nil); err == nil && l != "" {
		ls.dateLayout = l
	}
	return ls, nil
}

// Languages returns the languages with templates, sorted.
func (r *Renderer) Languages() []string {
	out := make([]string, 0, len(r.langs))
	for l := range r.langs {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// language picks the template set for a customer language: the exact tag,
// then its primary subtag ("de-AT" -> "de"), then English.
func (r *Renderer) language(tag string) *langSet {
	tag = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(tag), "_", "-"))
	if ls := r.langs[tag]; ls != nil {
		return ls
	}
	if i := strings.IndexByte(tag, '-'); i > 0 {
		if ls := r.langs[tag[:i]]; ls != nil {
			return ls
		}
	}
	return r.langs[DefaultLanguage]
}

// view is what the templates see: the event plus what is derived from it.
type view struct {
	Event
	Lang        string
	URL         string // the client area link
	ProductText string // "server web1 (203.0.113.10)", translated kind word
	ReasonTitle string // "network scan"
	Address     string // the first locked single address, for traceroute
	Subnet      string // the first locked range when no single address is locked
	Files       []viewFile
	ByPayment   bool // the lock clears on payment (non_payment)
}

type viewFile struct {
	Name        string
	Description string
	Size        int
}

// Render renders the mail for one event in the customer's language.
func (r *Renderer) Render(ev Event) (mail.Message, error) {
	if err := ev.validate(); err != nil {
		return mail.Message{}, fmt.Errorf("render: %w", err)
	}
	ls := r.language(ev.Customer.Language)
	msg, err := ls.render(ev, r.defaultURL)
	if err != nil {
		return mail.Message{}, fmt.Errorf("render %s %s %s (%s): %w", ev.Kind, ev.LockingID, ev.Product, ls.lang, err)
	}
	return msg, nil
}

func (ls *langSet) render(ev Event, defaultURL string) (mail.Message, error) {
	v := view{Event: ev, Lang: ls.lang, URL: ev.ClientAreaURL, ByPayment: ev.Reason == "non_payment"}
	if v.URL == "" {
		v.URL = defaultURL
	}
	var err error
	if v.ReasonTitle, err = ls.snippet("reason."+ev.Reason+".title", v); err != nil {
		return mail.Message{}, err
	}
	v.ProductText = ev.Product
	if ev.ProductKind != "" {
		word, err := ls.snippet("product."+ev.ProductKind, v)
		if err != nil {
			return mail.Message{}, fmt.Errorf("product kind %q: %w", ev.ProductKind, err)
		}
		v.ProductText = strings.TrimSpace(word + " " + ev.Product)
	}
	v.Address, v.Subnet = traceTarget(ev.Addresses)
	if ev.Kind == KindNotice {
		// Nothing is locked: no lock, no Locking ID, no protection.
		v.LockID, v.LockingID, v.InboundProtection = 0, "", false
	}
	attach := ev.Kind == KindNotice || ev.Kind == KindWarning || ev.Kind == KindLock
	var atts []mail.Attachment
	if attach {
		for _, a := range ev.Evidence {
			desc, err := ls.snippet("file."+a.Name, v)
			if err != nil {
				desc = "" // an unknown file is listed by name only
			}
			v.Files = append(v.Files, viewFile{Name: a.Name, Description: desc, Size: len(a.Data)})
			atts = append(atts, a)
		}
	}

	subjectName := "subject." + string(ev.Kind)
	if v.InboundProtection {
		subjectName += ".inbound"
	}
	subject, err := ls.snippet(subjectName, v)
	if err != nil {
		return mail.Message{}, err
	}
	subject = strings.Join(strings.Fields(subject), " ")

	var text bytes.Buffer
	if err := ls.text.ExecuteTemplate(&text, string(ev.Kind)+".txt.tmpl", v); err != nil {
		return mail.Message{}, err
	}
	var html bytes.Buffer
	if err := ls.html.ExecuteTemplate(&html, string(ev.Kind)+".html.tmpl", struct {
		view
		Subject string
	}{v, subject}); err != nil {
		return mail.Message{}, err
	}
	return mail.Message{
		To:          ev.Customer.Email,
		Subject:     subject,
		Text:        tidyText(text.String()),
		HTML:        html.String(),
		Attachments: atts,
		LockID:      v.LockID,
		CustomerID:  ev.Customer.ID,
		Kind:        string(ev.Kind),
	}, nil
}

// PasswordReset is what a password reset mail says. It is no lock event:
// the addressee is a user (Customer.ID 0 for staff), written to in the
// language of the user's customer.
type PasswordReset struct {
	Customer Customer      // Email is the account's address
	Link     string        // the single-use reset link
	Valid    time.Duration // how long the link works
}

// resetView is what the password reset templates see.
type resetView struct {
	PasswordReset
	Lang, Subject  string
	LockingID      string // always empty (the layout shows it when set)
	Hours, Minutes int    // Valid in whole hours when it is some, else in minutes
}

// RenderPasswordReset renders a password reset mail in the language of
// p.Customer.
func (r *Renderer) RenderPasswordReset(p PasswordReset) (mail.Message, error) {
	ls := r.language(p.Customer.Language)
	m, err := ls.renderReset(p)
	if err != nil {
		return mail.Message{}, fmt.Errorf("render password reset (%s): %w", ls.lang, err)
	}
	return m, nil
}

// KindPasswordReset is the mail.Message.Kind of password reset mails.
const KindPasswordReset = "password_reset"

func (ls *langSet) renderReset(p PasswordReset) (mail.Message, error) {
	if p.Customer.Email == "" || p.Link == "" || p.Valid <= 0 {
		return mail.Message{}, errors.New("a password reset needs an address, a link and a validity")
	}
	v := resetView{PasswordReset: p, Lang: ls.lang}
	if p.Valid%time.Hour == 0 {
		v.Hours = int(p.Valid / time.Hour)
	} else {
		v.Minutes = int((p.Valid + time.Minute - 1) / time.Minute)
	}
	subject, err := ls.snippet("subject.password_reset", v)
	if err != nil {
		return mail.Message{}, err
	}
	v.Subject = strings.Join(strings.Fields(subject), " ")
	var text, html bytes.Buffer
	if err := ls.text.ExecuteTemplate(&text, "password_reset.txt.tmpl", v); err != nil {
		return mail.Message{}, err
	}
	if err := ls.html.ExecuteTemplate(&html, "password_reset.html.tmpl", v); err != nil {
		return mail.Message{}, err
	}
	return mail.Message{To: p.Customer.Email, Subject: v.Subject, Text: tidyText(text.String()), HTML: html.String(),
		CustomerID: p.Customer.ID, Kind: KindPasswordReset}, nil
}

// traceTarget picks what a mail tells the customer to traceroute: the
// first single address ("203.0.113.10", or a /32 or /128), else the first
// range, which the mail asks to trace an address of (traceroute takes no
// prefix).
func traceTarget(addrs []string) (address, subnet string) {
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil {
			return ip.String(), ""
		}
		if p, err := netip.ParsePrefix(a); err == nil && p.IsSingleIP() {
			return p.Addr().String(), ""
		}
	}
	if len(addrs) > 0 {
		return "", addrs[0]
	}
	return "", ""
}

// snippet executes one named template of messages.tmpl or subjects.tmpl.
func (ls *langSet) snippet(name string, data any) (string, error) {
	if ls.text.Lookup(name) == nil {
		return "", fmt.Errorf("%s: no template %q", ls.lang, name)
	}
	var b bytes.Buffer
	if err := ls.text.ExecuteTemplate(&b, name, data); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

func (ls *langSet) commonFuncs() map[string]any {
	return map[string]any{
		"date": func(t time.Time) string { return t.UTC().Format(ls.dateLayout) },
		"join": strings.Join,
		"size": func(n int) string {
			switch {
			case n >= 1<<20:
				return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
			case n >= 1<<10:
				return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
			}
			return fmt.Sprintf("%d B", n)
		},
		"lines": func(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") },
	}
}

func (ls *langSet) textFuncs() ttemplate.FuncMap {
	m := ttemplate.FuncMap(ls.commonFuncs())
	// msg renders a snippet as wrapped plain-text paragraphs.
	m["msg"] = func(name string, data any) (string, error) {
		s, err := ls.snippet(name, data)
		if err != nil {
			return "", err
		}
		return wrapText(s, 72), nil
	}
	m["inline"] = ls.snippet
	return m
}

func (ls *langSet) htmlFuncs() htemplate.FuncMap {
	m := htemplate.FuncMap(ls.commonFuncs())
	// msg renders a snippet as HTML paragraphs, lists and preformatted blocks.
	m["msg"] = func(name string, data any) (htemplate.HTML, error) {
		s, err := ls.snippet(name, data)
		if err != nil {
			return "", err
		}
		return textToHTML(s), nil
	}
	m["inline"] = ls.snippet
	return m
}

// selfTest renders every kind, reason and variant in every language.
func (r *Renderer) selfTest() error {
	var errs []error
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for lang := range r.langs {
		for _, k := range Kinds {
			for _, reason := range Reasons {
				for _, variant := range []int{0, 1, 2} {
					ev := Event{
						Kind: k, LockID: 1, LockingID: "L00000001", Reason: reason,
						Customer:    Customer{ID: 1, Name: "Self Test", Email: "test@example.net", Language: lang},
						ProductKind: "server", Product: "web1 (203.0.113.10)", Addresses: []string{"203.0.113.10"},
						At: at, Since: at, Deadline: at, Until: at, ProbationUntil: at,
						WhitelistIP: "198.51.100.7", WhitelistExpires: at, Note: "note",
						WhitelistOffered: variant == 1, InboundProtection: variant == 2,
						Evidence: []mail.Attachment{{Name: "netscan.log", ContentType: "text/plain", Data: []byte("x")}},
					}
					if _, err := r.langs[lang].render(ev, "https://example.net/"); err != nil {
						errs = append(errs, fmt.Errorf("%s %s %s: %w", lang, k, reason, err))
					}
				}
			}
		}
	}
	for lang := range r.langs {
		for _, ttl := range []time.Duration{time.Hour, 30 * time.Minute, 24 * time.Hour} {
			if _, err := r.langs[lang].renderReset(PasswordReset{Customer: Customer{Email: "test@example.net", Language: lang},
				Link: "https://example.net/client/reset/x", Valid: ttl}); err != nil {
				errs = append(errs, fmt.Errorf("%s password_reset: %w", lang, err))
			}
		}
	}
	if len(errs) > 3 {
		errs = append(errs[:3], fmt.Errorf("and %d more", len(errs)-3))
	}
	return errors.Join(errs...)
}

var (
	blankLines     = regexp.MustCompile(`\n{3,}`)
	paragraphBreak = regexp.MustCompile(`\n[ \t]*\n`)
)

// tidyText trims trailing spaces and collapses runs of blank lines, so that
// templates can be written for readability.
func tidyText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	s = strings.Join(lines, "\n")
	s = blankLines.ReplaceAllString(s, "\n\n")
	return strings.TrimSpace(s) + "\n"
}

// block is a paragraph of a snippet: prose, a list or preformatted lines.
type block struct {
	kind  byte // 'p' prose, 'l' list, 'q' quote ("> "), 'r' raw (indented)
	items []string
}

// blocks splits a snippet into blocks at blank lines. Lines starting with
// "- " begin list items; lines starting with a space or tab are kept as
// they are; lines starting with "> " are a quote.
func blocks(s string) []block {
	var out []block
	for _, para := range paragraphBreak.Split(strings.TrimSpace(s), -1) {
		if strings.TrimSpace(para) == "" {
			continue
		}
		lines := strings.Split(para, "\n")
		switch {
		case strings.HasPrefix(lines[0], " ") || strings.HasPrefix(lines[0], "\t"):
			out = append(out, block{kind: 'r', items: lines})
		case strings.HasPrefix(lines[0], ">"):
			var q []string
			for _, l := range lines {
				q = append(q, strings.TrimPrefix(strings.TrimPrefix(l, ">"), " "))
			}
			out = append(out, block{kind: 'q', items: q})
		case strings.HasPrefix(lines[0], "- "):
			var items []string
			for _, l := range lines {
				if strings.HasPrefix(l, "- ") {
					items = append(items, strings.TrimPrefix(l, "- "))
				} else {
					items[len(items)-1] += " " + strings.TrimSpace(l)
				}
			}
			out = append(out, block{kind: 'l', items: items})
		default:
			out = append(out, block{kind: 'p', items: []string{strings.Join(strings.Fields(para), " ")}})
		}
	}
	return out
}

// wrapText formats a snippet for the text part: prose wrapped at width,
// list items with a hanging indent, raw lines untouched.
func wrapText(s string, width int) string {
	var parts []string
	for _, b := range blocks(s) {
		switch b.kind {
		case 'p':
			parts = append(parts, wrapLine(b.items[0], width, "", ""))
		case 'l':
			var ls []string
			for _, it := range b.items {
				ls = append(ls, wrapLine(it, width, "- ", "  "))
			}
			parts = append(parts, strings.Join(ls, "\n"))
		case 'q':
			var ls []string
			for _, it := range b.items {
				ls = append(ls, "> "+it)
			}
			parts = append(parts, strings.Join(ls, "\n"))
		default:
			parts = append(parts, strings.Join(b.items, "\n"))
		}
	}
	return strings.Join(parts, "\n\n")
}

func wrapLine(s string, width int, first, rest string) string {
	var b strings.Builder
	b.WriteString(first)
	col := utf8.RuneCountInString(first)
	for i, w := range strings.Fields(s) {
		n := utf8.RuneCountInString(w)
		if i > 0 {
			if col+1+n > width {
				b.WriteString("\n" + rest)
				col = utf8.RuneCountInString(rest)
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += n
	}
	return b.String()
}

var urlPattern = regexp.MustCompile(`https?://[^\s<>"]+[^\s<>".,;:!?)]`)

// linkify escapes s and turns URLs into links.
func linkify(s string) string {
	var b strings.Builder
	last := 0
	for _, m := range urlPattern.FindAllStringIndex(s, -1) {
		b.WriteString(htemplate.HTMLEscapeString(s[last:m[0]]))
		u := htemplate.HTMLEscapeString(s[m[0]:m[1]])
		fmt.Fprintf(&b, `<a href="%s">%s</a>`, u, u)
		last = m[1]
	}
	b.WriteString(htemplate.HTMLEscapeString(s[last:]))
	return b.String()
}

// textToHTML formats a snippet for the HTML part. Every piece of text is
// escaped; only the structure is HTML.
func textToHTML(s string) htemplate.HTML {
	var b strings.Builder
	for _, bl := range blocks(s) {
		switch bl.kind {
		case 'p':
			b.WriteString("<p>" + linkify(bl.items[0]) + "</p>\n")
		case 'l':
			b.WriteString("<ul>\n")
			for _, it := range bl.items {
				b.WriteString("<li>" + linkify(it) + "</li>\n")
			}
			b.WriteString("</ul>\n")
		case 'q':
			b.WriteString(`<blockquote style="margin:0 0 1em 0;padding-left:1em;border-left:3px solid #ccc">`)
			for i, it := range bl.items {
				if i > 0 {
					b.WriteString("<br>\n")
				}
				b.WriteString(htemplate.HTMLEscapeString(it))
			}
			b.WriteString("</blockquote>\n")
		default:
			b.WriteString("<pre>")
			for i, it := range bl.items {
				if i > 0 {
					b.WriteString("\n")
				}
				b.WriteString(htemplate.HTMLEscapeString(strings.TrimPrefix(strings.TrimPrefix(it, "  "), "\t")))
			}
			b.WriteString("</pre>\n")
		}
	}
	return htemplate.HTML(b.String())
}
