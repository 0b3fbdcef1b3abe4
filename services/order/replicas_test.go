package order_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/services/order"
)

// Two replicas (two Runs on one database and consumer group). A stream on
// each follows one order: the saga event one of them consumes and the
// cancel made through replica B reach both streams, the one on A through
// its watch poller. The waits are bounded, not timed.
func TestWatchOrderOnOneReplicaSeesChangesMadeThroughAnother(t *testing.T) {
	cfg := testConfig(t, func(c *order.Config) { c.WatchPollInterval = 100 * time.Millisecond })
	replicas := startReplicas(t, cfg, 2)
	a, b := replicas[0], replicas[1]
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	o := a.create(t, testenv.IDFor("customer two replicas"), "")
	onA, onB := a.watch(ctx, t, o.GetOrderId()), b.watch(ctx, t, o.GetOrderId())

	reserved := a.publish(t, o, &eventsv1.StockReserved{ReservationId: events.NewID(), Lines: lines(), Total: total(),
		PaymentMethodToken: "tok_visa", ShippingAddress: address()})
	for name, stream := range map[string]orderv1.OrderService_WatchOrderClient{"A": onA, "B": onB} {
		if got := recv(t, stream); !hasStep(got, reserved.GetEventId()) {
			t.Errorf("stream on %s sent steps %v, want STOCK_RESERVED", name, stepTypes(got))
		}
	}

	if _, err := b.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: o.GetOrderId(), Reason: "cancelled on B"}); err != nil {
		t.Fatal(err)
	}
	for name, stream := range map[string]orderv1.OrderService_WatchOrderClient{"A": onA, "B": onB} {
		got := recv(t, stream)
		if got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED || got.GetCancelDetail() != "cancelled on B" {
			t.Errorf("stream on %s sent %s %q, want the cancel made through B", name, got.GetStatus(), got.GetCancelDetail())
		}
		recvEnd(t, stream)
	}
}

// Two replicas sweep one database with one manual clock: many orders expire
// at once, both sweeps run every 20 ms, and every order is cancelled once —
// one ORDER_CANCELLED (TIMEOUT) per order on orders.v1 and in the history.
func TestDeadlineSweepOnTwoReplicasCancelsEachOrderOnce(t *testing.T) {
	const expired = 600
	cfg := testConfig(t, func(c *order.Config) { c.MaxPendingOrders = 10 * expired })
	replicas := startReplicas(t, cfg, 2)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	ids := make([]string, expired)
	var (
		creating sync.WaitGroup
		failed   = make(chan error, expired)
	)
	for w := range 8 { // eight clients, each replica serving half of them
		creating.Add(1)
		go func() {
			defer creating.Done()
			r := replicas[w%2]
			for i := w; i < expired; i += 8 {
				resp, err := r.client.CreateOrder(ctx, createRequest(testenv.IDFor(fmt.Sprintf("customer sweep %d", i%9)), ""))
				if err != nil {
					failed <- fmt.Errorf("order %d: %w", i, err)
					return
				}
				ids[i] = resp.GetOrder().GetOrderId()
			}
		}()
	}
	creating.Wait()
	close(failed)
	for err := range failed {
		t.Fatalf("CreateOrder: %v", err)
	}

	replicas[0].clock.Advance(deadline + time.Second) // one clock: both replicas see it
	s := replicas[0]
	for _, id := range ids {
		if env := s.seen.wait(t, id, eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED); env.GetOrderCancelled().GetReason() != eventsv1.CancelReason_CANCEL_REASON_TIMEOUT {
			t.Fatalf("ORDER_CANCELLED of %s = %v, want reason TIMEOUT", id, env)
		}
	}
	// orders.v1 has one partition here and the relay publishes in outbox
	// order: once an order created after the sweeps shows up, any second
	// ORDER_CANCELLED committed before it would have shown up too.
	marker := s.create(t, testenv.IDFor("customer after the sweeps"), "")
	s.seen.wait(t, marker.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_CREATED)
	twice := 0
	for _, id := range ids {
		if n := s.seen.count(id, eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED); n != 1 {
			twice++
			if twice <= 5 {
				t.Errorf("order %s has %d ORDER_CANCELLED on the topic, want 1", id, n)
			}
		}
	}
	db, err := sqlstore.Open(ctx, s.dsn, sqlstore.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := queryInt(t, db, "SELECT COUNT(*) FROM order_steps WHERE event_type = 'ORDER_CANCELLED'"); n != expired {
		t.Errorf("%d ORDER_CANCELLED steps, want %d", n, expired)
	}
	if n := queryInt(t, db, "SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED' AND cancel_reason = 'TIMEOUT'"); n != expired {
		t.Errorf("%d orders CANCELLED/TIMEOUT, want %d", n, expired)
	}
	// And the marker, created after the clock moved, is still PENDING.
	if _, err := s.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: marker.GetOrderId()}); err != nil {
		t.Errorf("cancel of the marker order: %v, want it still PENDING", err)
	}
}

func queryInt(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
