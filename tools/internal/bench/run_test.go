package bench

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/tools/internal/suite"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
)

// fakeStack answers CreateOrder with a PENDING order and WatchOrder with
// the outcome the order's token, address and SKU call for, after hold.
// It counts calls and the most CreateOrder→terminal spans open at once.
type fakeStack struct {
	orderv1.UnimplementedOrderServiceServer
	inventoryv1.UnimplementedInventoryServiceServer

	hold              time.Duration
	failEvery         int // CreateOrder fails with Unavailable every n-th call (0: never)
	mu                sync.Mutex
	orders            map[string]*orderv1.Order
	calls, open, most atomic.Int64
	createTimes       []time.Time
}

func (f *fakeStack) CreateOrder(_ context.Context, req *orderv1.CreateOrderRequest) (*orderv1.CreateOrderResponse, error) {
	n := f.calls.Add(1)
	if f.failEvery > 0 && n%int64(f.failEvery) == 0 {
		return nil, status.Error(codes.Unavailable, "try later")
	}
	o := f.open.Add(1)
	for m := f.most.Load(); o > m && !f.most.CompareAndSwap(m, o); m = f.most.Load() {
	}
	placed := &orderv1.Order{OrderId: req.GetRequestId(), Status: orderv1.OrderStatus_ORDER_STATUS_PENDING}
	final := &orderv1.Order{OrderId: placed.OrderId, Status: orderv1.OrderStatus_ORDER_STATUS_CANCELLED}
	switch {
	case strings.HasSuffix(req.GetLines()[0].GetSku(), "-EMPTY"):
		final.CancelReason = eventsv1.CancelReason_CANCEL_REASON_OUT_OF_STOCK
	case req.GetPaymentMethodToken() == "tok_decline":
		final.CancelReason = eventsv1.CancelReason_CANCEL_REASON_PAYMENT_FAILED
	case req.GetShippingAddress().GetCountryCode() == "AQ":
		final.CancelReason = eventsv1.CancelReason_CANCEL_REASON_SHIPMENT_FAILED
	default:
		final.Status = orderv1.OrderStatus_ORDER_STATUS_COMPLETED
	}
	f.mu.Lock()
	f.orders[placed.OrderId] = final
	f.createTimes = append(f.createTimes, time.Now())
	f.mu.Unlock()
	return &orderv1.CreateOrderResponse{Order: placed}, nil
}

func (f *fakeStack) WatchOrder(req *orderv1.WatchOrderRequest, stream grpc.ServerStreamingServer[orderv1.WatchOrderResponse]) error {
	f.mu.Lock()
	final := f.orders[req.GetOrderId()]
	f.mu.Unlock()
	if err := stream.Send(&orderv1.WatchOrderResponse{Order: &orderv1.Order{OrderId: final.OrderId, Status: orderv1.OrderStatus_ORDER_STATUS_PENDING}}); err != nil {
		return err
	}
	time.Sleep(f.hold)
	f.open.Add(-1)
	return stream.Send(&orderv1.WatchOrderResponse{Order: final})
}

func (f *fakeStack) UpsertProduct(context.Context, *inventoryv1.UpsertProductRequest) (*inventoryv1.UpsertProductResponse, error) {
	return &inventoryv1.UpsertProductResponse{}, nil
}

func (f *fakeStack) AddStock(context.Context, *inventoryv1.AddStockRequest) (*inventoryv1.AddStockResponse, error) {
	return &inventoryv1.AddStockResponse{}, nil
}

func serveFake(t *testing.T, f *fakeStack) suite.Clients {
	t.Helper()
	f.orders = map[string]*orderv1.Order{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	orderv1.RegisterOrderServiceServer(srv, f)
	inventoryv1.RegisterInventoryServiceServer(srv, f)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	addr := ln.Addr().String()
	conns, err := suite.Dial(suite.Addrs{Order: addr, Inventory: addr, Payment: addr, Shipping: addr, Notification: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conns.Close() })
	return conns.Clients
}

func TestClosedLoopNeverExceedsItsConcurrency(t *testing.T) {
	f := &fakeStack{hold: 5 * time.Millisecond}
	c := serveFake(t, f)
	var progress bytes.Buffer
	res, err := Run(context.Background(), c, Config{Concurrency: 4, Orders: 60,
		Mix: Mix{40, 20, 20, 20}, Progress: &progress, ProgressEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Placed != 60 || res.Done != 60 || f.calls.Load() != 60 || res.Unexpected != 0 || len(res.Errors) != 0 {
		t.Fatalf("result %+v after %d calls; want 60 placed and ended as the mix says", res, f.calls.Load())
	}
	want := map[string]int{"COMPLETED": 24, "PAYMENT_FAILED": 12, "SHIPMENT_FAILED": 12, "OUT_OF_STOCK": 12}
	for k, n := range want {
		if res.Outcomes[k] != n {
			t.Errorf("outcome %s: %d, want %d (all: %v)", k, res.Outcomes[k], n, res.Outcomes)
		}
	}
	if res.Completed() != 24 || res.Cancelled() != 36 || res.Latency.Count != 60 || res.Latency.Min < f.hold {
		t.Errorf("completed %d, cancelled %d, latency %+v", res.Completed(), res.Cancelled(), res.Latency)
	}
	if m := f.most.Load(); m > 4 {
		t.Errorf("%d orders in flight at once at concurrency 4", m)
	}
	if !strings.Contains(progress.String(), "placed     60  done     60  in flight     0") || !strings.HasSuffix(progress.String(), "\n") {
		t.Errorf("last progress line: %q", progress.String()[max(0, progress.Len()-120):])
	}
}

// The open loop keeps to its timetable: order i is not placed before
// start + i/rate, every order is placed, and a slow order does not hold
// back the next (more in flight than any closed loop of 1 would allow).
func TestOpenLoopKeepsTheTimetable(t *testing.T) {
	// Each order is held a second, far longer than the 195 ms timetable, so
	// orders overlap even when a busy machine delays the placing.
	f := &fakeStack{hold: time.Second}
	c := serveFake(t, f)
	began := time.Now()
	res, err := Run(context.Background(), c, Config{Rate: 200, Orders: 40})
	if err != nil {
		t.Fatal(err)
	}
	if res.Placed != 40 || res.Done != 40 {
		t.Fatalf("result %+v", res)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	first := f.createTimes[0]
	if first.Before(began) {
		t.Fatal("clock went backwards")
	}
	// The 40th order is due 39/200 s = 195 ms after the timetable starts,
	// which is after began: it never arrives earlier. (Measured from the
	// first arrival instead, a first order delayed by a busy machine made
	// the span look short.)
	if span := f.createTimes[39].Sub(began); span < 195*time.Millisecond {
		t.Errorf("the 40th order at 200/s arrived %v after the run began, want ≥ 195ms", span)
	}
	if f.most.Load() < 2 {
		t.Errorf("at most %d in flight: the open loop waited for orders to end", f.most.Load())
	}
}

func TestCreateOrderErrorsAreCountedNotPlaced(t *testing.T) {
	f := &fakeStack{failEvery: 5}
	c := serveFake(t, f)
	res, err := Run(context.Background(), c, Config{Concurrency: 2, Orders: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Placed != 16 || res.Done != 16 || res.Errors["CreateOrder: Unavailable"] != 4 {
		t.Errorf("placed %d, done %d, errors %v; want 16, 16, 4 Unavailable", res.Placed, res.Done, res.Errors)
	}
}

// Closing Stop ends placing (no time or count limit given otherwise), the
// orders already placed are still awaited, and Observe sees each placed
// order once, with its kind and outcome.
func TestStopEndsPlacingAndObserveSeesEveryOrder(t *testing.T) {
	f := &fakeStack{hold: 20 * time.Millisecond}
	c := serveFake(t, f)
	stop := make(chan struct{})
	var (
		mu   sync.Mutex
		ends = map[string]OrderEnd{}
		dups int
	)
	observe := func(e OrderEnd) {
		mu.Lock()
		defer mu.Unlock()
		if _, seen := ends[e.OrderID]; seen {
			dups++
		}
		ends[e.OrderID] = e
	}
	done := make(chan Result, 1)
	go func() {
		res, err := Run(context.Background(), c, Config{Rate: 100, Duration: time.Hour,
			Mix: Mix{50, 50, 0, 0}, Stop: stop, Observe: observe})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	for f.calls.Load() < 10 { // wait for an outcome, not a time
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	var res Result
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of Stop being closed")
	}
	mu.Lock()
	defer mu.Unlock()
	if res.Placed < 10 || res.Done != res.Placed || len(ends) != res.Placed || dups != 0 {
		t.Fatalf("placed %d, done %d, observed %d (%d twice); want ≥ 10, all done, each observed once", res.Placed, res.Done, len(ends), dups)
	}
	for id, e := range ends {
		if e.Err != nil || e.Outcome != e.Kind.Expected() || e.Ended.Before(e.Placed) || e.Placed.IsZero() {
			t.Errorf("order %s: %+v", id, e)
		}
	}
}
