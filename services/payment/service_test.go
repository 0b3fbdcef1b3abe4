package payment_test

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/inbox"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	"github.com/sagasuite/sagasuite/services/payment"
)

// wait bounds every wait of this test; nothing asserts on timing.
const wait = 2 * time.Minute

var (
	processedType = eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED
	failedType    = eventsv1.EventType_EVENT_TYPE_PAYMENT_FAILED
	refundedType  = eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED
)

// The payment service started through Run on the real stack: saga events in
// and out over Kafka, state in a fresh MariaDB database, read through gRPC.
func TestPaymentService(t *testing.T) {
	s := start(t)
	t.Run("STOCK_RESERVED is charged: CAPTURED + PAYMENT_PROCESSED", s.happyPath)
	t.Run("a declined charge: FAILED + PAYMENT_FAILED", s.declined)
	t.Run("SHIPMENT_FAILED refunds once; the ORDER_CANCELLED after it changes nothing", s.shipmentFailedThenCancelled)
	t.Run("ORDER_CANCELLED after the charge refunds", s.cancelledAfterCharge)
	t.Run("ORDER_CANCELLED before STOCK_RESERVED: nothing is charged", s.cancelledBeforeCharge)
	t.Run("a duplicate delivery changes nothing", s.duplicateDelivery)
	t.Run("ListPayments pages newest first with refunds", s.listPayments)
	t.Run("invalid input is InvalidArgument naming the field", s.invalidInput)
	// Last: a dead-lettered event would have been published before any later
	// event of its order was handled, and every subtest awaited its last one.
	t.Run("nothing was dead-lettered", s.nothingDeadLettered)
}

func TestConfigNamesEveryBadVariable(t *testing.T) {
	_, err := config.LoadFrom[payment.Config]("PAYMENT", []string{
		"PAYMENT_KAFKA_BROKERS=127.0.0.1:19092", "PAYMENT_GATEWAY_FAILURE_RATE=1.5", "PAYMENT_MYSQL_MAX_OPEN_CONNS=0",
	})
	// config.Load runs Validate only once every variable parses.
	if err == nil || !strings.Contains(err.Error(), "PAYMENT_MYSQL_DSN") {
		t.Errorf("error %v does not name PAYMENT_MYSQL_DSN", err)
	}
	_, err = config.LoadFrom[payment.Config]("PAYMENT", []string{
		"PAYMENT_KAFKA_BROKERS=127.0.0.1:19092", "PAYMENT_MYSQL_DSN=u:p@tcp(127.0.0.1:1)/db", "PAYMENT_GATEWAY_FAILURE_RATE=1.5", "PAYMENT_MYSQL_MAX_OPEN_CONNS=0",
	})
	for _, name := range []string{"PAYMENT_GATEWAY_FAILURE_RATE", "PAYMENT_MYSQL_MAX_OPEN_CONNS"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
	cfg, err := config.LoadFrom[payment.Config]("PAYMENT", []string{
		"PAYMENT_KAFKA_BROKERS=127.0.0.1:19092", "PAYMENT_MYSQL_DSN=u:p@tcp(127.0.0.1:1)/db", "PAYMENT_GATEWAY_FAILURE_RATE=0.25",
	})
	if err != nil || cfg.GatewayFailureRate != 0.25 || cfg.MySQLMaxOpenConns != 16 {
		t.Fatalf("good config: %+v, %v", cfg, err)
	}
}

type suite struct {
	client paymentv1.PaymentServiceClient
	db     *sql.DB
	pub    *bus.Producer
	seen   *collector
	now    time.Time
	addr   string // the gRPC API, for callers other than the test's service identity
}

func start(t *testing.T) *suite {
	t.Helper()
	db, dsn := testenv.MySQLDatabase(t)
	prefix := testenv.UniqueName("paymenttest-") + "."
	cfg := payment.Config{
		Common:            servicetest.Common(),
		KafkaConfig:       servicetest.SagaTopics(t, service.KafkaConfig{Brokers: testenv.Brokers(), TopicPrefix: prefix, Partitions: 1, ReplicationFactor: 1}),
		MySQLDSN:          dsn,
		MySQLMaxOpenConns: 8,
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	rt := service.Runtime{Clock: clock.NewManual(now), SharedTelemetry: true, Registry: prometheus.NewRegistry()}

	conn := servicetest.Start(t, rt, func(ctx context.Context, rt service.Runtime) error { return payment.Run(ctx, cfg, rt) })
	pub := bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(prefix))
	t.Cleanup(func() { pub.Close() })
	seen := collect(t, cfg.KafkaConfig, prefix+events.TopicPayments, prefix+payment.Name+".dlq")
	return &suite{client: paymentv1.NewPaymentServiceClient(conn), db: db, pub: pub, seen: seen, now: now, addr: conn.Target()}
}

// --- the subtests ---

type order struct{ id, customer string }

func newOrder(t *testing.T, name string) order {
	return order{id: testenv.IDFor(t.Name() + "/" + name), customer: testenv.IDFor(t.Name() + "/customer")}
}

func eur(n int64) *commonv1.Money { return &commonv1.Money{AmountMinor: n, Currency: "EUR"} }

func stockReserved(token string, amount int64) *eventsv1.StockReserved {
	return &eventsv1.StockReserved{
		ReservationId: events.NewID(), Total: eur(amount), PaymentMethodToken: token,
		Lines:           []*commonv1.LineItem{{Sku: "BOOK-1", Quantity: 2, UnitPriceMinor: amount / 2}},
		ShippingAddress: &commonv1.Address{Name: "Ada", Line1: "1 Main St", City: "Berlin", PostalCode: "10115", CountryCode: "DE"},
	}
}

func shipmentFailed() *eventsv1.ShipmentFailed {
	return &eventsv1.ShipmentFailed{ShipmentId: events.NewID(),
		Reason: eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_UNDELIVERABLE_ADDRESS, Detail: "no such street"}
}

func orderCancelled() *eventsv1.OrderCancelled {
	return &eventsv1.OrderCancelled{Reason: eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED}
}

func (s *suite) happyPath(t *testing.T) {
	o := newOrder(t, "order")
	reserved := s.publish(t, o, stockReserved("tok_visa", 2500))
	env := s.seen.wait(t, o.id, processedType)
	pp := env.GetPaymentProcessed()
	if env.GetCausationId() != reserved.GetEventId() || env.GetProducer() != "payment" || env.GetCustomerId() != o.customer ||
		!proto.Equal(pp.GetAmount(), eur(2500)) || !env.GetOccurredAt().AsTime().Equal(s.now) {
		t.Errorf("PAYMENT_PROCESSED = %v, want 2500 EUR caused by %s at the injected time", env, reserved.GetEventId())
	}
	p := s.get(t, o.id)
	if p.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED || p.GetPaymentId() != pp.GetPaymentId() ||
		!proto.Equal(p.GetAmount(), eur(2500)) || p.GetCustomerId() != o.customer || len(p.GetRefunds()) != 0 {
		t.Errorf("GetPayment = %v, want CAPTURED %s", p, pp.GetPaymentId())
	}
}

func (s *suite) declined(t *testing.T) {
	for _, tt := range []struct {
		token  string
		amount int64
		reason eventsv1.PaymentFailureReason
		code   string
	}{
		{"tok_insufficient_funds", 2500, eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_INSUFFICIENT_FUNDS, "insufficient_funds"},
		{"tok_visa", 1_000_002, eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_DECLINED, "amount_limit_exceeded"},
	} {
		o := newOrder(t, tt.code)
		reserved := s.publish(t, o, stockReserved(tt.token, tt.amount))
		env := s.seen.wait(t, o.id, failedType)
		pf := env.GetPaymentFailed()
		if env.GetCausationId() != reserved.GetEventId() || pf.GetReason() != tt.reason || pf.GetDeclineCode() != tt.code || pf.GetDetail() == "" {
			t.Errorf("PAYMENT_FAILED = %v, want %s/%s caused by %s", env, tt.reason, tt.code, reserved.GetEventId())
		}
		p := s.get(t, o.id)
		if p.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_FAILED || p.GetFailureReason() != tt.reason || p.GetDeclineCode() != tt.code {
			t.Errorf("GetPayment = %v, want FAILED %s/%s", p, tt.reason, tt.code)
		}
	}
}

func (s *suite) shipmentFailedThenCancelled(t *testing.T) {
	o := newOrder(t, "order")
	s.publish(t, o, stockReserved("tok_visa", 3000))
	processed := s.seen.wait(t, o.id, processedType)
	failure := s.publish(t, o, shipmentFailed())
	refund := s.seen.wait(t, o.id, refundedType)
	pr := refund.GetPaymentRefunded()
	if refund.GetCausationId() != failure.GetEventId() || pr.GetReason() != eventsv1.RefundReason_REFUND_REASON_SHIPMENT_FAILED ||
		pr.GetPaymentId() != processed.GetPaymentProcessed().GetPaymentId() || !proto.Equal(pr.GetAmount(), eur(3000)) {
		t.Errorf("PAYMENT_REFUNDED = %v, want 3000 EUR for SHIPMENT_FAILED caused by %s", refund, failure.GetEventId())
	}
	cancel := s.publish(t, o, orderCancelled())
	s.awaitProcessed(t, cancel)
	if n := s.outboxRows(t, o.id); n != 2 {
		t.Errorf("%d events stored for the order, want 2 (PAYMENT_PROCESSED, PAYMENT_REFUNDED)", n)
	}
	p := s.get(t, o.id)
	if p.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED || len(p.GetRefunds()) != 1 ||
		p.GetRefunds()[0].GetRefundId() != pr.GetRefundId() || p.GetRefunds()[0].GetReason() != eventsv1.RefundReason_REFUND_REASON_SHIPMENT_FAILED {
		t.Errorf("GetPayment = %v, want REFUNDED with refund %s", p, pr.GetRefundId())
	}
}

func (s *suite) cancelledAfterCharge(t *testing.T) {
	o := newOrder(t, "order")
	s.publish(t, o, stockReserved("tok_visa", 1500))
	s.seen.wait(t, o.id, processedType)
	cancel := s.publish(t, o, orderCancelled())
	refund := s.seen.wait(t, o.id, refundedType)
	if refund.GetCausationId() != cancel.GetEventId() ||
		refund.GetPaymentRefunded().GetReason() != eventsv1.RefundReason_REFUND_REASON_ORDER_CANCELLED {
		t.Errorf("PAYMENT_REFUNDED = %v, want ORDER_CANCELLED caused by %s", refund, cancel.GetEventId())
	}
	if p := s.get(t, o.id); p.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED {
		t.Errorf("GetPayment = %v, want REFUNDED", p)
	}
}

func (s *suite) cancelledBeforeCharge(t *testing.T) {
	o := newOrder(t, "order")
	s.awaitProcessed(t, s.publish(t, o, orderCancelled()))
	s.awaitProcessed(t, s.publish(t, o, stockReserved("tok_visa", 2500)))
	if n := s.outboxRows(t, o.id); n != 0 {
		t.Errorf("%d events stored for an order cancelled before its charge, want none", n)
	}
	if _, err := s.client.GetPayment(context.Background(), &paymentv1.GetPaymentRequest{OrderId: o.id}); status.Code(err) != codes.NotFound {
		t.Errorf("GetPayment = %v, want NotFound", err)
	}
}

func (s *suite) duplicateDelivery(t *testing.T) {
	o := newOrder(t, "order")
	reserved := s.publish(t, o, stockReserved("tok_visa", 800))
	s.publishEnvelope(t, reserved) // the same event again
	// A later event on the same topic and key runs after both copies; it is
	// a second STOCK_RESERVED (another id) and must change nothing either.
	s.awaitProcessed(t, s.publish(t, o, stockReserved("tok_visa", 800)))
	failure := s.publish(t, o, shipmentFailed())
	s.publishEnvelope(t, failure)
	s.awaitProcessed(t, s.publish(t, o, shipmentFailed()))
	if n := s.outboxRows(t, o.id); n != 2 {
		t.Errorf("%d events stored after duplicates, want 2 (one PAYMENT_PROCESSED, one PAYMENT_REFUNDED)", n)
	}
	s.seen.wait(t, o.id, refundedType)
	if n := s.seen.count(o.id, processedType); n != 1 {
		t.Errorf("%d PAYMENT_PROCESSED published, want 1", n)
	}
	if p := s.get(t, o.id); p.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED || len(p.GetRefunds()) != 1 {
		t.Errorf("GetPayment = %v, want REFUNDED once", p)
	}
}

func (s *suite) listPayments(t *testing.T) {
	customer := testenv.IDFor(t.Name() + "/customer")
	var orders []string
	for i := range 3 {
		o := order{id: testenv.IDFor(t.Name() + "/order" + string(rune('a'+i))), customer: customer}
		s.publish(t, o, stockReserved("tok_visa", int64(100*(i+1))))
		s.seen.wait(t, o.id, processedType)
		orders = append(orders, o.id)
	}
	s.publish(t, order{id: orders[0], customer: customer}, orderCancelled())
	s.seen.wait(t, orders[0], refundedType)

	var got []*paymentv1.Payment
	token := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		resp, err := s.client.ListPayments(context.Background(), &paymentv1.ListPaymentsRequest{CustomerId: customer, PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.GetPayments()...)
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(got) != 3 {
		t.Fatalf("listed %d payments, want 3", len(got))
	}
	// One clock: created_at ties, so newest first falls back to order id, descending.
	for i := 1; i < len(got); i++ {
		if got[i-1].GetOrderId() < got[i].GetOrderId() {
			t.Errorf("not newest first: %s before %s", got[i-1].GetOrderId(), got[i].GetOrderId())
		}
	}
	for _, p := range got {
		refunded := p.GetOrderId() == orders[0]
		if refunded != (len(p.GetRefunds()) == 1) || refunded != (p.GetStatus() == paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED) {
			t.Errorf("payment %v: refunds listed wrongly", p)
		}
	}
}

func (s *suite) invalidInput(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		call  func() error
		field string
	}{
		{"GetPayment without a UUID", func() error {
			_, err := s.client.GetPayment(ctx, &paymentv1.GetPaymentRequest{OrderId: "nope"})
			return err
		}, "order_id"},
		{"ListPayments without a UUID", func() error {
			_, err := s.client.ListPayments(ctx, &paymentv1.ListPaymentsRequest{CustomerId: "nope"})
			return err
		}, "customer_id"},
		{"ListPayments page too large", func() error {
			_, err := s.client.ListPayments(ctx, &paymentv1.ListPaymentsRequest{CustomerId: events.NewID(), PageSize: 101})
			return err
		}, "page_size"},
		{"ListPayments with a forged token", func() error {
			_, err := s.client.ListPayments(ctx, &paymentv1.ListPaymentsRequest{CustomerId: events.NewID(), PageToken: "forged"})
			return err
		}, "page_token"},
	} {
		err := tt.call()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.field) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tt.name, err, tt.field)
		}
	}
	if _, err := s.client.GetPayment(ctx, &paymentv1.GetPaymentRequest{OrderId: events.NewID()}); status.Code(err) != codes.NotFound {
		t.Errorf("GetPayment of an unknown order: %v, want NotFound", err)
	}
}

func (s *suite) nothingDeadLettered(t *testing.T) {
	if dead := s.seen.deadLettered(); len(dead) > 0 {
		t.Errorf("dead-lettered %d events, first %v", len(dead), dead[0])
	}
}

// --- helpers ---

func (s *suite) publish(t *testing.T, o order, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: o.id, CustomerID: o.customer, Producer: "test",
		CausationID: events.NewID(), OccurredAt: s.now}, payload)
	if err != nil {
		t.Fatal(err)
	}
	s.publishEnvelope(t, env)
	return env
}

func (s *suite) publishEnvelope(t *testing.T, env *eventsv1.Envelope) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	msg, err := bus.EncodeEnvelope(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.pub.Publish(ctx, msg); err != nil {
		t.Fatal(err)
	}
}

// awaitProcessed waits until the service's inbox holds env: its effect (or
// its decision to do nothing) is committed.
func (s *suite) awaitProcessed(t *testing.T, env *eventsv1.Envelope) {
	t.Helper()
	waitUntil(t, events.TypeName(env.GetType())+" "+env.GetEventId()+" processed", func() bool {
		done, err := inbox.Processed(context.Background(), s.db, payment.Name, env.GetEventId())
		return err == nil && done
	})
}

// outboxRows counts the events the service stored for an order.
func (s *suite) outboxRows(t *testing.T, orderID string) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow("SELECT COUNT(*) FROM outbox WHERE msg_key = ?", orderID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (s *suite) get(t *testing.T, orderID string) *paymentv1.Payment {
	t.Helper()
	resp, err := s.client.GetPayment(context.Background(), &paymentv1.GetPaymentRequest{OrderId: orderID})
	if err != nil {
		t.Fatalf("GetPayment %s: %v", orderID, err)
	}
	return resp.GetPayment()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// collector reads what the service publishes (and dead-letters) in a group of its own.
type collector struct {
	mu      sync.Mutex
	byOrder map[string][]*eventsv1.Envelope
	dead    []*eventsv1.Envelope
	dlq     string
	changed chan struct{}
}

func collect(t *testing.T, kafka service.KafkaConfig, topic, dlq string) *collector {
	t.Helper()
	c := &collector{byOrder: map[string][]*eventsv1.Envelope{}, dlq: dlq, changed: make(chan struct{}, 1)}
	consumer, err := bus.NewConsumer(bus.ConsumerConfig{Brokers: kafka.Brokers, Group: testenv.UniqueName("paymenttest-reader-"),
		Topics: []string{topic, dlq}}, c.handle)
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

func (c *collector) handle(ctx context.Context, env *eventsv1.Envelope) error {
	c.mu.Lock()
	if env.GetProducer() == "payment" {
		c.byOrder[env.GetOrderId()] = append(c.byOrder[env.GetOrderId()], env)
	} else {
		c.dead = append(c.dead, env) // only the DLQ carries other producers' events
	}
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) count(orderID string, typ eventsv1.EventType) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, env := range c.byOrder[orderID] {
		if env.GetType() == typ {
			n++
		}
	}
	return n
}

func (c *collector) deadLettered() []*eventsv1.Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*eventsv1.Envelope(nil), c.dead...)
}

// wait returns the first event of the type for the order, waiting for it.
func (c *collector) wait(t *testing.T, orderID string, typ eventsv1.EventType) *eventsv1.Envelope {
	t.Helper()
	timeout := time.After(wait)
	for {
		c.mu.Lock()
		for _, env := range c.byOrder[orderID] {
			if env.GetType() == typ {
				c.mu.Unlock()
				return env
			}
		}
		c.mu.Unlock()
		select {
		case <-c.changed:
		case <-time.After(100 * time.Millisecond): // another waiter may have taken the signal
		case <-timeout:
			t.Fatalf("no %s for order %s within %s", events.TypeName(typ), orderID, wait)
		}
	}
}
