// Package app holds the payment service's use cases, one per file: the
// commands ChargePayment (STOCK_RESERVED), CancelPayment (ORDER_CANCELLED) and
// RefundFailedShipment (SHIPMENT_FAILED), and the queries GetPayment and
// ListPayments. Each takes its dependencies as interfaces; all construction
// happens in the service's Run.
//
// The gateway is called inside the transaction that holds the order's payment
// row and the event's inbox claim. That is safe with the built-in simulated
// gateway (in-process and idempotent by key: a crash before commit re-runs the
// same call with the same result). A real processor needs three steps instead —
// record the intent, call it with the idempotency key outside the transaction,
// record the result — see the service's README.
package app

import (
	"context"
	"fmt"
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
	// Update claims inboxEventID, loads the order's payment FOR UPDATE (nil
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
}

// ChangeFunc decides on a locked payment (nil: none yet) and returns the
// record to store (nil: nothing changed) and the events to store with it.
type ChangeFunc func(existing *payment.Payment) (*payment.Payment, []*eventsv1.Envelope, error)

// Cursor is a position in a customer's list, newest first.
type Cursor = paging.Cursor

// Gateway is the payment processor. Both calls are idempotent by key: a second
// call with the same key returns the first one's result.
type Gateway interface {
	// Charge takes amount from the payment method token; the key is the order
	// id. It returns the processor's charge id, a *payment.Decline when the
	// processor said no, or another error (unknown outcome: retry).
	Charge(ctx context.Context, idempotencyKey string, amount payment.Money, token string) (chargeID string, err error)
	// Refund pays amount of the charge back and returns the processor's refund id.
	Refund(ctx context.Context, idempotencyKey, chargeID string, amount payment.Money) (refundID string, err error)
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
}

// now is the clock cut to what the store keeps (microseconds), so a payment
// read back equals the one decided.
func (d Deps) now() time.Time { return d.Now().UTC().Truncate(time.Microsecond) }

// apply runs a transition under the order's lock, exactly once per event id,
// and encodes the event it emits, caused by eventID.
func (d Deps) apply(ctx context.Context, orderID, eventID string, decide func(existing *payment.Payment, now time.Time) (*payment.Payment, payment.Event, error)) error {
	var emitted bool
	applied, err := d.Repo.Update(ctx, orderID, eventID, func(existing *payment.Payment) (*payment.Payment, []*eventsv1.Envelope, error) {
		emitted = false // Update may rerun this after a deadlock
		now := d.now()
		changed, ev, err := decide(existing, now)
		if err != nil || ev == nil {
			return changed, nil, err
		}
		env, err := d.Encode(changed, ev, eventID, now)
		if err != nil {
			return nil, nil, fmt.Errorf("encode %T for order %s: %w", ev, orderID, err)
		}
		emitted = true
		return changed, []*eventsv1.Envelope{env}, nil
	})
	if err != nil {
		return err
	}
	if applied && emitted && d.Changed != nil {
		d.Changed()
	}
	return nil
}

// refund is the domain's RefundFunc over the gateway, keyed by the refund id.
func (d Deps) refund(ctx context.Context) payment.RefundFunc {
	return func(p *payment.Payment, refundID string) (string, error) {
		return d.Gateway.Refund(ctx, refundID, p.ChargeID, p.Amount)
	}
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
}

// New wires the use cases.
func New(d Deps) Application {
	return Application{
		ChargePayment:        ChargePaymentHandler{deps: d},
		CancelPayment:        CancelPaymentHandler{deps: d},
		RefundFailedShipment: RefundFailedShipmentHandler{deps: d},
		GetPayment:           GetPaymentHandler{repo: d.Repo},
		ListPayments:         ListPaymentsHandler{repo: d.Repo},
	}
}
