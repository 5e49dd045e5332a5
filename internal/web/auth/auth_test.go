package auth

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
	for _, c := range []struct {
		remote, xff, want string
	}{
		{"203.0.113.5:4000", "", "203.0.113.5"},
		{"203.0.113.5:4000", "198.51.100.23", "203.0.113.5"}, // untrusted peer: header ignored
		{"127.0.0.1:4000", "198.51.100.23", "198.51.100.23"},
		{"127.0.0.1:4000", "1.2.3.4, 198.51.100.23, 10.1.1.1", "198.51.100.23"}, // forged left entry ignored
		{"127.0.0.1:4000", "", "127.0.0.1"},
		{"127.0.0.1:4000", "garbage", "127.0.0.1"},
		{"[::ffff:127.0.0.1]:4000", "2001:db8::7", "2001:db8::7"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := ClientIP(r, trusted); got.String() != c.want {
			t.Errorf("ClientIP(%s, %q) = %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

type fakeAttempts struct{ acc, addr int }

func (f fakeAttempts) RecordLogin(context.Context, string, string, bool, time.Time) error { return nil }
func (f fakeAttempts) FailedLogins(context.Context, string, string, time.Time) (int, int, error) {
	return f.acc, f.addr, nil
}

func TestLimited(t *testing.T) {
	l := Limits{}.WithDefaults()
	ip := netip.MustParseAddr("198.51.100.1")
	for _, c := range []struct {
		acc, addr int
		want      bool
	}{{0, 0, false}, {4, 19, false}, {5, 0, true}, {0, 20, true}} {
		got, _ := l.Limited(context.Background(), fakeAttempts{c.acc, c.addr}, "a@b", ip, time.Now())
		if got != c.want {
			t.Errorf("Limited(%d, %d) = %v, want %v", c.acc, c.addr, got, c.want)
		}
	}
}
