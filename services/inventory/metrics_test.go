package inventory_test

import (
	"testing"

	"github.com/sagasuite/sagasuite/libs/telemetry/telemetrytest"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// A compensation is counted once per effect: the cancel that restores the
// stock counts one stock_restored; its redelivery and a second compensation
// of the same order (nothing left to restore) count none.
func TestInventoryCountsEachStockRestoredOnce(t *testing.T) {
	reg := telemetrytest.Install(t) // before the service makes its instruments
	h := start(t)
	h.product(t, "METRICS-1", 100, 5)
	s := newSaga("EUR", line("METRICS-1", 2, 100))
	h.publish(t, s.created(t))
	h.emitted.nth(t, s.orderID, 1, eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED)
	restoredTotal := func() float64 {
		return telemetrytest.Total(t, reg, "sagasuite_saga_compensations_total", map[string]string{"type": "stock_restored"})
	}
	if got := restoredTotal(); got != 0 {
		t.Fatalf("stock_restored = %v before any compensation", got)
	}
	cancel := s.cancelled(t)
	h.publish(t, cancel)
	h.emitted.nth(t, s.orderID, 2, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED)
	late := s.paymentFailed(t)
	h.publish(t, cancel, late)
	h.processed(t, cancel)
	h.processed(t, late)
	if got := restoredTotal(); got != 1 {
		t.Errorf("sagasuite_saga_compensations_total{type=stock_restored} = %v, want 1 (series %+v)", got,
			telemetrytest.Find(t, reg, "sagasuite_saga_compensations_total", nil))
	}
}
