// Package adapters holds the payment service's store: payments and refunds in
// MySQL, written with the outbox and inbox rows of the same change in one
// transaction. Its simulated gateway lives in the simgateway subpackage.
package adapters

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sagasuite/sagasuite/libs/inbox"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/services/payment/internal/app"
	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
	"github.com/sagasuite/sagasuite/services/payment/migrations"
)

// Migrate creates or upgrades the payment tables and the messaging (outbox,
// inbox) tables beside them.
func Migrate(ctx context.Context, db *sql.DB) error {
	if err := sqlstore.MigrateMessaging(ctx, db); err != nil {
		return err
	}
	return sqlstore.Migrate(ctx, db, migrations.FS, migrations.VersionTable)
}

// PaymentMySQLRepository implements app.Repository on MySQL (MariaDB).
type PaymentMySQLRepository struct {
	db *sql.DB
	// inboxConsumer names this service in the inbox ("payment").
	inboxConsumer string
	now           func() time.Time
}

var _ app.Repository = (*PaymentMySQLRepository)(nil)

// NewPaymentMySQLRepository returns a repository on db (migrated with
// Migrate). now stamps inbox and outbox rows.
func NewPaymentMySQLRepository(db *sql.DB, inboxConsumer string, now func() time.Time) *PaymentMySQLRepository {
	return &PaymentMySQLRepository{db: db, inboxConsumer: inboxConsumer, now: now}
}

// Update claims the event, locks the order's payment row, lets change decide
// and writes what it returns. Two handlers of one order (say SHIPMENT_FAILED
// and ORDER_CANCELLED on two replicas) serialize on the row lock, so the
// second sees the first's outcome. When there is no row yet, both may pass
// the locking read; the loser's INSERT then deadlocks or hits the key, and the
// transaction reruns and sees the winner's row.
func (r *PaymentMySQLRepository) Update(ctx context.Context, orderID, inboxEventID string, change app.ChangeFunc) (bool, error) {
	var applied bool
	update := func(tx *sql.Tx) error {
		applied = false // InTx may rerun this after a deadlock
		now := r.now().UTC()
		// First statement: a concurrent copy of the event waits here on the
		// key lock and then finds the id taken.
		first, err := inbox.Claim(ctx, tx, r.inboxConsumer, inboxEventID, now)
		if err != nil || !first {
			return err
		}
		existing, err := load(ctx, tx, orderID, true)
		if errors.Is(err, payment.ErrNotFound) {
			existing, err = nil, nil
		}
		if err != nil {
			return err
		}
		changed, events, err := change(existing)
		if err != nil {
			return err
		}
		if changed != nil {
			if err := save(ctx, tx, existing, changed); err != nil {
				return err
			}
		}
		if err := outbox.AddEnvelopes(ctx, tx, now, events...); err != nil {
			return err
		}
		applied = true
		return nil
	}
	err := sqlstore.InTx(ctx, r.db, update)
	for attempt := 1; errors.Is(err, errConcurrentInsert) && attempt < 3; attempt++ {
		err = sqlstore.InTx(ctx, r.db, update) // the rerun sees the other row
	}
	if err != nil {
		return false, fmt.Errorf("update payment of order %s: %w", orderID, err)
	}
	return applied, nil
}

// errConcurrentInsert is a lost race for a new row (possible where the locking
// read of a missing row takes no gap lock, e.g. READ COMMITTED); Update reruns
// the transaction, which then sees the winner's row.
var errConcurrentInsert = errors.New("payment row inserted concurrently")

func save(ctx context.Context, tx *sql.Tx, before, after *payment.Payment) error {
	if before == nil {
		_, err := tx.ExecContext(ctx, `INSERT INTO payments (order_id, payment_id, customer_id, amount_minor, currency,
			status, charge_id, failure_reason, decline_code, failure_detail, causation_id, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			after.OrderID, nullString(after.PaymentID), after.CustomerID, after.Amount.AmountMinor, after.Amount.Currency,
			after.Status, nullString(after.ChargeID), nullString(string(after.FailureReason)), nullString(after.DeclineCode),
			nullString(after.FailureDetail), after.CausationID, after.CreatedAt.UTC(), after.UpdatedAt.UTC())
		if sqlstore.IsDuplicateKey(err) {
			return errConcurrentInsert
		}
		if err != nil {
			return fmt.Errorf("insert payment of order %s: %w", after.OrderID, err)
		}
	} else if _, err := tx.ExecContext(ctx, "UPDATE payments SET status = ?, updated_at = ? WHERE order_id = ?",
		after.Status, after.UpdatedAt.UTC(), after.OrderID); err != nil {
		return fmt.Errorf("update payment of order %s: %w", after.OrderID, err)
	}
	if after.Refund != nil && (before == nil || before.Refund == nil) {
		rf := after.Refund
		if _, err := tx.ExecContext(ctx, `INSERT INTO refunds (refund_id, order_id, amount_minor, currency, reason,
			gateway_refund_id, causation_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			rf.RefundID, after.OrderID, rf.Amount.AmountMinor, rf.Amount.Currency, rf.Reason, rf.GatewayRefundID,
			rf.CausationID, rf.CreatedAt.UTC()); err != nil {
			// A duplicate here means a second refund got past the row lock:
			// the UNIQUE key refuses it, and the whole change rolls back.
			return fmt.Errorf("insert refund of order %s: %w", after.OrderID, err)
		}
	}
	return nil
}

// Get reads the order's record with its refund (one statement: one snapshot).
func (r *PaymentMySQLRepository) Get(ctx context.Context, orderID string) (*payment.Payment, error) {
	return load(ctx, r.db, orderID, false)
}

// ListByCustomer reads a page of the customer's payments, newest first
// (created_at, then order id, both descending), after the cursor; it uses
// idx_payments_customer.
func (r *PaymentMySQLRepository) ListByCustomer(ctx context.Context, customerID string, after *app.Cursor, limit int) ([]*payment.Payment, error) {
	q := "SELECT " + paymentColumns + " FROM payments p LEFT JOIN refunds r ON r.order_id = p.order_id" +
		" WHERE p.customer_id = ? AND p.status <> ?"
	args := []any{customerID, payment.StatusCancelled}
	if after != nil {
		q += " AND (p.created_at < ? OR (p.created_at = ? AND p.order_id < ?))"
		args = append(args, after.CreatedAt.UTC(), after.CreatedAt.UTC(), after.ID)
	}
	q += " ORDER BY p.created_at DESC, p.order_id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list payments of %s: %w", customerID, err)
	}
	defer rows.Close()
	var payments []*payment.Payment
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("list payments of %s: %w", customerID, err)
		}
		payments = append(payments, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list payments of %s: %w", customerID, err)
	}
	return payments, nil
}

const paymentColumns = `p.order_id, p.payment_id, p.customer_id, p.amount_minor, p.currency, p.status, p.charge_id,
	p.failure_reason, p.decline_code, p.failure_detail, p.causation_id, p.created_at, p.updated_at,
	r.refund_id, r.amount_minor, r.currency, r.reason, r.gateway_refund_id, r.causation_id, r.created_at`

// load reads one order's record with its refund; forUpdate locks the payment
// row (the order's lock for every decision).
func load(ctx context.Context, q querier, orderID string, forUpdate bool) (*payment.Payment, error) {
	stmt := "SELECT " + paymentColumns + " FROM payments p LEFT JOIN refunds r ON r.order_id = p.order_id WHERE p.order_id = ?"
	if forUpdate {
		stmt += " FOR UPDATE"
	}
	p, err := scan(q.QueryRowContext(ctx, stmt, orderID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, payment.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load payment of order %s: %w", orderID, err)
	}
	return p, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type scanner interface{ Scan(dest ...any) error }

func scan(row scanner) (*payment.Payment, error) {
	var (
		p                                                                      payment.Payment
		paymentID, chargeID, failureReason, declineCode, failureDetail, status sql.NullString
		refundID, refundCurrency, refundReason, gatewayRefundID, refundCause   sql.NullString
		refundAmount                                                           sql.NullInt64
		refundCreated                                                          sql.NullTime
	)
	if err := row.Scan(&p.OrderID, &paymentID, &p.CustomerID, &p.Amount.AmountMinor, &p.Amount.Currency, &status,
		&chargeID, &failureReason, &declineCode, &failureDetail, &p.CausationID, &p.CreatedAt, &p.UpdatedAt,
		&refundID, &refundAmount, &refundCurrency, &refundReason, &gatewayRefundID, &refundCause, &refundCreated); err != nil {
		return nil, err
	}
	p.PaymentID, p.ChargeID = paymentID.String, chargeID.String
	p.Status = payment.Status(status.String)
	p.FailureReason = payment.FailureReason(failureReason.String)
	p.DeclineCode, p.FailureDetail = declineCode.String, failureDetail.String
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	if refundID.Valid {
		p.Refund = &payment.Refund{
			RefundID: refundID.String, Amount: payment.Money{AmountMinor: refundAmount.Int64, Currency: refundCurrency.String},
			Reason: payment.RefundReason(refundReason.String), GatewayRefundID: gatewayRefundID.String,
			CausationID: refundCause.String, CreatedAt: refundCreated.Time.UTC(),
		}
	}
	return &p, nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
