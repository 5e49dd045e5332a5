package inventory

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Document is the import/export form of the inventory. Objects refer to each
// other by natural keys (customer email, server and storage box name,
// prefix), never by database IDs, so the same file can be imported into any
// padlock and re-imported without changing anything.
//
// JSON format (padlock import FILE.json, padlock export):
//
//	{"customers": [
//	  {"name": "Example GmbH", "email": "noc@example.com", "language": "de",
//	   "servers": [{"name": "srv-1", "ips": ["198.51.100.10", "2001:db8:1::/64"],
//	                "macs": ["52:54:00:12:34:56"]}],
//	   "storage_boxes": [{"name": "box-1", "host": "box-1.storage.example"}],
//	   "ips": [{"prefix": "203.0.113.16/28", "note": "routed subnet"}]}
//	]}
//
// CSV format: a header line, then one line per object; the kind column says
// which columns matter. A customer line must come before the lines naming
// its email; addresses and MACs are separated by spaces.
//
//	kind,customer_email,name,language,ips,macs,host,note
//	customer,noc@example.com,Example GmbH,de,,,,
//	server,noc@example.com,srv-1,,198.51.100.10 2001:db8:1::/64,52:54:00:12:34:56,,
//	storage_box,noc@example.com,box-1,,,,box-1.storage.example,
//	ip,noc@example.com,,,203.0.113.16/28,,,routed subnet
//
// Import semantics: upsert by natural key. A customer's name and language,
// a server's owner, addresses and MACs, a storage box's owner and host and an
// address's owner and note are set to what the file says; objects missing
// from the file are left alone (import never deletes).
type Document struct {
	Customers []DocCustomer `json:"customers"`
}

// DocCustomer is one customer with its products.
type DocCustomer struct {
	Name         string          `json:"name"`
	Email        string          `json:"email"`
	Language     string          `json:"language,omitempty"`
	Servers      []DocServer     `json:"servers,omitempty"`
	StorageBoxes []DocStorageBox `json:"storage_boxes,omitempty"`
	IPs          []DocAddress    `json:"ips,omitempty"`
}

// DocServer is a server in a Document.
type DocServer struct {
	Name string   `json:"name"`
	IPs  []string `json:"ips"`
	MACs []string `json:"macs,omitempty"`
}

// DocStorageBox is a storage box in a Document.
type DocStorageBox struct {
	Name string `json:"name"`
	Host string `json:"host,omitempty"`
}

// DocAddress is a standalone IP or subnet in a Document.
type DocAddress struct {
	Prefix string `json:"prefix"`
	Note   string `json:"note,omitempty"`
}

// Snapshot is the whole inventory as stored, with IDs.
type Snapshot struct {
	Customers    []Customer
	Servers      []Server
	StorageBoxes []StorageBox
	Addresses    []Address
}

// Entries returns the index entries of the snapshot's servers and standalone
// addresses.
func (s *Snapshot) Entries() []Entry {
	var out []Entry
	for _, sv := range s.Servers {
		for _, p := range sv.IPs {
			out = append(out, Entry{Prefix: p, CustomerID: sv.CustomerID, Type: ProductServer, ProductID: sv.ID})
		}
	}
	for _, a := range s.Addresses {
		out = append(out, Entry{Prefix: a.Prefix, CustomerID: a.CustomerID, Type: ProductAddress, ProductID: a.ID})
	}
	return out
}

// MACs returns the servers of the snapshot's MAC addresses (servers
// without addresses left out: they send nothing the index could own).
func (s *Snapshot) MACs() map[[6]byte]MACEntry {
	out := map[[6]byte]MACEntry{}
	for _, sv := range s.Servers {
		if len(sv.IPs) == 0 {
			continue
		}
		for _, m := range sv.MACs {
			hw, err := net.ParseMAC(m)
			if err != nil || len(hw) != 6 {
				continue // the store keeps them normalised: never
			}
			out[[6]byte(hw)] = MACEntry{CustomerID: sv.CustomerID, ServerID: sv.ID}
		}
	}
	return out
}

// DocumentOf converts a snapshot into a Document, sorted by natural keys so
// exports are stable.
func DocumentOf(s *Snapshot) Document {
	byID := map[int64]*DocCustomer{}
	var d Document
	cs := slices.Clone(s.Customers)
	slices.SortFunc(cs, func(a, b Customer) int { return strings.Compare(a.Email, b.Email) })
	d.Customers = make([]DocCustomer, len(cs))
	for i, c := range cs {
		d.Customers[i] = DocCustomer{Name: c.Name, Email: c.Email, Language: c.Language}
		byID[c.ID] = &d.Customers[i]
	}
	for _, sv := range s.Servers {
		if c := byID[sv.CustomerID]; c != nil {
			ds := DocServer{Name: sv.Name, MACs: slices.Clone(sv.MACs)}
			for _, p := range sv.IPs {
				ds.IPs = append(ds.IPs, FormatPrefix(p))
			}
			c.Servers = append(c.Servers, ds)
		}
	}
	for _, b := range s.StorageBoxes {
		if c := byID[b.CustomerID]; c != nil {
			c.StorageBoxes = append(c.StorageBoxes, DocStorageBox{Name: b.Name, Host: b.Host})
		}
	}
	for _, a := range s.Addresses {
		if c := byID[a.CustomerID]; c != nil {
			c.IPs = append(c.IPs, DocAddress{Prefix: FormatPrefix(a.Prefix), Note: a.Note})
		}
	}
	for i := range d.Customers {
		c := &d.Customers[i]
		slices.SortFunc(c.Servers, func(a, b DocServer) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(c.StorageBoxes, func(a, b DocStorageBox) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(c.IPs, func(a, b DocAddress) int { return strings.Compare(a.Prefix, b.Prefix) })
	}
	return d
}

// Validate checks a document before import: every field valid, natural keys
// unique, no address claimed twice. The error names the offending object.
func (d *Document) Validate() error {
	emails := map[string]bool{}
	servers := map[string]bool{}
	boxes := map[string]bool{}
	prefixes := map[netip.Prefix]string{}
	claim := func(p netip.Prefix, who string) error {
		if prev, ok := prefixes[p]; ok {
			return fmt.Errorf("%s: address %s already belongs to %s", who, FormatPrefix(p), prev)
		}
		prefixes[p] = who
		return nil
	}
	for ci, c := range d.Customers {
		who := fmt.Sprintf("customer %d (%s)", ci+1, c.Email)
		if f, err := ValidateCustomer(Customer{Name: c.Name, Email: c.Email, Language: c.Language}); err != nil {
			return fmt.Errorf("%s: %s: %w", who, f, err)
		}
		key := strings.ToLower(c.Email)
		if emails[key] {
			return fmt.Errorf("%s: duplicate email", who)
		}
		emails[key] = true
		for _, s := range c.Servers {
			sv, err := s.Server()
			if err != nil {
				return fmt.Errorf("%s: server %q: %w", who, s.Name, err)
			}
			if f, err := ValidateServer(sv); err != nil {
				return fmt.Errorf("%s: server %q: %s: %w", who, s.Name, f, err)
			}
			if servers[s.Name] {
				return fmt.Errorf("%s: duplicate server name %q", who, s.Name)
			}
			servers[s.Name] = true
			for _, p := range sv.IPs {
				if err := claim(p, "server "+s.Name); err != nil {
					return err
				}
			}
		}
		for _, b := range c.StorageBoxes {
			if f, err := ValidateStorageBox(StorageBox{Name: b.Name, Host: b.Host}); err != nil {
				return fmt.Errorf("%s: storage box %q: %s: %w", who, b.Name, f, err)
			}
			if boxes[b.Name] {
				return fmt.Errorf("%s: duplicate storage box name %q", who, b.Name)
			}
			boxes[b.Name] = true
		}
		for _, a := range c.IPs {
			p, err := ParsePrefix(a.Prefix)
			if err != nil {
				return fmt.Errorf("%s: %w", who, err)
			}
			if err := claim(p, "customer "+c.Email); err != nil {
				return err
			}
		}
	}
	return nil
}

// Server converts a DocServer into a Server (without IDs), normalizing
// addresses and MACs.
func (s DocServer) Server() (Server, error) {
	sv := Server{Name: s.Name}
	for _, ip := range s.IPs {
		p, err := ParsePrefix(ip)
		if err != nil {
			return Server{}, err
		}
		sv.IPs = append(sv.IPs, p)
	}
	for _, m := range s.MACs {
		n, err := NormalizeMAC(m)
		if err != nil {
			return Server{}, err
		}
		sv.MACs = append(sv.MACs, n)
	}
	return sv, nil
}

// DecodeJSON reads a JSON document; unknown fields are errors.
func DecodeJSON(r io.Reader) (Document, error) {
	var d Document
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Document{}, fmt.Errorf("inventory json: %w", err)
	}
	if dec.More() {
		return Document{}, errors.New("inventory json: trailing data after the document")
	}
	return d, nil
}

// EncodeJSON writes d as indented JSON.
func EncodeJSON(w io.Writer, d Document) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// CSVHeader is the header line of the CSV format.
var CSVHeader = []string{"kind", "customer_email", "name", "language", "ips", "macs", "host", "note"}

// DecodeCSV reads the CSV format (see Document).
func DecodeCSV(r io.Reader) (Document, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(CSVHeader)
	cr.Comment = '#'
	head, err := cr.Read()
	if err != nil {
		return Document{}, fmt.Errorf("inventory csv: header: %w", err)
	}
	if !slices.Equal(head, CSVHeader) {
		return Document{}, fmt.Errorf("inventory csv: header must be %q", strings.Join(CSVHeader, ","))
	}
	var d Document
	idx := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Document{}, fmt.Errorf("inventory csv: %w", err)
		}
		line, _ := cr.FieldPos(0)
		kind, email := rec[0], strings.TrimSpace(rec[1])
		if kind == "customer" {
			if _, dup := idx[strings.ToLower(email)]; dup {
				return Document{}, fmt.Errorf("inventory csv: line %d: duplicate customer %q", line, email)
			}
			idx[strings.ToLower(email)] = len(d.Customers)
			d.Customers = append(d.Customers, DocCustomer{Email: email, Name: rec[2], Language: rec[3]})
			continue
		}
		ci, ok := idx[strings.ToLower(email)]
		if !ok {
			return Document{}, fmt.Errorf("inventory csv: line %d: customer %q not defined on an earlier line", line, email)
		}
		c := &d.Customers[ci]
		switch kind {
		case "server":
			c.Servers = append(c.Servers, DocServer{Name: rec[2], IPs: strings.Fields(rec[4]), MACs: strings.Fields(rec[5])})
		case "storage_box":
			c.StorageBoxes = append(c.StorageBoxes, DocStorageBox{Name: rec[2], Host: rec[6]})
		case "ip":
			for _, p := range strings.Fields(rec[4]) {
				c.IPs = append(c.IPs, DocAddress{Prefix: p, Note: rec[7]})
			}
		default:
			return Document{}, fmt.Errorf("inventory csv: line %d: unknown kind %q (want customer, server, storage_box or ip)", line, kind)
		}
	}
	return d, nil
}

// EncodeCSV writes d in the CSV format.
func EncodeCSV(w io.Writer, d Document) error {
	cw := csv.NewWriter(w)
	rows := [][]string{CSVHeader}
	for _, c := range d.Customers {
		rows = append(rows, []string{"customer", c.Email, c.Name, c.Language, "", "", "", ""})
		for _, s := range c.Servers {
			rows = append(rows, []string{"server", c.Email, s.Name, "", strings.Join(s.IPs, " "), strings.Join(s.MACs, " "), "", ""})
		}
		for _, b := range c.StorageBoxes {
			rows = append(rows, []string{"storage_box", c.Email, b.Name, "", "", "", b.Host, ""})
		}
		for _, a := range c.IPs {
			rows = append(rows, []string{"ip", c.Email, "", "", a.Prefix, "", "", a.Note})
		}
	}
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("inventory csv: %w", err)
	}
	return nil
}
