package order_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/services/order"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
)

// wait bounds every wait of this test; nothing asserts on timing.
const wait = 2 * time.Minute

const deadline = 30 * time.Second

// The order service started through Run on the real stack: gRPC in, saga
// events in and out over Kafka, state in a fresh MariaDB database. The
// subtests share the instance and run in order; the deadline one moves the
// clock and so comes last.
func TestOrderService(t *testing.T) {
	s := start(t)

	t.Run("happy path completes the order", s.happyPath)
	t.Run("out of stock cancels", func(t *testing.T) {
		s.failurePath(t, &eventsv1.OutOfStock{Sku: "BOOK-1", Requested: 2, Available: 1,
			Reason: eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_INSUFFICIENT_STOCK},
			eventsv1.CancelReason_CANCEL_REASON_OUT_OF_STOCK, "BOOK-1")
	})
	t.Run("payment failure cancels and the released stock is recorded", func(t *testing.T) {
		o := s.failurePath(t, &eventsv1.PaymentFailed{Reason: eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_INSUFFICIENT_FUNDS,
			Detail: "card declined"}, eventsv1.CancelReason_CANCEL_REASON_PAYMENT_FAILED, "card declined")
		s.lateCompensationIsRecorded(t, o, &eventsv1.StockRestored{ReservationId: testenv.IDFor("res " + o.GetOrderId()), Lines: lines(),
			Reason: eventsv1.RestoreReason_RESTORE_REASON_PAYMENT_FAILED})
	})
	t.Run("shipment failure cancels and the refund is recorded", func(t *testing.T) {
		o := s.failurePath(t, &eventsv1.ShipmentFailed{ShipmentId: events.NewID(),
			Reason: eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_UNDELIVERABLE_ADDRESS, Detail: "no such street"},
			eventsv1.CancelReason_CANCEL_REASON_SHIPMENT_FAILED, "no such street")
		s.lateCompensationIsRecorded(t, o, &eventsv1.PaymentRefunded{PaymentId: events.NewID(), RefundId: events.NewID(),
			Amount: total(), Reason: eventsv1.RefundReason_REFUND_REASON_SHIPMENT_FAILED})
	})
	t.Run("customer cancel, then late work is recorded but changes nothing", s.customerCancel)
	t.Run("cancel of a completed or unknown order fails", s.cancelRefused)
	t.Run("a cancel with request_id emits a derived ORDER_CANCELLED; a retry is idempotent", s.cancelWithRequestID)
	t.Run("a duplicate delivery changes nothing", s.duplicateDelivery)
	t.Run("an event for an unknown order is dead-lettered", s.unknownOrderDeadLettered)
	t.Run("a retried CreateOrder returns the same order and emits one ORDER_CREATED", s.createRetry)
	t.Run("ListOrders pages newest first", s.listOrders)
	t.Run("WatchOrder streams PENDING then the terminal snapshot", s.watchOrder)
	t.Run("invalid input is InvalidArgument naming the field", s.invalidInput)
	t.Run("the deadline cancels a PENDING order", s.deadlinePasses) // last: moves the clock
}

type suite struct {
	dsn    string // the service's database
	client orderv1.OrderServiceClient
	clock  *clock.Manual
	pub    *bus.Producer
	seen   *collector
	addr   string // the gRPC API, for callers other than the test's service identity
}

// start runs the service on a fresh database and topic prefix; tune
// changes its config first.
func start(t *testing.T, tune ...func(*order.Config)) *suite {
	t.Helper()
	cfg := testConfig(t, tune...)
	return startReplicas(t, cfg, 1)[0]
}

// testConfig is the config of a service on a fresh database and topic
// prefix, changed by tune.
func testConfig(t *testing.T, tune ...func(*order.Config)) order.Config {
	t.Helper()
	_, dsn := testenv.MySQLDatabase(t)
	prefix := testenv.UniqueName("ordertest-") + "."
	cfg := order.Config{
		Common:               servicetest.Common(),
		KafkaConfig:          servicetest.SagaTopics(t, service.KafkaConfig{Brokers: testenv.Brokers(), TopicPrefix: prefix, Partitions: 1, ReplicationFactor: 1}),
		MySQLDSN:             dsn,
		MySQLMaxOpenConns:    8,
		Deadline:             deadline,
		DeadlineScanInterval: 20 * time.Millisecond,
		WatchPollInterval:    time.Second,
		MaxPendingOrders:     200,
		PendingCountInterval: 500 * time.Millisecond,
		OverloadRetryAfter:   time.Second,
	}
	for _, f := range tune {
		f(&cfg)
	}
	return cfg
}

// startReplicas runs n processes' worth of the service (each its own Run:
// pool, relay, consumer, sweep, watchers) on cfg's one database, consumer
// group and topics, sharing one manual clock and one reader of what they
// emit and dead-letter.
func startReplicas(t *testing.T, cfg order.Config, n int) []*suite {
	t.Helper()
	clk := clock.NewManual(time.Now())
	prefix := cfg.KafkaConfig.TopicPrefix
	pub := bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(prefix))
	t.Cleanup(func() { pub.Close() })
	var replicas []*suite
	for range n {
		rt := service.Runtime{Clock: clk, SharedTelemetry: true, Registry: prometheus.NewRegistry()}
		conn := servicetest.Start(t, rt, func(ctx context.Context, rt service.Runtime) error { return order.Run(ctx, cfg, rt) })
		replicas = append(replicas, &suite{dsn: cfg.MySQLDSN, client: orderv1.NewOrderServiceClient(conn), clock: clk, pub: pub, addr: conn.Target()})
	}
	// What the service emits, and what its consumer dead-letters.
	seen := collect(t, cfg.KafkaConfig, prefix+events.TopicOrders, prefix+order.Name+".dlq")
	for _, r := range replicas {
		r.seen = seen
	}
	return replicas
}

// Past ORDER_MAX_PENDING_ORDERS orders not yet terminal, CreateOrder is
// refused with ResourceExhausted and a RetryInfo hint, writing nothing; a
// retry of an order accepted before still gets it back; once an order ends
// (and the backlog is counted again) new orders are accepted again.
func TestOrderServiceRefusesOrdersPastItsBacklog(t *testing.T) {
	s := start(t, func(c *order.Config) {
		c.MaxPendingOrders = 3
		c.PendingCountInterval = 20 * time.Millisecond
		c.OverloadRetryAfter = 2 * time.Second
	})
	ctx := context.Background()
	customer := testenv.IDFor("customer overload")
	firstRequest := events.NewID()
	first := s.createAdmitted(t, customer, firstRequest)
	second := s.createAdmitted(t, customer, events.NewID())
	s.createAdmitted(t, customer, events.NewID())

	_, err := s.client.CreateOrder(ctx, createRequest(testenv.IDFor("customer refused"), events.NewID()))
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("4th CreateOrder: %v, want ResourceExhausted", err)
	}
	var hint *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hint = ri
		}
	}
	if hint == nil || hint.GetRetryDelay().AsDuration() != 2*time.Second {
		t.Errorf("refusal details %v, want a RetryInfo of 2s", st.Details())
	}
	list, err := s.client.ListOrders(ctx, &orderv1.ListOrdersRequest{CustomerId: testenv.IDFor("customer refused"), PageSize: 10})
	if err != nil || len(list.GetOrders()) != 0 {
		t.Errorf("the refused customer has orders %v (%v), want none", list.GetOrders(), err)
	}

	// The client whose first call worked but who did not hear back retries.
	again, err := s.client.CreateOrder(ctx, createRequest(customer, firstRequest))
	if err != nil || again.GetOrder().GetOrderId() != first.GetOrderId() {
		t.Errorf("retry of an accepted order while overloaded = %v, %v; want order %s", again.GetOrder(), err, first.GetOrderId())
	}
	// A different request under that request id is refused as reused, not
	// as overload: retrying it later would never help.
	changed := createRequest(customer, firstRequest)
	changed.Lines[1].Quantity = 7
	if _, err := s.client.CreateOrder(ctx, changed); status.Code(err) != codes.AlreadyExists ||
		!strings.Contains(status.Convert(err).Message(), "request_id") {
		t.Errorf("reused request id with another payload while overloaded: %v, want AlreadyExists naming request_id", err)
	}

	// An order ends; after the next count there is room again.
	s.publish(t, second, &eventsv1.OutOfStock{Sku: "BOOK-1", Requested: 2, Available: 0,
		Reason: eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_INSUFFICIENT_STOCK})
	s.seen.wait(t, second.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)
	var accepted *orderv1.Order
	waitUntil(t, "CreateOrder accepted again after an order ended", func() bool {
		resp, err := s.client.CreateOrder(ctx, createRequest(customer, events.NewID()))
		if err != nil && status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("CreateOrder: %v", err)
		}
		accepted = resp.GetOrder()
		return err == nil
	})
	if accepted.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
		t.Errorf("accepted order %v", accepted)
	}
	// And the bound holds again: three pending.
	if _, err := s.client.CreateOrder(ctx, createRequest(customer, events.NewID())); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("CreateOrder at the bound again: %v, want ResourceExhausted", err)
	}
}

// --- the subtests ---

func (s *suite) happyPath(t *testing.T) {
	requestID := events.NewID()
	o := s.create(t, testenv.IDFor("customer happy"), requestID)
	if o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING || o.GetTotal().GetAmountMinor() != 2*1250+99 {
		t.Fatalf("created %v", o)
	}
	created := s.seen.wait(t, o.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_CREATED)
	c := created.GetOrderCreated()
	if created.GetCausationId() != requestID || created.GetProducer() != "order" || created.GetCustomerId() != o.GetCustomerId() ||
		c.GetTotal().GetAmountMinor() != o.GetTotal().GetAmountMinor() || c.GetPaymentMethodToken() != "tok_visa" ||
		!proto.Equal(c.GetShippingAddress(), address()) || len(c.GetLines()) != 2 || !c.GetDeadline().AsTime().Equal(o.GetDeadline().AsTime()) {
		t.Errorf("ORDER_CREATED = %v", created)
	}

	var shipped *eventsv1.Envelope
	for _, payload := range []proto.Message{
		&eventsv1.StockReserved{ReservationId: events.NewID(), Lines: lines(), Total: total(), PaymentMethodToken: "tok_visa", ShippingAddress: address()},
		&eventsv1.PaymentProcessed{PaymentId: events.NewID(), Amount: total()},
		&eventsv1.InventoryUpdated{ReservationId: events.NewID(), Lines: lines(), ShippingAddress: address()},
		&eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "JD0001"},
	} {
		// One step at a time, as the saga runs: the history's order is then known.
		shipped = s.publishAndAwaitStep(t, o, payload)
	}
	completed := s.seen.wait(t, o.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED)
	if completed.GetCausationId() != shipped.GetEventId() {
		t.Errorf("ORDER_COMPLETED caused by %s, want SHIPMENT_CREATED %s", completed.GetCausationId(), shipped.GetEventId())
	}
	got := s.get(t, o.GetOrderId())
	if got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Errorf("status %s, want COMPLETED", got.GetStatus())
	}
	wantSteps := []string{"ORDER_CREATED", "STOCK_RESERVED", "PAYMENT_PROCESSED", "INVENTORY_UPDATED", "SHIPMENT_CREATED", "ORDER_COMPLETED"}
	if steps := stepTypes(got); strings.Join(steps, " ") != strings.Join(wantSteps, " ") {
		t.Errorf("steps %v\nwant  %v", steps, wantSteps)
	}
	if last := got.GetSteps()[len(got.GetSteps())-1]; last.GetEventId() != completed.GetEventId() {
		t.Errorf("ORDER_COMPLETED step has id %s, the event %s", last.GetEventId(), completed.GetEventId())
	}
}

// failurePath: a failure event cancels a PENDING order with its reason and
// emits ORDER_CANCELLED caused by it.
func (s *suite) failurePath(t *testing.T, failure proto.Message, reason eventsv1.CancelReason, detail string) *orderv1.Order {
	o := s.create(t, testenv.IDFor("customer "+t.Name()), "")
	ev := s.publish(t, o, failure)
	cancelled := s.seen.wait(t, o.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)
	if cancelled.GetCausationId() != ev.GetEventId() || cancelled.GetOrderCancelled().GetReason() != reason ||
		!strings.Contains(cancelled.GetOrderCancelled().GetDetail(), detail) {
		t.Errorf("ORDER_CANCELLED = %v, want reason %s caused by %s with %q in the detail", cancelled, reason, ev.GetEventId(), detail)
	}
	got := s.get(t, o.GetOrderId())
	if got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED || got.GetCancelReason() != reason ||
		!strings.Contains(got.GetCancelDetail(), detail) {
		t.Errorf("order %s/%s %q, want CANCELLED/%s", got.GetStatus(), got.GetCancelReason(), got.GetCancelDetail(), reason)
	}
	if !hasStep(got, ev.GetEventId()) || !hasStep(got, cancelled.GetEventId()) {
		t.Errorf("steps %v lack the failure or the cancellation", stepTypes(got))
	}
	return got
}

// lateCompensationIsRecorded: compensations that follow the cancel show in
// the history; the order stays as it ended.
func (s *suite) lateCompensationIsRecorded(t *testing.T, o *orderv1.Order, compensation proto.Message) {
	got := s.publishAndAwaitStep(t, o, compensation)
	after := s.get(t, o.GetOrderId())
	if after.GetStatus() != o.GetStatus() || after.GetCancelReason() != o.GetCancelReason() {
		t.Errorf("%s changed the order to %s/%s", got.GetType(), after.GetStatus(), after.GetCancelReason())
	}
}

func (s *suite) customerCancel(t *testing.T) {
	ctx := context.Background()
	o := s.create(t, testenv.IDFor("customer cancel"), "")
	resp, err := s.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: o.GetOrderId(), Reason: "found it cheaper"})
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.GetOrder(); c.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED ||
		c.GetCancelReason() != eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED || c.GetCancelDetail() != "found it cheaper" {
		t.Errorf("CancelOrder returned %v", c)
	}
	cancelled := s.seen.wait(t, o.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)
	if cancelled.GetOrderCancelled().GetReason() != eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED {
		t.Errorf("ORDER_CANCELLED = %v", cancelled)
	}
	// Cancelling again returns the order unchanged and emits nothing more.
	again, err := s.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: o.GetOrderId(), Reason: "again"})
	if err != nil || again.GetOrder().GetCancelDetail() != "found it cheaper" || !proto.Equal(again.GetOrder(), s.get(t, o.GetOrderId())) {
		t.Errorf("second CancelOrder = %v, %v; want the order unchanged", again.GetOrder(), err)
	}
	// Late work after the cancel: recorded, the order stays cancelled, never completes.
	s.publishAndAwaitStep(t, o, &eventsv1.StockReserved{ReservationId: events.NewID(), Lines: lines(), Total: total(),
		PaymentMethodToken: "tok_visa", ShippingAddress: address()})
	s.publishAndAwaitStep(t, o, &eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "LATE1"})
	got := s.get(t, o.GetOrderId())
	if got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Errorf("late SHIPMENT_CREATED moved the order to %s", got.GetStatus())
	}
	// An order emits only with a step in the same transaction: the history
	// shows everything it emitted.
	if n := countSteps(got, "ORDER_COMPLETED") + countSteps(got, "ORDER_CANCELLED"); n != 1 {
		t.Errorf("%d terminal steps in %v, want the one ORDER_CANCELLED", n, stepTypes(got))
	}
}

// cancelWithRequestID: the request id is ORDER_CANCELLED's causation, so its
// event id is known before the call (a replay reproduces it); a retry
// returns the cancelled order and emits nothing; the id reused on another
// PENDING order is refused and leaves that order PENDING.
func (s *suite) cancelWithRequestID(t *testing.T) {
	ctx := context.Background()
	o := s.create(t, testenv.IDFor("cancel with request id"), "")
	requestID := testenv.IDFor("cancel request " + o.GetOrderId())
	resp, err := s.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: o.GetOrderId(), Reason: "changed my mind", RequestId: requestID})
	if err != nil {
		t.Fatal(err)
	}
	cancelled := s.seen.wait(t, o.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)
	if want := events.DeriveID(requestID, eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED); cancelled.GetEventId() != want ||
		cancelled.GetCausationId() != requestID {
		t.Errorf("ORDER_CANCELLED id %s caused by %s, want %s caused by the request id %s",
			cancelled.GetEventId(), cancelled.GetCausationId(), want, requestID)
	}
	again, err := s.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: o.GetOrderId(), Reason: "retry", RequestId: requestID})
	if err != nil || !proto.Equal(again.GetOrder(), resp.GetOrder()) {
		t.Errorf("retried CancelOrder = %v, %v; want the first answer %v", again.GetOrder(), err, resp.GetOrder())
	}
	other := s.create(t, testenv.IDFor("cancel request reused"), "")
	_, err = s.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: other.GetOrderId(), RequestId: requestID})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("CancelOrder of another order with a used request_id = %v, want AlreadyExists", err)
	}
	if got := s.get(t, other.GetOrderId()); got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
		t.Errorf("the other order is %s after the refused cancel, want PENDING", got.GetStatus())
	}
	if got := s.get(t, o.GetOrderId()); countSteps(got, "ORDER_CANCELLED") != 1 {
		t.Errorf("steps %v: want exactly one ORDER_CANCELLED after the retry", stepTypes(got))
	}
	_, err = s.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: other.GetOrderId(), RequestId: "not-a-uuid"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("CancelOrder with request_id %q = %v, want InvalidArgument", "not-a-uuid", err)
	}
}

func (s *suite) cancelRefused(t *testing.T) {
	ctx := context.Background()
	o := s.create(t, testenv.IDFor("customer completed"), "")
	s.publishAndAwaitStep(t, o, &eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "JD0002"})
	_, err := s.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: o.GetOrderId()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("CancelOrder of a COMPLETED order = %v, want FailedPrecondition", err)
	}
	if got := s.get(t, o.GetOrderId()); got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Errorf("status %s after a refused cancel", got.GetStatus())
	}
	_, err = s.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: events.NewID()})
	if status.Code(err) != codes.NotFound {
		t.Errorf("CancelOrder of an unknown order = %v, want NotFound", err)
	}
	_, err = s.client.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: events.NewID()})
	if status.Code(err) != codes.NotFound {
		t.Errorf("GetOrder of an unknown order = %v, want NotFound", err)
	}
}

func (s *suite) duplicateDelivery(t *testing.T) {
	o := s.create(t, testenv.IDFor("customer duplicate"), "")
	reserved := s.publish(t, o, &eventsv1.StockReserved{ReservationId: events.NewID(), Lines: lines(), Total: total(),
		PaymentMethodToken: "tok_visa", ShippingAddress: address()})
	s.publishEnvelope(t, reserved) // the same event again
	// A later event on the same topic and key is handled after both copies.
	s.publishAndAwaitStep(t, o, &eventsv1.InventoryUpdated{ReservationId: events.NewID(), Lines: lines(), ShippingAddress: address()})
	got := s.get(t, o.GetOrderId())
	if n := countSteps(got, "STOCK_RESERVED"); n != 1 {
		t.Errorf("%d STOCK_RESERVED steps after a duplicate delivery, want 1: %v", n, stepTypes(got))
	}
	if got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING || len(got.GetSteps()) != 3 {
		t.Errorf("order %s with steps %v, want PENDING with 3", got.GetStatus(), stepTypes(got))
	}

	// A duplicate of the event that ended an order does not end it twice.
	failed := s.publish(t, o, &eventsv1.OutOfStock{Sku: "BOOK-1", Requested: 2, Available: 0,
		Reason: eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_INSUFFICIENT_STOCK})
	s.publishEnvelope(t, failed)
	s.publishAndAwaitStep(t, o, &eventsv1.StockRestored{ReservationId: events.NewID(), Lines: lines(),
		Reason: eventsv1.RestoreReason_RESTORE_REASON_ORDER_CANCELLED})
	got = s.get(t, o.GetOrderId())
	if countSteps(got, "OUT_OF_STOCK") != 1 || countSteps(got, "ORDER_CANCELLED") != 1 {
		t.Errorf("steps %v after a duplicate OUT_OF_STOCK, want one OUT_OF_STOCK and one ORDER_CANCELLED", stepTypes(got))
	}
}

func (s *suite) unknownOrderDeadLettered(t *testing.T) {
	stray := &orderv1.Order{OrderId: events.NewID(), CustomerId: events.NewID()}
	env := s.publish(t, stray, &eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "STRAY"})
	dead := s.seen.wait(t, stray.GetOrderId(), eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED)
	if dead.GetEventId() != env.GetEventId() {
		t.Errorf("dead-lettered %s, want %s", dead.GetEventId(), env.GetEventId())
	}
	if _, err := s.client.GetOrder(context.Background(), &orderv1.GetOrderRequest{OrderId: stray.GetOrderId()}); status.Code(err) != codes.NotFound {
		t.Errorf("GetOrder of the stray order = %v, want NotFound", err)
	}
	// The dead-letter topic keeps its order: with the stray event read, any
	// event of the earlier subtests that had failed would have been read too
	// (a duplicate, say, must be acknowledged, not dead-lettered).
	if others := s.seen.deadLettered(stray.GetOrderId()); len(others) > 0 {
		t.Errorf("also dead-lettered: %v", others)
	}
}

func (s *suite) createRetry(t *testing.T) {
	requestID := events.NewID()
	customer := testenv.IDFor("customer retry")
	first := s.create(t, customer, requestID)
	second := s.create(t, customer, requestID)
	if !proto.Equal(first, second) {
		t.Errorf("retry returned\n%v\nwant the first order\n%v", second, first)
	}
	if first.GetOrderId() != app.OrderIDForRequest(requestID) {
		t.Errorf("order id %s, want the one derived from the request id", first.GetOrderId())
	}
	// Another customer cannot take over the request id.
	_, err := s.client.CreateOrder(context.Background(), createRequest(testenv.IDFor("someone else"), requestID))
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("CreateOrder with another customer's request id = %v, want AlreadyExists", err)
	}
	// Nor can the same customer reuse it for a different order: refused,
	// naming the field, as payment APIs treat idempotency keys.
	for name, change := range map[string]func(*orderv1.CreateOrderRequest){
		"quantity":       func(r *orderv1.CreateOrderRequest) { r.Lines[0].Quantity++ },
		"address":        func(r *orderv1.CreateOrderRequest) { r.ShippingAddress.City = "Hamburg" },
		"payment method": func(r *orderv1.CreateOrderRequest) { r.PaymentMethodToken = "tok_mastercard" },
	} {
		req := createRequest(customer, requestID)
		change(req)
		_, err := s.client.CreateOrder(context.Background(), req)
		if status.Code(err) != codes.AlreadyExists || !strings.Contains(status.Convert(err).Message(), "request_id") {
			t.Errorf("request id reused with another %s: %v, want AlreadyExists naming request_id", name, err)
		}
	}
	// The same request once more still gets the order back.
	if third := s.create(t, customer, requestID); !proto.Equal(first, third) {
		t.Errorf("third identical request returned %v, want the first order", third)
	}
	// orders.v1 keeps one key's events in order: once the ORDER_CANCELLED
	// written after the retries is seen, a second ORDER_CREATED would be too.
	if _, err := s.client.CancelOrder(context.Background(), &orderv1.CancelOrderRequest{OrderId: first.GetOrderId()}); err != nil {
		t.Fatal(err)
	}
	s.seen.wait(t, first.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)
	if n := s.seen.count(first.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_CREATED); n != 1 {
		t.Errorf("%d ORDER_CREATED events for a retried CreateOrder, want 1", n)
	}
	if n := countSteps(s.get(t, first.GetOrderId()), "ORDER_CREATED"); n != 1 {
		t.Errorf("%d ORDER_CREATED steps, want 1", n)
	}
}

func (s *suite) listOrders(t *testing.T) {
	customer := events.NewID()
	var want []string
	for range 5 {
		s.clock.Advance(time.Millisecond) // distinct creation times
		want = append([]string{s.create(t, customer, "").GetOrderId()}, want...)
	}
	s.create(t, events.NewID(), "") // someone else's
	var got []string
	token := ""
	for page := 0; ; page++ {
		if page > 3 {
			t.Fatal("paging does not end")
		}
		resp, err := s.client.ListOrders(context.Background(), &orderv1.ListOrdersRequest{CustomerId: customer, PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range resp.GetOrders() {
			got = append(got, o.GetOrderId())
			if len(o.GetSteps()) != 1 || len(o.GetLines()) != 2 {
				t.Errorf("listed order with %d steps, %d lines", len(o.GetSteps()), len(o.GetLines()))
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("listed %v\nwant     %v", got, want)
	}
}

func (s *suite) watchOrder(t *testing.T) {
	o := s.create(t, testenv.IDFor("customer watch"), "")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	stream, err := s.client.WatchOrder(ctx, &orderv1.WatchOrderRequest{OrderId: o.GetOrderId()})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatalf("first snapshot: %v", err)
	}
	if first.GetOrder().GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
		t.Fatalf("first snapshot %s, want PENDING", first.GetOrder().GetStatus())
	}
	s.publish(t, o, &eventsv1.StockReserved{ReservationId: events.NewID(), Lines: lines(), Total: total(),
		PaymentMethodToken: "tok_visa", ShippingAddress: address()})
	s.publish(t, o, &eventsv1.ShipmentCreated{ShipmentId: events.NewID(), Carrier: "dhl", TrackingNumber: "WATCH1"})
	var snapshots []*orderv1.Order
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("stream ended with %v after %d snapshots (want the terminal one, then the end)", err, len(snapshots))
		}
		snapshots = append(snapshots, resp.GetOrder())
	}
	if len(snapshots) == 0 {
		t.Fatal("no snapshot after the first")
	}
	for _, sn := range snapshots[:len(snapshots)-1] {
		if sn.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
			t.Errorf("intermediate snapshot %s", sn.GetStatus())
		}
	}
	last := snapshots[len(snapshots)-1]
	if last.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_COMPLETED || countSteps(last, "ORDER_COMPLETED") != 1 {
		t.Errorf("last snapshot %s with steps %v, want COMPLETED", last.GetStatus(), stepTypes(last))
	}
	// Watching an order that has ended sends it once and ends.
	stream, err = s.client.WatchOrder(ctx, &orderv1.WatchOrderRequest{OrderId: o.GetOrderId()})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetOrder().GetStatus() != orderv1.OrderStatus_ORDER_STATUS_COMPLETED {
		t.Errorf("watch of a completed order: %v, %v", resp, err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("watch of a completed order did not end: %v", err)
	}
	stream, err = s.client.WatchOrder(ctx, &orderv1.WatchOrderRequest{OrderId: events.NewID()})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("watch of an unknown order = %v, want NotFound", err)
	}
}

func (s *suite) invalidInput(t *testing.T) {
	ctx := context.Background()
	customer := testenv.IDFor("customer invalid")
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"customer id", func() error {
			_, err := s.client.CreateOrder(ctx, createRequest("not-a-uuid", ""))
			return err
		}, "customer_id"},
		{"no lines", func() error {
			req := createRequest(customer, "")
			req.Lines = nil
			_, err := s.client.CreateOrder(ctx, req)
			return err
		}, "lines"},
		{"zero quantity", func() error {
			req := createRequest(customer, "")
			req.Lines[1].Quantity = 0
			_, err := s.client.CreateOrder(ctx, req)
			return err
		}, "lines[1].quantity"},
		{"total overflows", func() error {
			req := createRequest(customer, "")
			req.Lines[1].Quantity, req.Lines[1].UnitPriceMinor = 10000, 1<<62
			_, err := s.client.CreateOrder(ctx, req)
			return err
		}, "lines[1].unit_price_minor"},
		{"currency XXX (matches ^[A-Z]{3}$, is no currency)", func() error {
			req := createRequest(customer, "")
			req.Currency = "XXX"
			_, err := s.client.CreateOrder(ctx, req)
			return err
		}, "currency"},
		{"currency XTS (the testing code)", func() error {
			req := createRequest(customer, "")
			req.Currency = "XTS"
			_, err := s.client.CreateOrder(ctx, req)
			return err
		}, "currency"},
		{"no address", func() error {
			req := createRequest(customer, "")
			req.ShippingAddress = nil
			_, err := s.client.CreateOrder(ctx, req)
			return err
		}, "shipping_address"},
		{"request id", func() error {
			_, err := s.client.CreateOrder(ctx, createRequest(customer, "retry-1"))
			return err
		}, "request_id"},
		{"order id", func() error {
			_, err := s.client.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: "42"})
			return err
		}, "order_id"},
		{"page token", func() error {
			_, err := s.client.ListOrders(ctx, &orderv1.ListOrdersRequest{CustomerId: customer, PageToken: "garbage"})
			return err
		}, "page_token"},
		{"page size", func() error {
			_, err := s.client.ListOrders(ctx, &orderv1.ListOrdersRequest{CustomerId: customer, PageSize: 1000})
			return err
		}, "page_size"},
		{"watched order id", func() error {
			stream, err := s.client.WatchOrder(ctx, &orderv1.WatchOrderRequest{OrderId: "x"})
			if err == nil {
				_, err = stream.Recv()
			}
			return err
		}, "order_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.field) {
				t.Errorf("got %v, want InvalidArgument naming %s", err, tt.field)
			}
		})
	}
}

func (s *suite) deadlinePasses(t *testing.T) {
	o := s.create(t, testenv.IDFor("customer slow"), "")
	s.publishAndAwaitStep(t, o, &eventsv1.StockReserved{ReservationId: events.NewID(), Lines: lines(), Total: total(),
		PaymentMethodToken: "tok_visa", ShippingAddress: address()})
	if got := s.get(t, o.GetOrderId()); got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
		t.Fatalf("status %s before the deadline", got.GetStatus())
	}
	s.clock.Advance(deadline + time.Second)
	cancelled := s.seen.wait(t, o.GetOrderId(), eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)
	if cancelled.GetOrderCancelled().GetReason() != eventsv1.CancelReason_CANCEL_REASON_TIMEOUT {
		t.Errorf("ORDER_CANCELLED = %v, want reason TIMEOUT", cancelled)
	}
	// Derived, so a scan rerun after a crash would emit the same event.
	if want := app.TimeoutCausationID(o.GetOrderId()); cancelled.GetCausationId() != want {
		t.Errorf("causation %s, want the derived %s", cancelled.GetCausationId(), want)
	}
	got := s.get(t, o.GetOrderId())
	if got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED || got.GetCancelReason() != eventsv1.CancelReason_CANCEL_REASON_TIMEOUT {
		t.Errorf("order %s/%s, want CANCELLED/TIMEOUT", got.GetStatus(), got.GetCancelReason())
	}
}

// --- helpers ---

func lines() []*commonv1.LineItem {
	return []*commonv1.LineItem{{Sku: "BOOK-1", Quantity: 2, UnitPriceMinor: 1250}, {Sku: "PEN-2", Quantity: 1, UnitPriceMinor: 99}}
}

func total() *commonv1.Money { return &commonv1.Money{AmountMinor: 2*1250 + 99, Currency: "EUR"} }

func address() *commonv1.Address {
	return &commonv1.Address{Name: "Ada Lovelace", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"}
}

func createRequest(customerID, requestID string) *orderv1.CreateOrderRequest {
	return &orderv1.CreateOrderRequest{CustomerId: customerID, Lines: lines(), Currency: "EUR",
		ShippingAddress: address(), PaymentMethodToken: "tok_visa", RequestId: requestID}
}

func (s *suite) create(t *testing.T, customerID, requestID string) *orderv1.Order {
	t.Helper()
	resp, err := s.client.CreateOrder(context.Background(), createRequest(customerID, requestID))
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	return resp.GetOrder()
}

// createAdmitted creates an order under the backlog bound. An order
// committed while the backlog is being counted is counted twice until the
// next count (the estimate errs high by design), so a refusal is retried;
// any other error fails.
func (s *suite) createAdmitted(t *testing.T, customerID, requestID string) *orderv1.Order {
	t.Helper()
	var created *orderv1.Order
	waitUntil(t, "CreateOrder admitted under the bound", func() bool {
		resp, err := s.client.CreateOrder(context.Background(), createRequest(customerID, requestID))
		if err != nil && status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("CreateOrder: %v", err)
		}
		created = resp.GetOrder()
		return err == nil
	})
	return created
}

func (s *suite) get(t *testing.T, orderID string) *orderv1.Order {
	t.Helper()
	resp, err := s.client.GetOrder(context.Background(), &orderv1.GetOrderRequest{OrderId: orderID})
	if err != nil {
		t.Fatalf("GetOrder %s: %v", orderID, err)
	}
	return resp.GetOrder()
}

// producers sign test events as the service that owns their topic would.
var producers = map[string]string{events.TopicInventory: "inventory", events.TopicPayments: "payment", events.TopicShipments: "shipping"}

// publish sends another service's event about o, as that service would.
func (s *suite) publish(t *testing.T, o *orderv1.Order, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: o.GetOrderId(), CustomerID: o.GetCustomerId(), Producer: "test",
		CausationID: events.NewID(), OccurredAt: time.Now()}, payload)
	if err != nil {
		t.Fatalf("event %T: %v", payload, err)
	}
	topic, _ := events.TopicOf(env.GetType())
	env.Producer = producers[topic]
	s.publishEnvelope(t, env)
	return env
}

func (s *suite) publishEnvelope(t *testing.T, env *eventsv1.Envelope) {
	t.Helper()
	msg, err := bus.EncodeEnvelope(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.pub.Publish(context.Background(), msg); err != nil {
		t.Fatalf("publish %s: %v", events.TypeName(env.GetType()), err)
	}
}

// publishAndAwaitStep publishes the event and waits until the order's step
// history shows it.
func (s *suite) publishAndAwaitStep(t *testing.T, o *orderv1.Order, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	env := s.publish(t, o, payload)
	waitUntil(t, fmt.Sprintf("order %s records %s", o.GetOrderId(), events.TypeName(env.GetType())), func() bool {
		return hasStep(s.get(t, o.GetOrderId()), env.GetEventId())
	})
	return env
}

func hasStep(o *orderv1.Order, eventID string) bool {
	for _, st := range o.GetSteps() {
		if st.GetEventId() == eventID {
			return true
		}
	}
	return false
}

func stepTypes(o *orderv1.Order) []string {
	out := make([]string, len(o.GetSteps()))
	for i, st := range o.GetSteps() {
		out[i] = events.TypeName(st.GetEventType())
	}
	return out
}

func countSteps(o *orderv1.Order, typ string) int {
	n := 0
	for _, st := range stepTypes(o) {
		if st == typ {
			n++
		}
	}
	return n
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("waited %s for: %s", wait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// collector keeps every envelope read from some topics, by order id.
type collector struct {
	mu      sync.Mutex
	byOrder map[string][]*eventsv1.Envelope
	changed chan struct{}
}

func collect(t *testing.T, kafka service.KafkaConfig, topics ...string) *collector {
	t.Helper()
	c := &collector{byOrder: map[string][]*eventsv1.Envelope{}, changed: make(chan struct{}, 1)}
	consumer, err := bus.NewConsumer(bus.ConsumerConfig{Brokers: kafka.Brokers, Group: testenv.UniqueName("ordertest-reader-"), Topics: topics},
		func(_ context.Context, env *eventsv1.Envelope) error {
			c.mu.Lock()
			c.byOrder[env.GetOrderId()] = append(c.byOrder[env.GetOrderId()], env)
			c.mu.Unlock()
			select {
			case c.changed <- struct{}{}:
			default:
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

func (c *collector) find(orderID string, typ eventsv1.EventType) (*eventsv1.Envelope, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first *eventsv1.Envelope
	n := 0
	for _, env := range c.byOrder[orderID] {
		if env.GetType() == typ {
			if first == nil {
				first = env
			}
			n++
		}
	}
	return first, n
}

func (c *collector) count(orderID string, typ eventsv1.EventType) int {
	_, n := c.find(orderID, typ)
	return n
}

// deadLettered lists the events not emitted by the order service (so read
// from the dead-letter topic) other than those of the given order.
func (c *collector) deadLettered(except string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for orderID, envs := range c.byOrder {
		for _, env := range envs {
			if orderID != except && env.GetProducer() != order.Name {
				out = append(out, events.TypeName(env.GetType())+" "+env.GetEventId())
			}
		}
	}
	return out
}

// wait returns the first event of the type for the order, waiting for it.
func (c *collector) wait(t *testing.T, orderID string, typ eventsv1.EventType) *eventsv1.Envelope {
	t.Helper()
	timeout := time.After(wait)
	for {
		if env, _ := c.find(orderID, typ); env != nil {
			return env
		}
		select {
		case <-c.changed:
		case <-time.After(100 * time.Millisecond): // another waiter may have taken the signal
		case <-timeout:
			t.Fatalf("no %s for order %s within %s", events.TypeName(typ), orderID, wait)
		}
	}
}

// The backlog's settings are checked at start-up, each bad one named.
func TestConfigRejectsBadBacklogSettings(t *testing.T) {
	base := []string{"ORDER_MYSQL_DSN=u:p@tcp(127.0.0.1:13306)/db", "ORDER_KAFKA_BROKERS=127.0.0.1:19092"}
	cfg, err := config.LoadFrom[order.Config]("ORDER", base)
	if err != nil || cfg.MaxPendingOrders != 200 || cfg.PendingCountInterval != 500*time.Millisecond || cfg.OverloadRetryAfter != time.Second ||
		cfg.WatchPollInterval != 250*time.Millisecond {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
	_, err = config.LoadFrom[order.Config]("ORDER", append(base, "ORDER_MAX_PENDING_ORDERS=0", "ORDER_PENDING_COUNT_INTERVAL=0s", "ORDER_OVERLOAD_RETRY_AFTER=-1s"))
	for _, want := range []string{"ORDER_MAX_PENDING_ORDERS", "ORDER_PENDING_COUNT_INTERVAL", "ORDER_OVERLOAD_RETRY_AFTER"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad %s: %v, want an error naming it", want, err)
		}
	}
	if _, err := config.LoadFrom[order.Config]("ORDER", append(base, "ORDER_MAX_PENDING_ORDERS=many")); err == nil ||
		!strings.Contains(err.Error(), "ORDER_MAX_PENDING_ORDERS") {
		t.Errorf("non-numeric bound: %v", err)
	}
}

// A stuck threshold the deadline always beats would leave the stuck gauge
// (and its alert) at 0 for ever: start-up refuses it, naming both variables.
func TestConfigRejectsStuckAfterPastTheDeadline(t *testing.T) {
	base := []string{"ORDER_MYSQL_DSN=u:p@tcp(127.0.0.1:13306)/db", "ORDER_KAFKA_BROKERS=127.0.0.1:19092"}
	cfg, err := config.LoadFrom[order.Config]("ORDER", base)
	if err != nil || cfg.EffectiveStuckAfter() != 10*time.Second || cfg.EffectiveStuckAfter() >= cfg.Deadline {
		t.Fatalf("defaults: stuck after %s, deadline %s (%v): want 10 s, shorter than the deadline", cfg.EffectiveStuckAfter(), cfg.Deadline, err)
	}
	// A short deadline (tests, demos) without a stuck setting starts, with a
	// threshold under it.
	short, err := config.LoadFrom[order.Config]("ORDER", append(base, "ORDER_DEADLINE=2s"))
	if err != nil || short.EffectiveStuckAfter() >= short.Deadline || short.EffectiveStuckAfter() <= 0 {
		t.Fatalf("deadline 2s: stuck after %s (%v), want a positive threshold under it", short.EffectiveStuckAfter(), err)
	}
	for _, env := range [][]string{{"ORDER_STUCK_AFTER=30s"}, {"ORDER_STUCK_AFTER=1m", "ORDER_DEADLINE=45s"}} {
		_, err := config.LoadFrom[order.Config]("ORDER", append(base, env...))
		if err == nil || !strings.Contains(err.Error(), "ORDER_STUCK_AFTER") || !strings.Contains(err.Error(), "ORDER_DEADLINE") {
			t.Errorf("%v: %v, want an error naming ORDER_STUCK_AFTER and ORDER_DEADLINE", env, err)
		}
	}
}
