package order_test

import (
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/services/order"
	"github.com/sagasuite/sagasuite/services/order/internal/adapters"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	domain "github.com/sagasuite/sagasuite/services/order/internal/domain/order"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

// With ORDER_WATCH_POLL_INTERVAL out of reach (1 h), a WatchOrder stream
// still sees every change — each step of a saga, then its end — the moment
// the service commits it: pushed, not polled. The same for a customer's
// cancel and for the deadline sweep.
func TestWatchOrderStreamsEveryChangePushed(t *testing.T) {
	s := start(t, func(c *order.Config) { c.WatchPollInterval = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	t.Run("a completed saga", func(t *testing.T) {
		o := s.create(t, testenv.IDFor("customer pushed"), "")
		stream := s.watch(ctx, t, o.GetOrderId())
		var last *orderv1.Order
		for _, payload := range []proto.Message{
			&eventsv1.StockReserved{ReservationId: events.NewID(), Lines: lines(), Total: total(), PaymentMethodToken: "tok_visa", ShippingAddress: address()},
			&eventsv1.PaymentProcessed{PaymentId: events.NewID(), Amount: total()},
			&eventsv1.InventoryUpdated{ReservationId: events.NewID(), Lines: lines(), ShippingAddress: address()},
			&eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "PUSH1"},
		} {
			env := s.publish(t, o, payload)
			last = recv(t, stream)
			if !hasStep(last, env.GetEventId()) {
				t.Errorf("after %s the stream sent steps %v without it", events.TypeName(env.GetType()), stepTypes(last))
			}
		}
		if last.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_COMPLETED || countSteps(last, "ORDER_COMPLETED") != 1 {
			t.Errorf("last snapshot %s with steps %v, want COMPLETED", last.GetStatus(), stepTypes(last))
		}
		recvEnd(t, stream)
		if stored := s.get(t, o.GetOrderId()); !proto.Equal(stored, last) {
			t.Errorf("pushed\n%v\nGetOrder\n%v", last, stored)
		}
	})

	t.Run("a customer's cancel", func(t *testing.T) {
		o := s.create(t, testenv.IDFor("customer pushed cancel"), "")
		stream := s.watch(ctx, t, o.GetOrderId())
		if _, err := s.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: o.GetOrderId(), Reason: "no longer needed"}); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, stream); got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED ||
			got.GetCancelReason() != eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED {
			t.Errorf("pushed %s/%s, want CANCELLED/CUSTOMER_REQUESTED", got.GetStatus(), got.GetCancelReason())
		}
		recvEnd(t, stream)
	})

	t.Run("the deadline sweep", func(t *testing.T) { // last: moves the clock
		o := s.create(t, testenv.IDFor("customer pushed timeout"), "")
		stream := s.watch(ctx, t, o.GetOrderId())
		s.clock.Advance(deadline + time.Second)
		if got := recv(t, stream); got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED ||
			got.GetCancelReason() != eventsv1.CancelReason_CANCEL_REASON_TIMEOUT {
			t.Errorf("pushed %s/%s, want CANCELLED/TIMEOUT", got.GetStatus(), got.GetCancelReason())
		}
		recvEnd(t, stream)
	})
}

// Another replica on the same database commits the saga's changes; none is
// pushed to this service's stream, which finds each with its poll.
func TestWatchOrderSeesAnotherReplicasChanges(t *testing.T) {
	s := start(t, func(c *order.Config) { c.WatchPollInterval = 50 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	db, err := sqlstore.Open(ctx, s.dsn, sqlstore.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := func() time.Time { return time.Now().UTC() }
	watchers := app.NewWatchers() // the other replica's, which nobody here reads
	other := app.New(app.Deps{Repo: adapters.NewOrderMySQLRepository(db, order.Name, now), Encode: ports.Encode, Now: now,
		Changed: watchers.Publish}, deadline, watchers, nil)

	o := s.create(t, testenv.IDFor("customer other replica"), "")
	stream := s.watch(ctx, t, o.GetOrderId())
	var last *orderv1.Order
	for _, typ := range []domain.EventType{"STOCK_RESERVED", "PAYMENT_PROCESSED", "INVENTORY_UPDATED", "SHIPMENT_CREATED"} {
		eventID := events.NewID()
		if err := other.RecordSagaEvent.Handle(ctx, app.SagaEvent{OrderID: o.GetOrderId(), EventID: eventID, Type: typ,
			OccurredAt: now(), Detail: string(typ)}); err != nil {
			t.Fatalf("the other replica records %s: %v", typ, err)
		}
		if last = recv(t, stream); !hasStep(last, eventID) {
			t.Errorf("after the other replica's %s the stream sent steps %v without it", typ, stepTypes(last))
		}
	}
	if last.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Errorf("last snapshot %s, want COMPLETED", last.GetStatus())
	}
	recvEnd(t, stream)
}

// However a stream ends — its order ends, its client goes away — nothing of
// it stays running in the service.
func TestWatchOrderStreamsLeaveNothingRunning(t *testing.T) {
	s := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	const perWay = 4
	completing := s.create(t, testenv.IDFor("customer watched to the end"), "")
	abandoned := s.create(t, testenv.IDFor("customer who stops watching"), "")
	var (
		toTheEnd []orderv1.OrderService_WatchOrderClient
		leave    []context.CancelFunc
	)
	for range perWay {
		toTheEnd = append(toTheEnd, s.watch(ctx, t, completing.GetOrderId()))
		clientCtx, stop := context.WithCancel(ctx)
		leave = append(leave, stop)
		s.watch(clientCtx, t, abandoned.GetOrderId())
	}
	if n := watchHandlersRunning(); n != 2*perWay {
		t.Fatalf("%d WatchOrder handlers running, want %d", n, 2*perWay)
	}
	s.publish(t, completing, &eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "END1"})
	for _, stream := range toTheEnd {
		if got := recv(t, stream); got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_COMPLETED {
			t.Errorf("pushed %s, want COMPLETED", got.GetStatus())
		}
		recvEnd(t, stream)
	}
	for _, stop := range leave {
		stop()
	}
	waitUntil(t, "every WatchOrder handler has returned", func() bool { return watchHandlersRunning() == 0 })
}

// watchHandlersRunning counts this process's goroutines inside WatchOrder's
// use case (the service runs in the test's process).
func watchHandlersRunning() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	running := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "app.WatchOrderHandler.Handle") {
			running++
		}
	}
	return running
}

// watch opens a WatchOrder stream and receives its first snapshot: from
// then on the service pushes the order's changes to it.
func (s *suite) watch(ctx context.Context, t *testing.T, orderID string) orderv1.OrderService_WatchOrderClient {
	t.Helper()
	stream, err := s.client.WatchOrder(ctx, &orderv1.WatchOrderRequest{OrderId: orderID})
	if err != nil {
		t.Fatal(err)
	}
	if first := recv(t, stream); first.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
		t.Fatalf("first snapshot %s, want PENDING", first.GetStatus())
	}
	return stream
}

func recv(t *testing.T, stream orderv1.OrderService_WatchOrderClient) *orderv1.Order {
	t.Helper()
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("stream: %v, want a snapshot", err)
	}
	return resp.GetOrder()
}

func recvEnd(t *testing.T, stream orderv1.OrderService_WatchOrderClient) {
	t.Helper()
	if resp, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("stream sent %v (%v), want its end after the terminal snapshot", resp.GetOrder().GetStatus(), err)
	}
}
