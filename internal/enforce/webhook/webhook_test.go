package webhook

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"padlock/internal/enforce"
)

// receiver is a webhook endpoint as a provider would write it: it checks the
// signature, fails the first `fail` requests with 503, records events.
type receiver struct {
	t      *testing.T
	secret string
	fail   int

	mu     sync.Mutex
	calls  int
	events []Event
	ids    map[string]int // deliveries per event ID
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if !hmac.Equal([]byte(req.Header.Get("X-Padlock-Signature")), []byte(Sign(r.secret, body))) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		r.t.Errorf("bad signature %q", req.Header.Get("X-Padlock-Signature"))
		return
	}
	if req.Header.Get("X-Padlock-Timestamp") == "" || req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("headers: %v", req.Header)
	}
	if r.calls <= r.fail {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		r.t.Errorf("body %s: %v", body, err)
	}
	if e.EventID != req.Header.Get("X-Padlock-Event-Id") {
		r.t.Errorf("event id header %q, body %q", req.Header.Get("X-Padlock-Event-Id"), e.EventID)
	}
	r.ids[e.EventID]++
	r.events = append(r.events, e)
}

func newDriver(t *testing.T, cfg Configuration) *Driver {
	t.Helper()
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.sleep = func(context.Context, time.Duration) error { return nil }
	return d
}

var box = enforce.Target{StorageBox: "BX11-4711"}

func TestSignedEventsRetriedUntilAccepted(t *testing.T) {
	rcv := &receiver{t: t, secret: "s3cret", fail: 3, ids: map[string]int{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	cfg := DefaultConfiguration()
	cfg.URL, cfg.Secret, cfg.Whitelist = srv.URL, "s3cret", true
	cfg.StateFile = filepath.Join(t.TempDir(), "state.json")
	d := newDriver(t, cfg)
	ctx := context.Background()

	exp := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	src := netip.MustParseAddr("198.51.100.7")
	add := enforce.Change{Add: enforce.Desired{
		Blocks: []enforce.Block{{LockID: 42, LockingID: "L-42", Target: box, Method: "webhook"}},
		Allows: []enforce.Allow{{LockID: 42, Source: src, Target: box, Expires: exp, Method: "webhook"}},
	}}
	if err := d.Apply(ctx, add); err != nil {
		t.Fatalf("apply with 3 failures and 5 attempts: %v", err)
	}
	if rcv.calls != 5 || len(rcv.events) != 2 {
		t.Fatalf("calls %d, events %d; want 5 calls (3 refused) and 2 events", rcv.calls, len(rcv.events))
	}
	wl, lock := rcv.events[0], rcv.events[1]
	if wl.Event != EventWhitelistAdd || wl.Source != "198.51.100.7" || wl.Expires == nil || !wl.Expires.Equal(exp) || wl.Target != box {
		t.Errorf("whitelist event = %+v", wl)
	}
	if lock.Event != EventLock || lock.LockID != 42 || lock.LockingID != "L-42" || lock.Target != box {
		t.Errorf("lock event = %+v", lock)
	}
	got, _ := d.Applied(ctx)
	if len(got.Blocks) != 1 || len(got.Allows) != 1 {
		t.Fatalf("applied = %+v", got)
	}

	// A restarted padlock reads the acknowledged state back.
	d2 := newDriver(t, cfg)
	got, _ = d2.Applied(ctx)
	if len(got.Blocks) != 1 || got.Blocks[0].LockID != 42 || len(got.Allows) != 1 {
		t.Fatalf("after restart applied = %+v", got)
	}
	// Unlock sends unlock and whitelist_remove, blocks first.
	if err := d2.Apply(ctx, enforce.Change{Remove: got}); err != nil {
		t.Fatal(err)
	}
	if n := len(rcv.events); n != 4 || rcv.events[2].Event != EventUnlock || rcv.events[3].Event != EventWhitelistRemove || rcv.events[2].LockID != 42 {
		t.Fatalf("events = %+v", rcv.events[2:])
	}
	if got, _ := d2.Applied(ctx); len(got.Blocks)+len(got.Allows) != 0 {
		t.Fatalf("applied after unlock = %+v", got)
	}

	// Re-sending the same change carries the same event ID.
	if err := d2.Apply(ctx, add); err != nil {
		t.Fatal(err)
	}
	if rcv.ids[lock.EventID] != 2 || rcv.ids[wl.EventID] != 2 {
		t.Fatalf("event IDs not stable across re-sends: %v", rcv.ids)
	}
}

func TestGivesUpAndReports(t *testing.T) {
	rcv := &receiver{t: t, secret: "k", fail: 100, ids: map[string]int{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	cfg := DefaultConfiguration()
	cfg.URL, cfg.Secret, cfg.Attempts = srv.URL, "k", 3
	d := newDriver(t, cfg)
	err := d.Apply(context.Background(), enforce.Change{Add: enforce.Desired{Blocks: []enforce.Block{{LockID: 1, Target: box}}}})
	if err == nil || !strings.Contains(err.Error(), "503") || rcv.calls != 3 {
		t.Fatalf("err = %v after %d calls, want a 503 error after 3", err, rcv.calls)
	}
	if got, _ := d.Applied(context.Background()); len(got.Blocks) != 0 {
		t.Fatal("unacknowledged lock reported applied")
	}
}

func TestCommandWithArguments(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfiguration()
	cfg.Command = []string{"tee", filepath.Join(dir, "{event}-{lock_id}-{target}.json")}
	d := newDriver(t, cfg)
	if err := d.Apply(context.Background(), enforce.Change{Add: enforce.Desired{Blocks: []enforce.Block{{LockID: 7, Target: box}}}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "lock-7-storage_box:BX11-4711.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e Event
	if err := json.Unmarshal(b, &e); err != nil || e.Event != EventLock || e.Target != box {
		t.Fatalf("stdin event %s: %v", b, err)
	}
	cfg.Command = []string{"false"}
	d = newDriver(t, cfg)
	if err := d.Apply(context.Background(), enforce.Change{Add: enforce.Desired{Blocks: []enforce.Block{{LockID: 7, Target: box}}}}); err == nil {
		t.Fatal("failing command acknowledged")
	}
}

func TestValidateNamesKeys(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.URL = "ftp://x"
	cfg.Scopes = []string{"rack"}
	err := cfg.Validate()
	for _, want := range []string{"url:", "secret:", "scopes[0]:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}
