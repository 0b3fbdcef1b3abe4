package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

const (
	orderID    = "0192f0c4-1111-7000-8000-000000000001"
	customerID = "0192f0c4-2222-7000-8000-000000000002"
	eventID    = "0192f0c4-3333-7000-8000-000000000003"
)

var now = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// memoryRepo is a one-order Repository: enough to test the use cases' decisions.
type memoryRepo struct {
	current   *shipment.Shipment
	processed map[string]bool
	stored    []app.Change
	calls     int
}

func (r *memoryRepo) Apply(_ context.Context, _, eventID string, decide func(*shipment.Shipment) (app.Change, error)) (bool, error) {
	r.calls++
	if r.processed[eventID] {
		return false, nil
	}
	c, err := decide(r.current)
	if err != nil {
		return false, err
	}
	if r.processed == nil {
		r.processed = map[string]bool{}
	}
	r.processed[eventID] = true
	if c.Shipment != nil {
		r.current = c.Shipment
	}
	r.stored = append(r.stored, c)
	return true, nil
}

func (r *memoryRepo) Get(context.Context, string) (*shipment.Shipment, error) { return r.current, nil }

func (r *memoryRepo) ListByCustomer(context.Context, string, int, string) ([]*shipment.Shipment, string, error) {
	return nil, "", nil
}

type fakeCarrier struct {
	booking   shipment.Booking
	err       error
	calls     int
	cancelErr error
	cancels   []app.CancelRequest
}

func (c *fakeCarrier) Cancel(_ context.Context, req app.CancelRequest) error {
	c.cancels = append(c.cancels, req)
	return c.cancelErr
}

func (c *fakeCarrier) Book(context.Context, app.BookingRequest) (shipment.Booking, error) {
	c.calls++
	return c.booking, c.err
}

func encode(meta events.Meta, e shipment.Event) (*eventsv1.Envelope, error) {
	switch e := e.(type) {
	case shipment.Created:
		return events.New(meta, &eventsv1.ShipmentCreated{ShipmentId: e.ShipmentID, Carrier: e.Carrier, TrackingNumber: e.TrackingNumber})
	case shipment.Failed:
		return events.New(meta, &eventsv1.ShipmentFailed{ShipmentId: e.ShipmentID, Reason: eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_UNDELIVERABLE_ADDRESS, Detail: e.Detail})
	case shipment.Cancelled:
		return events.New(meta, &eventsv1.ShipmentCancelled{ShipmentId: e.ShipmentID, Carrier: e.Carrier, TrackingNumber: e.TrackingNumber})
	}
	return nil, errors.New("unknown event")
}

var createCmd = app.CreateShipment{
	EventID: eventID, OrderID: orderID, CustomerID: customerID,
	Address: shipment.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", CountryCode: "DE"},
	Lines:   []shipment.Line{{SKU: "BOOK-1", Quantity: 6}},
}

func TestCreateShipment(t *testing.T) {
	accepted := shipment.Booking{Accepted: true, Carrier: "simpost", TrackingNumber: "SP1"}
	refused := shipment.Booking{Reason: shipment.ReasonUndeliverableAddress, Detail: "no"}
	tombstone := &shipment.Shipment{OrderID: orderID, Status: shipment.StatusCancelled}
	tests := []struct {
		name         string
		current      *shipment.Shipment
		carrier      *fakeCarrier
		cmd          app.CreateShipment
		wantErr      error
		wantType     eventsv1.EventType // 0: no event
		wantBookings int
		wantApply    int
	}{
		{name: "booked", carrier: &fakeCarrier{booking: accepted}, cmd: createCmd,
			wantType: eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED, wantBookings: 1, wantApply: 1},
		{name: "refused", carrier: &fakeCarrier{booking: refused}, cmd: createCmd,
			wantType: eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED, wantBookings: 1, wantApply: 1},
		{name: "after a cancel the carrier is not asked", current: tombstone, carrier: &fakeCarrier{booking: accepted}, cmd: createCmd, wantApply: 1},
		{name: "carrier unreachable: error, nothing stored (the event is retried)", carrier: &fakeCarrier{err: errors.New("timeout")}, cmd: createCmd,
			wantErr: errors.New("timeout"), wantBookings: 1, wantApply: 1},
		{name: "no lines: invalid, the store is not touched", carrier: &fakeCarrier{booking: accepted},
			cmd: app.CreateShipment{EventID: eventID, OrderID: orderID, Address: createCmd.Address}, wantErr: shipment.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := &memoryRepo{current: tt.current}
			a := app.New(repo, tt.carrier, encode, func() time.Time { return now })
			err := a.CreateShipment.Handle(context.Background(), tt.cmd)
			if tt.wantErr != nil {
				if err == nil || (errors.Is(tt.wantErr, shipment.ErrInvalid) && !errors.Is(err, shipment.ErrInvalid)) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if len(repo.stored) != 0 {
					t.Fatalf("stored %+v after an error", repo.stored)
				}
			} else if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if tt.carrier.calls != tt.wantBookings || repo.calls != tt.wantApply {
				t.Fatalf("carrier asked %d times, Apply %d times; want %d, %d", tt.carrier.calls, repo.calls, tt.wantBookings, tt.wantApply)
			}
			if tt.wantType == 0 {
				for _, c := range repo.stored {
					if len(c.Events) != 0 {
						t.Fatalf("emitted %v, want nothing", c.Events)
					}
				}
				return
			}
			env := repo.stored[0].Events[0]
			if env.GetType() != tt.wantType || env.GetCausationId() != eventID || env.GetEventId() != events.DeriveID(eventID, tt.wantType) ||
				env.GetProducer() != app.Producer || env.GetCustomerId() != customerID || !env.GetOccurredAt().AsTime().Equal(now) {
				t.Fatalf("emitted %v", env)
			}
		})
	}
}

func TestCancelShipmentLeavesATombstoneAndNeverEmits(t *testing.T) {
	repo := &memoryRepo{}
	a := app.New(repo, &fakeCarrier{}, encode, func() time.Time { return now })
	if err := a.CancelShipment.Handle(context.Background(), app.CancelShipment{EventID: eventID, OrderID: orderID, CustomerID: customerID}); err != nil {
		t.Fatal(err)
	}
	if repo.current == nil || !repo.current.IsTombstone() || len(repo.stored[0].Events) != 0 {
		t.Fatalf("after cancel: %+v, stored %+v", repo.current, repo.stored)
	}
}

func TestCancelShipmentTellsTheCarrierAndEmits(t *testing.T) {
	booked := &fakeCarrier{booking: shipment.Booking{Accepted: true, Carrier: "simpost", TrackingNumber: "SP1", Location: "DE hub"}}
	repo := &memoryRepo{}
	a := app.New(repo, booked, encode, func() time.Time { return now })
	ctx := context.Background()
	create := app.CreateShipment{EventID: events.NewID(), OrderID: orderID, CustomerID: customerID,
		Address: shipment.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"},
		Lines:   []shipment.Line{{SKU: "BOOK-1", Quantity: 1, UnitPriceMinor: 100}}}
	if err := a.CreateShipment.Handle(ctx, create); err != nil {
		t.Fatal(err)
	}

	// The carrier cannot answer: nothing is stored, the consumer retries.
	booked.cancelErr = errors.New("carrier timeout")
	if err := a.CancelShipment.Handle(ctx, app.CancelShipment{EventID: eventID, OrderID: orderID, CustomerID: customerID}); err == nil {
		t.Fatal("cancel with the carrier down succeeded")
	}
	if repo.current.Status != shipment.StatusCreated || len(repo.stored) != 1 {
		t.Fatalf("after a failed carrier cancel: %+v, %d writes", repo.current, len(repo.stored))
	}
	booked.cancelErr = nil
	if err := a.CancelShipment.Handle(ctx, app.CancelShipment{EventID: eventID, OrderID: orderID, CustomerID: customerID}); err != nil {
		t.Fatal(err)
	}
	want := app.CancelRequest{OrderID: orderID, Carrier: "simpost", TrackingNumber: "SP1"}
	if len(booked.cancels) != 2 || booked.cancels[1] != want {
		t.Fatalf("carrier cancels %+v, want two asks for %+v", booked.cancels, want)
	}
	last := repo.stored[len(repo.stored)-1]
	if repo.current.Status != shipment.StatusCancelled || len(last.Events) != 1 ||
		last.Events[0].GetType() != eventsv1.EventType_EVENT_TYPE_SHIPMENT_CANCELLED ||
		last.Events[0].GetShipmentCancelled().GetTrackingNumber() != "SP1" || last.Events[0].GetCausationId() != eventID {
		t.Fatalf("after cancel: %+v, emitted %v", repo.current, last.Events)
	}
	// A cancelled shipment is not cancelled with the carrier again.
	if err := a.CancelShipment.Handle(ctx, app.CancelShipment{EventID: events.NewID(), OrderID: orderID, CustomerID: customerID}); err != nil {
		t.Fatal(err)
	}
	if len(booked.cancels) != 2 {
		t.Fatalf("carrier asked again for a cancelled shipment: %+v", booked.cancels)
	}
}

func TestListShipmentsDefaultsThePageSize(t *testing.T) {
	var gotSize int
	repo := &pageRepo{size: &gotSize}
	a := app.New(repo, &fakeCarrier{}, encode, func() time.Time { return now })
	if _, _, err := a.ListShipments.Handle(context.Background(), app.ListShipments{CustomerID: customerID}); err != nil {
		t.Fatal(err)
	}
	if gotSize != app.DefaultPageSize {
		t.Fatalf("page size %d, want %d", gotSize, app.DefaultPageSize)
	}
}

func TestListShipmentsCapsThePageSize(t *testing.T) {
	gotSize := -1
	repo := &pageRepo{size: &gotSize}
	a := app.New(repo, &fakeCarrier{}, encode, func() time.Time { return now })
	for _, size := range []int{app.MaxPageSize + 1, -1, 1 << 30} {
		_, _, err := a.ListShipments.Handle(context.Background(), app.ListShipments{CustomerID: customerID, PageSize: size})
		if !errors.Is(err, shipment.ErrInvalid) {
			t.Errorf("page size %d: %v, want ErrInvalid", size, err)
		}
	}
	if gotSize != -1 {
		t.Fatalf("the store was asked for %d rows", gotSize)
	}
	if _, _, err := a.ListShipments.Handle(context.Background(), app.ListShipments{CustomerID: customerID, PageSize: app.MaxPageSize}); err != nil || gotSize != app.MaxPageSize {
		t.Fatalf("page size %d: %v, store asked for %d", app.MaxPageSize, err, gotSize)
	}
}

type pageRepo struct {
	memoryRepo
	size *int
}

func (r *pageRepo) ListByCustomer(_ context.Context, _ string, size int, _ string) ([]*shipment.Shipment, string, error) {
	*r.size = size
	return nil, "", nil
}
