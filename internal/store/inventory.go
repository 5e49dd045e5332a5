package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"strings"

	"padlock/internal/inventory"
	"padlock/internal/lock"
)

// txImpl implements lock.Tx on a transaction (Update) or the pool (View).
type txImpl struct {
	s    *DB
	q    querier
	inTx bool
}

var _ lock.Tx = (*txImpl)(nil)

func (t *txImpl) exec(ctx context.Context, what, q string, args ...any) (sql.Result, error) {
	r, err := t.q.ExecContext(ctx, t.s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, t.s.mapErr(err, what))
	}
	return r, nil
}

// insert runs an INSERT ... RETURNING id.
func (t *txImpl) insert(ctx context.Context, what, q string, args ...any) (int64, error) {
	var id int64
	if err := t.q.QueryRowContext(ctx, t.s.rebind(q+" RETURNING id"), args...).Scan(&id); err != nil {
		return 0, fmt.Errorf("%s: %w", what, t.s.mapErr(err, what))
	}
	return id, nil
}

func (t *txImpl) query(ctx context.Context, what, q string, args ...any) (*sql.Rows, error) {
	rows, err := t.q.QueryContext(ctx, t.s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, t.s.mapErr(err, what))
	}
	return rows, nil
}

func mustAffect(r sql.Result, what string) error {
	n, err := r.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return &lock.Error{Kind: lock.ErrNotFound, Message: what + " not found"}
	}
	return nil
}

func limitOf(n int) int {
	if n <= 0 || n > 1000 {
		return 1000
	}
	return n
}

// where builds a WHERE clause from optional conditions.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// Customers.

func (t *txImpl) InsertCustomer(ctx context.Context, c *inventory.Customer) error {
	id, err := t.insert(ctx, "insert customer", `INSERT INTO customers (name, email, email_key, language) VALUES (?, ?, ?, ?)`,
		c.Name, c.Email, strings.ToLower(c.Email), c.Language)
	c.ID = id
	return err
}

func (t *txImpl) UpdateCustomer(ctx context.Context, c inventory.Customer) error {
	r, err := t.exec(ctx, "update customer", `UPDATE customers SET name = ?, email = ?, email_key = ?, language = ? WHERE id = ?`,
		c.Name, c.Email, strings.ToLower(c.Email), c.Language, c.ID)
	if err != nil {
		return err
	}
	return mustAffect(r, fmt.Sprintf("customer %d", c.ID))
}

const customerCols = `id, name, email, language`

func scanCustomer(sc interface{ Scan(...any) error }) (inventory.Customer, error) {
	var c inventory.Customer
	err := sc.Scan(&c.ID, &c.Name, &c.Email, &c.Language)
	return c, err
}

func (t *txImpl) customerBy(ctx context.Context, what, cond string, arg any) (inventory.Customer, error) {
	c, err := scanCustomer(t.q.QueryRowContext(ctx, t.s.rebind(`SELECT `+customerCols+` FROM customers WHERE `+cond), arg))
	if err != nil {
		return c, fmt.Errorf("%s: %w", what, t.s.mapErr(err, what))
	}
	return c, nil
}

func (t *txImpl) Customer(ctx context.Context, id int64) (inventory.Customer, error) {
	return t.customerBy(ctx, fmt.Sprintf("customer %d", id), "id = ?", id)
}

func (t *txImpl) CustomerByEmail(ctx context.Context, email string) (inventory.Customer, error) {
	return t.customerBy(ctx, fmt.Sprintf("customer %q", email), "email_key = ?", strings.ToLower(strings.TrimSpace(email)))
}

func invWhere(f lock.InventoryFilter) *where {
	w := &where{}
	if f.CustomerID != 0 {
		w.add("customer_id = ?", f.CustomerID)
	}
	if f.AfterID != 0 {
		w.add("id > ?", f.AfterID)
	}
	return w
}

func (t *txImpl) ListCustomers(ctx context.Context, f lock.InventoryFilter) ([]inventory.Customer, error) {
	w := &where{}
	if f.CustomerID != 0 {
		w.add("id = ?", f.CustomerID)
	}
	if f.AfterID != 0 {
		w.add("id > ?", f.AfterID)
	}
	rows, err := t.query(ctx, "list customers", `SELECT `+customerCols+` FROM customers`+w.String()+fmt.Sprintf(` ORDER BY id LIMIT %d`, limitOf(f.Limit)), w.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []inventory.Customer{}
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Servers.

func (t *txImpl) putServerAddrs(ctx context.Context, sv inventory.Server) error {
	if _, err := t.exec(ctx, "server addresses", `DELETE FROM addresses WHERE server_id = ?`, sv.ID); err != nil {
		return err
	}
	for _, p := range sv.IPs {
		if _, err := t.exec(ctx, "server address "+p.String(), `INSERT INTO addresses (customer_id, server_id, prefix, note) VALUES (?, ?, ?, '')`,
			sv.CustomerID, sv.ID, p.String()); err != nil {
			return err
		}
	}
	return nil
}

func (t *txImpl) InsertServer(ctx context.Context, sv *inventory.Server) error {
	id, err := t.insert(ctx, "insert server", `INSERT INTO servers (customer_id, name, macs) VALUES (?, ?, ?)`,
		sv.CustomerID, sv.Name, strings.Join(sv.MACs, " "))
	if err != nil {
		return err
	}
	sv.ID = id
	return t.putServerAddrs(ctx, *sv)
}

func (t *txImpl) UpdateServer(ctx context.Context, sv inventory.Server) error {
	r, err := t.exec(ctx, "update server", `UPDATE servers SET customer_id = ?, name = ?, macs = ? WHERE id = ?`,
		sv.CustomerID, sv.Name, strings.Join(sv.MACs, " "), sv.ID)
	if err != nil {
		return err
	}
	if err := mustAffect(r, fmt.Sprintf("server %d", sv.ID)); err != nil {
		return err
	}
	return t.putServerAddrs(ctx, sv)
}

func (t *txImpl) servers(ctx context.Context, what, cond string, limit int, args ...any) ([]inventory.Server, error) {
	q := `SELECT id, customer_id, name, macs FROM servers` + cond + ` ORDER BY id`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := t.query(ctx, what, q, args...)
	if err != nil {
		return nil, err
	}
	out := []inventory.Server{}
	idx := map[int64]int{}
	for rows.Next() {
		var sv inventory.Server
		var macs string
		if err := rows.Scan(&sv.ID, &sv.CustomerID, &sv.Name, &macs); err != nil {
			rows.Close()
			return nil, err
		}
		sv.MACs = strings.Fields(macs)
		sv.IPs = []netip.Prefix{}
		idx[sv.ID] = len(out)
		out = append(out, sv)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return out, err
	}
	// Addresses of the servers found.
	ids := make([]string, 0, len(out))
	for _, sv := range out {
		ids = append(ids, fmt.Sprint(sv.ID))
	}
	aq := `SELECT server_id, prefix FROM addresses WHERE server_id IN (` + strings.Join(ids, ",") + `) ORDER BY id`
	if limit == 0 {
		aq = `SELECT server_id, prefix FROM addresses WHERE server_id IS NOT NULL ORDER BY id`
	}
	arows, err := t.query(ctx, what+": addresses", aq)
	if err != nil {
		return nil, err
	}
	defer arows.Close()
	for arows.Next() {
		var sid int64
		var ps string
		if err := arows.Scan(&sid, &ps); err != nil {
			return nil, err
		}
		p, err := netip.ParsePrefix(ps)
		if err != nil {
			return nil, fmt.Errorf("%s: stored prefix %q: %w", what, ps, err)
		}
		out[idx[sid]].IPs = append(out[idx[sid]].IPs, p)
	}
	return out, arows.Err()
}

func (t *txImpl) oneServer(ctx context.Context, what, cond string, arg any) (inventory.Server, error) {
	l, err := t.servers(ctx, what, " WHERE "+cond, 1, arg)
	if err != nil {
		return inventory.Server{}, err
	}
	if len(l) == 0 {
		return inventory.Server{}, &lock.Error{Kind: lock.ErrNotFound, Message: what + " not found"}
	}
	return l[0], nil
}

func (t *txImpl) Server(ctx context.Context, id int64) (inventory.Server, error) {
	return t.oneServer(ctx, fmt.Sprintf("server %d", id), "id = ?", id)
}

func (t *txImpl) ServerByName(ctx context.Context, name string) (inventory.Server, error) {
	return t.oneServer(ctx, fmt.Sprintf("server %q", name), "name = ?", name)
}

func (t *txImpl) ListServers(ctx context.Context, f lock.InventoryFilter) ([]inventory.Server, error) {
	w := invWhere(f)
	return t.servers(ctx, "list servers", w.String(), limitOf(f.Limit), w.args...)
}

// Storage boxes.

func (t *txImpl) InsertStorageBox(ctx context.Context, b *inventory.StorageBox) error {
	id, err := t.insert(ctx, "insert storage box", `INSERT INTO storage_boxes (customer_id, name, host) VALUES (?, ?, ?)`, b.CustomerID, b.Name, b.Host)
	b.ID = id
	return err
}

func (t *txImpl) UpdateStorageBox(ctx context.Context, b inventory.StorageBox) error {
	r, err := t.exec(ctx, "update storage box", `UPDATE storage_boxes SET customer_id = ?, name = ?, host = ? WHERE id = ?`, b.CustomerID, b.Name, b.Host, b.ID)
	if err != nil {
		return err
	}
	return mustAffect(r, fmt.Sprintf("storage box %d", b.ID))
}

func (t *txImpl) boxes(ctx context.Context, what, cond string, limit int, args ...any) ([]inventory.StorageBox, error) {
	rows, err := t.query(ctx, what, `SELECT id, customer_id, name, host FROM storage_boxes`+cond+fmt.Sprintf(` ORDER BY id LIMIT %d`, limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []inventory.StorageBox{}
	for rows.Next() {
		var b inventory.StorageBox
		if err := rows.Scan(&b.ID, &b.CustomerID, &b.Name, &b.Host); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

func (t *txImpl) oneBox(ctx context.Context, what, cond string, arg any) (inventory.StorageBox, error) {
	l, err := t.boxes(ctx, what, " WHERE "+cond, 1, arg)
	if err != nil {
		return inventory.StorageBox{}, err
	}
	if len(l) == 0 {
		return inventory.StorageBox{}, &lock.Error{Kind: lock.ErrNotFound, Message: what + " not found"}
	}
	return l[0], nil
}

func (t *txImpl) StorageBox(ctx context.Context, id int64) (inventory.StorageBox, error) {
	return t.oneBox(ctx, fmt.Sprintf("storage box %d", id), "id = ?", id)
}

func (t *txImpl) StorageBoxByName(ctx context.Context, name string) (inventory.StorageBox, error) {
	return t.oneBox(ctx, fmt.Sprintf("storage box %q", name), "name = ?", name)
}

func (t *txImpl) ListStorageBoxes(ctx context.Context, f lock.InventoryFilter) ([]inventory.StorageBox, error) {
	w := invWhere(f)
	return t.boxes(ctx, "list storage boxes", w.String(), limitOf(f.Limit), w.args...)
}

// Standalone addresses.

func (t *txImpl) InsertAddress(ctx context.Context, a *inventory.Address) error {
	id, err := t.insert(ctx, "insert address", `INSERT INTO addresses (customer_id, server_id, prefix, note) VALUES (?, NULL, ?, ?)`,
		a.CustomerID, a.Prefix.String(), a.Note)
	a.ID = id
	return err
}

func (t *txImpl) UpdateAddress(ctx context.Context, a inventory.Address) error {
	r, err := t.exec(ctx, "update address", `UPDATE addresses SET customer_id = ?, prefix = ?, note = ? WHERE id = ? AND server_id IS NULL`,
		a.CustomerID, a.Prefix.String(), a.Note, a.ID)
	if err != nil {
		return err
	}
	return mustAffect(r, fmt.Sprintf("address %d", a.ID))
}

func (t *txImpl) addresses(ctx context.Context, what, cond string, limit int, args ...any) ([]inventory.Address, error) {
	c := " WHERE server_id IS NULL"
	if cond != "" {
		c += " AND " + strings.TrimPrefix(cond, " WHERE ")
	}
	rows, err := t.query(ctx, what, `SELECT id, customer_id, prefix, note FROM addresses`+c+fmt.Sprintf(` ORDER BY id LIMIT %d`, limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []inventory.Address{}
	for rows.Next() {
		var a inventory.Address
		var ps string
		if err := rows.Scan(&a.ID, &a.CustomerID, &ps, &a.Note); err != nil {
			return nil, err
		}
		if a.Prefix, err = netip.ParsePrefix(ps); err != nil {
			return nil, fmt.Errorf("%s: stored prefix %q: %w", what, ps, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (t *txImpl) oneAddress(ctx context.Context, what, cond string, arg any) (inventory.Address, error) {
	l, err := t.addresses(ctx, what, cond, 1, arg)
	if err != nil {
		return inventory.Address{}, err
	}
	if len(l) == 0 {
		return inventory.Address{}, &lock.Error{Kind: lock.ErrNotFound, Message: what + " not found"}
	}
	return l[0], nil
}

func (t *txImpl) Address(ctx context.Context, id int64) (inventory.Address, error) {
	return t.oneAddress(ctx, fmt.Sprintf("address %d", id), "id = ?", id)
}

func (t *txImpl) AddressByPrefix(ctx context.Context, p netip.Prefix) (inventory.Address, error) {
	return t.oneAddress(ctx, "address "+p.String(), "prefix = ?", p.String())
}

func (t *txImpl) ListAddresses(ctx context.Context, f lock.InventoryFilter) ([]inventory.Address, error) {
	w := invWhere(f)
	return t.addresses(ctx, "list addresses", w.String(), limitOf(f.Limit), w.args...)
}

// Inventory loads everything (for the lookup index and exports).
func (t *txImpl) Inventory(ctx context.Context) (*inventory.Snapshot, error) {
	snap := &inventory.Snapshot{}
	var err error
	rows, err := t.query(ctx, "inventory customers", `SELECT `+customerCols+` FROM customers ORDER BY id`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		snap.Customers = append(snap.Customers, c)
	}
	rows.Close()
	if snap.Servers, err = t.servers(ctx, "inventory servers", "", 0); err != nil {
		return nil, err
	}
	if snap.StorageBoxes, err = t.boxes(ctx, "inventory storage boxes", "", 1<<30); err != nil {
		return nil, err
	}
	if snap.Addresses, err = t.addresses(ctx, "inventory addresses", "", 1<<30); err != nil {
		return nil, err
	}
	return snap, nil
}
