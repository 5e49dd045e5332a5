package lock

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"

	"padlock/internal/inventory"
)

func (a Actor) mayEditInventory() error {
	if a.staff() {
		return nil
	}
	return forbidden("role %s may not change the inventory", a.Role)
}

// CreateCustomer adds a customer (admin, staff).
func (s *Service) CreateCustomer(ctx context.Context, a Actor, c inventory.Customer) (inventory.Customer, error) {
	if err := a.mayEditInventory(); err != nil {
		return c, err
	}
	c.ID = 0
	c.Email = strings.TrimSpace(c.Email)
	if f, err := inventory.ValidateCustomer(c); err != nil {
		return c, invalid(f, "%v", err)
	}
	err := s.update(ctx, a, func(t *txn) error {
		if err := t.tx.InsertCustomer(ctx, &c); err != nil {
			return err
		}
		return t.audit("customer_create", "customer", c.ID, 0, c.ID, nil, c, "")
	})
	return c, err
}

// GetCustomer returns one customer.
func (s *Service) GetCustomer(ctx context.Context, a Actor, id int64) (inventory.Customer, error) {
	var c inventory.Customer
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		c, err = tx.Customer(ctx, id)
		return err
	})
	if err == nil && !a.sees(c.ID) {
		return inventory.Customer{}, notFound("customer %d", id)
	}
	return c, err
}

// ListCustomers lists customers by ID (a customer sees only itself).
func (s *Service) ListCustomers(ctx context.Context, a Actor, f InventoryFilter) ([]inventory.Customer, error) {
	f.CustomerID = a.scopeCustomer(f.CustomerID)
	f.Limit = limit(f.Limit)
	var out []inventory.Customer
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		out, err = tx.ListCustomers(ctx, f)
		return err
	})
	return out, err
}

// customerExists checks the owner of a new product.
func (t *txn) customerExists(id int64) error {
	if id <= 0 {
		return invalid("customer_id", "customer_id is required")
	}
	if _, err := t.tx.Customer(t.ctx, id); err != nil {
		if errors.Is(err, ErrNotFound) {
			return invalid("customer_id", "customer %d does not exist", id)
		}
		return err
	}
	return nil
}

// CreateServer adds a server with its addresses (admin, staff).
func (s *Service) CreateServer(ctx context.Context, a Actor, sv inventory.Server) (inventory.Server, error) {
	if err := a.mayEditInventory(); err != nil {
		return sv, err
	}
	sv.ID = 0
	for i, m := range sv.MACs {
		n, err := inventory.NormalizeMAC(m)
		if err != nil {
			return sv, invalid("macs", "%v", err)
		}
		sv.MACs[i] = n
	}
	if f, err := inventory.ValidateServer(sv); err != nil {
		return sv, invalid(f, "%v", err)
	}
	err := s.update(ctx, a, func(t *txn) error {
		if err := t.customerExists(sv.CustomerID); err != nil {
			return err
		}
		if err := t.tx.InsertServer(ctx, &sv); err != nil {
			return err
		}
		t.inventory = true
		return t.audit("server_create", "server", sv.ID, 0, sv.CustomerID, nil, sv, "")
	})
	return sv, err
}

// GetServer returns one server.
func (s *Service) GetServer(ctx context.Context, a Actor, id int64) (inventory.Server, error) {
	var sv inventory.Server
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		sv, err = tx.Server(ctx, id)
		return err
	})
	if err == nil && !a.sees(sv.CustomerID) {
		return inventory.Server{}, notFound("server %d", id)
	}
	return sv, err
}

// ListServers lists servers by ID.
func (s *Service) ListServers(ctx context.Context, a Actor, f InventoryFilter) ([]inventory.Server, error) {
	f.CustomerID = a.scopeCustomer(f.CustomerID)
	f.Limit = limit(f.Limit)
	var out []inventory.Server
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		out, err = tx.ListServers(ctx, f)
		return err
	})
	return out, err
}

// CreateStorageBox adds a storage box (admin, staff).
func (s *Service) CreateStorageBox(ctx context.Context, a Actor, b inventory.StorageBox) (inventory.StorageBox, error) {
	if err := a.mayEditInventory(); err != nil {
		return b, err
	}
	b.ID = 0
	if f, err := inventory.ValidateStorageBox(b); err != nil {
		return b, invalid(f, "%v", err)
	}
	err := s.update(ctx, a, func(t *txn) error {
		if err := t.customerExists(b.CustomerID); err != nil {
			return err
		}
		if err := t.tx.InsertStorageBox(ctx, &b); err != nil {
			return err
		}
		return t.audit("storage_box_create", "storage_box", b.ID, 0, b.CustomerID, nil, b, "")
	})
	return b, err
}

// GetStorageBox returns one storage box.
func (s *Service) GetStorageBox(ctx context.Context, a Actor, id int64) (inventory.StorageBox, error) {
	var b inventory.StorageBox
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		b, err = tx.StorageBox(ctx, id)
		return err
	})
	if err == nil && !a.sees(b.CustomerID) {
		return inventory.StorageBox{}, notFound("storage box %d", id)
	}
	return b, err
}

// ListStorageBoxes lists storage boxes by ID.
func (s *Service) ListStorageBoxes(ctx context.Context, a Actor, f InventoryFilter) ([]inventory.StorageBox, error) {
	f.CustomerID = a.scopeCustomer(f.CustomerID)
	f.Limit = limit(f.Limit)
	var out []inventory.StorageBox
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		out, err = tx.ListStorageBoxes(ctx, f)
		return err
	})
	return out, err
}

// CreateAddress adds a standalone IP or subnet (admin, staff).
func (s *Service) CreateAddress(ctx context.Context, a Actor, ad inventory.Address) (inventory.Address, error) {
	if err := a.mayEditInventory(); err != nil {
		return ad, err
	}
	ad.ID = 0
	if f, err := inventory.ValidateAddress(ad); err != nil {
		return ad, invalid(f, "%v", err)
	}
	err := s.update(ctx, a, func(t *txn) error {
		if err := t.customerExists(ad.CustomerID); err != nil {
			return err
		}
		if err := t.tx.InsertAddress(ctx, &ad); err != nil {
			if e := ErrorDetails(err); e != nil && e.Field == "ips" {
				e.Field = "prefix"
			}
			return err
		}
		t.inventory = true
		return t.audit("address_create", "address", ad.ID, 0, ad.CustomerID, nil, ad, "")
	})
	return ad, err
}

// ListAddresses lists standalone IPs and subnets by ID.
func (s *Service) ListAddresses(ctx context.Context, a Actor, f InventoryFilter) ([]inventory.Address, error) {
	f.CustomerID = a.scopeCustomer(f.CustomerID)
	f.Limit = limit(f.Limit)
	var out []inventory.Address
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		out, err = tx.ListAddresses(ctx, f)
		return err
	})
	return out, err
}

// LookupResult is the product and customer an address belongs to.
type LookupResult struct {
	IP       netip.Addr         `json:"ip"`
	Entry    inventory.Entry    `json:"match"`
	Customer inventory.Customer `json:"customer"`
}

// Lookup finds the product and customer of an address by longest prefix.
// An address nobody (or, for a customer, another customer) holds is
// ErrNotFound.
func (s *Service) Lookup(ctx context.Context, a Actor, ip netip.Addr) (LookupResult, error) {
	if err := a.check(); err != nil {
		return LookupResult{}, err
	}
	if !ip.IsValid() {
		return LookupResult{}, invalid("ip", "an IP address is required")
	}
	ip = ip.Unmap().WithZone("")
	x, err := s.index0(ctx)
	if err != nil {
		return LookupResult{}, err
	}
	e, ok := x.Lookup(ip)
	if !ok || !a.sees(e.CustomerID) {
		return LookupResult{}, notFound("no product holds %s", ip)
	}
	c, err := s.GetCustomer(ctx, a, e.CustomerID)
	if err != nil {
		return LookupResult{}, err
	}
	return LookupResult{IP: ip, Entry: e, Customer: c}, nil
}

// ImportResult counts what an import changed.
type ImportResult struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
}

// Import upserts a document by natural keys in one transaction (admin,
// staff). Re-importing the same document changes nothing and writes no
// audit events.
func (s *Service) Import(ctx context.Context, a Actor, d inventory.Document) (ImportResult, error) {
	var res ImportResult
	if err := a.mayEditInventory(); err != nil {
		return res, err
	}
	if err := d.Validate(); err != nil {
		return res, invalid("document", "%v", err)
	}
	err := s.update(ctx, a, func(t *txn) error {
		res = ImportResult{}
		for _, dc := range d.Customers {
			c, err := t.tx.CustomerByEmail(ctx, dc.Email)
			want := inventory.Customer{ID: c.ID, Name: dc.Name, Email: dc.Email, Language: dc.Language}
			switch {
			case errors.Is(err, ErrNotFound):
				want.ID = 0
				if err := t.tx.InsertCustomer(ctx, &want); err != nil {
					return err
				}
				res.Created++
				if err := t.audit("customer_create", "customer", want.ID, 0, want.ID, nil, want, "import"); err != nil {
					return err
				}
			case err != nil:
				return err
			case c.Name != want.Name || c.Language != want.Language:
				want.Email = c.Email
				if err := t.tx.UpdateCustomer(ctx, want); err != nil {
					return err
				}
				res.Updated++
				if err := t.audit("customer_update", "customer", c.ID, 0, c.ID, c, want, "import"); err != nil {
					return err
				}
			default:
				res.Unchanged++
			}
			cid := want.ID
			for _, ds := range dc.Servers {
				sv, _ := ds.Server() // validated
				sv.CustomerID = cid
				old, err := t.tx.ServerByName(ctx, ds.Name)
				switch {
				case errors.Is(err, ErrNotFound):
					if err := t.tx.InsertServer(ctx, &sv); err != nil {
						return err
					}
					res.Created++
					t.inventory = true
					if err := t.audit("server_create", "server", sv.ID, 0, cid, nil, sv, "import"); err != nil {
						return err
					}
				case err != nil:
					return err
				case old.CustomerID != cid || !samePrefixes(old.IPs, sv.IPs) || !sameStrings(old.MACs, sv.MACs):
					sv.ID = old.ID
					if err := t.tx.UpdateServer(ctx, sv); err != nil {
						return err
					}
					res.Updated++
					t.inventory = true
					if err := t.audit("server_update", "server", sv.ID, 0, cid, old, sv, "import"); err != nil {
						return err
					}
				default:
					res.Unchanged++
				}
			}
			for _, db := range dc.StorageBoxes {
				b := inventory.StorageBox{CustomerID: cid, Name: db.Name, Host: db.Host}
				old, err := t.tx.StorageBoxByName(ctx, db.Name)
				switch {
				case errors.Is(err, ErrNotFound):
					if err := t.tx.InsertStorageBox(ctx, &b); err != nil {
						return err
					}
					res.Created++
					if err := t.audit("storage_box_create", "storage_box", b.ID, 0, cid, nil, b, "import"); err != nil {
						return err
					}
				case err != nil:
					return err
				case old.CustomerID != cid || old.Host != b.Host:
					b.ID = old.ID
					if err := t.tx.UpdateStorageBox(ctx, b); err != nil {
						return err
					}
					res.Updated++
					if err := t.audit("storage_box_update", "storage_box", b.ID, 0, cid, old, b, "import"); err != nil {
						return err
					}
				default:
					res.Unchanged++
				}
			}
			for _, da := range dc.IPs {
				p, _ := inventory.ParsePrefix(da.Prefix) // validated
				ad := inventory.Address{CustomerID: cid, Prefix: p, Note: da.Note}
				old, err := t.tx.AddressByPrefix(ctx, p)
				switch {
				case errors.Is(err, ErrNotFound):
					if err := t.tx.InsertAddress(ctx, &ad); err != nil {
						return err
					}
					res.Created++
					t.inventory = true
					if err := t.audit("address_create", "address", ad.ID, 0, cid, nil, ad, "import"); err != nil {
						return err
					}
				case err != nil:
					return err
				case old.CustomerID != cid || old.Note != ad.Note:
					ad.ID = old.ID
					if err := t.tx.UpdateAddress(ctx, ad); err != nil {
						return err
					}
					res.Updated++
					t.inventory = true
					if err := t.audit("address_update", "address", ad.ID, 0, cid, old, ad, "import"); err != nil {
						return err
					}
				default:
					res.Unchanged++
				}
			}
		}
		return nil
	})
	return res, err
}

// Export returns the whole inventory as a document (not for customers).
func (s *Service) Export(ctx context.Context, a Actor) (inventory.Document, error) {
	if a.Role == RoleCustomer {
		return inventory.Document{}, forbidden("customers cannot export the inventory")
	}
	var snap *inventory.Snapshot
	err := s.view(ctx, a, func(tx Tx) error {
		var err error
		snap, err = tx.Inventory(ctx)
		return err
	})
	if err != nil {
		return inventory.Document{}, err
	}
	return inventory.DocumentOf(snap), nil
}

func samePrefixes(a, b []netip.Prefix) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	cmp := func(x, y netip.Prefix) int { return strings.Compare(x.String(), y.String()) }
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
