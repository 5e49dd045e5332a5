// Package webhook enforces locks on anything padlock has no protocol for —
// storage boxes, switch ports, a provider's own tooling — by delivering
// events: a signed JSON POST to a URL, or a command run with arguments (exec,
// no shell) and the same JSON on its standard input. Events are "lock",
// "unlock", "whitelist_add" and "whitelist_remove"; each carries an event_id
// that is the same for every retry and re-send of the same change, so
// receivers can drop duplicates. Deliveries are retried with exponential
// backoff; what was acknowledged is what the driver reports as applied
// (nothing can be read back from the far end), kept in a state file so a
// restarted padlock does not send everything again.
//
// HTTP request:
//
//	POST <url>
//	Content-Type: application/json
//	X-Padlock-Event-Id: <event_id>
//	X-Padlock-Timestamp: <unix seconds>
//	X-Padlock-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>
//
// Any 2xx status acknowledges; 408, 429 and 5xx are retried, other statuses
// fail the delivery at once (the reconcile loop tries again later).
//
// It imports enforce for the driver contract and nothing else of padlock.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"padlock/internal/enforce"
)

// Configuration is one `enforce.webhooks[]:` entry.
type Configuration struct {
	// Name of the driver, used as the lock method. Default "webhook".
	Name string `yaml:"name"`
	// URL to POST events to. Exactly one of URL and Command.
	URL string `yaml:"url"`
	// Secret is the HMAC-SHA256 key of X-Padlock-Signature; required with URL.
	Secret string `yaml:"secret"`
	// Command is run once per event: the program and its arguments, where
	// {event}, {event_id}, {lock_id}, {locking_id}, {target}, {source} and
	// {expires} are replaced; the JSON event is on standard input. Exit
	// status 0 acknowledges.
	Command []string `yaml:"command"`
	// Scopes the receiver handles: address, subnet, storage_box.
	// Default [storage_box].
	Scopes []string `yaml:"scopes"`
	// Whitelist says whether the receiver can let a whitelisted source in.
	Whitelist bool `yaml:"whitelist"`
	// Timeout of one delivery attempt. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Attempts per event before Apply gives up (the loop retries later).
	// Default 5.
	Attempts int `yaml:"attempts"`
	// MinBackoff and MaxBackoff bound the delay between attempts, doubling
	// each time. Defaults 500ms and 30s.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// StateFile records acknowledged deliveries across restarts. Empty:
	// memory only (a restart re-sends every lock; event IDs stay the same).
	StateFile string `yaml:"state_file"`
}

// DefaultConfiguration returns the defaults.
func DefaultConfiguration() Configuration {
	return Configuration{Name: enforce.MethodWebhook, Scopes: []string{string(enforce.ScopeStorageBox)},
		Timeout: 10 * time.Second, Attempts: 5, MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}
}

// Validate checks the configuration; errors name the key.
func (c Configuration) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	switch {
	case c.URL == "" && len(c.Command) == 0:
		errs = append(errs, errors.New("url: one of url and command required"))
	case c.URL != "" && len(c.Command) > 0:
		errs = append(errs, errors.New("command: only one of url and command"))
	case c.URL != "":
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("url: %q is not an http(s) URL", c.URL))
		}
		if c.Secret == "" {
			errs = append(errs, errors.New("secret: required with url"))
		}
	}
	for i, s := range c.Scopes {
		if !slices.Contains([]enforce.Scope{enforce.ScopeAddress, enforce.ScopeSubnet, enforce.ScopeStorageBox}, enforce.Scope(s)) {
			errs = append(errs, fmt.Errorf("scopes[%d]: %q is not address, subnet or storage_box", i, s))
		}
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout: must be positive"))
	}
	if c.Attempts < 1 {
		errs = append(errs, errors.New("attempts: must be at least 1"))
	}
	if c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff {
		errs = append(errs, errors.New("min_backoff: must be positive and not above max_backoff"))
	}
	return errors.Join(errs...)
}

// Event is the JSON body of a delivery.
type Event struct {
	EventID   string         `json:"event_id"`
	Event     string         `json:"event"` // lock, unlock, whitelist_add, whitelist_remove
	LockID    int64          `json:"lock_id"`
	LockingID string         `json:"locking_id,omitempty"`
	Target    enforce.Target `json:"target"`
	Source    string         `json:"source,omitempty"`  // whitelist events
	Expires   *time.Time     `json:"expires,omitempty"` // whitelist_add
	Time      time.Time      `json:"time"`
}

// Event names.
const (
	EventLock            = "lock"
	EventUnlock          = "unlock"
	EventWhitelistAdd    = "whitelist_add"
	EventWhitelistRemove = "whitelist_remove"
)

// Driver delivers events for one receiver.
type Driver struct {
	cfg    Configuration
	log    *slog.Logger
	client *http.Client
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error

	mu    sync.Mutex
	state state
}

type state struct {
	Blocks map[string]enforce.Block `json:"blocks"`
	Allows map[string]enforce.Allow `json:"allows"`
}

var _ enforce.Driver = (*Driver)(nil)

// New checks the configuration and loads the state file; no network I/O.
func New(cfg Configuration, logger *slog.Logger) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	d := &Driver{cfg: cfg, log: logger, client: &http.Client{Timeout: cfg.Timeout}, now: time.Now, sleep: sleepCtx,
		state: state{Blocks: map[string]enforce.Block{}, Allows: map[string]enforce.Allow{}}}
	if cfg.StateFile != "" {
		b, err := os.ReadFile(cfg.StateFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("webhook %s: state: %w", cfg.Name, err)
		default:
			if err := json.Unmarshal(b, &d.state); err != nil {
				return nil, fmt.Errorf("webhook %s: state %s: %w", cfg.Name, cfg.StateFile, err)
			}
			if d.state.Blocks == nil {
				d.state.Blocks = map[string]enforce.Block{}
			}
			if d.state.Allows == nil {
				d.state.Allows = map[string]enforce.Allow{}
			}
		}
	}
	return d, nil
}

// Name implements enforce.Driver.
func (d *Driver) Name() string { return d.cfg.Name }

// Capabilities implements enforce.Driver: what the configuration says the
// receiver does.
func (d *Driver) Capabilities() enforce.Capabilities {
	c := enforce.Capabilities{BlockInbound: true, BlockOutbound: true, Allow: d.cfg.Whitelist}
	for _, s := range d.cfg.Scopes {
		c.Scopes = append(c.Scopes, enforce.Scope(s))
	}
	return c
}

// Applied implements enforce.Driver: the acknowledged deliveries.
func (d *Driver) Applied(context.Context) (enforce.Desired, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out enforce.Desired
	for _, b := range d.state.Blocks {
		out.Blocks = append(out.Blocks, b)
	}
	for _, a := range d.state.Allows {
		out.Allows = append(out.Allows, a)
	}
	return out, nil
}

// Apply implements enforce.Driver: one event per entry, whitelist
// additions first and removals last, each retried with backoff.
func (d *Driver) Apply(ctx context.Context, c enforce.Change) error {
	var errs []error
	for _, a := range c.Add.Allows {
		errs = append(errs, d.deliver(ctx, allowEvent(EventWhitelistAdd, a), func(s *state) { s.Allows[a.Key()] = a }))
	}
	for _, b := range c.Add.Blocks {
		errs = append(errs, d.deliver(ctx, blockEvent(EventLock, b), func(s *state) { s.Blocks[b.Key()] = b }))
	}
	for _, b := range c.Remove.Blocks {
		errs = append(errs, d.deliver(ctx, blockEvent(EventUnlock, b), func(s *state) { delete(s.Blocks, b.Key()) }))
	}
	for _, a := range c.Remove.Allows {
		errs = append(errs, d.deliver(ctx, allowEvent(EventWhitelistRemove, a), func(s *state) { delete(s.Allows, a.Key()) }))
	}
	return errors.Join(errs...)
}

func blockEvent(name string, b enforce.Block) Event {
	return Event{Event: name, LockID: b.LockID, LockingID: b.LockingID, Target: b.Target,
		EventID: eventID(name, strconv.FormatInt(b.LockID, 10), b.Key())}
}

func allowEvent(name string, a enforce.Allow) Event {
	e := Event{Event: name, LockID: a.LockID, Target: a.Target, Source: a.Source.String()}
	exp := ""
	if name == EventWhitelistAdd && !a.Expires.IsZero() {
		t := a.Expires.UTC()
		e.Expires = &t
		exp = t.Format(time.RFC3339Nano)
	}
	e.EventID = eventID(name, strconv.FormatInt(a.LockID, 10), a.Key(), exp)
	return e
}

// eventID is the same for every delivery of the same change.
func eventID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:16])
}

// Sign returns the X-Padlock-Signature value of body: "sha256=" and the hex
// HMAC-SHA256 with secret. Receivers compare it with hmac.Equal.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

var errPermanent = errors.New("not retried")

func (d *Driver) deliver(ctx context.Context, e Event, acked func(*state)) error {
	var err error
	wait := d.cfg.MinBackoff
	for attempt := 1; attempt <= d.cfg.Attempts; attempt++ {
		e.Time = d.now().UTC()
		if d.cfg.URL != "" {
			err = d.post(ctx, e)
		} else {
			err = d.exec(ctx, e)
		}
		if err == nil {
			d.mu.Lock()
			acked(&d.state)
			serr := d.save()
			d.mu.Unlock()
			if serr != nil {
				d.log.Warn("webhook: state not saved", "webhook", d.cfg.Name, "error", serr)
			}
			return nil
		}
		if errors.Is(err, errPermanent) || attempt == d.cfg.Attempts {
			break
		}
		d.log.Debug("webhook: retrying", "webhook", d.cfg.Name, "event_id", e.EventID, "attempt", attempt, "error", err)
		if serr := d.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%s %s: %w", e.Event, e.Target, serr)
		}
		wait = min(wait*2, d.cfg.MaxBackoff)
	}
	return fmt.Errorf("%s %s: %w", e.Event, e.Target, err)
}

func (d *Driver) post(ctx context.Context, e Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Padlock-Event-Id", e.EventID)
	req.Header.Set("X-Padlock-Timestamp", strconv.FormatInt(e.Time.Unix(), 10))
	req.Header.Set("X-Padlock-Signature", Sign(d.cfg.Secret, body))
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == 408, resp.StatusCode == 429, resp.StatusCode/100 == 5:
		return fmt.Errorf("status %s: %s", resp.Status, bytes.TrimSpace(msg))
	default:
		return fmt.Errorf("%w: status %s: %s", errPermanent, resp.Status, bytes.TrimSpace(msg))
	}
}

func (d *Driver) exec(ctx context.Context, e Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	exp := ""
	if e.Expires != nil {
		exp = e.Expires.Format(time.RFC3339)
	}
	r := strings.NewReplacer("{event}", e.Event, "{event_id}", e.EventID, "{lock_id}", strconv.FormatInt(e.LockID, 10),
		"{locking_id}", e.LockingID, "{target}", e.Target.String(), "{source}", e.Source, "{expires}", exp)
	args := make([]string, len(d.cfg.Command)-1)
	for i, a := range d.cfg.Command[1:] {
		args[i] = r.Replace(a)
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cfg.Command[0], args...)
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", d.cfg.Command[0], err, bytes.TrimSpace(out))
	}
	return nil
}

// save writes the state file atomically; d.mu is held.
func (d *Driver) save() error {
	if d.cfg.StateFile == "" {
		return nil
	}
	b, err := json.Marshal(d.state)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(d.cfg.StateFile), ".webhook-state-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), d.cfg.StateFile)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
