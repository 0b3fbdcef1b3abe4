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
	"github.com/sagasuite/sagasuite/libs/sagametrics"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
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
	// lease is how long a replica that recorded an intent (or claimed one)
	// has to resolve it before the sweeper of any replica may take it over.
	// Leases run on the wall clock: they measure process liveness, not the
	// injected clock of the saga's timestamps.
	lease     time.Duration
	wallClock func() time.Time
	// compensations counts the PAYMENT_REFUNDED this store commits.
	compensations *sagametrics.Compensations
}

// DefaultLease is the intent lease NewPaymentMySQLRepository starts with.
const DefaultLease = 30 * time.Second

var _ app.Repository = (*PaymentMySQLRepository)(nil)

// NewPaymentMySQLRepository returns a repository on db (migrated with
// Migrate). now stamps inbox and outbox rows.
func NewPaymentMySQLRepository(db *sql.DB, inboxConsumer string, now func() time.Time) *PaymentMySQLRepository {
	return &PaymentMySQLRepository{db: db, inboxConsumer: inboxConsumer, now: now, lease: DefaultLease, wallClock: time.Now,
		compensations: sagametrics.NewCompensations()}
}

// WithLease sets the intent lease (positive) and returns r.
func (r *PaymentMySQLRepository) WithLease(d time.Duration) *PaymentMySQLRepository {
	if d > 0 {
		r.lease = d
	}
	return r
}

// Update claims the event, locks the order's payment row, lets change decide
// and writes what it returns. Two handlers of one order (say SHIPMENT_FAILED
// and ORDER_CANCELLED on two replicas) serialize on the row lock, so the
// second sees the first's outcome. When there is no row yet, both may pass
// the locking read; the loser's INSERT then deadlocks or hits the key, and the
// transaction reruns and sees the winner's row. An empty inboxEventID claims
// nothing (recording a gateway's answer: the status check decides).
func (r *PaymentMySQLRepository) Update(ctx context.Context, orderID, inboxEventID string, change app.ChangeFunc) (bool, error) {
	var applied bool
	var written []*eventsv1.Envelope
	update := func(tx *sql.Tx) error {
		applied, written = false, nil // InTx may rerun this after a deadlock
		now := r.now().UTC()
		// First statement: a concurrent copy of the event waits here on the
		// key lock and then finds the id taken.
		if inboxEventID != "" {
			first, err := inbox.Claim(ctx, tx, r.inboxConsumer, inboxEventID, now)
			if err != nil || !first {
				return err
			}
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
			if err := r.save(ctx, tx, existing, changed); err != nil {
				return err
			}
		}
		if err := outbox.AddEnvelopes(ctx, tx, now, events...); err != nil {
			return err
		}
		applied, written = true, events
		return nil
	}
	err := sqlstore.InTx(ctx, r.db, update)
	for attempt := 1; errors.Is(err, errConcurrentInsert) && attempt < 3; attempt++ {
		err = sqlstore.InTx(ctx, r.db, update) // the rerun sees the other row
	}
	if err != nil {
		return false, fmt.Errorf("update payment of order %s: %w", orderID, err)
	}
	r.compensations.Committed(ctx, written...)
	return applied, nil
}

// errConcurrentInsert is a lost race for a new row (possible where the locking
// read of a missing row takes no gap lock, e.g. READ COMMITTED); Update reruns
// the transaction, which then sees the winner's row.
var errConcurrentInsert = errors.New("payment row inserted concurrently")

// save writes after. A record that becomes pending (a new intent, or a
// CHARGE_PENDING turning REFUND_PENDING) gets a fresh lease for the writer;
// a decided one loses its lease; a pending one that stays in its status
// (a cancel noted on a charge in flight) keeps its holder's lease.
func (r *PaymentMySQLRepository) save(ctx context.Context, tx *sql.Tx, before, after *payment.Payment) error {
	var lease sql.NullTime
	if after.Pending() {
		lease = sql.NullTime{Time: r.wallClock().UTC().Add(r.lease), Valid: true}
	}
	refundReason, refundCause := sql.NullString{}, sql.NullString{}
	if pr := after.PendingRefund; pr != nil {
		refundReason, refundCause = nullString(string(pr.Reason)), nullString(pr.CausationID)
	}
	if before == nil {
		_, err := tx.ExecContext(ctx, `INSERT INTO payments (order_id, payment_id, customer_id, amount_minor, currency,
			status, charge_id, failure_reason, decline_code, failure_detail, causation_id, created_at, updated_at,
			payment_token, cancel_causation_id, refund_reason, refund_causation_id, lease_until)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			after.OrderID, nullString(after.PaymentID), after.CustomerID, after.Amount.AmountMinor, after.Amount.Currency,
			after.Status, nullString(after.ChargeID), nullString(string(after.FailureReason)), nullString(after.DeclineCode),
			nullString(after.FailureDetail), after.CausationID, after.CreatedAt.UTC(), after.UpdatedAt.UTC(),
			nullString(after.PaymentToken), nullString(after.CancelCausationID), refundReason, refundCause, lease)
		if sqlstore.IsDuplicateKey(err) {
			return errConcurrentInsert
		}
		if err != nil {
			return fmt.Errorf("insert payment of order %s: %w", after.OrderID, err)
		}
	} else {
		stmt := `UPDATE payments SET status = ?, charge_id = ?, failure_reason = ?, decline_code = ?, failure_detail = ?,
			payment_token = ?, cancel_causation_id = ?, refund_reason = ?, refund_causation_id = ?, updated_at = ?`
		args := []any{after.Status, nullString(after.ChargeID), nullString(string(after.FailureReason)), nullString(after.DeclineCode),
			nullString(after.FailureDetail), nullString(after.PaymentToken), nullString(after.CancelCausationID),
			refundReason, refundCause, after.UpdatedAt.UTC()}
		if before.Status != after.Status {
			stmt += ", lease_until = ?"
			args = append(args, lease)
		}
		if _, err := tx.ExecContext(ctx, stmt+" WHERE order_id = ?", append(args, after.OrderID)...); err != nil {
			return fmt.Errorf("update payment of order %s: %w", after.OrderID, err)
		}
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

// ListByCustomer reads a page of the customer's payments (no tombstones, no
// charge whose outcome is unknown yet), newest first
// (created_at, then order id, both descending), after the cursor; it uses
// idx_payments_customer.
func (r *PaymentMySQLRepository) ListByCustomer(ctx context.Context, customerID string, after *app.Cursor, limit int) ([]*payment.Payment, error) {
	q := "SELECT " + paymentColumns + " FROM payments p LEFT JOIN refunds r ON r.order_id = p.order_id" +
		" WHERE p.customer_id = ? AND p.status NOT IN (?, ?)"
	args := []any{customerID, payment.StatusCancelled, payment.StatusChargePending}
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
	p.payment_token, p.cancel_causation_id, p.refund_reason, p.refund_causation_id,
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
		token, cancelCause, pendingReason, pendingCause                        sql.NullString
	)
	if err := row.Scan(&p.OrderID, &paymentID, &p.CustomerID, &p.Amount.AmountMinor, &p.Amount.Currency, &status,
		&chargeID, &failureReason, &declineCode, &failureDetail, &p.CausationID, &p.CreatedAt, &p.UpdatedAt,
		&token, &cancelCause, &pendingReason, &pendingCause,
		&refundID, &refundAmount, &refundCurrency, &refundReason, &gatewayRefundID, &refundCause, &refundCreated); err != nil {
		return nil, err
	}
	p.PaymentID, p.ChargeID = paymentID.String, chargeID.String
	p.Status = payment.Status(status.String)
	p.FailureReason = payment.FailureReason(failureReason.String)
	p.DeclineCode, p.FailureDetail = declineCode.String, failureDetail.String
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	p.PaymentToken, p.CancelCausationID = token.String, cancelCause.String
	if p.Status == payment.StatusRefundPending {
		// The refund's id derives from the order; its amount is the charge's.
		p.PendingRefund = &payment.Refund{RefundID: app.RefundIDFor(p.OrderID), Amount: p.Amount,
			Reason: payment.RefundReason(pendingReason.String), CausationID: pendingCause.String, CreatedAt: p.UpdatedAt}
	}
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

// ClaimExpired takes over up to limit intents whose lease ran out (their
// handler died or gave up): each is claimed with a conditional update of its
// lease, so of several sweepers exactly one wins a row, and returned.
func (r *PaymentMySQLRepository) ClaimExpired(ctx context.Context, limit int) ([]*payment.Payment, error) {
	now := r.wallClock().UTC()
	rows, err := r.db.QueryContext(ctx, `SELECT order_id, status FROM payments
		WHERE status IN (?, ?) AND lease_until < ? ORDER BY lease_until LIMIT ?`,
		payment.StatusChargePending, payment.StatusRefundPending, now, limit)
	if err != nil {
		return nil, fmt.Errorf("find expired payment intents: %w", err)
	}
	type candidate struct{ orderID, status string }
	var candidates []candidate
	for rows.Next() {
		var c candidate
		if err := rows.Scan(&c.orderID, &c.status); err != nil {
			rows.Close()
			return nil, fmt.Errorf("find expired payment intents: %w", err)
		}
		candidates = append(candidates, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find expired payment intents: %w", err)
	}
	var claimed []*payment.Payment
	for _, c := range candidates {
		res, err := r.db.ExecContext(ctx, "UPDATE payments SET lease_until = ? WHERE order_id = ? AND status = ? AND lease_until < ?",
			now.Add(r.lease), c.orderID, c.status, now)
		if err != nil {
			return claimed, fmt.Errorf("claim payment intent of order %s: %w", c.orderID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			continue // another sweeper won it, or it was decided meanwhile
		}
		p, err := load(ctx, r.db, c.orderID, false)
		if err != nil {
			return claimed, err
		}
		claimed = append(claimed, p)
	}
	return claimed, nil
}
