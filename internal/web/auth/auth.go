// Package auth owns the sign-in rules of the web areas that do not depend on
// pages: which address a request comes from (behind trusted proxies) and
// the login rate limit per account and per client address. Accounts,
// password hashes, reset links and sessions are persisted by the store;
// this package must not import the store, lock or ui packages.
package auth

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// ClientIP returns the public address a request came from. When the peer
// is one of the trusted proxies, the X-Forwarded-For chain is walked from
// the right (the entry the nearest proxy appended) skipping trusted
// proxies; the first untrusted address is the client. Otherwise the
// connection's address is the client; a forged X-Forwarded-For from an
// untrusted peer is ignored.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := remoteAddr(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop ends what we can trust
		}
		client = a.Unmap().WithZone("")
		if !isTrusted(client, trusted) {
			break
		}
	}
	return client
}

func remoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Attempts is where sign-in attempts are recorded and counted
// (store.DB implements it).
type Attempts interface {
	RecordLogin(ctx context.Context, email, ip string, ok bool, now time.Time) error
	FailedLogins(ctx context.Context, email, ip string, since time.Time) (account, addr int, err error)
}

// Limits bound failed sign-ins within Window: PerAccount failures for one
// email (from any address) and PerAddress failures from one client address
// (for any email). A success resets the count of its account and address.
type Limits struct {
	PerAccount int
	PerAddress int
	Window     time.Duration
}

// DefaultLimits are 5 failures per account and 20 per address in 15 minutes.
var DefaultLimits = Limits{PerAccount: 5, PerAddress: 20, Window: 15 * time.Minute}

// WithDefaults fills unset fields from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	if l.PerAccount <= 0 {
		l.PerAccount = DefaultLimits.PerAccount
	}
	if l.PerAddress <= 0 {
		l.PerAddress = DefaultLimits.PerAddress
	}
	if l.Window <= 0 {
		l.Window = DefaultLimits.Window
	}
	return l
}

// Limited reports whether another sign-in attempt for email from ip must be
// refused now.
func (l Limits) Limited(ctx context.Context, att Attempts, email string, ip netip.Addr, now time.Time) (bool, error) {
	acc, addr, err := att.FailedLogins(ctx, email, ip.String(), now.Add(-l.Window))
	if err != nil {
		return false, err
	}
	return acc >= l.PerAccount || addr >= l.PerAddress, nil
}
