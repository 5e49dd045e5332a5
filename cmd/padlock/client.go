package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// apiClient talks to a running padlock's REST API. The server URL and the
// token come from --server/--token or PADLOCK_URL/PADLOCK_TOKEN.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func clientFlags(fs *flag.FlagSet) (server, token *string) {
	server = fs.String("server", envOr("PADLOCK_URL", "http://127.0.0.1:8080"), "`URL` of the running padlock (env PADLOCK_URL)")
	token = fs.String("token", os.Getenv("PADLOCK_TOKEN"), "API `token` (env PADLOCK_TOKEN; see padlock token create)")
	return
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func newAPIClient(server, token string) (*apiClient, error) {
	if token == "" {
		return nil, usageErrorf("an API token is required: --token or PADLOCK_TOKEN (create one with padlock token create)")
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErrorf("--server %q is not an http(s) URL", server)
	}
	return &apiClient{base: strings.TrimRight(server, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// call sends one request; a non-2xx answer becomes an error carrying the
// API's message and field.
func (c *apiClient) call(ctx context.Context, method, path string, body any, hdr map[string]string, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("padlock at %s: %w", c.base, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Code, Message, Field string
				Details              map[string]any
			}
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			msg := e.Error.Message
			if id, ok := e.Error.Details["existing_id"]; ok {
				msg += fmt.Sprintf(" (existing: %v)", id)
			}
			return fmt.Errorf("%s (HTTP %d, %s)", msg, res.StatusCode, e.Error.Code)
		}
		return fmt.Errorf("HTTP %d: %s", res.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

type lockOut struct {
	ID        int64     `json:"id"`
	LockingID string    `json:"locking_id"`
	Reason    string    `json:"reason"`
	State     string    `json:"state"`
	ScopeKind string    `json:"scope_kind"`
	Prefixes  []string  `json:"prefixes"`
	CreatedAt time.Time `json:"created_at"`
	Customer  int64     `json:"customer_id"`
	// Enforcement is shown to staff tokens: applied, pending or refused.
	Enforcement *struct {
		State string `json:"state"`
		Error string `json:"error"`
	} `json:"enforcement"`
}

func (l lockOut) enforcement() string {
	if l.Enforcement == nil {
		return "-"
	}
	if l.Enforcement.Error != "" {
		return l.Enforcement.State + ": " + l.Enforcement.Error
	}
	return l.Enforcement.State
}

func printLocks(w io.Writer, ls []lockOut) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLOCKING ID\tSTATE\tREASON\tCUSTOMER\tSCOPE\tADDRESSES\tCREATED\tENFORCEMENT")
	for _, l := range ls {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", l.ID, l.LockingID, l.State, l.Reason, l.Customer, l.ScopeKind,
			strings.Join(l.Prefixes, ","), l.CreatedAt.Local().Format("2006-01-02 15:04"), l.enforcement())
	}
	tw.Flush()
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, strings.Split(v, ",")...); return nil }

// cmdLock: padlock lock --reason R (--ip A [--ip B] | --server-id N | --storage-box N | --subnet P) [--note T] [--warn-until RFC3339] [--idempotency-key K]
func cmdLock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lock", stderr)
	server, token := clientFlags(fs)
	reason := fs.String("reason", "", "lock reason: non_payment, abuse, illegal_content, spam, network_attack, netscan, packet_limit, incorrect_network_config")
	var ips listFlag
	fs.Var(&ips, "ip", "locked `address` (repeatable, or comma-separated)")
	serverID := fs.Int64("server-id", 0, "lock a whole server by `ID`")
	box := fs.Int64("storage-box", 0, "lock a storage box by `ID`")
	subnet := fs.String("subnet", "", "lock a `prefix`")
	note := fs.String("note", "", "staff note")
	warn := fs.String("warn-until", "", "warn first; lock at this RFC 3339 `time` if not fixed")
	key := fs.String("idempotency-key", "", "makes retries of this call safe")
	asJSON := fs.Bool("json", false, "print the lock as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := newAPIClient(*server, *token)
	if err != nil {
		return err
	}
	scope := map[string]any{}
	if len(ips) > 0 {
		scope["ips"] = []string(ips)
	}
	if *serverID != 0 {
		scope["server_id"] = *serverID
	}
	if *box != 0 {
		scope["storage_box_id"] = *box
	}
	if *subnet != "" {
		scope["subnet"] = *subnet
	}
	if len(scope) != 1 {
		return usageErrorf("give exactly one of --ip, --server-id, --storage-box, --subnet")
	}
	body := map[string]any{"scope": scope, "reason": *reason, "note": *note}
	if *warn != "" {
		t, err := time.Parse(time.RFC3339, *warn)
		if err != nil {
			return usageErrorf("--warn-until %q is not an RFC 3339 time", *warn)
		}
		body["warn_until"] = t
	}
	hdr := map[string]string{}
	if *key != "" {
		hdr["Idempotency-Key"] = *key
	}
	var l lockOut
	var raw json.RawMessage
	if err := c.call(ctx, "POST", "/api/v1/locks", body, hdr, &raw); err != nil {
		return err
	}
	if *asJSON {
		_, err := fmt.Fprintln(stdout, string(raw))
		return err
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "lock %d (%s) %s: %s %s; enforcement %s\n", l.ID, l.LockingID, l.State, l.Reason, strings.Join(l.Prefixes, ","), l.enforcement())
	return nil
}

// cmdUnlock: padlock unlock [--note T] ID
func cmdUnlock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("unlock", stderr)
	server, token := clientFlags(fs)
	note := fs.String("note", "", "why the lock is lifted (audit log)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("usage: padlock unlock [--note TEXT] LOCK_ID")
	}
	c, err := newAPIClient(*server, *token)
	if err != nil {
		return err
	}
	var l lockOut
	if err := c.call(ctx, "POST", "/api/v1/locks/"+url.PathEscape(fs.Arg(0))+"/unlock", map[string]string{"note": *note}, nil, &l); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "lock %d (%s) %s\n", l.ID, l.LockingID, l.State)
	return nil
}

// cmdLocks: padlock locks [--state S] [--customer N] [--ip A] [--json]
func cmdLocks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("locks", stderr)
	server, token := clientFlags(fs)
	state := fs.String("state", "", "only locks in this state (warned, locked, unlock_requested, unlocked)")
	customer := fs.Int64("customer", 0, "only this customer's locks")
	ip := fs.String("ip", "", "only locks covering this address")
	limit := fs.Int("limit", 100, "at most this many")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := newAPIClient(*server, *token)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *state != "" {
		q.Set("state", *state)
	}
	if *customer != 0 {
		q.Set("customer_id", fmt.Sprint(*customer))
	}
	if *ip != "" {
		q.Set("ip", *ip)
	}
	q.Set("limit", fmt.Sprint(*limit))
	var res struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := c.call(ctx, "GET", "/api/v1/locks?"+q.Encode(), nil, nil, &res); err != nil {
		return err
	}
	if *asJSON {
		for _, it := range res.Items {
			fmt.Fprintln(stdout, string(it))
		}
		return nil
	}
	ls := make([]lockOut, len(res.Items))
	for i, it := range res.Items {
		if err := json.Unmarshal(it, &ls[i]); err != nil {
			return err
		}
	}
	printLocks(stdout, ls)
	return nil
}

// cmdImport: padlock import FILE.json|FILE.csv — upserts the inventory of a
// running padlock (idempotent: importing the same file again changes nothing).
func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", stderr)
	server, token := clientFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("usage: padlock import FILE.json|FILE.csv")
	}
	data, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	c, err := newAPIClient(*server, *token)
	if err != nil {
		return err
	}
	ct := "application/json"
	if strings.EqualFold(filepath.Ext(fs.Arg(0)), ".csv") {
		ct = "text/csv"
	}
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/api/v1/inventory/import", bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", ct)
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", fs.Arg(0), res.StatusCode, strings.TrimSpace(string(body)))
	}
	var r struct{ Created, Updated, Unchanged int }
	if err := json.Unmarshal(body, &r); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d created, %d updated, %d unchanged\n", fs.Arg(0), r.Created, r.Updated, r.Unchanged)
	return nil
}

// cmdExport: padlock export [--format json|csv] — the inventory of a running
// padlock, in the form padlock import reads back unchanged.
func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", stderr)
	server, token := clientFlags(fs)
	format := fs.String("format", "json", "json or csv")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *format != "json" && *format != "csv" {
		return usageErrorf("--format must be json or csv, not %q", *format)
	}
	c, err := newAPIClient(*server, *token)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/api/v1/inventory/export?format="+*format, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		return fmt.Errorf("HTTP %d: %s", res.StatusCode, strings.TrimSpace(string(body)))
	}
	_, err = io.Copy(stdout, res.Body)
	return err
}
