// Package app holds the payment service's use cases, one per file: the
// commands ChargePayment (STOCK_RESERVED), CancelPayment (ORDER_CANCELLED) and
// RefundFailedShipment (SHIPMENT_FAILED), the queries GetPayment and
// ListPayments, and the Sweeper. Each takes its dependencies as interfaces;
// all construction happens in the service's Run.
//
// Money moves in three steps, never inside a transaction: (1) the handler
// records the intent (CHARGE_PENDING / REFUND_PENDING) with the event's inbox
// claim and commits; (2) it calls the gateway with an idempotency key derived
// from the order; (3) it records the answer in a second transaction,
// conditional on the intent still being there, with the event it causes. A
// replica that dies between (1) and (3) leaves an intent whose lease runs
// out; a Sweeper (any replica) claims it, asks the gateway what happened under
// the key, and records that — or makes the call again (same key: the gateway
// applies it at most once).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sagasuite/sagasuite/libs/paging"

	"github.com/google/uuid"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// Repository stores payments together with the events their changes cause
// (outbox) and the saga events already applied (inbox), each change in one
// transaction with the order's payment row locked.
type Repository interface {
	// Update claims inboxEventID ("": no claim), loads the order's payment FOR UPDATE (nil
	// when there is none), runs change on it and stores the payment change
	// returns (nil: nothing to store) with its events, all in one
	// transaction. When the event was applied before, change does not run
	// and applied is false. change may run more than once (deadlock retry):
	// it must not keep state across runs.
	Update(ctx context.Context, orderID, inboxEventID string, change ChangeFunc) (applied bool, err error)
	// Get returns the order's record, tombstones included, or
	// payment.ErrNotFound.
	Get(ctx context.Context, orderID string) (*payment.Payment, error)
	// ListByCustomer returns up to limit of the customer's payments (no
	// tombstones), newest first, starting after the cursor (nil: the newest).
	ListByCustomer(ctx context.Context, customerID string, after *Cursor, limit int) ([]*payment.Payment, error)
	// ClaimExpired takes over up to limit pending intents whose lease ran
	// out, each for one claimant only, and returns them.
	ClaimExpired(ctx context.Context, limit int) ([]*payment.Payment, error)
}

// ChangeFunc decides on a locked payment (nil: none yet) and returns the
// record to store (nil: nothing changed) and the events to store with it.
type ChangeFunc func(existing *payment.Payment) (*payment.Payment, []*eventsv1.Envelope, error)

// Cursor is a position in a customer's list, newest first.
type Cursor = paging.Cursor

// Gateway is the payment processor, remote and fallible. Calls with a key
// it has seen return the first call's result. Any error other than a
// *payment.Decline leaves the outcome unknown: the call may or may not have
// been applied; the same call again, or a status lookup, tells.
type Gateway interface {
	// Charge takes amount from the payment method token; the key is the order
	// id. It returns the processor's charge id, or a *payment.Decline.
	Charge(ctx context.Context, idempotencyKey string, amount payment.Money, token string) (chargeID string, err error)
	// Refund pays amount of the charge back and returns the processor's refund id.
	Refund(ctx context.Context, idempotencyKey, chargeID string, amount payment.Money) (refundID string, err error)
	// ChargeStatus looks up the charge made under key (found false: none was).
	ChargeStatus(ctx context.Context, idempotencyKey string) (outcome payment.ChargeOutcome, found bool, err error)
	// RefundStatus looks up the refund made under key (found false: none was).
	RefundStatus(ctx context.Context, idempotencyKey string) (refundID string, found bool, err error)
}

// Encoder builds the envelope of an event the payment emits (ports/events.go).
type Encoder func(p *payment.Payment, ev payment.Event, causationID string, now time.Time) (*eventsv1.Envelope, error)

// Deps are what the use cases share.
type Deps struct {
	Repo    Repository
	Gateway Gateway
	Encode  Encoder
	// Now is the injected clock.
	Now func() time.Time
	// Changed is told after each committed change that emitted events (it
	// wakes the outbox relay).
	Changed func()
	// Logger reports gateway calls left to the sweeper (nil: discard).
	Logger *slog.Logger
	// CallAttempts bounds a handler's gateway calls for one step before it
	// leaves the intent to the sweeper (0: 3).
	CallAttempts int
	// AfterGatewayCall, if set, runs after each gateway call and before its
	// answer is recorded; an error stands for the process dying there (the
	// answer is not recorded). Tests crash replicas exactly there.
	AfterGatewayCall func(ctx context.Context, op, orderID string) error
}

// now is the clock cut to what the store keeps (microseconds), so a payment
// read back equals the one decided.
func (d Deps) now() time.Time { return d.Now().UTC().Truncate(time.Microsecond) }

// intent records a handler's decision under the order's lock, exactly once
// per event id: a new intent (or a noted cancel, or a tombstone). It returns
// the stored payment when this call made it pending — then this replica holds
// the intent's lease and settles it — and nil otherwise.
func (d Deps) intent(ctx context.Context, orderID, eventID string, decide func(existing *payment.Payment, now time.Time) (*payment.Payment, error)) (*payment.Payment, error) {
	var took *payment.Payment
	applied, err := d.Repo.Update(ctx, orderID, eventID, func(existing *payment.Payment) (*payment.Payment, []*eventsv1.Envelope, error) {
		took = nil // Update may rerun this after a deadlock
		changed, err := decide(existing, d.now())
		if err != nil || changed == nil {
			return nil, nil, err
		}
		if changed.Pending() && (existing == nil || existing.Status != changed.Status) {
			took = changed
		}
		return changed, nil, nil
	})
	if err != nil || !applied {
		return nil, err
	}
	return took, nil
}

// record stores a gateway's answer: decide runs on the order's current row
// (locked) and is a no-op unless the intent is still pending. It returns the
// stored payment (nil: someone recorded first) after encoding its event.
func (d Deps) record(ctx context.Context, orderID string, decide func(current *payment.Payment, now time.Time) (*payment.Payment, payment.Event, error)) (*payment.Payment, error) {
	var stored *payment.Payment
	var emitted bool
	_, err := d.Repo.Update(ctx, orderID, "", func(current *payment.Payment) (*payment.Payment, []*eventsv1.Envelope, error) {
		stored, emitted = nil, false
		now := d.now()
		changed, ev, err := decide(current, now)
		if err != nil || changed == nil {
			return nil, nil, err
		}
		stored = changed
		if ev == nil {
			return changed, nil, nil
		}
		env, err := d.Encode(changed, ev, changed.EventCausation(ev), now)
		if err != nil {
			return nil, nil, fmt.Errorf("encode %T for order %s: %w", ev, orderID, err)
		}
		emitted = true
		return changed, []*eventsv1.Envelope{env}, nil
	})
	if err != nil {
		return nil, err
	}
	if emitted && d.Changed != nil {
		d.Changed()
	}
	return stored, nil
}

// settle drives a pending payment this replica holds the lease of to its
// outcome: call the gateway, record the answer, and go on while that leaves
// it pending (a capture after a cancel becomes a refund). lookupFirst asks the
// gateway what became of an earlier call (the sweeper's case) before calling.
// An error leaves the intent for the sweeper.
func (d Deps) settle(ctx context.Context, p *payment.Payment, lookupFirst bool) error {
	for p.Pending() {
		var next *payment.Payment
		var err error
		switch p.Status {
		case payment.StatusChargePending:
			var outcome payment.ChargeOutcome
			if outcome, err = d.chargeCall(ctx, p, lookupFirst); err != nil {
				return err
			}
			if err := d.afterCall(ctx, "charge", p.OrderID); err != nil {
				return err
			}
			next, err = d.record(ctx, p.OrderID, func(cur *payment.Payment, now time.Time) (*payment.Payment, payment.Event, error) {
				return payment.RecordCharge(cur, outcome, RefundIDFor(cur.OrderID), now)
			})
		case payment.StatusRefundPending:
			var refundID string
			if refundID, err = d.refundCall(ctx, p, lookupFirst); err != nil {
				return err
			}
			if err := d.afterCall(ctx, "refund", p.OrderID); err != nil {
				return err
			}
			next, err = d.record(ctx, p.OrderID, func(cur *payment.Payment, now time.Time) (*payment.Payment, payment.Event, error) {
				return payment.RecordRefund(cur, refundID, now)
			})
		}
		if err != nil {
			return fmt.Errorf("record gateway answer for order %s: %w", p.OrderID, err)
		}
		if next == nil {
			return nil // recorded by another replica; a new intent is its holder's
		}
		p, lookupFirst = next, false
	}
	return nil
}

func (d Deps) afterCall(ctx context.Context, op, orderID string) error {
	if d.AfterGatewayCall != nil {
		return d.AfterGatewayCall(ctx, op, orderID)
	}
	return nil
}

// chargeCall asks the gateway for the charge of a CHARGE_PENDING payment,
// retrying an unknown outcome with the same key a few times.
func (d Deps) chargeCall(ctx context.Context, p *payment.Payment, lookupFirst bool) (payment.ChargeOutcome, error) {
	if lookupFirst {
		if outcome, found, err := d.Gateway.ChargeStatus(ctx, p.OrderID); err == nil && found {
			return outcome, nil
		}
	}
	var outcome payment.ChargeOutcome
	err := d.retry(ctx, func() error {
		chargeID, err := d.Gateway.Charge(ctx, p.OrderID, p.Amount, p.PaymentToken)
		var decline *payment.Decline
		switch {
		case errors.As(err, &decline):
			outcome = payment.ChargeOutcome{Decline: decline}
			return nil
		case err != nil:
			return err
		}
		outcome = payment.ChargeOutcome{ChargeID: chargeID}
		return nil
	})
	if err != nil {
		return outcome, fmt.Errorf("charge order %s: %w", p.OrderID, err)
	}
	return outcome, nil
}

// refundCall asks the gateway for the refund of a REFUND_PENDING payment.
func (d Deps) refundCall(ctx context.Context, p *payment.Payment, lookupFirst bool) (string, error) {
	key := p.PendingRefund.RefundID
	if lookupFirst {
		if refundID, found, err := d.Gateway.RefundStatus(ctx, key); err == nil && found {
			return refundID, nil
		}
	}
	var refundID string
	err := d.retry(ctx, func() error {
		var err error
		refundID, err = d.Gateway.Refund(ctx, key, p.ChargeID, p.PendingRefund.Amount)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("refund order %s: %w", p.OrderID, err)
	}
	return refundID, nil
}

// retry runs call up to CallAttempts times with a short growing pause.
func (d Deps) retry(ctx context.Context, call func() error) error {
	attempts := d.CallAttempts
	if attempts <= 0 {
		attempts = 3
	}
	wait := 20 * time.Millisecond
	var err error
	for i := range attempts {
		if err = call(); err == nil {
			return nil
		}
		if i == attempts-1 {
			break
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 4
	}
	return err
}

// settleOrLeave settles an intent the handler just took; a failure is not
// the event's: the intent is committed, so the sweeper finishes it.
func (d Deps) settleOrLeave(ctx context.Context, p *payment.Payment) error {
	if p == nil {
		return nil
	}
	if err := d.settle(ctx, p, false); err != nil {
		if ctx.Err() != nil {
			return err
		}
		d.logger().WarnContext(ctx, "gateway step left to the sweeper", "order_id", p.OrderID, "status", string(p.Status), "error", err)
	}
	return nil
}

func (d Deps) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// idNamespace scopes the ids payment derives from order ids.
var idNamespace = uuid.MustParse("9a4f2e61-0c3b-4d7a-8e15-2b6c9d0f3a47")

// PaymentIDFor is the payment id of an order: derived, so a re-run of the
// charge (redelivery, replay) names the same payment.
func PaymentIDFor(orderID string) string {
	return uuid.NewSHA1(idNamespace, []byte("payment/"+orderID)).String()
}

// RefundIDFor is the id of an order's refund (at most one per payment).
func RefundIDFor(orderID string) string {
	return uuid.NewSHA1(idNamespace, []byte("refund/"+orderID)).String()
}

// Application is every use case of the service.
type Application struct {
	ChargePayment        ChargePaymentHandler
	CancelPayment        CancelPaymentHandler
	RefundFailedShipment RefundFailedShipmentHandler
	GetPayment           GetPaymentHandler
	ListPayments         ListPaymentsHandler
	Sweeper              Sweeper
}

// New wires the use cases.
func New(d Deps) Application {
	return Application{
		ChargePayment:        ChargePaymentHandler{deps: d},
		CancelPayment:        CancelPaymentHandler{deps: d},
		RefundFailedShipment: RefundFailedShipmentHandler{deps: d},
		GetPayment:           GetPaymentHandler{repo: d.Repo},
		ListPayments:         ListPaymentsHandler{repo: d.Repo},
		Sweeper:              Sweeper{deps: d},
	}
}
