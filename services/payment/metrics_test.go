package payment_test

import (
	"testing"

	"github.com/sagasuite/sagasuite/libs/telemetry/telemetrytest"
)

// A refund is counted once per effect: SHIPMENT_FAILED refunds the capture
// (one payment_refunded); the ORDER_CANCELLED after it finds the refund done
// and counts none.
func TestPaymentCountsEachRefundOnce(t *testing.T) {
	reg := telemetrytest.Install(t) // before the service makes its instruments
	s := start(t)
	s.shipmentFailedThenCancelled(t)
	if got := telemetrytest.Total(t, reg, "sagasuite_saga_compensations_total", map[string]string{"type": "payment_refunded"}); got != 1 {
		t.Errorf("sagasuite_saga_compensations_total{type=payment_refunded} = %v, want 1 (series %+v)", got,
			telemetrytest.Find(t, reg, "sagasuite_saga_compensations_total", nil))
	}
	// The events it consumed, by type.
	if got := telemetrytest.Total(t, reg, "messaging_client_consumed_messages_total", map[string]string{
		"messaging_system": "kafka", "sagasuite_event_type": "SHIPMENT_FAILED"}); got != 1 {
		t.Errorf("SHIPMENT_FAILED consumed %v times, want 1", got)
	}
}
