// Package ports is the payment service's edge: the saga events it consumes
// and emits (events.go) and its gRPC API (grpc.go), each translated to and
// from the app's types in one place.
package ports

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/payment/internal/app"
	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// Producer names this service in the envelopes it emits.
const Producer = "payment"

// EventHandler turns the saga events payment reacts to into commands:
// STOCK_RESERVED → ChargePayment, ORDER_CANCELLED → CancelPayment,
// SHIPMENT_FAILED → RefundFailedShipment. Every other event is acknowledged
// and ignored. Input the domain can never apply is dead-lettered at once.
func EventHandler(a app.Application) bus.Handler {
	return func(ctx context.Context, env *eventsv1.Envelope) error {
		var err error
		switch env.GetType() {
		case eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED:
			reserved := env.GetStockReserved()
			err = a.ChargePayment.Handle(ctx, app.ChargePayment{
				EventID: env.GetEventId(), OrderID: env.GetOrderId(), CustomerID: env.GetCustomerId(),
				Amount: moneyFromProto(reserved.GetTotal()), PaymentToken: reserved.GetPaymentMethodToken(),
			})
		case eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED:
			err = a.CancelPayment.Handle(ctx, app.CancelPayment{
				EventID: env.GetEventId(), OrderID: env.GetOrderId(), CustomerID: env.GetCustomerId(),
			})
		case eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED:
			err = a.RefundFailedShipment.Handle(ctx, app.RefundFailedShipment{
				EventID: env.GetEventId(), OrderID: env.GetOrderId(),
			})
		default:
			return nil
		}
		if errors.Is(err, payment.ErrInvalid) {
			return bus.Permanent(err)
		}
		return err
	}
}

// Encode builds the envelope of an event the payment emits, caused by
// causationID (its id derives from that cause and the type).
func Encode(p *payment.Payment, ev payment.Event, causationID string, now time.Time) (*eventsv1.Envelope, error) {
	var payload proto.Message
	switch e := ev.(type) {
	case payment.Processed:
		payload = &eventsv1.PaymentProcessed{PaymentId: e.PaymentID, Amount: moneyToProto(e.Amount)}
	case payment.Failed:
		payload = &eventsv1.PaymentFailed{Reason: failureReasonToProto(e.Reason), DeclineCode: e.DeclineCode, Detail: e.Detail}
	case payment.Refunded:
		payload = &eventsv1.PaymentRefunded{PaymentId: e.PaymentID, RefundId: e.RefundID,
			Amount: moneyToProto(e.Amount), Reason: refundReasonToProto(e.Reason)}
	default:
		return nil, fmt.Errorf("no envelope for %T", ev)
	}
	return events.New(events.Meta{
		OrderID: p.OrderID, CustomerID: p.CustomerID, Producer: Producer, CausationID: causationID, OccurredAt: now,
	}, payload)
}

func moneyFromProto(m *commonv1.Money) payment.Money {
	return payment.Money{AmountMinor: m.GetAmountMinor(), Currency: m.GetCurrency()}
}

func moneyToProto(m payment.Money) *commonv1.Money {
	return &commonv1.Money{AmountMinor: m.AmountMinor, Currency: m.Currency}
}

var failureReasons = map[payment.FailureReason]eventsv1.PaymentFailureReason{
	payment.FailureDeclined:             eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_DECLINED,
	payment.FailureInsufficientFunds:    eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_INSUFFICIENT_FUNDS,
	payment.FailureInvalidPaymentMethod: eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_INVALID_PAYMENT_METHOD,
	payment.FailureProcessorUnavailable: eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_PROCESSOR_UNAVAILABLE,
}

// failureReasonToProto maps a reason; an unknown one becomes UNSPECIFIED,
// which validation then refuses (never sent silently).
func failureReasonToProto(r payment.FailureReason) eventsv1.PaymentFailureReason {
	return failureReasons[r]
}

var refundReasons = map[payment.RefundReason]eventsv1.RefundReason{
	payment.RefundShipmentFailed: eventsv1.RefundReason_REFUND_REASON_SHIPMENT_FAILED,
	payment.RefundOrderCancelled: eventsv1.RefundReason_REFUND_REASON_ORDER_CANCELLED,
}

func refundReasonToProto(r payment.RefundReason) eventsv1.RefundReason { return refundReasons[r] }
