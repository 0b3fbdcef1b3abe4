// Package adapters holds inventory's store: the MySQL repository behind
// app.Repository, with the outbox and inbox in the same transactions.
package adapters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sagasuite/sagasuite/libs/sagametrics"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/inventory/internal/app"
	"github.com/sagasuite/sagasuite/services/inventory/internal/domain/stock"
)

// Open opens the inventory pool on dsn. Its sessions run READ COMMITTED:
// every decision reads what it decides on with locking reads (FOR UPDATE), and
// REPEATABLE READ's gap locks on absent rows (a new order's reservation) would
// make concurrent new orders deadlock on the same index gap.
func Open(ctx context.Context, dsn string, opts sqlstore.Options) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse mysql dsn: %w", err)
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["tx_isolation"] = "'READ-COMMITTED'"
	return sqlstore.Open(ctx, cfg.FormatDSN(), opts)
}

// Encoder turns a domain event into the envelope to put in the outbox.
type Encoder func(app.Cause, stock.Event) (*eventsv1.Envelope, error)

// MySQLRepository implements app.Repository on MySQL/MariaDB.
type MySQLRepository struct {
	db       *sql.DB
	consumer string
	encode   Encoder
	// afterCommit runs after a transaction that wrote outbox rows commits
	// (the relay's Notify), so events leave at once.
	afterCommit func()
	// compensations counts the STOCK_RESTORED this store commits.
	compensations *sagametrics.Compensations
}

// NewMySQLRepository returns the repository. consumer names the inbox;
// afterCommit may be nil.
func NewMySQLRepository(db *sql.DB, consumer string, encode Encoder, afterCommit func()) *MySQLRepository {
	if afterCommit == nil {
		afterCommit = func() {}
	}
	return &MySQLRepository{db: db, consumer: consumer, encode: encode, afterCommit: afterCommit,
		compensations: sagametrics.NewCompensations()}
}

var _ app.Repository = (*MySQLRepository)(nil)

// UpsertProduct creates the product and its all-zero stock row, or updates its name and price.
func (r *MySQLRepository) UpsertProduct(ctx context.Context, p stock.Product, now time.Time) (app.ProductView, error) {
	var view app.ProductView
	err := sqlstore.InTx(ctx, r.db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO products (sku, name, unit_price_minor, currency, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE name = VALUES(name), unit_price_minor = VALUES(unit_price_minor),
				currency = VALUES(currency), updated_at = VALUES(updated_at)`,
			p.SKU, p.Name, p.UnitPrice.AmountMinor, p.UnitPrice.Currency, now, now)
		if err != nil {
			return fmt.Errorf("upsert product: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO stock (sku, updated_at) VALUES (?, ?)
			ON DUPLICATE KEY UPDATE sku = sku`, p.SKU, now); err != nil {
			return fmt.Errorf("create stock row: %w", err)
		}
		views, err := queryProducts(ctx, tx, "WHERE p.sku = ?", p.SKU)
		if err != nil {
			return err
		}
		view = views[0]
		return nil
	})
	return view, err
}

// AddStock adds quantity once per requestID (stock_additions remembers it).
func (r *MySQLRepository) AddStock(ctx context.Context, requestID, sku string, quantity int64, now time.Time) (stock.Levels, error) {
	var levels stock.Levels
	err := sqlstore.InTx(ctx, r.db, func(tx *sql.Tx) error {
		// The stock row lock first: concurrent copies of one request queue here.
		l, found, err := lockLevels(ctx, tx, sku)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: %s", stock.ErrProductNotFound, sku)
		}
		levels = l
		var priorSKU string
		var priorQuantity int64
		err = tx.QueryRowContext(ctx, "SELECT sku, quantity FROM stock_additions WHERE request_id = ?", requestID).
			Scan(&priorSKU, &priorQuantity)
		switch {
		case err == nil:
			if priorSKU != sku || priorQuantity != quantity {
				return fmt.Errorf("%w: request %s added %d to %s", stock.ErrRequestConflict, requestID, priorQuantity, priorSKU)
			}
			return nil // a retry: already added
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("read stock addition: %w", err)
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO stock_additions (request_id, sku, quantity, created_at) VALUES (?, ?, ?, ?)",
			requestID, sku, quantity, now)
		if sqlstore.IsDuplicateKey(err) {
			// The same request for another SKU (which locks another stock
			// row) committed meanwhile, on this replica or another.
			return fmt.Errorf("%w: request %s was used for another addition at the same time", stock.ErrRequestConflict, requestID)
		}
		if err != nil {
			return fmt.Errorf("record stock addition: %w", err)
		}
		if err := levels.Add(quantity); err != nil {
			return err
		}
		levels.UpdatedAt = now
		return saveLevels(ctx, tx, levels)
	})
	if err != nil {
		return stock.Levels{}, err
	}
	return levels, nil
}

// GetStock reads sku's levels.
func (r *MySQLRepository) GetStock(ctx context.Context, sku string) (stock.Levels, error) {
	l, err := scanLevels(r.db.QueryRowContext(ctx, "SELECT "+levelColumns+" FROM stock WHERE sku = ?", sku))
	if errors.Is(err, sql.ErrNoRows) {
		return stock.Levels{}, fmt.Errorf("%w: %s", stock.ErrProductNotFound, sku)
	}
	return l, err
}

// ListProducts pages by SKU.
func (r *MySQLRepository) ListProducts(ctx context.Context, afterSKU string, limit int) ([]app.ProductView, error) {
	return queryProducts(ctx, r.db, "WHERE p.sku > ? ORDER BY p.sku LIMIT ?", afterSKU, limit)
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryProducts(ctx context.Context, q queryer, where string, args ...any) ([]app.ProductView, error) {
	rows, err := q.QueryContext(ctx, `SELECT p.sku, p.name, p.unit_price_minor, p.currency, p.created_at, p.updated_at,
			s.available, s.reserved, s.sold, s.added, s.restored, s.updated_at
		FROM products p JOIN stock s ON s.sku = p.sku `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("query products: %w", err)
	}
	defer rows.Close()
	var views []app.ProductView
	for rows.Next() {
		var v app.ProductView
		p, l := &v.Product, &v.Levels
		if err := rows.Scan(&p.SKU, &p.Name, &p.UnitPrice.AmountMinor, &p.UnitPrice.Currency, &p.CreatedAt, &p.UpdatedAt,
			&l.Available, &l.Reserved, &l.Sold, &l.Added, &l.Restored, &l.UpdatedAt); err != nil {
			return nil, fmt.Errorf("scan product: %w", err)
		}
		l.SKU = p.SKU
		views = append(views, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query products: %w", err)
	}
	return views, nil
}

const levelColumns = "sku, available, reserved, sold, added, restored, updated_at"

func scanLevels(row *sql.Row) (stock.Levels, error) {
	var l stock.Levels
	err := row.Scan(&l.SKU, &l.Available, &l.Reserved, &l.Sold, &l.Added, &l.Restored, &l.UpdatedAt)
	return l, err
}

// lockLevels reads sku's levels FOR UPDATE; found is false for an unknown SKU.
func lockLevels(ctx context.Context, tx *sql.Tx, sku string) (stock.Levels, bool, error) {
	l, err := scanLevels(tx.QueryRowContext(ctx, "SELECT "+levelColumns+" FROM stock WHERE sku = ? FOR UPDATE", sku))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return stock.Levels{}, false, nil
	case err != nil:
		return stock.Levels{}, false, fmt.Errorf("lock stock of %s: %w", sku, err)
	}
	return l, true, nil
}

func saveLevels(ctx context.Context, tx *sql.Tx, l stock.Levels) error {
	_, err := tx.ExecContext(ctx, `UPDATE stock SET available = ?, reserved = ?, sold = ?, added = ?, restored = ?, updated_at = ?
		WHERE sku = ?`, l.Available, l.Reserved, l.Sold, l.Added, l.Restored, l.UpdatedAt, l.SKU)
	if err != nil {
		return fmt.Errorf("save stock of %s: %w", l.SKU, err)
	}
	return nil
}
