package notify

import (
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"strings"
	"time"
)

// TLS modes of SMTPConfig.TLS.
const (
	TLSNone     = "none"     // plain SMTP, never STARTTLS
	TLSStartTLS = "starttls" // STARTTLS is mandatory
	TLSImplicit = "tls"      // TLS from the first byte (SMTPS, port 465)
)

// SMTPConfig is the mail server the outbox worker delivers to. An empty Host
// means no SMTP: mails are kept in the outbox (see the package doc).
type SMTPConfig struct {
	Host string `yaml:"host"`
	// Port defaults to 25 (tls: none), 587 (starttls) or 465 (tls).
	Port int `yaml:"port"`
	// From is the sender, "abuse@example.net" or "Abuse <abuse@example.net>".
	From string `yaml:"from"`
	// TLS is none, starttls (default) or tls.
	TLS string `yaml:"tls"`
	// Username and Password enable AUTH PLAIN; only over TLS unless the
	// host is a loopback address.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// HELO is the name sent in EHLO; the host name by default.
	HELO string `yaml:"helo"`
	// Timeout bounds one delivery (connect, dialogue, data); default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// TLSSkipVerify accepts any server certificate. For tests only.
	TLSSkipVerify bool `yaml:"tls_skip_verify"`
}

// Configured reports whether an SMTP server is configured.
func (c SMTPConfig) Configured() bool { return c.Host != "" }

// Configuration of the notify component (the `notify:` section).
type Configuration struct {
	SMTP SMTPConfig `yaml:"smtp"`
	// Templates is a directory of override templates (<lang>/<file>).
	Templates string `yaml:"templates"`
	// ClientAreaURL is the link mails give when the event has none.
	ClientAreaURL string `yaml:"client_area_url"`
	// MessageIDDomain is the right-hand side of Message-IDs; the domain of
	// SMTP.From by default.
	MessageIDDomain string `yaml:"message_id_domain"`
	// PollInterval is how often the worker looks into the outbox when
	// nobody kicks it; default 10s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// BatchSize is how many mails one pass claims; default 20.
	BatchSize int `yaml:"batch_size"`
	// Lease is how long a claimed mail stays invisible to other workers; a
	// mail whose worker crashed is retried after it. Default 5m; it must be
	// longer than SMTP.Timeout.
	Lease time.Duration `yaml:"lease"`
	// RetryMin is the wait after the first failure, doubled after each
	// further one up to RetryMax. Defaults 1m and 1h.
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
}

// DefaultConfiguration returns the defaults; with no SMTP host, mails are
// kept in the outbox.
func DefaultConfiguration() Configuration {
	return Configuration{
		SMTP:         SMTPConfig{TLS: TLSStartTLS, Timeout: 30 * time.Second},
		PollInterval: 10 * time.Second,
		BatchSize:    20,
		Lease:        5 * time.Minute,
		RetryMin:     time.Minute,
		RetryMax:     time.Hour,
	}
}

// withDefaults fills zero values with the defaults.
func (c Configuration) withDefaults() Configuration {
	d := DefaultConfiguration()
	if c.SMTP.TLS == "" {
		c.SMTP.TLS = d.SMTP.TLS
	}
	if c.SMTP.Timeout == 0 {
		c.SMTP.Timeout = d.SMTP.Timeout
	}
	if c.SMTP.Port == 0 {
		switch c.SMTP.TLS {
		case TLSNone:
			c.SMTP.Port = 25
		case TLSImplicit:
			c.SMTP.Port = 465
		default:
			c.SMTP.Port = 587
		}
	}
	if c.PollInterval == 0 {
		c.PollInterval = d.PollInterval
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	if c.Lease == 0 {
		c.Lease = d.Lease
	}
	if c.RetryMin == 0 {
		c.RetryMin = d.RetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = d.RetryMax
	}
	if c.MessageIDDomain == "" {
		if a, err := netmail.ParseAddress(c.SMTP.From); err == nil {
			if i := strings.LastIndexByte(a.Address, '@'); i >= 0 {
				c.MessageIDDomain = a.Address[i+1:]
			}
		}
	}
	if c.MessageIDDomain == "" {
		c.MessageIDDomain = "padlock.invalid"
	}
	return c
}

// Validate checks the configuration after defaults and names the key of
// every problem ("notify.smtp.port: must be 1-65535").
func (c Configuration) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("notify.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	s := c.SMTP
	switch s.TLS {
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		bad("smtp.tls", "must be none, starttls or tls, not %q", s.TLS)
	}
	if s.Port < 1 || s.Port > 65535 {
		bad("smtp.port", "must be 1-65535")
	}
	if s.Timeout < 0 {
		bad("smtp.timeout", "must be positive")
	}
	if s.Configured() {
		if strings.ContainsAny(s.Host, " /:") && net.ParseIP(s.Host) == nil {
			bad("smtp.host", "must be a host name or IP address, not %q", s.Host)
		}
		if s.From == "" {
			bad("smtp.from", "required when smtp.host is set")
		} else if _, err := netmail.ParseAddress(s.From); err != nil {
			bad("smtp.from", "%q is not an email address", s.From)
		}
		if (s.Username == "") != (s.Password == "") {
			bad("smtp.username", "username and password go together")
		}
		if s.Username != "" && s.TLS == TLSNone && !isLoopback(s.Host) {
			bad("smtp.username", "authentication needs tls: starttls or tls (the password would cross the network in clear)")
		}
		if c.Lease <= s.Timeout {
			bad("lease", "must be longer than smtp.timeout (%s)", s.Timeout)
		}
	}
	if c.PollInterval < 0 {
		bad("poll_interval", "must be positive")
	}
	if c.BatchSize < 0 || c.BatchSize > 1000 {
		bad("batch_size", "must be 1-1000")
	}
	if c.RetryMin < 0 {
		bad("retry_min", "must be positive")
	}
	if c.RetryMax < c.RetryMin {
		bad("retry_max", "must not be less than retry_min (%s)", c.RetryMin)
	}
	if c.ClientAreaURL != "" && !strings.HasPrefix(c.ClientAreaURL, "https://") && !strings.HasPrefix(c.ClientAreaURL, "http://") {
		bad("client_area_url", "must start with https:// or http://")
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
