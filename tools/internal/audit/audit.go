// Package audit checks that a finished set of sagas adds up, reading nothing
// but the five services' public gRPC APIs: every order ended (COMPLETED or
// CANCELLED), stock balances per SKU, money balances per currency, each
// completed order has exactly one live shipment and each cancelled one none,
// the notification service's saga log holds every step the order service
// saw, once, and — given the payment gateway's URL — the gateway's own ledger
// holds, per order, exactly the money the payment service says it kept.
//
// The audit is meant for a quiet suite (no saga in flight). Right after the
// last order turned terminal some compensations may still be settling; Await
// repeats the audit until it is clean or its context ends.
package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/suite"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
)

// Clients are the services' gRPC clients the audit reads through.
type Clients = suite.Clients

// Scope is what to audit: every order, payment and shipment of these
// customers, and the stock of these SKUs. The stock checks that compare with
// orders (nothing reserved, units kept = units of completed orders) assume the
// customers are everyone who ordered those SKUs.
type Scope struct {
	CustomerIDs []string
	SKUs        []string
	// GatewayURL is the payment gateway whose ledger to compare with the
	// payment API per order ("": not compared).
	GatewayURL string
}

// Report is the audit's outcome. Violations are readable sentences naming the
// order, payment, shipment or SKU and the numbers; none means all adds up.
type Report struct {
	Orders    int            `json:"orders"`
	Completed int            `json:"completed"`
	Cancelled int            `json:"cancelled"`
	Pending   int            `json:"pending"`
	Stock     []StockLine    `json:"stock"`
	Money     []CurrencyLine `json:"money"`
	// GatewayAccounts is how many orders' gateway ledger accounts were
	// compared with payment (0 without a gateway URL).
	GatewayAccounts int      `json:"gateway_accounts"`
	Violations      []string `json:"violations"`
}

// OK reports whether the audit found nothing wrong.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// StockLine is one SKU's stock as the audit saw it.
type StockLine struct {
	SKU       string `json:"sku"`
	Added     int64  `json:"added"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
	Sold      int64  `json:"sold"`
	Restored  int64  `json:"restored"`
	// OrderedUnits are the units of this SKU in COMPLETED orders.
	OrderedUnits int64 `json:"ordered_units"`
}

// CurrencyLine is the money of one currency: captured − refunded must equal
// the totals of the completed orders.
type CurrencyLine struct {
	Currency       string `json:"currency"`
	Captured       int64  `json:"captured_minor"`
	Refunded       int64  `json:"refunded_minor"`
	CompletedTotal int64  `json:"completed_total_minor"`
}

// pageSize is the largest page every List RPC accepts.
const pageSize = 100

// Run audits scope once.
func Run(ctx context.Context, c Clients, scope Scope) (Report, error) {
	snap, err := read(ctx, c, scope)
	if err != nil {
		return Report{}, err
	}
	return check(snap), nil
}

// Await runs the audit every interval until it finds no violation or ctx
// ends, and returns the last complete report (with the violations still
// open when ctx ended). An attempt that ctx's end cuts short does not count:
// how many attempts fit in ctx depends on how fast the machine is, so the
// report that was read in full stands. An error means no attempt read the
// services in full (the error of the last one).
func Await(ctx context.Context, c Clients, scope Scope, interval time.Duration) (Report, error) {
	var last *Report
	for {
		rep, err := Run(ctx, c, scope)
		switch {
		case err == nil && rep.OK():
			return rep, nil
		case err == nil:
			last = &rep
		case ctx.Err() != nil && last != nil:
			return *last, nil
		}
		select {
		case <-ctx.Done():
			if err != nil && last != nil {
				return *last, nil
			}
			return rep, err
		case <-time.After(interval):
		}
	}
}

// snapshot is everything the checks look at, read from the APIs.
type snapshot struct {
	orders    []*orderv1.Order // with steps (GetOrder), sorted by order id
	payments  []*paymentv1.Payment
	shipments []*shippingv1.Shipment
	stock     []*inventoryv1.Stock
	missing   []string                        // SKUs inventory does not know
	logs      map[string][]*eventsv1.Envelope // saga log per order id
	gateway   map[string]GatewayAccount       // by order id; nil: not read
	listed    []string                        // violations found while reading (paging faults)
}

func read(ctx context.Context, c Clients, scope Scope) (*snapshot, error) {
	s := &snapshot{logs: map[string][]*eventsv1.Envelope{}}
	seen := map[string]bool{}
	for _, customer := range scope.CustomerIDs {
		orders, err := pages(func(token string) ([]*orderv1.Order, string, error) {
			resp, err := c.Order.ListOrders(ctx, &orderv1.ListOrdersRequest{CustomerId: customer, PageSize: pageSize, PageToken: token})
			return resp.GetOrders(), resp.GetNextPageToken(), err
		})
		if err != nil {
			return nil, fmt.Errorf("list orders of customer %s: %w", customer, err)
		}
		for _, listed := range orders {
			id := listed.GetOrderId()
			if seen[id] {
				s.listed = append(s.listed, fmt.Sprintf("ListOrders returned order %s of customer %s more than once.", id, customer))
				continue
			}
			seen[id] = true
			// The step history is GetOrder's to give; a list may leave it out.
			resp, err := c.Order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: id})
			if err != nil {
				return nil, fmt.Errorf("get order %s: %w", id, err)
			}
			s.orders = append(s.orders, resp.GetOrder())
		}

		payments, err := pages(func(token string) ([]*paymentv1.Payment, string, error) {
			resp, err := c.Payment.ListPayments(ctx, &paymentv1.ListPaymentsRequest{CustomerId: customer, PageSize: pageSize, PageToken: token})
			return resp.GetPayments(), resp.GetNextPageToken(), err
		})
		if err != nil {
			return nil, fmt.Errorf("list payments of customer %s: %w", customer, err)
		}
		s.payments = append(s.payments, payments...)

		shipments, err := pages(func(token string) ([]*shippingv1.Shipment, string, error) {
			resp, err := c.Shipping.ListShipments(ctx, &shippingv1.ListShipmentsRequest{CustomerId: customer, PageSize: pageSize, PageToken: token})
			return resp.GetShipments(), resp.GetNextPageToken(), err
		})
		if err != nil {
			return nil, fmt.Errorf("list shipments of customer %s: %w", customer, err)
		}
		s.shipments = append(s.shipments, shipments...)
	}
	slices.SortFunc(s.orders, func(a, b *orderv1.Order) int { return strings.Compare(a.GetOrderId(), b.GetOrderId()) })

	for _, sku := range scope.SKUs {
		resp, err := c.Inventory.GetStock(ctx, &inventoryv1.GetStockRequest{Sku: sku})
		if isNotFound(err) {
			s.missing = append(s.missing, sku)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get stock of %s: %w", sku, err)
		}
		s.stock = append(s.stock, resp.GetStock())
	}

	for _, o := range s.orders {
		resp, err := c.Notification.GetSagaLog(ctx, &notificationv1.GetSagaLogRequest{OrderId: o.GetOrderId()})
		if err != nil && !isNotFound(err) {
			return nil, fmt.Errorf("get saga log of order %s: %w", o.GetOrderId(), err)
		}
		s.logs[o.GetOrderId()] = resp.GetEvents()
	}

	if scope.GatewayURL != "" {
		var ids []string
		for _, o := range s.orders {
			ids = append(ids, o.GetOrderId())
		}
		for _, p := range s.payments {
			ids = append(ids, p.GetOrderId())
		}
		var err error
		if s.gateway, err = readGateway(ctx, scope.GatewayURL, ids); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// maxPages bounds a listing, so a server whose tokens never end cannot hang the audit.
const maxPages = 10_000

// pages collects every page of a List RPC.
func pages[T any](fetch func(token string) ([]T, string, error)) ([]T, error) {
	var all []T
	token := ""
	for range maxPages {
		items, next, err := fetch(token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		if next == token {
			return nil, fmt.Errorf("page token %q repeats", next)
		}
		token = next
	}
	return nil, fmt.Errorf("more than %d pages", maxPages)
}

// Settle repeats the audit until it is clean or bound has passed, and
// returns the last complete report. Unlike Await, an attempt is not cut
// short by the overall bound (each has bound of its own), so a slow read on
// a busy box still ends with the violations, not a timeout.
func Settle(ctx context.Context, c Clients, scope Scope, bound time.Duration) (Report, error) {
	deadline := time.Now().Add(bound)
	var (
		last    Report
		lastErr error
	)
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, bound)
		rep, err := Run(attemptCtx, c, scope)
		cancel()
		switch {
		case err == nil && rep.OK():
			return rep, nil
		case err == nil:
			last, lastErr = rep, nil
		case last.Orders == 0:
			lastErr = err // no complete report yet
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return last, lastErr
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}
