package inventory

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sample() Document {
	return Document{Customers: []DocCustomer{
		{Name: "Example GmbH", Email: "noc@example.com", Language: "de",
			Servers:      []DocServer{{Name: "srv-1", IPs: []string{"198.51.100.10", "2001:db8:1::/64"}, MACs: []string{"52:54:00:12:34:56"}}},
			StorageBoxes: []DocStorageBox{{Name: "box-1", Host: "box-1.storage.example"}},
			IPs:          []DocAddress{{Prefix: "203.0.113.16/28", Note: "routed subnet, \"quoted\""}}},
		{Name: "Beta, Ltd", Email: "ops@beta.example"},
	}}
}

// TestGoldenFormats pins the documented JSON and CSV formats.
func TestGoldenFormats(t *testing.T) {
	for _, f := range []struct {
		name string
		enc  func(*bytes.Buffer, Document) error
		dec  func(*bytes.Reader) (Document, error)
	}{
		{"inventory.json", func(b *bytes.Buffer, d Document) error { return EncodeJSON(b, d) }, func(r *bytes.Reader) (Document, error) { return DecodeJSON(r) }},
		{"inventory.csv", func(b *bytes.Buffer, d Document) error { return EncodeCSV(b, d) }, func(r *bytes.Reader) (Document, error) { return DecodeCSV(r) }},
	} {
		var buf bytes.Buffer
		if err := f.enc(&buf, sample()); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", f.name)
		if *update {
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), buf.String()); diff != "" {
			t.Errorf("%s (-golden +got):\n%s", f.name, diff)
		}
		back, err := f.dec(bytes.NewReader(want))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(sample(), back, cmp.Transformer("nil", func(s []string) []string {
			if len(s) == 0 {
				return nil
			}
			return s
		})); diff != "" {
			t.Errorf("%s round trip (-want +got):\n%s", f.name, diff)
		}
		if err := back.Validate(); err != nil {
			t.Errorf("%s: %v", f.name, err)
		}
	}
}

func TestDocumentValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		d    Document
		want string
	}{
		"bad email":     {Document{Customers: []DocCustomer{{Name: "x", Email: "nope"}}}, "email"},
		"no name":       {Document{Customers: []DocCustomer{{Email: "a@b.example"}}}, "name"},
		"dup email":     {Document{Customers: []DocCustomer{{Name: "a", Email: "a@b.example"}, {Name: "b", Email: "A@b.example"}}}, "duplicate email"},
		"bad ip":        {Document{Customers: []DocCustomer{{Name: "a", Email: "a@b.example", Servers: []DocServer{{Name: "s", IPs: []string{"300.1.1.1"}}}}}}, "invalid address"},
		"host bits":     {Document{Customers: []DocCustomer{{Name: "a", Email: "a@b.example", IPs: []DocAddress{{Prefix: "198.51.100.7/24"}}}}}, "host bits"},
		"claimed twice": {Document{Customers: []DocCustomer{{Name: "a", Email: "a@b.example", Servers: []DocServer{{Name: "s", IPs: []string{"198.51.100.7"}}}, IPs: []DocAddress{{Prefix: "198.51.100.7/32"}}}}}, "already belongs"},
		"dup server":    {Document{Customers: []DocCustomer{{Name: "a", Email: "a@b.example", Servers: []DocServer{{Name: "s"}, {Name: "s"}}}}}, "duplicate server"},
		"bad mac":       {Document{Customers: []DocCustomer{{Name: "a", Email: "a@b.example", Servers: []DocServer{{Name: "s", MACs: []string{"52:54:00"}}}}}}, "MAC"},
	} {
		err := tc.d.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want error containing %q", name, err, tc.want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	if _, err := DecodeJSON(strings.NewReader(`{"customers":[],"extra":1}`)); err == nil {
		t.Error("unknown JSON field accepted")
	}
	for _, in := range []string{
		"kind,email\n",
		strings.Join(CSVHeader, ",") + "\nserver,nobody@example.com,s,,1.2.3.4,,,\n",
		strings.Join(CSVHeader, ",") + "\nrouter,a@b.example,,,,,,\n",
		strings.Join(CSVHeader, ",") + "\ncustomer,a@b.example,A,,,,,\ncustomer,a@b.example,A,,,,,\n",
		strings.Join(CSVHeader, ",") + "\ncustomer,a@b.example\n",
	} {
		if _, err := DecodeCSV(strings.NewReader(in)); err == nil {
			t.Errorf("accepted CSV %q", in)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7": "198.51.100.7/32", " 2001:db8::1 ": "2001:db8::1/128", "198.51.100.0/24": "198.51.100.0/24",
		"::ffff:198.51.100.7": "198.51.100.7/32", "::ffff:198.51.100.0/120": "198.51.100.0/24",
	} {
		got, err := ParsePrefix(in)
		if err != nil || got.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "198.51.100.7/24", "1.2.3", "fe80::1%eth0", "2001:db8::/129"} {
		if _, err := ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", bad)
		}
	}
	if FormatPrefix(p("198.51.100.7/32")) != "198.51.100.7" || FormatPrefix(p("198.51.100.0/24")) != "198.51.100.0/24" {
		t.Error("FormatPrefix")
	}
	if m, err := NormalizeMAC("52-54-00-AB-cd-EF"); err != nil || m != "52:54:00:ab:cd:ef" {
		t.Errorf("NormalizeMAC = %q %v", m, err)
	}
}

func FuzzDecodeCSV(f *testing.F) {
	var buf bytes.Buffer
	EncodeCSV(&buf, sample())
	f.Add(buf.String())
	f.Add("kind\n")
	f.Fuzz(func(t *testing.T, in string) {
		d, err := DecodeCSV(strings.NewReader(in))
		if err != nil || d.Validate() != nil {
			return
		}
		// A valid document survives an encode/decode round trip.
		var out bytes.Buffer
		if err := EncodeCSV(&out, d); err != nil {
			t.Fatal(err)
		}
		d2, err := DecodeCSV(&out)
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, out.String())
		}
		if d2.Validate() != nil {
			t.Fatalf("round trip broke validity")
		}
	})
}

func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"198.51.100.7", "2001:db8::/32", "::ffff:1.2.3.0/120", "1.2.3.4/33"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() {
			t.Fatalf("ParsePrefix(%q) = %v", s, p)
		}
		back, err := ParsePrefix(FormatPrefix(p))
		if err != nil || back != p {
			t.Fatalf("round trip %q → %v → %v %v", s, p, back, err)
		}
	})
}
