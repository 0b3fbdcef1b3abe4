package inventory_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/inbox"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	"github.com/sagasuite/sagasuite/services/inventory"
)

const wait = 2 * time.Minute

var now = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// harness is one inventory service started through Run on a fresh database
// and a unique topic prefix, with a producer for the events it consumes and a
// reader of the events it emits.
type harness struct {
	db       *sql.DB
	client   inventoryv1.InventoryServiceClient
	producer *bus.Producer
	emitted  *collector
	addr     string // the gRPC API, for callers other than the test's service identity
}

func start(t *testing.T) *harness {
	t.Helper()
	db, dsn := testenv.MySQLDatabase(t)
	prefix := testenv.UniqueName("inventory-") + "."
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := inventory.Config{
		Common:      servicetest.Common(),
		KafkaConfig: servicetest.SagaTopics(t, service.KafkaConfig{Brokers: testenv.Brokers(), TopicPrefix: prefix, Partitions: 3, ReplicationFactor: 1}),
		MySQLDSN:    dsn,
	}
	rt := service.Runtime{Clock: clock.NewManual(now), Logger: quiet}
	conn := servicetest.Start(t, rt, func(ctx context.Context, rt service.Runtime) error { return inventory.Run(ctx, cfg, rt) })
	producer := bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(prefix))
	t.Cleanup(func() { producer.Close() })
	return &harness{db: db, client: inventoryv1.NewInventoryServiceClient(conn), producer: producer,
		emitted: readEmitted(t, prefix, quiet), addr: conn.Target()}
}

// collector keeps the events inventory emitted, by order, without duplicates.
type collector struct {
	mu      sync.Mutex
	seen    map[string]bool
	byOrder map[string][]*eventsv1.Envelope
	changed chan struct{}
}

func readEmitted(t *testing.T, prefix string, logger *slog.Logger) *collector {
	c := &collector{seen: map[string]bool{}, byOrder: map[string][]*eventsv1.Envelope{}, changed: make(chan struct{})}
	consumer, err := bus.NewConsumer(bus.ConsumerConfig{Brokers: testenv.Brokers(), Group: prefix + "test-reader",
		Topics: []string{prefix + events.TopicInventory}, Logger: logger}, func(_ context.Context, env *eventsv1.Envelope) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.seen[env.GetEventId()] {
			c.seen[env.GetEventId()] = true
			c.byOrder[env.GetOrderId()] = append(c.byOrder[env.GetOrderId()], env)
			close(c.changed)
			c.changed = make(chan struct{})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = consumer.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// nth waits for the n-th (1-based) event emitted for orderID and checks its type.
func (c *collector) nth(t *testing.T, orderID string, n int, want eventsv1.EventType) *eventsv1.Envelope {
	t.Helper()
	timeout := time.After(wait)
	for {
		c.mu.Lock()
		got, changed := c.byOrder[orderID], c.changed
		c.mu.Unlock()
		if len(got) >= n {
			if env := got[n-1]; env.GetType() != want {
				t.Fatalf("event %d for order %s is %s, want %s", n, orderID, events.TypeName(env.GetType()), events.TypeName(want))
			}
			return got[n-1]
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("inventory emitted %d events for order %s within %s, want at least %d (%s next)", len(got), orderID, wait, n, events.TypeName(want))
		}
	}
}

func (h *harness) publish(t *testing.T, envs ...*eventsv1.Envelope) {
	t.Helper()
	for _, env := range envs {
		msg, err := bus.EncodeEnvelope(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.producer.Publish(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
}

// processed waits until inventory's inbox holds the event: its effect (or
// no-op) is committed, together with whatever it emitted.
func (h *harness) processed(t *testing.T, env *eventsv1.Envelope) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		ok, err := inbox.Processed(context.Background(), h.db, inventory.Name, env.GetEventId())
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("inventory did not process %s %s within %s", events.TypeName(env.GetType()), env.GetEventId(), wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// outboxCount is how many events inventory has written for an order: the
// outbox is where every emitted event starts, so it proves an absence.
func (h *harness) outboxCount(t *testing.T, orderID string) int {
	t.Helper()
	var n int
	if err := h.db.QueryRow("SELECT COUNT(*) FROM outbox WHERE msg_key = ?", orderID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (h *harness) product(t *testing.T, sku string, price int64, units int32) {
	t.Helper()
	ctx := context.Background()
	if _, err := h.client.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{Sku: sku, Name: "Product " + sku,
		UnitPrice: &commonv1.Money{AmountMinor: price, Currency: "EUR"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.AddStock(ctx, &inventoryv1.AddStockRequest{Sku: sku, Quantity: units, RequestId: events.NewID()}); err != nil {
		t.Fatal(err)
	}
}

// stock reads a SKU's levels through the API, checks the invariant and
// compares available/reserved/sold/added/restored.
func (h *harness) stock(t *testing.T, sku string, want [5]int64) {
	t.Helper()
	resp, err := h.client.GetStock(context.Background(), &inventoryv1.GetStockRequest{Sku: sku})
	if err != nil {
		t.Fatal(err)
	}
	s := resp.GetStock()
	if s.GetAvailable() < 0 || s.GetReserved() < 0 || s.GetAdded() != s.GetAvailable()+s.GetReserved()+s.GetSold()-s.GetRestored() {
		t.Fatalf("invariant broken for %s: %v", sku, s)
	}
	got := [5]int64{s.GetAvailable(), s.GetReserved(), s.GetSold(), s.GetAdded(), s.GetRestored()}
	if got != want {
		t.Fatalf("%s available/reserved/sold/added/restored = %v, want %v", sku, got, want)
	}
}

// saga builds the events of one order as its other services would send them.
type saga struct {
	orderID, customerID string
	lines               []*commonv1.LineItem
	currency            string
}

func newSaga(currency string, lines ...*commonv1.LineItem) *saga {
	return &saga{orderID: events.NewID(), customerID: events.NewID(), lines: lines, currency: currency}
}

func line(sku string, quantity int32, price int64) *commonv1.LineItem {
	return &commonv1.LineItem{Sku: sku, Quantity: quantity, UnitPriceMinor: price}
}

var address = &commonv1.Address{Name: "Ada Lovelace", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"}

func (s *saga) event(t *testing.T, producer string, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: s.orderID, CustomerID: s.customerID, Producer: producer,
		CausationID: events.NewID(), OccurredAt: now}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (s *saga) total() int64 {
	var sum int64
	for _, l := range s.lines {
		sum += int64(l.GetQuantity()) * l.GetUnitPriceMinor()
	}
	return sum
}

func (s *saga) created(t *testing.T) *eventsv1.Envelope {
	return s.event(t, "order", &eventsv1.OrderCreated{Lines: s.lines, Total: &commonv1.Money{AmountMinor: s.total(), Currency: s.currency},
		ShippingAddress: address, PaymentMethodToken: "tok_visa", Deadline: timestamppb.New(now.Add(time.Minute))})
}

func (s *saga) cancelled(t *testing.T) *eventsv1.Envelope {
	return s.event(t, "order", &eventsv1.OrderCancelled{Reason: eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED})
}

func (s *saga) paid(t *testing.T) *eventsv1.Envelope {
	return s.event(t, "payment", &eventsv1.PaymentProcessed{PaymentId: events.NewID(), Amount: &commonv1.Money{AmountMinor: s.total(), Currency: s.currency}})
}

func (s *saga) paymentFailed(t *testing.T) *eventsv1.Envelope {
	return s.event(t, "payment", &eventsv1.PaymentFailed{Reason: eventsv1.PaymentFailureReason_PAYMENT_FAILURE_REASON_DECLINED})
}

func (s *saga) shipmentFailed(t *testing.T) *eventsv1.Envelope {
	return s.event(t, "shipping", &eventsv1.ShipmentFailed{ShipmentId: events.NewID(), Reason: eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_UNDELIVERABLE_ADDRESS})
}

func assertFrom(t *testing.T, env, cause *eventsv1.Envelope) {
	t.Helper()
	if env.GetCausationId() != cause.GetEventId() || env.GetProducer() != "inventory" || env.GetCustomerId() != cause.GetCustomerId() ||
		!env.GetOccurredAt().AsTime().Equal(now) || env.GetEventId() != events.DeriveID(cause.GetEventId(), env.GetType()) {
		t.Fatalf("%s not derived from %s: %v", events.TypeName(env.GetType()), cause.GetEventId(), env)
	}
}

func restored(t *testing.T, env *eventsv1.Envelope, reason eventsv1.RestoreReason, wasDeducted bool, reservationID string) {
	t.Helper()
	p := env.GetStockRestored()
	if p.GetReason() != reason || p.GetWasDeducted() != wasDeducted || p.GetReservationId() != reservationID || len(p.GetLines()) == 0 {
		t.Fatalf("STOCK_RESTORED %v, want reason %s was_deducted %v", p, reason, wasDeducted)
	}
}

func TestInventoryService(t *testing.T) {
	h := start(t)
	ctx := context.Background()

	t.Run("happy path: reserved, then deducted; a duplicate changes nothing", func(t *testing.T) {
		h.product(t, "HAPPY-1", 500, 10)
		h.product(t, "HAPPY-2", 250, 4)
		s := newSaga("EUR", line("HAPPY-1", 3, 500), line("HAPPY-2", 4, 250))
		created := s.created(t)
		h.publish(t, created)
		env := h.emitted.nth(t, s.orderID, 1, eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED)
		assertFrom(t, env, created)
		r := env.GetStockReserved()
		if r.GetTotal().GetAmountMinor() != 2500 || r.GetTotal().GetCurrency() != "EUR" || r.GetPaymentMethodToken() != "tok_visa" ||
			!proto.Equal(r.GetShippingAddress(), address) || len(r.GetLines()) != 2 || !proto.Equal(r.GetLines()[1], s.lines[1]) || r.GetReservationId() == "" {
			t.Fatalf("STOCK_RESERVED %v", r)
		}
		h.stock(t, "HAPPY-1", [5]int64{7, 3, 0, 10, 0})
		h.stock(t, "HAPPY-2", [5]int64{0, 4, 0, 4, 0})

		paid := s.paid(t)
		h.publish(t, paid)
		env = h.emitted.nth(t, s.orderID, 2, eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED)
		assertFrom(t, env, paid)
		u := env.GetInventoryUpdated()
		if u.GetReservationId() != r.GetReservationId() || !proto.Equal(u.GetShippingAddress(), address) || len(u.GetLines()) != 2 {
			t.Fatalf("INVENTORY_UPDATED %v", u)
		}
		h.stock(t, "HAPPY-1", [5]int64{7, 0, 3, 10, 0})
		h.stock(t, "HAPPY-2", [5]int64{0, 0, 4, 4, 0})

		// Redeliver both, then a no-op marker behind each on its topic and key:
		// once the markers are processed, so are the copies before them.
		h.publish(t, created, paid)
		orderMarker := s.created(t)         // a second ORDER_CREATED for a decided order: a no-op
		paymentMarker := s.paymentFailed(t) // PAYMENT_FAILED on DEDUCTED: a no-op
		h.publish(t, orderMarker, paymentMarker)
		h.processed(t, orderMarker)
		h.processed(t, paymentMarker)
		if n := h.outboxCount(t, s.orderID); n != 2 {
			t.Fatalf("%d events for the order after duplicates, want 2", n)
		}
		h.stock(t, "HAPPY-1", [5]int64{7, 0, 3, 10, 0})
		h.stock(t, "HAPPY-2", [5]int64{0, 0, 4, 4, 0})
	})

	t.Run("out of stock", func(t *testing.T) {
		h.product(t, "OOS-1", 100, 5)
		h.product(t, "OOS-2", 100, 5)
		tests := []struct {
			name      string
			saga      *saga
			sku       string
			requested int32
			available int64
			reason    eventsv1.OutOfStockReason
		}{
			{"insufficient stock on the second line", newSaga("EUR", line("OOS-1", 5, 100), line("OOS-2", 6, 100)), "OOS-2", 6, 5,
				eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_INSUFFICIENT_STOCK},
			{"unknown sku", newSaga("EUR", line("OOS-1", 1, 100), line("NO-SUCH-SKU", 1, 100)), "NO-SUCH-SKU", 1, 0,
				eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_UNKNOWN_SKU},
			{"price mismatch", newSaga("EUR", line("OOS-1", 1, 99)), "OOS-1", 1, 5,
				eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_PRICE_MISMATCH},
			{"currency mismatch", newSaga("USD", line("OOS-2", 2, 100)), "OOS-2", 2, 5,
				eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_CURRENCY_MISMATCH},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				created := tt.saga.created(t)
				h.publish(t, created)
				env := h.emitted.nth(t, tt.saga.orderID, 1, eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK)
				assertFrom(t, env, created)
				o := env.GetOutOfStock()
				if o.GetSku() != tt.sku || o.GetRequested() != tt.requested || o.GetAvailable() != tt.available || o.GetReason() != tt.reason {
					t.Fatalf("OUT_OF_STOCK %v", o)
				}
				// Nothing is held; a later ORDER_CANCELLED has nothing to give back.
				cancelled := tt.saga.cancelled(t)
				h.publish(t, cancelled)
				h.processed(t, cancelled)
				if n := h.outboxCount(t, tt.saga.orderID); n != 1 {
					t.Fatalf("%d events, want only OUT_OF_STOCK", n)
				}
				h.stock(t, "OOS-1", [5]int64{5, 0, 0, 5, 0})
				h.stock(t, "OOS-2", [5]int64{5, 0, 0, 5, 0})
			})
		}
	})

	// Every compensation: the restore event, the stock through the API, and
	// late events after it (another compensation, a late step) doing nothing.
	type build func(*saga, *testing.T) *eventsv1.Envelope
	compensations := []struct {
		name        string
		sku         string
		paid        bool // deducted before the compensation
		compensate  build
		reason      eventsv1.RestoreReason
		wasDeducted bool
		want        [5]int64 // available, reserved, sold, added, restored afterwards
		late        []build
	}{
		{"payment failed releases the reservation", "PAYFAIL", false, (*saga).paymentFailed,
			eventsv1.RestoreReason_RESTORE_REASON_PAYMENT_FAILED, false, [5]int64{5, 0, 0, 5, 0},
			[]build{(*saga).cancelled, (*saga).paid}},
		{"cancel of a reservation releases it", "CANCEL-RES", false, (*saga).cancelled,
			eventsv1.RestoreReason_RESTORE_REASON_ORDER_CANCELLED, false, [5]int64{5, 0, 0, 5, 0},
			[]build{(*saga).paid, (*saga).shipmentFailed}},
		{"cancel after deduction restores the sold units", "CANCEL-DED", true, (*saga).cancelled,
			eventsv1.RestoreReason_RESTORE_REASON_ORDER_CANCELLED, true, [5]int64{5, 0, 2, 5, 2},
			[]build{(*saga).shipmentFailed, (*saga).paid}},
		{"shipment failed restores the sold units", "SHIPFAIL", true, (*saga).shipmentFailed,
			eventsv1.RestoreReason_RESTORE_REASON_SHIPMENT_FAILED, true, [5]int64{5, 0, 2, 5, 2},
			[]build{(*saga).cancelled, (*saga).paymentFailed}},
	}
	for _, tt := range compensations {
		t.Run(tt.name, func(t *testing.T) {
			h.product(t, tt.sku, 100, 5)
			s := newSaga("EUR", line(tt.sku, 2, 100))
			h.publish(t, s.created(t))
			reservationID := h.emitted.nth(t, s.orderID, 1, eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED).GetStockReserved().GetReservationId()
			h.stock(t, tt.sku, [5]int64{3, 2, 0, 5, 0})
			emitted := 1
			if tt.paid {
				h.publish(t, s.paid(t))
				emitted++
				h.emitted.nth(t, s.orderID, emitted, eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED)
				h.stock(t, tt.sku, [5]int64{3, 0, 2, 5, 0})
			}
			cause := tt.compensate(s, t)
			h.publish(t, cause)
			emitted++
			env := h.emitted.nth(t, s.orderID, emitted, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED)
			assertFrom(t, env, cause)
			restored(t, env, tt.reason, tt.wasDeducted, reservationID)
			h.stock(t, tt.sku, tt.want)

			for _, late := range tt.late {
				env := late(s, t)
				h.publish(t, env)
				h.processed(t, env)
			}
			if n := h.outboxCount(t, s.orderID); n != emitted {
				t.Fatalf("%d events after late ones, want %d", n, emitted)
			}
			h.stock(t, tt.sku, tt.want)
		})
	}

	t.Run("cancel before ORDER_CREATED: the late order reserves nothing", func(t *testing.T) {
		h.product(t, "TOMBSTONE", 100, 5)
		s := newSaga("EUR", line("TOMBSTONE", 1, 100))
		cancelled, created := s.cancelled(t), s.created(t)
		h.publish(t, cancelled, created)
		h.processed(t, created)
		if n := h.outboxCount(t, s.orderID); n != 0 {
			t.Fatalf("%d events for a cancelled order, want none", n)
		}
		h.stock(t, "TOMBSTONE", [5]int64{5, 0, 0, 5, 0})
	})

	t.Run("catalog API", func(t *testing.T) {
		req := &inventoryv1.AddStockRequest{Sku: "CATALOG-1", Quantity: 3, RequestId: events.NewID()}
		if _, err := h.client.AddStock(ctx, req); status.Code(err) != codes.NotFound {
			t.Fatalf("AddStock of an unknown sku: %v, want NotFound", err)
		}
		if _, err := h.client.GetStock(ctx, &inventoryv1.GetStockRequest{Sku: "CATALOG-1"}); status.Code(err) != codes.NotFound {
			t.Fatalf("GetStock of an unknown sku: %v, want NotFound", err)
		}
		up, err := h.client.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{Sku: "CATALOG-1", Name: "Lamp", UnitPrice: &commonv1.Money{AmountMinor: 4200, Currency: "EUR"}})
		if err != nil {
			t.Fatal(err)
		}
		if p := up.GetProduct(); p.GetName() != "Lamp" || p.GetStock().GetAvailable() != 0 || !p.GetCreateTime().AsTime().Equal(now) {
			t.Fatalf("created %v", p)
		}
		for range 2 {
			resp, err := h.client.AddStock(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetStock().GetAvailable() != 3 || resp.GetStock().GetAdded() != 3 {
				t.Fatalf("AddStock (retried) %v", resp.GetStock())
			}
		}
		conflict := proto.Clone(req).(*inventoryv1.AddStockRequest)
		conflict.Quantity = 4
		if _, err := h.client.AddStock(ctx, conflict); status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "request_id") {
			t.Fatalf("reused request_id: %v, want FailedPrecondition naming request_id", err)
		}

		var skus []string
		token := ""
		for {
			page, err := h.client.ListProducts(ctx, &inventoryv1.ListProductsRequest{PageSize: 3, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page.GetProducts() {
				skus = append(skus, p.GetSku())
			}
			if token = page.GetNextPageToken(); token == "" {
				break
			}
		}
		if len(skus) < 10 || skus[0] != "CANCEL-DED" || !strings.HasPrefix(fmt.Sprint(skus), "[CANCEL-DED CANCEL-RES CATALOG-1") {
			t.Fatalf("listed %v", skus)
		}
	})

	t.Run("invalid input is InvalidArgument naming the field", func(t *testing.T) {
		calls := []struct {
			field string
			call  func() error
		}{
			{"sku", func() error {
				_, err := h.client.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{Sku: "bad sku", Name: "x", UnitPrice: &commonv1.Money{Currency: "EUR"}})
				return err
			}},
			{"unit_price", func() error {
				_, err := h.client.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{Sku: "OK-SKU", Name: "x"})
				return err
			}},
			{"unit_price.currency", func() error {
				_, err := h.client.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{Sku: "OK-SKU", Name: "x", UnitPrice: &commonv1.Money{Currency: "euro"}})
				return err
			}},
			{"unit_price.currency", func() error {
				_, err := h.client.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{Sku: "OK-SKU", Name: "x", UnitPrice: &commonv1.Money{Currency: "XXX"}})
				return err
			}},
			{"quantity", func() error {
				_, err := h.client.AddStock(ctx, &inventoryv1.AddStockRequest{Sku: "HAPPY-1", Quantity: 0, RequestId: events.NewID()})
				return err
			}},
			{"request_id", func() error {
				_, err := h.client.AddStock(ctx, &inventoryv1.AddStockRequest{Sku: "HAPPY-1", Quantity: 1, RequestId: "not-a-uuid"})
				return err
			}},
			{"sku", func() error {
				_, err := h.client.GetStock(ctx, &inventoryv1.GetStockRequest{Sku: ""})
				return err
			}},
			{"page_token", func() error {
				_, err := h.client.ListProducts(ctx, &inventoryv1.ListProductsRequest{PageToken: "%%%"})
				return err
			}},
			{"page_size", func() error {
				_, err := h.client.ListProducts(ctx, &inventoryv1.ListProductsRequest{PageSize: -1})
				return err
			}},
		}
		for _, c := range calls {
			err := c.call()
			if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), c.field+":") {
				t.Errorf("%s: got %v, want InvalidArgument naming %s", c.field, err, c.field)
			}
		}
		h.stock(t, "HAPPY-1", [5]int64{7, 0, 3, 10, 0})
	})
}
