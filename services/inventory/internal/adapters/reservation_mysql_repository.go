package adapters

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sagasuite/sagasuite/libs/inbox"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/inventory/internal/app"
	"github.com/sagasuite/sagasuite/services/inventory/internal/domain/stock"
)

// errRaced: another transaction created the order's reservation after this
// one found none (READ COMMITTED takes no lock on an absent row); running the
// decision again sees it.
var errRaced = errors.New("reservation created concurrently")

// Apply claims the event, locks the reservation and then the stock rows in
// sorted SKU order (every transaction locks in that order, so reservations
// touching overlapping SKUs queue instead of deadlocking), runs decide, and
// writes its changes and event with the inbox mark in one transaction.
func (r *MySQLRepository) Apply(ctx context.Context, cause app.Cause, skus []string, decide app.Decide) (bool, error) {
	const attempts = 3
	for attempt := 1; ; attempt++ {
		applied, emitted, err := r.applyOnce(ctx, cause, skus, decide)
		if errors.Is(err, errRaced) && attempt < attempts {
			continue
		}
		if err != nil {
			return false, err
		}
		if emitted != nil {
			r.afterCommit()
			r.compensations.Committed(ctx, emitted)
		}
		return applied, nil
	}
}

func (r *MySQLRepository) applyOnce(ctx context.Context, cause app.Cause, skus []string, decide app.Decide) (applied bool, emitted *eventsv1.Envelope, err error) {
	err = sqlstore.InTx(ctx, r.db, func(tx *sql.Tx) error {
		applied, emitted = false, nil // InTx may rerun this
		first, err := inbox.Claim(ctx, tx, r.consumer, cause.EventID, cause.At)
		if err != nil || !first {
			return err
		}
		applied = true
		existing, err := lockReservation(ctx, tx, cause.OrderID)
		if err != nil {
			return err
		}
		lock := slices.Clone(skus)
		if existing != nil {
			lock = append(lock, existing.SKUs()...)
		}
		catalog, err := lockCatalog(ctx, tx, lock)
		if err != nil {
			return err
		}
		before := make(map[string]stock.Levels, len(catalog))
		for sku, item := range catalog {
			before[sku] = item.Levels
		}

		save, ev, err := decide(existing, catalog)
		if err != nil {
			return err
		}
		for sku, item := range catalog {
			if item.Levels != before[sku] {
				item.Levels.UpdatedAt = cause.At
				if err := saveLevels(ctx, tx, item.Levels); err != nil {
					return err
				}
			}
		}
		if save != nil {
			if existing == nil {
				err = insertReservation(ctx, tx, save)
			} else {
				err = updateReservation(ctx, tx, save)
			}
			if err != nil {
				return err
			}
		}
		if ev == nil {
			return nil
		}
		env, err := r.encode(cause, ev)
		if err != nil {
			return err
		}
		if err := outbox.AddEnvelopes(ctx, tx, cause.At, env); err != nil {
			return err
		}
		emitted = env
		return nil
	})
	return applied, emitted, err
}

// lockCatalog locks the stock rows of skus one by one in sorted order and
// reads their products; unknown SKUs are simply absent from the catalog.
func lockCatalog(ctx context.Context, tx *sql.Tx, skus []string) (stock.Catalog, error) {
	slices.Sort(skus)
	skus = slices.Compact(skus)
	catalog := make(stock.Catalog, len(skus))
	found := make([]any, 0, len(skus))
	for _, sku := range skus {
		levels, ok, err := lockLevels(ctx, tx, sku)
		if err != nil {
			return nil, err
		}
		if ok {
			catalog[sku] = &stock.Item{Levels: levels}
			found = append(found, sku)
		}
	}
	if len(found) == 0 {
		return catalog, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT sku, name, unit_price_minor, currency, created_at, updated_at
		FROM products WHERE sku IN (?`+strings.Repeat(", ?", len(found)-1)+`)`, found...)
	if err != nil {
		return nil, fmt.Errorf("read products: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p stock.Product
		if err := rows.Scan(&p.SKU, &p.Name, &p.UnitPrice.AmountMinor, &p.UnitPrice.Currency, &p.CreatedAt, &p.UpdatedAt); err != nil {
			return nil, fmt.Errorf("scan product: %w", err)
		}
		catalog[p.SKU].Product = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read products: %w", err)
	}
	return catalog, nil
}

// lockReservation reads the order's reservation and lines FOR UPDATE (nil: none).
func lockReservation(ctx context.Context, tx *sql.Tx, orderID string) (*stock.Reservation, error) {
	var (
		res                            stock.Reservation
		reservationID, currency, token sql.NullString
		totalMinor                     sql.NullInt64
		address                        []byte
	)
	err := tx.QueryRowContext(ctx, `SELECT order_id, reservation_id, customer_id, status, total_minor, currency,
			payment_token, shipping_address, created_at, updated_at
		FROM reservations WHERE order_id = ? FOR UPDATE`, orderID).
		Scan(&res.OrderID, &reservationID, &res.CustomerID, &res.Status, &totalMinor, &currency, &token, &address,
			&res.CreatedAt, &res.UpdatedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("lock reservation of order %s: %w", orderID, err)
	}
	res.ReservationID, res.PaymentToken = reservationID.String, token.String
	res.Total = stock.Money{AmountMinor: totalMinor.Int64, Currency: currency.String}
	if address != nil {
		if err := json.Unmarshal(address, &res.ShippingAddress); err != nil {
			return nil, fmt.Errorf("decode address of order %s: %w", orderID, err)
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT sku, quantity, unit_price_minor FROM reservation_lines
		WHERE order_id = ? ORDER BY line_no FOR UPDATE`, orderID)
	if err != nil {
		return nil, fmt.Errorf("read lines of order %s: %w", orderID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var l stock.Line
		if err := rows.Scan(&l.SKU, &l.Quantity, &l.UnitPriceMinor); err != nil {
			return nil, fmt.Errorf("scan line: %w", err)
		}
		res.Lines = append(res.Lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read lines of order %s: %w", orderID, err)
	}
	return &res, nil
}

func insertReservation(ctx context.Context, tx *sql.Tx, res *stock.Reservation) error {
	var (
		reservationID, currency, token any
		totalMinor, address            any
	)
	if res.Status != stock.StatusCancelled { // a tombstone carries no order data
		b, err := json.Marshal(res.ShippingAddress)
		if err != nil {
			return fmt.Errorf("encode address: %w", err)
		}
		reservationID, currency, token, totalMinor, address = res.ReservationID, res.Total.Currency, res.PaymentToken, res.Total.AmountMinor, b
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO reservations (order_id, reservation_id, customer_id, status, total_minor,
			currency, payment_token, shipping_address, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		res.OrderID, reservationID, res.CustomerID, string(res.Status), totalMinor, currency, token, address, res.CreatedAt, res.UpdatedAt)
	if sqlstore.IsDuplicateKey(err) {
		return errRaced
	}
	if err != nil {
		return fmt.Errorf("insert reservation of order %s: %w", res.OrderID, err)
	}
	if len(res.Lines) == 0 {
		return nil
	}
	args := make([]any, 0, len(res.Lines)*5)
	for i, l := range res.Lines {
		args = append(args, res.OrderID, i, l.SKU, l.Quantity, l.UnitPriceMinor)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO reservation_lines (order_id, line_no, sku, quantity, unit_price_minor) VALUES (?, ?, ?, ?, ?)`+
		strings.Repeat(", (?, ?, ?, ?, ?)", len(res.Lines)-1), args...); err != nil {
		return fmt.Errorf("insert lines of order %s: %w", res.OrderID, err)
	}
	return nil
}

func updateReservation(ctx context.Context, tx *sql.Tx, res *stock.Reservation) error {
	if _, err := tx.ExecContext(ctx, "UPDATE reservations SET status = ?, updated_at = ? WHERE order_id = ?",
		string(res.Status), res.UpdatedAt, res.OrderID); err != nil {
		return fmt.Errorf("update reservation of order %s: %w", res.OrderID, err)
	}
	return nil
}
