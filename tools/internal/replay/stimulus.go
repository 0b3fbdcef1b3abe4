package replay

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
)

// StimulusKind is what drives the order service from outside the bus.
type StimulusKind string

const (
	// StimulusCreate is a CreateOrder call, rebuilt from ORDER_CREATED.
	StimulusCreate StimulusKind = "create"
	// StimulusCancel is a customer's CancelOrder call, rebuilt from
	// ORDER_CANCELLED (reason CUSTOMER_REQUESTED).
	StimulusCancel StimulusKind = "cancel"
	// StimulusDeadline is the clock passing an order's deadline: the
	// order service's sweep emitted ORDER_CANCELLED (reason TIMEOUT).
	StimulusDeadline StimulusKind = "deadline"
)

// Stimulus is one root input of the order service: the recorded event it
// produced and when (its occurred_at).
type Stimulus struct {
	Kind  StimulusKind
	Event *eventsv1.Envelope
	At    time.Time
}

// Stimuli are the recording's order-service stimuli in occurred_at order
// (duplicates of one event id once). A cancel of an order whose
// ORDER_CREATED is not recorded is an error: the order would not exist.
func Stimuli(recs []capture.Record) ([]Stimulus, error) {
	var out []Stimulus
	seen, created := map[string]bool{}, map[string]bool{}
	for _, r := range recs {
		if len(r.Envelope) == 0 {
			continue
		}
		env, err := r.Event()
		if err != nil {
			return nil, fmt.Errorf("replay: %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		if seen[env.GetEventId()] {
			continue // a duplicate delivery in the recording
		}
		seen[env.GetEventId()] = true
		s := Stimulus{Event: env, At: env.GetOccurredAt().AsTime().UTC()}
		switch env.GetType() {
		case eventsv1.EventType_EVENT_TYPE_ORDER_CREATED:
			s.Kind = StimulusCreate
			created[env.GetOrderId()] = true
		case eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED:
			switch env.GetOrderCancelled().GetReason() {
			case eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED:
				s.Kind = StimulusCancel
			case eventsv1.CancelReason_CANCEL_REASON_TIMEOUT:
				s.Kind = StimulusDeadline
			default:
				continue // a reaction to a failure event, not a stimulus
			}
		default:
			continue
		}
		out = append(out, s)
	}
	for _, s := range out {
		if !created[s.Event.GetOrderId()] {
			return nil, fmt.Errorf("replay: order %s: %s recorded without its ORDER_CREATED (record the whole saga)", s.Event.GetOrderId(), s.Kind)
		}
	}
	slices.SortStableFunc(out, func(a, b Stimulus) int { return a.At.Compare(b.At) })
	return out, nil
}

// OrderDeadline is the deadline the recorded ORDER_CREATED was given
// (its deadline minus its occurred_at).
func OrderDeadline(created *eventsv1.Envelope) (time.Duration, error) {
	d := created.GetOrderCreated().GetDeadline().AsTime().Sub(created.GetOccurredAt().AsTime())
	if created.GetOrderCreated().GetDeadline() == nil || d <= 0 {
		return 0, fmt.Errorf("replay: order %s: ORDER_CREATED's deadline %s is not after its occurred_at", created.GetOrderId(),
			created.GetOrderCreated().GetDeadline().AsTime().Format(time.RFC3339Nano))
	}
	return d, nil
}

// CreateOrderRequest rebuilds the CreateOrder call that produced a recorded
// ORDER_CREATED: same customer, lines, address, payment token, and the
// request id it recorded as causation id (from which the order id derives).
func CreateOrderRequest(created *eventsv1.Envelope) *orderv1.CreateOrderRequest {
	oc := created.GetOrderCreated()
	req := &orderv1.CreateOrderRequest{
		CustomerId: created.GetCustomerId(), Currency: oc.GetTotal().GetCurrency(), PaymentMethodToken: oc.GetPaymentMethodToken(),
		RequestId: created.GetCausationId(),
	}
	if a := oc.GetShippingAddress(); a != nil {
		req.ShippingAddress = proto.Clone(a).(*commonv1.Address)
	}
	for _, l := range oc.GetLines() {
		req.Lines = append(req.Lines, proto.Clone(l).(*commonv1.LineItem))
	}
	return req
}

// CancelOrderRequest rebuilds a customer's CancelOrder call from its
// recorded ORDER_CANCELLED (request id = its causation id).
func CancelOrderRequest(cancelled *eventsv1.Envelope) *orderv1.CancelOrderRequest {
	return &orderv1.CancelOrderRequest{OrderId: cancelled.GetOrderId(), Reason: cancelled.GetOrderCancelled().GetDetail(),
		RequestId: cancelled.GetCausationId()}
}
