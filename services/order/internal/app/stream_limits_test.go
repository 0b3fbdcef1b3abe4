package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/services/order/internal/adapters"
	"github.com/sagasuite/sagasuite/services/order/internal/app"
	"github.com/sagasuite/sagasuite/services/order/internal/domain/order"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

func createFor(t *testing.T, r *replica, customer string) *order.Order {
	t.Helper()
	o, err := r.app.CreateOrder.Handle(context.Background(), order.Draft{CustomerID: customer, Currency: "EUR", PaymentToken: "tok_visa",
		Lines:           []order.Line{{SKU: "BOOK-1", Quantity: 1, UnitPriceMinor: 1250}},
		ShippingAddress: order.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", CountryCode: "DE"}})
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	return o
}

// refused asserts s ended at once, sending nothing, with the bound named.
func refused(t *testing.T, s *stream, perCustomer bool) {
	t.Helper()
	err := s.end(t)
	var tooMany *app.TooManyStreamsError
	if !errors.As(err, &tooMany) || tooMany.PerCustomer != perCustomer {
		t.Fatalf("stream ended with %v, want TooManyStreamsError{PerCustomer: %v}", err, perCustomer)
	}
}

// Open WatchOrder streams are bounded per customer and per process; a
// tool's service identity is bounded by the process's cap only; an ended
// stream frees its slots.
func TestWatchOrderStreamsAreBoundedPerCustomerAndPerProcess(t *testing.T) {
	db := migratedDB(t)
	limits, err := app.NewStreamLimits(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{watchers: app.NewWatchers(limits)}
	r.repo = &readCountingRepo{Repository: adapters.NewOrderMySQLRepository(db, "order", time.Now)}
	r.app = app.New(app.Deps{Repo: r.repo, Encode: ports.Encode, Now: time.Now, Changed: r.watchers.Publish},
		time.Hour, r.watchers, nil)
	customerA, customerB := events.NewID(), events.NewID()
	a1, a2, b := createFor(t, r, customerA), createFor(t, r, customerA), createFor(t, r, customerB)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx1, cancel1 := context.WithCancel(ctx)
	s1 := watch(ctx1, r, a1.ID, nil)
	s1.next(t)
	watch(ctx, r, a2.ID, nil).next(t)
	refused(t, watch(ctx, r, a1.ID, nil), true) // A's third
	watch(ctx, r, b.ID, nil).next(t)            // B's first: 3 open

	tool := auth.WithPrincipal(ctx, auth.Principal{Subject: "sagactl-bench", Roles: []auth.Role{auth.RoleService}})
	watch(tool, r, a1.ID, nil).next(t) // a service identity is not held to A's bound: 4 open
	if n := limits.Open(); n != 4 {
		t.Fatalf("%d streams counted open, want 4", n)
	}
	refused(t, watch(ctx, r, b.ID, nil), false) // the process is full
	refused(t, watch(tool, r, b.ID, nil), false)

	// One of A's streams ends: A (and the process) may open one again.
	cancel1()
	if err := s1.end(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled stream ended with %v", err)
	}
	watch(ctx, r, a1.ID, nil).next(t)
	if n := limits.Open(); n != 4 {
		t.Fatalf("%d streams counted open, want 4", n)
	}
	// Refused streams and ended ones leave nothing counted.
	refused(t, watch(ctx, r, a2.ID, nil), false)
	cancel()
	deadline := time.Now().Add(wait)
	for limits.Open() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams still counted after every stream ended", limits.Open())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewStreamLimitsRejectsBadBounds(t *testing.T) {
	for _, b := range [][2]int{{0, 1}, {1, 0}, {-1, 5}} {
		if _, err := app.NewStreamLimits(b[0], b[1]); err == nil {
			t.Errorf("NewStreamLimits(%d, %d): no error", b[0], b[1])
		}
	}
}
