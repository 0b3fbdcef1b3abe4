// Package adapters holds the order service's store: orders, their lines and
// saga step history in MySQL, written with the outbox and inbox rows of the
// same change in one transaction.
package adapters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/libs/inbox"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
	"github.com/sagasuite/sagasuite/services/order/migrations"
)

// Migrate creates or upgrades the order tables and the messaging (outbox,
// inbox) tables beside them.
func Migrate(ctx context.Context, db *sql.DB) error {
	if err := sqlstore.MigrateMessaging(ctx, db); err != nil {
		return err
	}
	return sqlstore.Migrate(ctx, db, migrations.FS, migrations.VersionTable)
}

// OrderMySQLRepository implements app.Repository on MySQL (MariaDB).
type OrderMySQLRepository struct {
	db *sql.DB
	// inboxConsumer names this service in the inbox ("order").
	inboxConsumer string
	now           func() time.Time
}

var _ app.Repository = (*OrderMySQLRepository)(nil)

// NewOrderMySQLRepository returns a repository on db (migrated with Migrate).
// now stamps inbox rows.
func NewOrderMySQLRepository(db *sql.DB, inboxConsumer string, now func() time.Time) *OrderMySQLRepository {
	return &OrderMySQLRepository{db: db, inboxConsumer: inboxConsumer, now: now}
}

var errExists = errors.New("order exists")

// Create stores o, its lines, its steps and the outbox rows of events in one
// transaction. A second Create of the same id (a retried request) waits for
// the first to commit, then finds the key taken and returns the stored order.
func (r *OrderMySQLRepository) Create(ctx context.Context, o *order.Order, events []*eventsv1.Envelope) (*order.Order, bool, error) {
	err := sqlstore.InTx(ctx, r.db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO orders (id, customer_id, request_id, request_hash, status, currency, total_minor,
			ship_name, ship_line1, ship_line2, ship_city, ship_postal_code, ship_country_code, payment_token,
			cancel_reason, cancel_detail, deadline, created_at, updated_at, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
			o.ID, o.CustomerID, nullString(o.RequestID), nullBytes(o.RequestHash), o.Status, o.Currency, o.TotalMinor,
			o.ShippingAddress.Name, o.ShippingAddress.Line1, o.ShippingAddress.Line2, o.ShippingAddress.City,
			o.ShippingAddress.PostalCode, o.ShippingAddress.CountryCode, o.PaymentToken,
			nullString(string(o.CancelReason)), o.CancelDetail, o.Deadline, o.CreatedAt, o.UpdatedAt)
		if sqlstore.IsDuplicateKey(err) {
			return errExists
		}
		if err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		if err := insertLines(ctx, tx, o); err != nil {
			return err
		}
		if err := insertSteps(ctx, tx, o.ID, o.Steps, o.UpdatedAt); err != nil {
			return err
		}
		return outbox.AddEnvelopes(ctx, tx, o.UpdatedAt, events...)
	})
	if errors.Is(err, errExists) {
		stored, err := r.Get(ctx, o.ID)
		return stored, false, err
	}
	if err != nil {
		return nil, false, err
	}
	o.Version = 1
	return o, true, nil
}

// Update claims inboxEventID (if any), locks the order row, lets change
// decide, and writes the new status, the new steps and the events — or, for
// a redelivered event, nothing at all.
func (r *OrderMySQLRepository) Update(ctx context.Context, id, inboxEventID string, change app.ChangeFunc) (*order.Order, bool, error) {
	var (
		result  *order.Order
		applied bool
	)
	err := sqlstore.InTx(ctx, r.db, func(tx *sql.Tx) error {
		result, applied = nil, false // InTx may rerun this after a deadlock
		if inboxEventID != "" {
			// First statement: a concurrent copy of the event waits here on
			// the key lock and then finds the id taken.
			first, err := inbox.Claim(ctx, tx, r.inboxConsumer, inboxEventID, r.now())
			if err != nil || !first {
				return err
			}
		}
		o, err := load(ctx, tx, id, true)
		if err != nil {
			return err
		}
		status, steps := o.Status, len(o.Steps)
		events, err := change(o)
		if err != nil {
			return err
		}
		if o.Status != status || len(o.Steps) != steps || len(events) > 0 {
			o.Version++
			if _, err := tx.ExecContext(ctx, `UPDATE orders SET status = ?, cancel_reason = ?, cancel_detail = ?,
				updated_at = ?, version = ? WHERE id = ?`,
				o.Status, nullString(string(o.CancelReason)), o.CancelDetail, o.UpdatedAt, o.Version, o.ID); err != nil {
				return fmt.Errorf("update order %s: %w", o.ID, err)
			}
			if err := insertSteps(ctx, tx, o.ID, o.Steps[steps:], o.UpdatedAt); err != nil {
				return err
			}
			if err := outbox.AddEnvelopes(ctx, tx, o.UpdatedAt, events...); err != nil {
				return err
			}
		}
		result, applied = o, true
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return result, applied, nil
}

// Get reads the order, its lines and steps from one snapshot.
func (r *OrderMySQLRepository) Get(ctx context.Context, id string) (*order.Order, error) {
	var o *order.Order
	err := readTx(ctx, r.db, func(tx *sql.Tx) (err error) {
		o, err = load(ctx, tx, id, false)
		return err
	})
	return o, err
}

// List reads a page of the orders matching filter, newest first
// (created_at, then id, both descending), after the cursor. Each filter shape
// has an index whose order is the list's (00004_list_index.sql): a customer's
// orders by idx_orders_customer_created (status and reason then filter that
// customer's rows only), else by reason, status or time alone; the created
// range bounds the index range, so no query sorts or scans other rows than
// the customer's.
func (r *OrderMySQLRepository) List(ctx context.Context, filter app.ListFilter, after *app.Cursor, limit int) ([]*order.Order, error) {
	q, args := listQuery(filter, after, limit)
	var orders []*order.Order
	err := readTx(ctx, r.db, func(tx *sql.Tx) error {
		err := eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
			o, err := scanOrder(rows)
			if err != nil {
				return err
			}
			orders = append(orders, o)
			return nil
		})
		if err != nil {
			return fmt.Errorf("list orders (%+v): %w", filter, err)
		}
		return loadDetails(ctx, tx, orders)
	})
	return orders, err
}

// listQuery is List's SELECT for filter, after the cursor.
func listQuery(filter app.ListFilter, after *app.Cursor, limit int) (string, []any) {
	var where []string
	var args []any
	if filter.CustomerID != "" {
		where, args = append(where, "customer_id = ?"), append(args, filter.CustomerID)
	}
	if filter.Status != "" {
		where, args = append(where, "status = ?"), append(args, filter.Status)
	}
	if filter.CancelReason != "" {
		where, args = append(where, "cancel_reason = ?"), append(args, filter.CancelReason)
	}
	if !filter.CreatedFrom.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, filter.CreatedFrom.UTC())
	}
	if !filter.CreatedBefore.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, filter.CreatedBefore.UTC())
	}
	if after != nil {
		where = append(where, "(created_at < ? OR (created_at = ? AND id < ?))")
		args = append(args, after.CreatedAt, after.CreatedAt, after.ID)
	}
	q := "SELECT " + orderColumns + " FROM orders"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, id DESC LIMIT ?"
	args = append(args, limit)
	return q, args
}

// PendingPastDeadline uses idx_orders_status_deadline.
func (r *OrderMySQLRepository) PendingPastDeadline(ctx context.Context, now time.Time, limit int) ([]string, error) {
	var ids []string
	err := eachRow(ctx, r.db, "SELECT id FROM orders WHERE status = ? AND deadline <= ? ORDER BY deadline, id LIMIT ?",
		[]any{order.StatusPending, now.UTC(), limit}, func(rows *sql.Rows) error {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("find expired orders: %w", err)
	}
	return ids, nil
}

// CountPending counts the PENDING orders: a range of idx_orders_status_deadline
// (index only), so its cost grows with the backlog it measures, which the
// admission bound keeps small.
func (r *OrderMySQLRepository) CountPending(ctx context.Context) (int, error) {
	var n int
	if err := r.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders WHERE status = ?", order.StatusPending).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending orders: %w", err)
	}
	return n, nil
}

// PendingIdleSince reads up to limit PENDING orders whose last change is not
// after since, with their steps, least recently changed first: a range of
// idx_orders_status_updated.
func (r *OrderMySQLRepository) PendingIdleSince(ctx context.Context, since time.Time, limit int) ([]*order.Order, error) {
	var orders []*order.Order
	err := readTx(ctx, r.db, func(tx *sql.Tx) error {
		err := eachRow(ctx, tx, "SELECT "+orderColumns+" FROM orders WHERE status = ? AND updated_at <= ? ORDER BY updated_at, id LIMIT ?",
			[]any{order.StatusPending, since.UTC(), limit}, func(rows *sql.Rows) error {
				o, err := scanOrder(rows)
				if err != nil {
					return err
				}
				orders = append(orders, o)
				return nil
			})
		if err != nil {
			return fmt.Errorf("find idle pending orders: %w", err)
		}
		return loadDetails(ctx, tx, orders)
	})
	return orders, err
}

// CountPendingIdleSince counts the PENDING orders whose last change is not
// after since: index only (idx_orders_status_updated).
func (r *OrderMySQLRepository) CountPendingIdleSince(ctx context.Context, since time.Time) (int, error) {
	var n int
	if err := r.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM orders WHERE status = ? AND updated_at <= ?",
		order.StatusPending, since.UTC()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count idle pending orders: %w", err)
	}
	return n, nil
}

// VersionsOf reads the version column of many orders by primary key in one
// query, outside any transaction: the watch poller asks it every interval
// for all watched orders at once. Unknown ids are left out of the map.
func (r *OrderMySQLRepository) VersionsOf(ctx context.Context, ids []string) (map[string]int64, error) {
	versions := make(map[string]int64, len(ids))
	if len(ids) == 0 {
		return versions, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	q := "SELECT id, version FROM orders WHERE id IN (?" + strings.Repeat(", ?", len(ids)-1) + ")"
	err := eachRow(ctx, r.db, q, args, func(rows *sql.Rows) error {
		var (
			id      string
			version int64
		)
		if err := rows.Scan(&id, &version); err != nil {
			return err
		}
		versions[id] = version
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("versions of %d orders: %w", len(ids), err)
	}
	return versions, nil
}

// RequestOf reads two columns by primary key, outside any transaction.
func (r *OrderMySQLRepository) RequestOf(ctx context.Context, id string) (string, []byte, bool, error) {
	var (
		customer string
		hash     []byte
	)
	err := r.db.QueryRowContext(ctx, "SELECT customer_id, request_hash FROM orders WHERE id = ?", id).Scan(&customer, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, fmt.Errorf("request of order %s: %w", id, err)
	}
	return customer, hash, true, nil
}

// UpdatePastDeadline is the deadline sweep's batch: in one transaction it
// locks up to limit PENDING orders whose deadline is not after now (oldest
// deadline first, as idx_orders_status_deadline reads them), loads their
// lines and steps in two queries, runs change on each, and writes every
// changed order, all new steps in one insert and all events in one outbox
// insert — one commit for the batch instead of one per order. SKIP LOCKED
// lets the sweeps of several replicas run side by side on disjoint batches:
// rows another sweep (or a saga event) holds are left to it, and a row it
// has committed is no longer PENDING when read again (a locking read sees
// the newest commit), so each order is cancelled once. An order whose
// change fails is left as it was and its error returned with the others;
// the rest are committed. found is how many orders the batch locked.
func (r *OrderMySQLRepository) UpdatePastDeadline(ctx context.Context, now time.Time, limit int, change app.ChangeFunc) (changed []*order.Order, found int, err error) {
	// Most sweeps find nothing due: one index-only read says so without the
	// transaction, its isolation switch and its locking read. An order that
	// falls due just after it waits for the next sweep.
	var due int
	switch err := r.db.QueryRowContext(ctx, "SELECT 1 FROM orders WHERE status = ? AND deadline <= ? LIMIT 1",
		order.StatusPending, now.UTC()).Scan(&due); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("find expired orders: %w", err)
	}
	var changeErrs []error
	// READ COMMITTED: the locking read then locks the rows it returns and no
	// gaps, so a concurrent sweep's own updates (new index entries) never
	// wait on this batch's gap locks.
	err = sqlstore.InTxWith(ctx, r.db, &sql.TxOptions{Isolation: sql.LevelReadCommitted}, func(tx *sql.Tx) error {
		changed, found, changeErrs = nil, 0, nil // InTx may rerun this after a deadlock
		var orders []*order.Order
		err := eachRow(ctx, tx, "SELECT "+orderColumns+" FROM orders WHERE status = ? AND deadline <= ? ORDER BY deadline, id LIMIT ? FOR UPDATE SKIP LOCKED",
			[]any{order.StatusPending, now.UTC(), limit}, func(rows *sql.Rows) error {
				o, err := scanOrder(rows)
				if err != nil {
					return err
				}
				orders = append(orders, o)
				return nil
			})
		if err != nil {
			return fmt.Errorf("lock expired orders: %w", err)
		}
		found = len(orders)
		if err := loadDetails(ctx, tx, orders); err != nil {
			return err
		}
		var (
			steps  []orderStep
			events []*eventsv1.Envelope
			stmt   *sql.Stmt
		)
		for _, o := range orders {
			status, nSteps := o.Status, len(o.Steps)
			envs, err := change(o)
			if err != nil {
				changeErrs = append(changeErrs, fmt.Errorf("order %s: %w", o.ID, err))
				continue
			}
			if o.Status == status && len(o.Steps) == nSteps && len(envs) == 0 {
				continue
			}
			if stmt == nil {
				if stmt, err = tx.PrepareContext(ctx, `UPDATE orders SET status = ?, cancel_reason = ?, cancel_detail = ?,
					updated_at = ?, version = ? WHERE id = ?`); err != nil {
					return fmt.Errorf("prepare order update: %w", err)
				}
				defer stmt.Close()
			}
			o.Version++
			if _, err := stmt.ExecContext(ctx, o.Status, nullString(string(o.CancelReason)), o.CancelDetail, o.UpdatedAt, o.Version, o.ID); err != nil {
				return fmt.Errorf("update order %s: %w", o.ID, err)
			}
			for _, st := range o.Steps[nSteps:] {
				steps = append(steps, orderStep{orderID: o.ID, step: st, recordedAt: o.UpdatedAt})
			}
			events = append(events, envs...)
			changed = append(changed, o)
		}
		if err := insertOrderSteps(ctx, tx, steps); err != nil {
			return err
		}
		return outbox.AddEnvelopes(ctx, tx, now, events...)
	})
	if err != nil {
		return nil, found, err
	}
	return changed, found, errors.Join(changeErrs...)
}

// readTx runs fn in a read-only transaction: one consistent snapshot.
func readTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to undo
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

const orderColumns = `id, customer_id, request_id, request_hash, status, currency, total_minor, ship_name, ship_line1, ship_line2,
	ship_city, ship_postal_code, ship_country_code, payment_token, cancel_reason, cancel_detail, deadline,
	created_at, updated_at, version`

type scanner interface{ Scan(dest ...any) error }

func scanOrder(s scanner) (*order.Order, error) {
	var (
		o                       order.Order
		requestID, cancelReason sql.NullString
	)
	a := &o.ShippingAddress
	err := s.Scan(&o.ID, &o.CustomerID, &requestID, &o.RequestHash, &o.Status, &o.Currency, &o.TotalMinor, &a.Name, &a.Line1,
		&a.Line2, &a.City, &a.PostalCode, &a.CountryCode, &o.PaymentToken, &cancelReason, &o.CancelDetail,
		&o.Deadline, &o.CreatedAt, &o.UpdatedAt, &o.Version)
	if err != nil {
		return nil, err
	}
	o.RequestID = requestID.String
	o.CancelReason = order.CancelReason(cancelReason.String)
	return &o, nil
}

// load reads one order with lines and steps, locking its row when forUpdate.
func load(ctx context.Context, tx *sql.Tx, id string, forUpdate bool) (*order.Order, error) {
	q := "SELECT " + orderColumns + " FROM orders WHERE id = ?"
	if forUpdate {
		q += " FOR UPDATE"
	}
	o, err := scanOrder(tx.QueryRowContext(ctx, q, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, order.NotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("load order %s: %w", id, err)
	}
	if err := loadDetails(ctx, tx, []*order.Order{o}); err != nil {
		return nil, err
	}
	return o, nil
}

// loadDetails fills the lines and steps of orders, two queries in all.
func loadDetails(ctx context.Context, tx *sql.Tx, orders []*order.Order) error {
	if len(orders) == 0 {
		return nil
	}
	byID := make(map[string]*order.Order, len(orders))
	args := make([]any, len(orders))
	for i, o := range orders {
		byID[o.ID] = o
		args[i] = o.ID
	}
	in := "(?" + strings.Repeat(", ?", len(orders)-1) + ")"

	err := eachRow(ctx, tx, "SELECT order_id, sku, quantity, unit_price_minor FROM order_lines WHERE order_id IN "+in+" ORDER BY order_id, line_no", args,
		func(rows *sql.Rows) error {
			var (
				id string
				l  order.Line
			)
			if err := rows.Scan(&id, &l.SKU, &l.Quantity, &l.UnitPriceMinor); err != nil {
				return err
			}
			byID[id].Lines = append(byID[id].Lines, l)
			return nil
		})
	if err != nil {
		return fmt.Errorf("load order lines: %w", err)
	}
	err = eachRow(ctx, tx, "SELECT order_id, event_type, event_id, occurred_at, detail FROM order_steps WHERE order_id IN "+in+" ORDER BY id", args,
		func(rows *sql.Rows) error {
			var (
				id string
				s  order.Step
			)
			if err := rows.Scan(&id, &s.EventType, &s.EventID, &s.OccurredAt, &s.Detail); err != nil {
				return err
			}
			byID[id].Steps = append(byID[id].Steps, s)
			return nil
		})
	if err != nil {
		return fmt.Errorf("load order steps: %w", err)
	}
	return nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// eachRow runs the query and calls scan for every row.
func eachRow(ctx context.Context, q querier, query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		if err := scan(rows); err != nil {
			rows.Close()
			return err
		}
	}
	return errors.Join(rows.Err(), rows.Close())
}

func insertLines(ctx context.Context, tx *sql.Tx, o *order.Order) error {
	if len(o.Lines) == 0 {
		return nil
	}
	q := "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) VALUES (?, ?, ?, ?, ?)" +
		strings.Repeat(", (?, ?, ?, ?, ?)", len(o.Lines)-1)
	args := make([]any, 0, 5*len(o.Lines))
	for i, l := range o.Lines {
		args = append(args, o.ID, i, l.SKU, l.Quantity, l.UnitPriceMinor)
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("insert lines of order %s: %w", o.ID, err)
	}
	return nil
}

func insertSteps(ctx context.Context, tx *sql.Tx, orderID string, steps []order.Step, recordedAt time.Time) error {
	rows := make([]orderStep, len(steps))
	for i, s := range steps {
		rows[i] = orderStep{orderID: orderID, step: s, recordedAt: recordedAt}
	}
	if err := insertOrderSteps(ctx, tx, rows); err != nil {
		return fmt.Errorf("order %s: %w", orderID, err)
	}
	return nil
}

// orderStep is one row of order_steps.
type orderStep struct {
	orderID    string
	step       order.Step
	recordedAt time.Time
}

// insertOrderSteps writes steps of any orders in one statement.
func insertOrderSteps(ctx context.Context, tx *sql.Tx, steps []orderStep) error {
	if len(steps) == 0 {
		return nil
	}
	q := "INSERT INTO order_steps (order_id, event_type, event_id, occurred_at, detail, recorded_at) VALUES (?, ?, ?, ?, ?, ?)" +
		strings.Repeat(", (?, ?, ?, ?, ?, ?)", len(steps)-1)
	args := make([]any, 0, 6*len(steps))
	for _, s := range steps {
		args = append(args, s.orderID, s.step.EventType, s.step.EventID, s.step.OccurredAt.UTC(), s.step.Detail, s.recordedAt.UTC())
	}
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("insert steps: %w", err)
	}
	return nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// nullBytes stores an empty hash as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}
