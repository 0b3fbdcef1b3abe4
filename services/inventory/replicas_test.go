package inventory_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	"github.com/sagasuite/sagasuite/services/inventory"
)

// Two inventory processes start together on one empty database (both
// migrate) and share the consumer group; 160 orders compete for too little
// stock, every event is delivered twice, and one replica is replaced midway
// (the new one started before the old one stops, as a rolling update does).
// Each order is decided once, each step emits exactly one event, and every
// SKU's levels equal what the orders' outcomes add up to. Catalog requests
// retried on both replicas at once apply once.
func TestTwoReplicasOnOneStoreAndGroupWithARollingRestart(t *testing.T) {
	db, dsn := testenv.MySQLDatabase(t)
	prefix := testenv.UniqueName("inventory-") + "."
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := inventory.Config{
		Common:      servicetest.Common(),
		KafkaConfig: servicetest.SagaTopics(t, service.KafkaConfig{Brokers: testenv.Brokers(), TopicPrefix: prefix, Partitions: 3, ReplicationFactor: 1}),
		MySQLDSN:    dsn,
	}
	rt := service.Runtime{Clock: clock.NewManual(now), Logger: quiet}
	run := func(ctx context.Context, rt service.Runtime) error { return inventory.Run(ctx, cfg, rt) }
	a, b := servicetest.Launch(t, rt, run), servicetest.Launch(t, rt, run)
	clientA := inventoryv1.NewInventoryServiceClient(a.WaitReady())
	clientB := inventoryv1.NewInventoryServiceClient(b.WaitReady())
	producer := bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(prefix))
	t.Cleanup(func() { producer.Close() })
	h := &harness{db: db, client: clientA, producer: producer, emitted: readEmitted(t, prefix, quiet)}
	ctx := context.Background()

	// The catalog: each AddStock request sent to both replicas at once.
	skus := []string{"REP-1", "REP-2", "REP-3", "REP-4"}
	const unitsPerRequest, requestsPerSKU = 10, 3
	for _, sku := range append(slices.Clone(skus), "REP-EXTRA-A", "REP-EXTRA-B") {
		if _, err := clientB.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{Sku: sku, Name: sku,
			UnitPrice: &commonv1.Money{AmountMinor: 100, Currency: "EUR"}}); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(sku, "REP-EXTRA") {
			continue
		}
		for range requestsPerSKU {
			req := &inventoryv1.AddStockRequest{Sku: sku, Quantity: unitsPerRequest, RequestId: events.NewID()}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, c := range []inventoryv1.InventoryServiceClient{clientA, clientB} {
				wg.Go(func() { _, errs[i] = c.AddStock(ctx, req) })
			}
			wg.Wait()
			if errs[0] != nil || errs[1] != nil {
				t.Fatalf("AddStock on both replicas: %v / %v", errs[0], errs[1])
			}
		}
	}
	const added = unitsPerRequest * requestsPerSKU
	// One request id used for two SKUs on the two replicas at once: one
	// applies, the other is refused as a reused request id, never an
	// internal error.
	conflicts := 0
	for range 10 {
		reqID := events.NewID()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, c := range []inventoryv1.InventoryServiceClient{clientA, clientB} {
			wg.Go(func() {
				_, errs[i] = c.AddStock(ctx, &inventoryv1.AddStockRequest{Sku: "REP-EXTRA-" + string(rune('A'+i)), Quantity: 1, RequestId: reqID})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch status.Code(err) {
			case codes.OK:
				ok++
			case codes.FailedPrecondition:
				conflicts++
			default:
				t.Errorf("one request id on two SKUs at once: %v, want OK or FailedPrecondition", err)
			}
		}
		if ok != 1 {
			t.Errorf("one request id on two SKUs at once: %d applied, want 1 (%v)", ok, errs)
		}
	}
	for _, sku := range skus {
		h.stock(t, sku, [5]int64{added, 0, 0, added, 0})
	}

	// 160 orders of one or two lines; demand is about three times the stock.
	const orders = 160
	rng := rand.New(rand.NewPCG(13, 5))
	sagas := make([]*saga, orders)
	for i := range sagas {
		first := rng.IntN(len(skus))
		lines := []*commonv1.LineItem{line(skus[first], int32(1+rng.IntN(3)), 100)}
		if rng.IntN(2) == 0 {
			lines = append(lines, line(skus[(first+1)%len(skus)], int32(1+rng.IntN(2)), 100))
		}
		sagas[i] = newSaga("EUR", lines...)
	}
	twice := func(env *eventsv1.Envelope) { h.publish(t, env, env) }
	for _, s := range sagas {
		twice(s.created(t))
	}

	// What each order's outcome moves, per SKU: sold and restored units.
	sold, restoredUnits := map[string]int64{}, map[string]int64{}
	wantEvents := make([]int, orders)
	var replaced *servicetest.Instance
	for i, s := range sagas {
		if i == orders/2 { // the rolling update of replica B: C first, then B stops
			replaced = servicetest.Launch(t, rt, run)
			replaced.WaitReady()
			b.Stop()
		}
		decision := h.emitted.nth(t, s.orderID, 1, anyDecision(t, h, s))
		wantEvents[i] = 1
		if decision.GetType() == eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK {
			continue
		}
		switch i % 4 {
		case 0, 1: // paid (and for case 1, the shipment then fails)
			twice(s.paid(t))
			h.emitted.nth(t, s.orderID, 2, eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED)
			wantEvents[i] = 2
			for _, l := range s.lines {
				sold[l.GetSku()] += int64(l.GetQuantity())
			}
			if i%4 == 1 {
				twice(s.shipmentFailed(t))
				h.emitted.nth(t, s.orderID, 3, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED)
				wantEvents[i] = 3
				for _, l := range s.lines {
					restoredUnits[l.GetSku()] += int64(l.GetQuantity())
				}
			}
		case 2:
			twice(s.paymentFailed(t))
			h.emitted.nth(t, s.orderID, 2, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED)
			wantEvents[i] = 2
		case 3:
			twice(s.cancelled(t))
			h.emitted.nth(t, s.orderID, 2, eventsv1.EventType_EVENT_TYPE_STOCK_RESTORED)
			wantEvents[i] = 2
		}
	}
	if replaced == nil {
		t.Fatal("the rolling restart did not happen")
	}

	// Every order's events were written once, whichever replica applied them.
	decided := map[eventsv1.EventType]int{}
	for i, s := range sagas {
		if n := h.outboxCount(t, s.orderID); n != wantEvents[i] {
			t.Errorf("order %d: %d events in the outbox, want %d", i, n, wantEvents[i])
		}
		decided[h.emitted.byOrderFirst(s.orderID)]++
	}
	if decided[eventsv1.EventType_EVENT_TYPE_STOCK_RESERVED] == 0 || decided[eventsv1.EventType_EVENT_TYPE_OUT_OF_STOCK] == 0 {
		t.Errorf("decisions %v: want both reservations and refusals (the stock must run out)", decided)
	}
	for _, sku := range skus {
		h.stock(t, sku, [5]int64{added - sold[sku] + restoredUnits[sku], 0, sold[sku], added, restoredUnits[sku]})
	}
	deadline := time.Now().Add(wait)
	for {
		var unsent int
		if err := db.QueryRow("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").Scan(&unsent); err != nil {
			t.Fatal(err)
		}
		if unsent == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d outbox rows unsent after %s", unsent, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d orders: %v; units sold %v, restored %v", orders, decided, sold, restoredUnits)
}

// anyDecision waits for the order's first event, either decision, and
// returns its type.
func anyDecision(t *testing.T, h *harness, s *saga) eventsv1.EventType {
	t.Helper()
	deadline := time.After(wait)
	for {
		if typ := h.emitted.byOrderFirst(s.orderID); typ != eventsv1.EventType_EVENT_TYPE_UNSPECIFIED {
			return typ
		}
		h.emitted.mu.Lock()
		changed := h.emitted.changed
		h.emitted.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no decision for order %s within %s", s.orderID, wait)
		}
	}
}

// byOrderFirst is the type of the first event emitted for orderID (UNSPECIFIED: none yet).
func (c *collector) byOrderFirst(orderID string) eventsv1.EventType {
	c.mu.Lock()
	defer c.mu.Unlock()
	if got := c.byOrder[orderID]; len(got) > 0 {
		return got[0].GetType()
	}
	return eventsv1.EventType_EVENT_TYPE_UNSPECIFIED
}
