// Package app holds the shipping service's use cases: the commands the saga's
// events trigger (CreateShipment, CancelShipment) and the queries of the gRPC
// API (GetShipment, ListShipments), each with its dependencies as interfaces.
package app

import (
	"context"
	"errors"
	"time"

	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// Producer is the name shipping's events carry.
const Producer = "shipping"

// ErrBadPageToken marks a page token the repository did not issue.
var ErrBadPageToken = errors.New("malformed page token")

// Change is what a decision asks the repository to store for one event.
type Change struct {
	// Shipment is the order's shipment after the event; nil when the event
	// changed nothing (its id is still recorded as processed).
	Shipment *shipment.Shipment
	// Events go into the shipment document's outbox in the same write.
	Events []*eventsv1.Envelope
}

// Repository stores shipment documents with their inbox and outbox.
type Repository interface {
	// Apply runs decide on the order's shipment (nil when there is none),
	// serialized with every other write of that order, and stores the change,
	// its events and eventID as processed in one single-document write. When
	// eventID was processed already, decide is not called and Apply reports
	// false.
	Apply(ctx context.Context, orderID, eventID string, decide func(current *shipment.Shipment) (Change, error)) (applied bool, err error)
	// Get returns the order's shipment or shipment.ErrNotFound.
	Get(ctx context.Context, orderID string) (*shipment.Shipment, error)
	// ListByCustomer pages through a customer's shipments, newest first.
	// pageToken is empty or a token it returned; a bad one gives ErrBadPageToken.
	ListByCustomer(ctx context.Context, customerID string, pageSize int, pageToken string) (page []*shipment.Shipment, next string, err error)
}

// BookingRequest is what the carrier is asked to transport.
type BookingRequest struct {
	OrderID string
	Address shipment.Address
	Parcels []shipment.Parcel
}

// CancelRequest names the booking to cancel with the carrier.
type CancelRequest struct {
	OrderID        string
	Carrier        string
	TrackingNumber string
}

// Carrier books shipments and cancels bookings. An error means the carrier
// could not answer (the event is retried); a refusal is a Booking with
// Accepted false. Cancel must be idempotent by tracking number: a crash
// after it and before the shipment is stored asks again.
type Carrier interface {
	Book(ctx context.Context, req BookingRequest) (shipment.Booking, error)
	Cancel(ctx context.Context, req CancelRequest) error
}

// EventEncoder turns a domain event into the envelope to publish (ports do it).
type EventEncoder func(meta events.Meta, e shipment.Event) (*eventsv1.Envelope, error)

// Application is every use case of the service.
type Application struct {
	CreateShipment CreateShipmentHandler
	CancelShipment CancelShipmentHandler
	GetShipment    GetShipmentHandler
	ListShipments  ListShipmentsHandler
}

// New wires the use cases; now is the injected clock.
func New(repo Repository, carrier Carrier, encode EventEncoder, now func() time.Time) Application {
	return Application{
		CreateShipment: CreateShipmentHandler{repo: repo, carrier: carrier, encode: encode, now: now},
		CancelShipment: CancelShipmentHandler{repo: repo, carrier: carrier, encode: encode, now: now},
		GetShipment:    GetShipmentHandler{repo: repo},
		ListShipments:  ListShipmentsHandler{repo: repo},
	}
}

// changeOf turns a transition's result into the repository's change,
// encoding its events as caused by causationID.
func changeOf(r shipment.Result, encode EventEncoder, causationID string, now time.Time) (Change, error) {
	if !r.Changed() {
		return Change{}, nil
	}
	c := Change{Shipment: r.Shipment}
	for _, e := range r.Events {
		env, err := encode(events.Meta{
			OrderID: r.Shipment.OrderID, CustomerID: r.Shipment.CustomerID, Producer: Producer,
			CausationID: causationID, OccurredAt: now,
		}, e)
		if err != nil {
			return Change{}, err
		}
		c.Events = append(c.Events, env)
	}
	return c, nil
}
