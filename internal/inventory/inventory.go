// Package inventory owns what the provider sells and to whom: customers,
// servers (with their IPv4/IPv6 addresses, subnets and MAC addresses),
// storage boxes and standalone IPs and subnets, each owned by one customer.
// It provides the immutable longest-prefix Index that maps any address to
// its product and customer, and the JSON and CSV import/export formats.
//
// It holds plain values only: it must not import the store, the lock
// service or any other padlock package, so every other layer can use it.
package inventory

import (
	"fmt"
	"net/mail"
	"net/netip"
	"strings"
)

// Customer is a customer of the provider. Email is the natural key.
type Customer struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Email    string `json:"email"`
	Language string `json:"language,omitempty"` // BCP 47 tag, e.g. "en", "de"; empty means "en"
}

// Server is a dedicated or virtual server. Name is the natural key. IPs holds
// its addresses as prefixes: a single address is a /32 or /128.
type Server struct {
	ID         int64          `json:"id"`
	CustomerID int64          `json:"customer_id"`
	Name       string         `json:"name"`
	IPs        []netip.Prefix `json:"ips"`
	MACs       []string       `json:"macs,omitempty"`
}

// StorageBox is a storage product without addresses of its own; a lock on it
// is enforced through its backend. Name is the natural key.
type StorageBox struct {
	ID         int64  `json:"id"`
	CustomerID int64  `json:"customer_id"`
	Name       string `json:"name"`
	Host       string `json:"host,omitempty"`
}

// Address is a standalone IP or subnet (failover IP, routed subnet) that is
// not part of a server. Prefix is the natural key.
type Address struct {
	ID         int64        `json:"id"`
	CustomerID int64        `json:"customer_id"`
	Prefix     netip.Prefix `json:"prefix"`
	Note       string       `json:"note,omitempty"`
}

// ProductType names the kind of product a lookup found.
type ProductType string

const (
	ProductServer     ProductType = "server"
	ProductStorageBox ProductType = "storage_box"
	ProductAddress    ProductType = "address" // standalone IP or subnet
)

// ParsePrefix parses "198.51.100.7", "2001:db8::1", "198.51.100.0/24" or
// "2001:db8::/48". A single address becomes its host prefix; a prefix must
// have no host bits set, so typos like 198.51.100.7/24 are refused.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid prefix %q: %w", s, err)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("invalid prefix %q: zone not allowed", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapShift(p.Addr()))
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("invalid prefix %q: host bits set (did you mean %s?)", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: %w", s, err)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: zone not allowed", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func unmapShift(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// FormatPrefix writes a host prefix as a bare address and anything else in
// CIDR notation, the way operators write them.
func FormatPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// ValidateCustomer checks the fields a user enters. It returns the name of
// the offending field with the error.
func ValidateCustomer(c Customer) (field string, err error) {
	if strings.TrimSpace(c.Name) == "" {
		return "name", fmt.Errorf("name is required")
	}
	if _, err := mail.ParseAddress(c.Email); err != nil || !strings.Contains(c.Email, "@") || strings.ContainsAny(c.Email, "<> ") {
		return "email", fmt.Errorf("email %q is not a valid address", c.Email)
	}
	if len(c.Language) > 16 {
		return "language", fmt.Errorf("language %q is too long", c.Language)
	}
	return "", nil
}

// ValidateServer checks a server's own fields (not its owner).
func ValidateServer(s Server) (field string, err error) {
	if strings.TrimSpace(s.Name) == "" {
		return "name", fmt.Errorf("name is required")
	}
	seen := map[netip.Prefix]bool{}
	for _, p := range s.IPs {
		if !p.IsValid() || p.Masked() != p {
			return "ips", fmt.Errorf("invalid prefix %v", p)
		}
		if seen[p] {
			return "ips", fmt.Errorf("duplicate address %s", FormatPrefix(p))
		}
		seen[p] = true
	}
	for _, m := range s.MACs {
		if _, err := parseMAC(m); err != nil {
			return "macs", err
		}
	}
	return "", nil
}

// ValidateStorageBox checks a storage box's own fields.
func ValidateStorageBox(b StorageBox) (field string, err error) {
	if strings.TrimSpace(b.Name) == "" {
		return "name", fmt.Errorf("name is required")
	}
	return "", nil
}

// ValidateAddress checks a standalone IP or subnet.
func ValidateAddress(a Address) (field string, err error) {
	if !a.Prefix.IsValid() || a.Prefix.Masked() != a.Prefix {
		return "prefix", fmt.Errorf("invalid prefix %v", a.Prefix)
	}
	return "", nil
}

// NormalizeMAC returns the MAC address in lower-case colon notation.
func NormalizeMAC(s string) (string, error) { return parseMAC(s) }

func parseMAC(s string) (string, error) {
	h := strings.NewReplacer(":", "", "-", "", ".", "").Replace(strings.ToLower(strings.TrimSpace(s)))
	if len(h) != 12 {
		return "", fmt.Errorf("invalid MAC address %q", s)
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		c1, c2 := h[i], h[i+1]
		if !isHex(c1) || !isHex(c2) {
			return "", fmt.Errorf("invalid MAC address %q", s)
		}
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteByte(c1)
		b.WriteByte(c2)
	}
	return b.String(), nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }
