package api

import (
	"net/http"
	"net/netip"
	"strings"

	"padlock/internal/inventory"
	"padlock/internal/lock"
)

func inventoryFilter(r *http.Request) (lock.InventoryFilter, error) {
	var f lock.InventoryFilter
	err := queryInts(r, &f.Limit, map[string]*int64{"customer_id": &f.CustomerID, "after_id": &f.AfterID})
	return f, err
}

func (a *API) listCustomers(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	f, err := inventoryFilter(r)
	if err != nil {
		return err
	}
	cs, err := a.svc.ListCustomers(r.Context(), actor, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list(cs))
	return nil
}

func (a *API) createCustomer(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	var in struct {
		Name     string `json:"name"`
		Email    string `json:"email"`
		Language string `json:"language"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	c, err := a.svc.CreateCustomer(r.Context(), actor, inventory.Customer{Name: in.Name, Email: in.Email, Language: in.Language})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, c)
	return nil
}

func (a *API) listServers(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	f, err := inventoryFilter(r)
	if err != nil {
		return err
	}
	ss, err := a.svc.ListServers(r.Context(), actor, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list(ss))
	return nil
}

// parsePrefixes accepts addresses ("203.0.113.10") and prefixes
// ("203.0.113.0/28", "2001:db8::/64") and names the bad element.
func parsePrefixes(field string, in []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for i, s := range in {
		p, err := inventory.ParsePrefix(s)
		if err != nil {
			return nil, badRequest(field, "%s[%d]: %v", field, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func (a *API) createServer(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	var in struct {
		CustomerID int64    `json:"customer_id"`
		Name       string   `json:"name"`
		IPs        []string `json:"ips"`
		MACs       []string `json:"macs"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	ips, err := parsePrefixes("ips", in.IPs)
	if err != nil {
		return err
	}
	s, err := a.svc.CreateServer(r.Context(), actor, inventory.Server{CustomerID: in.CustomerID, Name: in.Name, IPs: ips, MACs: in.MACs})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s)
	return nil
}

func (a *API) listStorageBoxes(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	f, err := inventoryFilter(r)
	if err != nil {
		return err
	}
	bs, err := a.svc.ListStorageBoxes(r.Context(), actor, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list(bs))
	return nil
}

func (a *API) createStorageBox(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	var in struct {
		CustomerID int64  `json:"customer_id"`
		Name       string `json:"name"`
		Host       string `json:"host"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	b, err := a.svc.CreateStorageBox(r.Context(), actor, inventory.StorageBox{CustomerID: in.CustomerID, Name: in.Name, Host: in.Host})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, b)
	return nil
}

func (a *API) listAddresses(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	f, err := inventoryFilter(r)
	if err != nil {
		return err
	}
	as, err := a.svc.ListAddresses(r.Context(), actor, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list(as))
	return nil
}

func (a *API) createAddress(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	var in struct {
		CustomerID int64  `json:"customer_id"`
		Prefix     string `json:"prefix"`
		Note       string `json:"note"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	p, err := inventory.ParsePrefix(in.Prefix)
	if err != nil {
		return badRequest("prefix", "%v", err)
	}
	ad, err := a.svc.CreateAddress(r.Context(), actor, inventory.Address{CustomerID: in.CustomerID, Prefix: p, Note: in.Note})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, ad)
	return nil
}

func (a *API) lookup(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	v := r.URL.Query().Get("ip")
	ip, err := netip.ParseAddr(v)
	if err != nil {
		return badRequest("ip", "ip must be an IPv4 or IPv6 address, not %q", v)
	}
	res, err := a.svc.Lookup(r.Context(), actor, ip.Unmap())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// importInventory upserts a JSON or CSV inventory document (admin, staff).
func (a *API) importInventory(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	body := http.MaxBytesReader(w, r.Body, 64<<20)
	var doc inventory.Document
	var err error
	switch ct := r.Header.Get("Content-Type"); {
	case strings.HasPrefix(ct, "text/csv"):
		doc, err = inventory.DecodeCSV(body)
	case ct == "" || strings.HasPrefix(ct, "application/json"):
		doc, err = inventory.DecodeJSON(body)
	default:
		return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "import takes application/json or text/csv"}
	}
	if err != nil {
		return badRequest("", "%v", err)
	}
	res, err := a.svc.Import(r.Context(), actor, doc)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// exportInventory returns the inventory document, JSON by default or CSV
// with ?format=csv (or Accept: text/csv); both re-import unchanged.
func (a *API) exportInventory(w http.ResponseWriter, r *http.Request, actor lock.Actor) error {
	doc, err := a.svc.Export(r.Context(), actor)
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format == "" && strings.HasPrefix(r.Header.Get("Accept"), "text/csv") {
		format = "csv"
	}
	switch format {
	case "", "json":
		w.Header().Set("Content-Type", "application/json")
		return inventory.EncodeJSON(w, doc)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		return inventory.EncodeCSV(w, doc)
	}
	return badRequest("format", "format must be json or csv, not %q", format)
}
