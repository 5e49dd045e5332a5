package ui

import (
	"fmt"
	"html/template"
	"io/fs"
	"net/netip"
	"path"
	"strings"
	"time"

	"padlock/internal/lock"
	"padlock/internal/mail"
)

var funcs = template.FuncMap{
	"reason": func(r lock.Reason) string { return reasonLabel(r) },
	"state":  func(s lock.State) string { return stateLabel(s) },
	"time": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04 UTC")
		case *time.Time:
			if v == nil || v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04 UTC")
		}
		return fmt.Sprint(t)
	},
	"iso":       func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"prefixes":  func(ps []netip.Prefix) string { return prefixes(ps) },
	"mailstate": func(m mail.Queued) string { return mailState(m) },
	"active":    func(l lock.Lock, now time.Time) bool { return lock.Active(l.State, l.WarnUntil, now) },
	"statecls": func(s lock.State) string {
		switch s {
		case lock.StateUnlocked:
			return "ok"
		case lock.StateWarned:
			return "warn"
		}
		return "bad"
	},
	"size": func(n int) string {
		switch {
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d bytes", n)
	},
	"selected": func(a, b string) bool { return a == b },
	"dur":      humanDuration,
	"str":      func(v any) string { return fmt.Sprint(v) },
	"lower":    strings.ToLower,
	"nav": func(cur, p string) template.HTMLAttr {
		if cur == p || p != "/client/" && p != "/admin/" && strings.HasPrefix(cur, p) {
			return `aria-current="page"`
		}
		return ""
	},
}

// parsePages parses the layout and partials with each page, so each page
// defines its own "content".
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/_*.html")
	if err != nil {
		return nil, fmt.Errorf("ui: templates: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if strings.HasPrefix(name, "_") {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// humanDuration writes whole hours and minutes as people say them
// ("24 hours", "90 minutes", "2 days").
func humanDuration(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return plural(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return plural(int64(d/time.Minute), "minute")
	}
	return d.String()
}
