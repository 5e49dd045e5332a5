package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"padlock/internal/collect"
	"padlock/internal/detect"
	"padlock/internal/enforce"
	"padlock/internal/enforce/bgp"
	"padlock/internal/enforce/nftables"
	"padlock/internal/enforce/webhook"
	"padlock/internal/lock"
	"padlock/internal/notify"
	"padlock/internal/pipeline"
	"padlock/internal/policy"
)

// Config is padlock's whole configuration file. Every section has
// defaults; an empty file is a valid configuration (the demo's).
type Config struct {
	// Listen is the HTTP address of the web areas, the REST API, /healthz
	// and /metrics. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// Data is the data directory (SQLite database, evidence, state files).
	// Default ./padlock-data.
	Data string `yaml:"data"`
	// Store selects the database.
	Store Store `yaml:"store"`
	// Customers are the internal networks: addresses in them are the
	// customers'. The inventory's addresses are added to these.
	Customers []netip.Prefix `yaml:"customers"`
	// Protected prefixes are never reported for action and never enforced
	// against, whatever asks (routers, resolvers, the provider's own).
	Protected []netip.Prefix `yaml:"protected"`
	// SamplingOverride sets the sampling rate (1:N) of exporters, by their
	// address, that never send it or send it wrong; it wins over what the
	// export says. E.g. {"198.51.100.1": 1000}.
	SamplingOverride map[string]uint32 `yaml:"sampling_override"`

	Collect collect.Configuration `yaml:"collect"`
	Detect  detect.Configuration  `yaml:"detect"`
	// Policy decides what happens to findings (see package policy).
	Policy policy.Configuration `yaml:"policy"`
	// Pipeline tunes the live path from collector to lock manager.
	Pipeline pipeline.Configuration `yaml:"pipeline"`
	Locks    lock.Configuration     `yaml:"locks"`
	Enforce  Enforce                `yaml:"enforce"`
	Notify   notify.Configuration   `yaml:"notify"`
	Web      Web                    `yaml:"web"`
}

// Store is the `store:` section.
type Store struct {
	// DSN is "sqlite:///path/to/padlock.db" (or a plain file path) or
	// "postgres://user@host:5432/db". Default: SQLite in the data directory.
	DSN string `yaml:"dsn"`
}

// Enforce is the `enforce:` section: the reconcile loop's settings and one
// optional block per driver. A driver is active when its block is present.
type Enforce struct {
	enforce.Configuration `yaml:",inline"`
	BGP                   *bgp.Configuration      `yaml:"bgp"`
	NFTables              *nftables.Configuration `yaml:"nftables"`
	Webhooks              []webhook.Configuration `yaml:"webhooks"`
}

// Web is the `web:` section.
type Web struct {
	// BaseURL is the public URL of the client area, used in mails.
	BaseURL string `yaml:"base_url"`
	// TrustedProxies are the addresses of reverse proxies whose
	// X-Forwarded-For is believed; the client area shows the customer the
	// forwarded address only behind one of them.
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies"`
	// SessionLifetime of a signed-in session. Default 12h.
	SessionLifetime time.Duration `yaml:"session_lifetime"`
	// SecureCookies marks cookies Secure (serve over HTTPS). Default false
	// for the loopback demo; set it true in production.
	SecureCookies bool `yaml:"secure_cookies"`
	// MonitoringNetworks are the clients (by address, behind a trusted
	// proxy the forwarded one) that may read the operational endpoints
	// /metrics, /collector and /policy/breaker, which name exporters,
	// traffic volumes and lock rates: the listener also serves the client
	// area to the internet. Default loopback only (127.0.0.0/8, ::1/128);
	// add the Prometheus server's address. /healthz is open to all.
	MonitoringNetworks []netip.Prefix `yaml:"monitoring_networks"`
}

// Default returns the configuration an empty file gives.
func Default() Config {
	return Config{
		Listen:   "127.0.0.1:8080",
		Data:     "padlock-data",
		Collect:  collect.DefaultConfiguration(),
		Detect:   detect.Defaults(),
		Policy:   policy.DefaultConfiguration(),
		Pipeline: pipeline.DefaultConfiguration(),
		Enforce:  Enforce{Configuration: enforce.DefaultConfiguration()},
		Notify:   notify.DefaultConfiguration(),
		Web: Web{SessionLifetime: 12 * time.Hour, MonitoringNetworks: []netip.Prefix{
			netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
	}
}

// Load reads and validates a configuration file. An empty path gives the
// defaults.
func Load(path string) (Config, error) {
	if path == "" {
		c := Default()
		return c, c.Validate()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(filepath.Base(path), data)
}

// Parse decodes and validates configuration bytes; name labels errors.
func Parse(name string, data []byte) (Config, error) {
	c := Default()
	// Present driver blocks start from their package defaults.
	var probe struct {
		Enforce struct {
			BGP      any   `yaml:"bgp"`
			NFTables any   `yaml:"nftables"`
			Webhooks []any `yaml:"webhooks"`
		} `yaml:"enforce"`
	}
	_ = yaml.Unmarshal(data, &probe)
	if probe.Enforce.BGP != nil {
		d := bgp.DefaultConfiguration()
		c.Enforce.BGP = &d
	}
	if probe.Enforce.NFTables != nil {
		d := nftables.DefaultConfiguration()
		c.Enforce.NFTables = &d
	}

	// An empty document (or only comments) decodes to nothing: keep the defaults.
	if len(strings.TrimSpace(stripComments(data))) > 0 {
		if err := decodeStrict(name, data, &c); err != nil {
			return Config{}, err
		}
		// List elements are decoded from scratch: keys a webhook entry does
		// not set take the webhook package's defaults.
		for i := range c.Enforce.Webhooks {
			fillZero(&c.Enforce.Webhooks[i], webhook.DefaultConfiguration())
		}
	}
	if err := c.Validate(); err != nil {
		var ke *KeyError
		if errors.As(err, &ke) {
			ke.File = name
		}
		return Config{}, err
	}
	return c, nil
}

// Validate checks every section; the error names the key.
func (c Config) Validate() error {
	check := func(section string, err error) error {
		if err == nil {
			return nil
		}
		// Sections report "key: problem" or "section.key: problem", one per
		// line when there are several; every line gets the full key.
		lines := strings.Split(err.Error(), "\n")
		for i, l := range lines {
			if k, m, ok := strings.Cut(l, ": "); ok && !strings.Contains(k, " ") {
				if !strings.HasPrefix(k, section+".") && k != section {
					k = section + "." + k
				}
				lines[i] = k + ": " + m
			} else {
				lines[i] = section + ": " + l
			}
		}
		key, msg, _ := strings.Cut(strings.Join(lines, "\n"), ": ")
		return &KeyError{Key: key, Msg: msg}
	}
	if c.Listen == "" {
		return &KeyError{Key: "listen", Msg: "must not be empty"}
	}
	if c.Data == "" && c.Store.DSN == "" {
		return &KeyError{Key: "data", Msg: "must not be empty"}
	}
	for i, p := range c.Customers {
		if p.Masked() != p {
			return &KeyError{Key: fmt.Sprintf("customers[%d]", i), Msg: fmt.Sprintf("%s has host bits set (did you mean %s?)", p, p.Masked())}
		}
	}
	for i, p := range c.Protected {
		if p.Masked() != p {
			return &KeyError{Key: fmt.Sprintf("protected[%d]", i), Msg: fmt.Sprintf("%s has host bits set (did you mean %s?)", p, p.Masked())}
		}
	}
	for i, p := range c.Web.MonitoringNetworks {
		if p.Masked() != p {
			return &KeyError{Key: fmt.Sprintf("web.monitoring_networks[%d]", i), Msg: fmt.Sprintf("%s has host bits set (did you mean %s?)", p, p.Masked())}
		}
	}
	for k, v := range c.SamplingOverride {
		if _, err := netip.ParseAddr(k); err != nil {
			return &KeyError{Key: "sampling_override." + k, Msg: "not an IP address"}
		}
		if v == 0 {
			return &KeyError{Key: "sampling_override." + k, Msg: "the sampling rate must be >= 1"}
		}
	}
	if err := check("collect", c.Collect.Validate()); err != nil {
		return err
	}
	if err := check("detect", c.Detect.Validate()); err != nil {
		return err
	}
	if err := check("policy", c.Policy.Validate()); err != nil {
		return err
	}
	if err := check("pipeline", c.Pipeline.Validate()); err != nil {
		return err
	}
	if err := check("enforce", c.Enforce.Configuration.Validate()); err != nil {
		return err
	}
	if c.Enforce.BGP != nil {
		if err := check("enforce.bgp", c.Enforce.BGP.Validate()); err != nil {
			return err
		}
	}
	if c.Enforce.NFTables != nil {
		if err := check("enforce.nftables", c.Enforce.NFTables.Validate()); err != nil {
			return err
		}
	}
	for i, w := range c.Enforce.Webhooks {
		if err := check(fmt.Sprintf("enforce.webhooks[%d]", i), w.Validate()); err != nil {
			return err
		}
	}
	webhooks := make([]string, 0, len(c.Enforce.Webhooks))
	for _, w := range c.Enforce.Webhooks {
		webhooks = append(webhooks, w.Name)
	}
	if err := check("locks", c.Locks.Validate(webhooks...)); err != nil {
		return err
	}
	if err := check("notify", c.Notify.Validate()); err != nil {
		return err
	}
	return nil
}

// DataPath returns a path inside the data directory.
func (c Config) DataPath(name string) string { return filepath.Join(c.Data, name) }

// stripComments drops comment lines, to tell an empty file from a real one.
func stripComments(data []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// fillZero sets every zero-valued exported field of *dst to the value the
// same field has in def (both of the same struct type).
func fillZero[T any](dst *T, def T) {
	d, v := reflect.ValueOf(dst).Elem(), reflect.ValueOf(def)
	for i := range d.NumField() {
		if f := d.Field(i); f.CanSet() && f.IsZero() {
			f.Set(v.Field(i))
		}
	}
}

// SamplingOverrides returns sampling_override keyed by address (nil when
// empty); Validate has checked the keys.
func (c Config) SamplingOverrides() map[netip.Addr]uint32 {
	if len(c.SamplingOverride) == 0 {
		return nil
	}
	out := make(map[netip.Addr]uint32, len(c.SamplingOverride))
	for k, v := range c.SamplingOverride {
		if a, err := netip.ParseAddr(k); err == nil {
			out[a.Unmap()] = v
		}
	}
	return out
}
