package order_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/services/order"
)

// Stuck sagas on the injected clock: PENDING orders whose last change is
// older than the threshold are listed with the step each waits on; a fresh
// order, one that just progressed and a terminal one are not.
func TestStuckSagasListedWithTheirWaitingStepAndCounted(t *testing.T) {
	const stuckAfter = 10 * time.Second
	s := start(t, func(c *order.Config) {
		c.StuckAfter = stuckAfter
		c.StuckCountInterval = 20 * time.Millisecond
	})
	ctx := context.Background()
	customer := testenv.IDFor("customer stuck")

	atCreated := s.create(t, customer, "")
	atPayment := s.create(t, customer, "")
	s.publishAndAwaitStep(t, atPayment, &eventsv1.StockReserved{ReservationId: events.NewID(), Lines: lines(), Total: total(),
		PaymentMethodToken: "tok_visa", ShippingAddress: address()})
	s.publishAndAwaitStep(t, atPayment, &eventsv1.PaymentProcessed{PaymentId: events.NewID(), Amount: total()})
	completed := s.create(t, customer, "")
	s.publish(t, completed, &eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "STUCK1"})
	s.seen.wait(t, completed.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED)
	progressed := s.create(t, customer, "")

	const idle = stuckAfter + time.Second // still well before the 30 s deadline
	s.clock.Advance(idle)
	fresh := s.create(t, customer, "")
	s.publishAndAwaitStep(t, progressed, &eventsv1.StockReserved{ReservationId: events.NewID(), Lines: lines(), Total: total(),
		PaymentMethodToken: "tok_visa", ShippingAddress: address()})

	list := func(req *orderv1.ListStuckSagasRequest) *orderv1.ListStuckSagasResponse {
		t.Helper()
		resp, err := s.client.ListStuckSagas(ctx, req)
		if err != nil {
			t.Fatalf("ListStuckSagas(%v): %v", req, err)
		}
		return resp
	}
	resp := list(&orderv1.ListStuckSagasRequest{OlderThan: durationpb.New(stuckAfter)})
	want := map[string]*orderv1.StuckSaga{
		atCreated.GetOrderId(): {OrderId: atCreated.GetOrderId(), CustomerId: customer, LastStep: eventsv1.EventType_EVENT_TYPE_ORDER_CREATED,
			WaitingFor: eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED, WaitingOn: "inventory",
			LastProgressTime: atCreated.GetUpdateTime(), StalledFor: durationpb.New(idle), Deadline: atCreated.GetDeadline()},
		atPayment.GetOrderId(): {OrderId: atPayment.GetOrderId(), CustomerId: customer, LastStep: eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED,
			WaitingFor: eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED, WaitingOn: "inventory",
			LastProgressTime: s.get(t, atPayment.GetOrderId()).GetUpdateTime(), StalledFor: durationpb.New(idle), Deadline: atPayment.GetDeadline()},
	}
	if len(resp.GetSagas()) != len(want) || resp.GetTruncated() {
		t.Errorf("stuck sagas %v (truncated %v), want exactly %s and %s", resp.GetSagas(), resp.GetTruncated(),
			atCreated.GetOrderId(), atPayment.GetOrderId())
	}
	for _, got := range resp.GetSagas() {
		if w := want[got.GetOrderId()]; !proto.Equal(got, w) {
			t.Errorf("stuck saga\n got  %v\n want %v", got, w)
		}
		for _, not := range []*orderv1.Order{completed, progressed, fresh} {
			if got.GetOrderId() == not.GetOrderId() {
				t.Errorf("order %s listed as stuck; it is terminal, fresh or just progressed", not.GetOrderId())
			}
		}
	}

	// A longer threshold lists none yet; the default (10 s, under the idle
	// 11 s) the same two.
	if got := list(&orderv1.ListStuckSagasRequest{OlderThan: durationpb.New(idle + time.Second)}).GetSagas(); len(got) != 0 {
		t.Errorf("stuck for %s: %v, want none", idle+time.Second, got)
	}
	if got := list(&orderv1.ListStuckSagasRequest{}).GetSagas(); len(got) != len(want) || want[got[0].GetOrderId()] == nil {
		t.Errorf("stuck for the default 10 s: %v, want the %d above", got, len(want))
	}
	// Paging: one, and the rest announced.
	if page := list(&orderv1.ListStuckSagasRequest{OlderThan: durationpb.New(stuckAfter), PageSize: 1}); len(page.GetSagas()) != 1 || !page.GetTruncated() {
		t.Errorf("page of 1: %v truncated %v, want one saga and truncated", page.GetSagas(), page.GetTruncated())
	}
	for _, bad := range []*orderv1.ListStuckSagasRequest{
		{OlderThan: durationpb.New(0)},
		{OlderThan: durationpb.New(-time.Minute)},
		{OlderThan: durationpb.New(8 * 24 * time.Hour)},
		{PageSize: 101},
		{PageSize: -1},
	} {
		if _, err := s.client.ListStuckSagas(ctx, bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ListStuckSagas(%v): %v, want InvalidArgument", bad, err)
		}
	}
}
