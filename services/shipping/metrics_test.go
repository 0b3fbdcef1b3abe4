package shipping_test

import (
	"testing"

	"github.com/sagasuite/sagasuite/libs/telemetry/telemetrytest"
)

// A cancelled shipment is counted once per effect: the first ORDER_CANCELLED
// cancels the booked shipment (one shipment_cancelled), a second one finds it
// cancelled and counts none. The relay's send of SHIPMENT_CANCELLED is
// counted by type.
func TestShippingCountsEachCancelledShipmentOnce(t *testing.T) {
	reg := telemetrytest.Install(t) // before the service makes its instruments
	h := start(t)
	o := newOrder()
	h.deliver(t, o.inventoryUpdated(t, address("DE", "10115"), 2))
	h.deliver(t, o.cancelled(t))
	h.deliver(t, o.cancelled(t)) // another event id: processed, changes nothing
	if got := telemetrytest.Total(t, reg, "sagasuite_saga_compensations_total", map[string]string{"type": "shipment_cancelled"}); got != 1 {
		t.Errorf("sagasuite_saga_compensations_total{type=shipment_cancelled} = %v, want 1 (series %+v)", got,
			telemetrytest.Find(t, reg, "sagasuite_saga_compensations_total", nil))
	}
	// deliver waited for the relay to publish: the send is counted.
	if got := telemetrytest.Total(t, reg, "messaging_client_sent_messages_total", map[string]string{
		"messaging_system": "kafka", "messaging_operation_name": "send", "sagasuite_event_type": "SHIPMENT_CANCELLED"}); got < 1 {
		t.Errorf("SHIPMENT_CANCELLED sent %v times, want at least 1", got)
	}
}
