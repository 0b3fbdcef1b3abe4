package order_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/telemetry/telemetrytest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/services/order"
)

// The order service's metrics after real saga steps, on two replicas of one
// database and group: each order's end is timed once (by the replica that
// committed it) with its outcome and reason, from creation to the end on the
// injected clock; open WatchOrder streams are a gauge; the events consumed
// and produced are counted by type.
func TestOrderMetricsSagaDurationWatchStreamsAndEvents(t *testing.T) {
	reg := telemetrytest.Install(t) // before the replicas make their instruments
	cfg := testConfig(t)
	replicas := startReplicas(t, cfg, 2)
	a, b := replicas[0], replicas[1]
	ctx := context.Background()

	completed := a.create(t, testenv.IDFor("customer metrics completed"), "")
	outOfStock := b.create(t, testenv.IDFor("customer metrics out of stock"), "")
	byCustomer := a.create(t, testenv.IDFor("customer metrics cancel"), "")
	var expiring []*orderv1.Order
	for i := range 4 {
		expiring = append(expiring, replicas[i%2].create(t, testenv.IDFor("customer metrics slow"), ""))
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	stream, err := a.client.WatchOrder(watchCtx, &orderv1.WatchOrderRequest{OrderId: expiring[0].GetOrderId()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("first snapshot: %v", err)
	}
	watchStreams := func() float64 { return telemetrytest.Total(t, reg, "sagasuite_order_watch_streams", nil) }
	if got := watchStreams(); got != 1 {
		t.Errorf("sagasuite_order_watch_streams = %v with one stream open, want 1", got)
	}

	const took = 3 * time.Second
	a.clock.Advance(took) // one clock for both replicas
	a.publish(t, completed, &eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "METRICS1"})
	a.seen.wait(t, completed.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED)
	a.publish(t, outOfStock, &eventsv1.OutOfStock{Sku: "BOOK-1", Requested: 2, Available: 0,
		Reason: eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_INSUFFICIENT_STOCK})
	a.seen.wait(t, outOfStock.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)
	if _, err := b.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: byCustomer.GetOrderId(), Reason: "metrics"}); err != nil {
		t.Fatal(err)
	}
	// A second cancel changes nothing and must not be timed again.
	if _, err := a.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: byCustomer.GetOrderId(), Reason: "again"}); err != nil {
		t.Fatal(err)
	}

	a.clock.Advance(deadline) // both replicas' sweeps race for the 4 PENDING orders
	for _, o := range expiring {
		a.seen.wait(t, o.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)
	}

	// Terminal: the server ends the stream.
	waitUntil(t, "the watched order's stream closed and the gauge back to 0", func() bool { return watchStreams() == 0 })

	checkSaga := func(outcome, reason string, wantCount int, wantEach time.Duration) {
		t.Helper()
		labels := map[string]string{"outcome": outcome, "reason": reason}
		series := telemetrytest.Find(t, reg, "sagasuite_saga_duration_seconds", labels)
		var count, sum float64
		for _, s := range series {
			count, sum = count+s.Value, sum+s.Sum
		}
		if count != float64(wantCount) || math.Abs(sum-float64(wantCount)*wantEach.Seconds()) > 1e-6 {
			t.Errorf("sagasuite_saga_duration_seconds%v: count %v sum %vs, want %d × %s", labels, count, sum, wantCount, wantEach)
		}
	}
	checkSaga("completed", "", 1, took)
	checkSaga("cancelled", "OUT_OF_STOCK", 1, took)
	checkSaga("cancelled", "CUSTOMER_REQUESTED", 1, took)
	checkSaga("cancelled", "TIMEOUT", len(expiring), took+deadline)
	if total := telemetrytest.Total(t, reg, "sagasuite_saga_duration_seconds", nil); total != float64(3+len(expiring)) {
		t.Errorf("%v sagas timed in all, want %d: one per order across both replicas", total, 3+len(expiring))
	}

	// Events by type: consumed by the order group, produced to its topic.
	consumed := telemetrytest.Total(t, reg, "messaging_client_consumed_messages_total", map[string]string{
		"messaging_system": "kafka", "messaging_consumer_group_name": cfg.KafkaConfig.TopicPrefix + order.Name, "sagasuite_event_type": "SHIPMENT_CREATED",
		"messaging_destination_name": cfg.KafkaConfig.TopicPrefix + events.TopicShipments})
	if consumed != 1 {
		t.Errorf("SHIPMENT_CREATED consumed %v times by the order group, want 1; series %+v", consumed,
			telemetrytest.Find(t, reg, "messaging_client_consumed_messages_total", map[string]string{"sagasuite_event_type": "SHIPMENT_CREATED"}))
	}
	waitUntil(t, "the relay's sends counted", func() bool {
		return telemetrytest.Total(t, reg, "messaging_client_sent_messages_total", map[string]string{
			"messaging_system": "kafka", "sagasuite_event_type": "ORDER_CANCELLED",
			"messaging_destination_name": cfg.KafkaConfig.TopicPrefix + events.TopicOrders}) >= float64(2+len(expiring))
	})
}
