// Package sagametrics holds the saga metrics several services record, so
// each records them under one name and with one set of labels.
package sagametrics

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// MetricCompensations counts compensations by type (Prometheus:
// sagasuite_saga_compensations_total{type=...}).
const MetricCompensations = "sagasuite.saga.compensations"

// CompensationOf names the compensation an event reports ("" when it
// reports none): what the type label holds.
func CompensationOf(t eventsv1.EventType) string {
	switch t {
	case eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED:
		return "stock_restored"
	case eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED:
		return "payment_refunded"
	case eventsv1.EventType_EVENT_TYPE_SHIPMENT_CANCELLED:
		return "shipment_cancelled"
	}
	return ""
}

// Compensations counts the compensations a service performs.
type Compensations struct {
	counter metric.Int64Counter
}

// NewCompensations takes its counter from the global meter provider as it
// is now (telemetry.Setup installs it before services build their stores).
func NewCompensations() *Compensations {
	counter, _ := otel.Meter("github.com/sagasuite/sagasuite/libs/sagametrics").Int64Counter(MetricCompensations,
		metric.WithUnit("{compensation}"),
		metric.WithDescription("compensations performed (stock restored, payment refunded, shipment cancelled), once per effect: counted when the change and its event commit"))
	return &Compensations{counter: counter}
}

// Committed counts the compensations among envs, the events a change wrote
// with it. Call it once, after that change committed: each compensation's
// event is written exactly once (its id is unique in the outbox), so each
// effect is counted once whichever replica performed it. Nil-safe.
func (c *Compensations) Committed(ctx context.Context, envs ...*eventsv1.Envelope) {
	if c == nil {
		return
	}
	for _, env := range envs {
		if kind := CompensationOf(env.GetType()); kind != "" {
			c.counter.Add(ctx, 1, metric.WithAttributes(attribute.String("type", kind)))
		}
	}
}
