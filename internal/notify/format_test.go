package notify

import (
	"html"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestWrapText(t *testing.T) {
	in := "A paragraph that is long enough to be wrapped at\nthe given width of thirty.\n\n- first item that wraps as well\n- second\n\n  traceroute 203.0.113.10   \n\n> quoted line\n> another"
	want := "A paragraph that is long\nenough to be wrapped at the\ngiven width of thirty.\n\n- first item that wraps as\n  well\n- second\n\n  traceroute 203.0.113.10   \n\n> quoted line\n> another"
	if diff := cmp.Diff(want, wrapText(in, 30)); diff != "" {
		t.Errorf("wrapText (-want +got):\n%s", diff)
	}
	got := string(textToHTML(in))
	wantHTML := "<p>A paragraph that is long enough to be wrapped at the given width of thirty.</p>\n" +
		"<ul>\n<li>first item that wraps as well</li>\n<li>second</li>\n</ul>\n" +
		"<pre>traceroute 203.0.113.10   </pre>\n" +
		`<blockquote style="margin:0 0 1em 0;padding-left:1em;border-left:3px solid #ccc">quoted line<br>` + "\nanother</blockquote>\n"
	if diff := cmp.Diff(wantHTML, got); diff != "" {
		t.Errorf("textToHTML (-want +got):\n%s", diff)
	}
}

// FuzzFormat: whatever a snippet contains (customer names, staff notes),
// the HTML form has no markup of its own making beyond the fixed tags, and
// the text form keeps every word.
func FuzzFormat(f *testing.F) {
	f.Add("Dear <b>x</b>,\n\n- a\n- b\n\n  cmd\n\n> q")
	f.Add(`see https://example.net/?a=1&b="2" and http://x/<script>`)
	f.Add("\t\n\n- \n>")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		out := string(textToHTML(s))
		for _, tag := range []string{"<script", "<img", "<iframe", "<b>", "onerror"} {
			if strings.Contains(strings.ToLower(out), tag) {
				t.Fatalf("HTML of %q contains %s: %s", s, tag, out)
			}
		}
		// Only our own tags: strip them and no '<' may remain.
		stripped := out
		for _, tag := range []string{"<p>", "</p>", "<ul>", "</ul>", "<li>", "</li>", "<pre>", "</pre>", "<br>", "</blockquote>", "</a>"} {
			stripped = strings.ReplaceAll(stripped, tag, "")
		}
		for strings.Contains(stripped, "<blockquote ") || strings.Contains(stripped, "<a href=") {
			i := strings.Index(stripped, "<")
			j := strings.Index(stripped[i:], ">")
			if j < 0 {
				t.Fatalf("unclosed tag in HTML of %q: %s", s, out)
			}
			stripped = stripped[:i] + stripped[i+j+1:]
		}
		if strings.Contains(stripped, "<") {
			t.Fatalf("unescaped '<' in HTML of %q: %s", s, out)
		}
		if hasWords(s) && !hasWords(html.UnescapeString(stripped)) {
			t.Fatalf("HTML of %q lost the text: %s", s, out)
		}
		if wrapped := wrapText(s, 40); hasWords(s) && !hasWords(wrapped) {
			t.Fatalf("wrapText of %q lost the text: %q", s, wrapped)
		}
	})
}

func hasWords(s string) bool {
	return len(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '-' || r == '>' })) > 0
}

func BenchmarkRender(b *testing.B) {
	r, err := NewRenderer(RendererConfig{ClientAreaURL: "https://robot.example.net/"})
	if err != nil {
		b.Fatal(err)
	}
	ev := testEvent(KindLock, "netscan")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Render(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewRenderer(b *testing.B) {
	for b.Loop() {
		if _, err := NewRenderer(RendererConfig{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSubjectExample pins the subject the issue gives as its example.
func TestSubjectExample(t *testing.T) {
	ev := testEvent(KindLock, "netscan")
	ev.Product = "203.0.113.10"
	m, err := newTestRenderer(t, "").Render(ev)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[L0029DB12] Your server 203.0.113.10 has been locked: network scan"; m.Subject != want {
		t.Errorf("subject %q, want %q", m.Subject, want)
	}
}
