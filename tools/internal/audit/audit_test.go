package audit_test

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/sagasuite/sagasuite/tools/internal/audit"
	"github.com/sagasuite/sagasuite/tools/internal/audit/audittest"
	"github.com/sagasuite/sagasuite/tools/internal/suite"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
)

var scope = audit.Scope{
	CustomerIDs: []string{audittest.Customer},
	SKUs:        []string{audittest.SKUWidget, audittest.SKUGadget},
}

// clients serves w and dials it.
func clients(t *testing.T, w *audittest.World) audit.Clients {
	t.Helper()
	return dial(t, audittest.Serve(t, w))
}

func dial(t *testing.T, addr string) audit.Clients {
	t.Helper()
	conns, err := suite.Dial(suite.Addrs{Order: addr, Inventory: addr, Payment: addr, Shipping: addr, Notification: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conns.Close() })
	return conns.Clients
}

func run(t *testing.T, w *audittest.World, sc audit.Scope) audit.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a bound for a hang only
	defer cancel()
	rep, err := audit.Run(ctx, clients(t, w), sc)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	return rep
}

func TestConsistentWorldPasses(t *testing.T) {
	rep := run(t, audittest.Consistent(), scope)
	if !rep.OK() {
		t.Fatalf("violations in a consistent world:\n%s", strings.Join(rep.Violations, "\n"))
	}
	if rep.Orders != 4 || rep.Completed != 1 || rep.Cancelled != 3 || rep.Pending != 0 {
		t.Errorf("counts: %d orders, %d completed, %d cancelled, %d pending; want 4, 1, 3, 0",
			rep.Orders, rep.Completed, rep.Cancelled, rep.Pending)
	}
	wantMoney := []audit.CurrencyLine{{Currency: "EUR", Captured: 3990 + 4500, Refunded: 4500, CompletedTotal: 3990}}
	if !slices.Equal(rep.Money, wantMoney) {
		t.Errorf("money %+v, want %+v", rep.Money, wantMoney)
	}
	wantStock := []audit.StockLine{
		{SKU: audittest.SKUWidget, Added: 100, Available: 98, Sold: 5, Restored: 3, OrderedUnits: 2},
		{SKU: audittest.SKUGadget, Added: 10, Available: 9, Sold: 1, OrderedUnits: 1},
	}
	if !slices.Equal(rep.Stock, wantStock) {
		t.Errorf("stock %+v, want %+v", rep.Stock, wantStock)
	}
}

// TestEachViolation breaks one thing in a consistent world and expects
// exactly the violations that break implies (each matched by a fragment).
func TestEachViolation(t *testing.T) {
	const (
		completed = audittest.OrderCompleted
		refunded  = audittest.OrderRefunded
		declined  = audittest.OrderDeclined
		unknown   = "0190a000-0000-7000-8000-0000000000ff"
	)
	eur := func(n int64) *commonv1.Money { return &commonv1.Money{AmountMinor: n, Currency: "EUR"} }
	cases := []struct {
		name   string
		scope  audit.Scope
		mutate func(w *audittest.World)
		want   []string
	}{
		{"order not terminal", scope, func(w *audittest.World) {
			w.Order(declined).Status = orderv1.OrderStatus_ORDER_STATUS_PENDING
		}, []string{"Order " + declined + " of customer " + audittest.Customer + " is PENDING, not COMPLETED or CANCELLED"}},
		{"listed twice", scope, func(w *audittest.World) {
			w.Orders = append(w.Orders, w.Order(declined))
		}, []string{"ListOrders returned order " + declined + " of customer " + audittest.Customer + " more than once"}},

		{"stock invariant", scope, func(w *audittest.World) {
			w.StockOf(audittest.SKUWidget).Available = 97
		}, []string{"SKU WIDGET-1: added 100 ≠ available 97 + reserved 0 + sold 5 − restored 3 = 99."}},
		{"negative available", scope, func(w *audittest.World) {
			st := w.StockOf(audittest.SKUGadget)
			st.Added, st.Available = 0, -1
		}, []string{"SKU GADGET-2: available is -1, below zero."}},
		{"reservation left", scope, func(w *audittest.World) {
			st := w.StockOf(audittest.SKUWidget)
			st.Available, st.Reserved = 96, 2
		}, []string{"SKU WIDGET-1: 2 units still reserved although every order is terminal"}},
		{"sold twice", scope, func(w *audittest.World) {
			st := w.StockOf(audittest.SKUWidget)
			st.Available, st.Sold = 96, 7
		}, []string{"SKU WIDGET-1: sold 7 − restored 3 = 4 units kept, but COMPLETED orders hold 2."}},
		{"restored more than sold", scope, func(w *audittest.World) {
			st := w.StockOf(audittest.SKUGadget)
			st.Available, st.Restored = 11, 2
		}, []string{
			"SKU GADGET-2: restored 2 exceeds sold 1",
			"SKU GADGET-2: sold 1 − restored 2 = -1 units kept, but COMPLETED orders hold 1.",
		}},
		{"unknown sku", audit.Scope{CustomerIDs: scope.CustomerIDs, SKUs: append(slices.Clone(scope.SKUs), "NOPE-9")}, func(*audittest.World) {},
			[]string{"SKU NOPE-9 is unknown to the inventory service."}},

		{"capture left on cancelled order", scope, func(w *audittest.World) {
			p := w.Payment(refunded)
			p.Status, p.Refunds = paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED, nil
		}, []string{
			"Payment pay-refunded of CANCELLED order " + refunded + " is still CAPTURED (4500 EUR kept, never refunded).",
			"Money in EUR does not add up: captured 8490 − refunded 0 = 8490, but COMPLETED orders total 3990.",
		}},
		{"refunded twice", scope, func(w *audittest.World) {
			w.Payment(refunded).Refunds = []*paymentv1.Refund{{RefundId: "r1", Amount: eur(2250)}, {RefundId: "r2", Amount: eur(2250)}}
		}, []string{"Payment pay-refunded of order " + refunded + " was refunded 2 times (4500 minor units in all)"}},
		{"refund beyond the charge", scope, func(w *audittest.World) {
			w.Payment(refunded).Refunds[0].Amount = eur(5000)
		}, []string{
			"Payment pay-refunded of order " + refunded + " refunded 5000 minor units, more than the 4500 EUR charged.",
			"Money in EUR does not add up: captured 8490 − refunded 5000 = 3490, but COMPLETED orders total 3990.",
		}},
		{"refund for a completed order", scope, func(w *audittest.World) {
			p := w.Payment(completed)
			p.Status, p.Refunds = paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED, []*paymentv1.Refund{{RefundId: "r9", Amount: eur(3990)}}
		}, []string{
			"Payment pay-completed of COMPLETED order " + completed + " was refunded (1 refund(s), status REFUNDED)",
			"COMPLETED order " + completed + " (total 3990 EUR) has no CAPTURED payment (payment pay-completed REFUNDED).",
			"Money in EUR does not add up: captured 8490 − refunded 8490 = 0, but COMPLETED orders total 3990.",
		}},
		{"completed order never paid", scope, func(w *audittest.World) {
			w.Payments = slices.DeleteFunc(w.Payments, func(p *paymentv1.Payment) bool { return p.GetOrderId() == completed })
		}, []string{
			"COMPLETED order " + completed + " (total 3990 EUR) has no CAPTURED payment (no payment at all).",
			"Money in EUR does not add up: captured 4500 − refunded 4500 = 0, but COMPLETED orders total 3990.",
		}},
		{"capture differs from total", scope, func(w *audittest.World) {
			w.Payment(completed).Amount = eur(3000)
		}, []string{
			"Payment pay-completed of COMPLETED order " + completed + " captured 3000 EUR, but the order's total is 3990 EUR.",
			"Money in EUR does not add up: captured 7500 − refunded 4500 = 3000, but COMPLETED orders total 3990.",
		}},
		{"two payments for one order", scope, func(w *audittest.World) {
			w.Payments = append(w.Payments, &paymentv1.Payment{PaymentId: "pay-again", OrderId: declined, CustomerId: audittest.Customer,
				Amount: eur(1500), Status: paymentv1.PaymentStatus_PAYMENT_STATUS_FAILED})
		}, []string{"Order " + declined + " has 2 payments; at most one is allowed."}},
		{"refunded without a refund", scope, func(w *audittest.World) {
			w.Payment(refunded).Refunds = nil
		}, []string{
			"Payment pay-refunded of order " + refunded + " is REFUNDED but lists no refund.",
			"Money in EUR does not add up: captured 8490 − refunded 0 = 8490, but COMPLETED orders total 3990.",
		}},
		{"refund on a failed payment", scope, func(w *audittest.World) {
			w.Payment(declined).Refunds = []*paymentv1.Refund{{RefundId: "r7", Amount: eur(0)}}
		}, []string{"Payment pay-declined of order " + declined + " is FAILED but lists 1 refund(s)."}},
		{"refund in another currency", scope, func(w *audittest.World) {
			w.Payment(refunded).Refunds[0].Amount.Currency = "USD"
		}, []string{
			"Refund refund-1 of payment pay-refunded (order " + refunded + ") is in USD, the payment in EUR.",
			"Money in EUR does not add up: captured 8490 − refunded 0 = 8490, but COMPLETED orders total 3990.",
			"Money in USD does not add up: captured 0 − refunded 4500 = -4500, but COMPLETED orders total 0.",
		}},
		{"payment of an unknown order", scope, func(w *audittest.World) {
			w.Payments = append(w.Payments, &paymentv1.Payment{PaymentId: "pay-stray", OrderId: unknown, CustomerId: audittest.Customer,
				Amount: eur(100), Status: paymentv1.PaymentStatus_PAYMENT_STATUS_FAILED})
		}, []string{"Payment pay-stray (FAILED, 100 EUR) is for order " + unknown + ", which the order service does not list for customer " + audittest.Customer + "."}},

		{"completed order not shipped", scope, func(w *audittest.World) {
			w.Shipments = slices.DeleteFunc(w.Shipments, func(s *shippingv1.Shipment) bool { return s.GetOrderId() == completed })
		}, []string{"COMPLETED order " + completed + " has 0 live shipments (none); exactly one is required."}},
		{"completed order shipped twice", scope, func(w *audittest.World) {
			w.Shipments = append(w.Shipments, &shippingv1.Shipment{ShipmentId: "ship-dup", OrderId: completed, CustomerId: audittest.Customer,
				Status: shippingv1.ShipmentStatus_SHIPMENT_STATUS_IN_TRANSIT})
		}, []string{"COMPLETED order " + completed + " has 2 live shipments (ship-completed CREATED, ship-dup IN_TRANSIT); exactly one is required."}},
		{"cancelled order still shipped", scope, func(w *audittest.World) {
			w.Shipments[1].Status = shippingv1.ShipmentStatus_SHIPMENT_STATUS_CREATED
		}, []string{"CANCELLED order " + refunded + " still has 1 live shipment(s): ship-failed CREATED."}},
		{"shipment of an unknown order", scope, func(w *audittest.World) {
			w.Shipments = append(w.Shipments, &shippingv1.Shipment{ShipmentId: "ship-stray", OrderId: unknown, CustomerId: audittest.Customer,
				Status: shippingv1.ShipmentStatus_SHIPMENT_STATUS_CANCELLED})
		}, []string{"Shipment ship-stray (CANCELLED) is for order " + unknown + ", which the order service does not list"}},

		{"event logged twice", scope, func(w *audittest.World) {
			w.SagaLogs[completed] = append(w.SagaLogs[completed], w.SagaLogs[completed][0])
		}, []string{"Saga log of order " + completed + " records event " + w0(completed) + " (ORDER_CREATED) more than once."}},
		{"step missing from the log", scope, func(w *audittest.World) {
			w.SagaLogs[completed] = w.SagaLogs[completed][:5]
		}, []string{"Saga log of order " + completed + " (5 events) lacks 1 of its 6 steps: ORDER_COMPLETED "}},
		{"event of another order in the log", scope, func(w *audittest.World) {
			w.SagaLogs[completed] = append(w.SagaLogs[completed], &eventsv1.Envelope{EventId: "e-stray", Type: eventsv1.EventType_EVENT_TYPE_ORDER_CREATED, OrderId: unknown})
		}, []string{"Saga log of order " + completed + " holds event e-stray (ORDER_CREATED) of order " + unknown + "."}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := audittest.Consistent()
			tc.mutate(w)
			rep := run(t, w, tc.scope)
			unmatched := slices.Clone(rep.Violations)
			for _, want := range tc.want {
				i := slices.IndexFunc(unmatched, func(v string) bool { return strings.Contains(v, want) })
				if i < 0 {
					t.Errorf("no violation contains %q", want)
					continue
				}
				unmatched = slices.Delete(unmatched, i, i+1)
			}
			if len(unmatched) > 0 || t.Failed() {
				t.Errorf("violations:\n  %s\nunexpected:\n  %s", strings.Join(rep.Violations, "\n  "), strings.Join(unmatched, "\n  "))
			}
		})
	}
}

// w0 is the id of the first logged event of an order in the Consistent world.
func w0(orderID string) string { return audittest.Consistent().SagaLogs[orderID][0].GetEventId() }

func TestPendingOrderSuspendsSettledStockChecks(t *testing.T) {
	w := audittest.Consistent()
	w.Order(audittest.OrderDeclined).Status = orderv1.OrderStatus_ORDER_STATUS_PENDING
	st := w.StockOf(audittest.SKUWidget)
	st.Available, st.Reserved = 97, 1 // the running saga's reservation
	rep := run(t, w, scope)
	if len(rep.Violations) != 1 || !strings.Contains(rep.Violations[0], "is PENDING") || rep.Pending != 1 {
		t.Fatalf("want only the pending order reported, got %d pending and:\n%s", rep.Pending, strings.Join(rep.Violations, "\n"))
	}
}

func TestUnreachableServiceIsAnError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Port 1 below the ephemeral range: nothing listens, the dial is refused.
	_, err := audit.Run(ctx, dial(t, "127.0.0.1:1"), scope)
	if err == nil || !strings.Contains(err.Error(), "list orders of customer "+audittest.Customer) {
		t.Fatalf("err = %v, want one naming the failed listing", err)
	}
}

// runCounter passes calls through to the order service and counts the
// audit attempts Await starts (an attempt begins with the first page of
// ListOrders); at the second it calls onSecond first.
type runCounter struct {
	orderv1.OrderServiceClient
	runs     atomic.Int32
	onSecond func()
}

func (c *runCounter) ListOrders(ctx context.Context, in *orderv1.ListOrdersRequest, opts ...grpc.CallOption) (*orderv1.ListOrdersResponse, error) {
	if in.GetPageToken() == "" && c.runs.Add(1) == 2 {
		c.onSecond()
	}
	return c.OrderServiceClient.ListOrders(ctx, in, opts...)
}

// Await's results depend on what it read, never on how many attempts fit
// in its context: no test here has a deadline that a slow machine can reach.
func TestAwait(t *testing.T) {
	t.Run("returns at once when clean", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a bound for a hang only
		defer cancel()
		rep, err := audit.Await(ctx, clients(t, audittest.Consistent()), scope, time.Hour)
		if err != nil || !rep.OK() {
			t.Fatalf("Await = %v, %v; want a clean report", rep.Violations, err)
		}
	})
	t.Run("returns the open violations when its context ends", func(t *testing.T) {
		w := audittest.Consistent()
		w.Order(audittest.OrderDeclined).Status = orderv1.OrderStatus_ORDER_STATUS_PENDING
		// The context ends as the second attempt starts, so that attempt
		// is cut short: the first, complete report is the answer.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := clients(t, w)
		counter := &runCounter{OrderServiceClient: c.Order, onSecond: cancel}
		c.Order = counter
		rep, err := audit.Await(ctx, c, scope, time.Millisecond)
		if err != nil || len(rep.Violations) != 1 || rep.Pending != 1 || counter.runs.Load() != 2 {
			t.Fatalf("Await = %v, %v after %d attempts; want the pending order's violation after 2", rep.Violations, err, counter.runs.Load())
		}
	})
	t.Run("an error when no attempt completed", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := audit.Await(ctx, clients(t, audittest.Consistent()), scope, time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "list orders of customer") {
			t.Fatalf("Await on an ended context = %v, want the listing's error", err)
		}
	})
}

// The gateway's own ledger is compared with the payment API per order: a
// consistent world passes; money the gateway holds that payment does not
// show (a charge recorded nowhere, a refund the gateway never made) is a
// violation naming the order and both amounts.
func TestGatewayLedgerMustMatchPaymentPerOrder(t *testing.T) {
	withGateway := func(w *audittest.World) audit.Scope {
		sc := scope
		sc.GatewayURL = audittest.ServeGateway(t, w)
		return sc
	}
	w := audittest.Consistent()
	rep := run(t, w, withGateway(w))
	if !rep.OK() || rep.GatewayAccounts != 4 {
		t.Fatalf("consistent world with its gateway: %d accounts compared, violations:\n%s", rep.GatewayAccounts, strings.Join(rep.Violations, "\n"))
	}

	cases := []struct {
		name   string
		mutate func(w *audittest.World)
		want   string
	}{
		{"a charge payment never recorded (the out-of-stock order was charged at the gateway)", func(w *audittest.World) {
			w.Gateway[audittest.OrderOutOfStock] = &audittest.GatewayAccount{Key: audittest.OrderOutOfStock,
				Charge: &audittest.GatewayCharge{Status: "succeeded", AmountMinor: 700, Currency: "EUR"}, Net: 700}
		}, "Gateway ledger of order " + audittest.OrderOutOfStock + " holds 700 minor units (charge succeeded of 700 EUR, 0 refund(s) of 0), but payment's API keeps 0 captured (no payment at all)."},
		{"a refund payment recorded but the gateway never made", func(w *audittest.World) {
			a := w.Gateway[audittest.OrderRefunded]
			a.Refunds, a.Net = nil, 4500
		}, "Gateway ledger of order " + audittest.OrderRefunded + " holds 4500 minor units (charge succeeded of 4500 EUR, 0 refund(s) of 0), but payment's API keeps 0 captured (payment pay-refunded REFUNDED)."},
		{"a capture the gateway does not hold", func(w *audittest.World) {
			delete(w.Gateway, audittest.OrderCompleted)
		}, "Gateway ledger of order " + audittest.OrderCompleted + " holds 0 minor units (no charge), but payment's API keeps 3990 captured (payment pay-completed CAPTURED)."},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			w := audittest.Consistent()
			tt.mutate(w)
			rep := run(t, w, withGateway(w))
			if len(rep.Violations) != 1 || rep.Violations[0] != tt.want {
				t.Fatalf("violations:\n%s\nwant exactly:\n%s", strings.Join(rep.Violations, "\n"), tt.want)
			}
		})
	}

	// An unreachable gateway is an error, not a clean audit.
	sc := scope
	sc.GatewayURL = "http://127.0.0.1:1"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := audit.Run(ctx, clients(t, audittest.Consistent()), sc); err == nil || !strings.Contains(err.Error(), "gateway ledger") {
		t.Fatalf("audit with an unreachable gateway: %v, want an error naming the gateway ledger", err)
	}
}
