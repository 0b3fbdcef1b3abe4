// Package shipment is the shipping service's aggregate: one shipment per
// order, its parcels, its carrier booking and tracking timeline, and the
// saga's rules for it. Plain Go: no MongoDB, Kafka or protobuf.
//
//	(none) --INVENTORY_UPDATED, carrier accepts--> CREATED   (emits SHIPMENT_CREATED)
//	(none) --INVENTORY_UPDATED, carrier refuses--> FAILED    (emits SHIPMENT_FAILED)
//	(none) --ORDER_CANCELLED--> CANCELLED (a tombstone: a later INVENTORY_UPDATED books nothing)
//	CREATED --ORDER_CANCELLED--> CANCELLED (timeline entry, no event)
//
// Everything else changes nothing: a second INVENTORY_UPDATED, an
// INVENTORY_UPDATED after the cancel, ORDER_CANCELLED of a FAILED or CANCELLED
// shipment. FAILED and CANCELLED are terminal.
package shipment

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Status is where a shipment stands.
type Status string

// Shipment statuses.
const (
	StatusCreated   Status = "CREATED"
	StatusFailed    Status = "FAILED"
	StatusCancelled Status = "CANCELLED"
)

// FailureReason says why a shipment could not be booked. The values follow
// the events contract's ShipmentFailureReason.
type FailureReason string

// Failure reasons.
const (
	ReasonNone                 FailureReason = ""
	ReasonUndeliverableAddress FailureReason = "UNDELIVERABLE_ADDRESS"
	ReasonCarrierRejected      FailureReason = "CARRIER_REJECTED"
	ReasonCarrierUnavailable   FailureReason = "CARRIER_UNAVAILABLE"
)

// ErrInvalid marks input that breaks the aggregate's rules (a missing order
// id, an order without lines): retrying cannot fix it.
var ErrInvalid = errors.New("invalid shipment input")

// ErrNotFound is returned by repositories for an order without a shipment.
var ErrNotFound = errors.New("shipment not found")

// NotFound is the error for an order id that names no shipment the caller
// may see. The store answers a missing one with it and the API a foreign
// one, so the two read the same and ids cannot be probed.
func NotFound(orderID string) error { return fmt.Errorf("%w: order %s", ErrNotFound, orderID) }

// Address is where the parcels go, as INVENTORY_UPDATED carries it.
type Address struct {
	Name        string
	Line1       string
	Line2       string
	City        string
	PostalCode  string
	CountryCode string // ISO 3166-1 alpha-2, upper case
}

// Line is one deducted order line: what goes into the parcels.
type Line struct {
	SKU            string
	Quantity       int64
	UnitPriceMinor int64
}

// Parcel is one box of a shipment.
type Parcel struct {
	ParcelID    string
	Lines       []Line
	WeightGrams int64
}

// TrackingEntry is one step of a shipment's timeline.
type TrackingEntry struct {
	Status      Status
	Description string
	Location    string
	At          time.Time
}

// Shipment is one order's delivery.
type Shipment struct {
	OrderID        string
	ShipmentID     string
	CustomerID     string
	Status         Status
	Address        Address // empty on a tombstone
	Parcels        []Parcel
	Carrier        string // set when the carrier accepted
	TrackingNumber string // set when the carrier accepted
	Tracking       []TrackingEntry
	FailureReason  FailureReason // set when FAILED
	FailureDetail  string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// IsTombstone reports whether the shipment only records that the order was
// cancelled before shipping was asked to do anything.
func (s *Shipment) IsTombstone() bool { return s.Status == StatusCancelled && len(s.Parcels) == 0 }

// Order is what INVENTORY_UPDATED asks shipping to ship.
type Order struct {
	OrderID    string
	CustomerID string
	Address    Address
	Lines      []Line
}

// Validate checks what the aggregate relies on.
func (o Order) Validate() error {
	if o.OrderID == "" {
		return fmt.Errorf("%w: order id is required", ErrInvalid)
	}
	if len(o.Lines) == 0 {
		return fmt.Errorf("%w: order %s has no lines", ErrInvalid, o.OrderID)
	}
	for i, l := range o.Lines {
		if l.Quantity <= 0 {
			return fmt.Errorf("%w: order %s line %d (%s): quantity %d must be positive", ErrInvalid, o.OrderID, i, l.SKU, l.Quantity)
		}
	}
	if o.Address.CountryCode == "" {
		return fmt.Errorf("%w: order %s: address has no country code", ErrInvalid, o.OrderID)
	}
	return nil
}

// Booking is the carrier's answer to a booking request.
type Booking struct {
	Accepted       bool
	Carrier        string
	TrackingNumber string
	Location       string        // the carrier's depot that took the booking
	Reason         FailureReason // when refused
	Detail         string        // when refused: human-readable why
}

// Event is what a transition tells the rest of the saga.
type Event interface{ isEvent() }

// Created: the parcels are booked (SHIPMENT_CREATED).
type Created struct {
	ShipmentID     string
	Carrier        string
	TrackingNumber string
}

// Failed: no shipment could be booked (SHIPMENT_FAILED).
type Failed struct {
	ShipmentID string
	Reason     FailureReason
	Detail     string
}

// Cancelled: a booked shipment was cancelled with its carrier (SHIPMENT_CANCELLED).
type Cancelled struct {
	ShipmentID     string
	Carrier        string
	TrackingNumber string
}

func (Created) isEvent()   {}
func (Failed) isEvent()    {}
func (Cancelled) isEvent() {}

// Result is a transition's outcome: the shipment after it (nil when nothing
// changed) and the events to publish.
type Result struct {
	Shipment *Shipment
	Events   []Event
}

// Changed reports whether the transition changed the shipment.
func (r Result) Changed() bool { return r.Shipment != nil }

// shipmentNamespace scopes derived shipment ids (UUIDv5).
var shipmentNamespace = uuid.MustParse("3f1f6c0e-2b7d-4f55-8a8e-6d1c2b9e0a47")

// IDFor is the shipment id of an order: derived, so every retry, replay and
// tombstone of the order names the same shipment.
func IDFor(orderID string) string {
	return uuid.NewSHA1(shipmentNamespace, []byte(orderID)).String()
}

// NeedsBooking reports whether INVENTORY_UPDATED should ask the carrier:
// only when shipping has not seen the order yet (no shipment, no tombstone).
func NeedsBooking(current *Shipment) bool { return current == nil }

// Book applies INVENTORY_UPDATED. current is the order's shipment (nil when
// none); booking is the carrier's answer for the parcels Pack made, asked
// only when NeedsBooking(current). A known order changes nothing: a second
// INVENTORY_UPDATED is a duplicate, and after a cancel (tombstone) the late
// event is dropped — inventory restores its own stock on ORDER_CANCELLED.
func Book(current *Shipment, order Order, parcels []Parcel, booking Booking, now time.Time) (Result, error) {
	if err := order.Validate(); err != nil {
		return Result{}, err
	}
	if !NeedsBooking(current) {
		return Result{}, nil
	}
	now = now.UTC()
	s := &Shipment{
		OrderID:    order.OrderID,
		ShipmentID: IDFor(order.OrderID),
		CustomerID: order.CustomerID,
		Address:    order.Address,
		Parcels:    parcels,
		CreatedAt:  now,
		UpdatedAt:  now,
	}
	if booking.Accepted {
		if booking.Carrier == "" || booking.TrackingNumber == "" {
			return Result{}, fmt.Errorf("%w: accepted booking for %s lacks carrier or tracking number", ErrInvalid, order.OrderID)
		}
		s.Status = StatusCreated
		s.Carrier, s.TrackingNumber = booking.Carrier, booking.TrackingNumber
		s.Tracking = []TrackingEntry{{
			Status:      StatusCreated,
			Description: fmt.Sprintf("booked with %s, %d parcel(s), tracking %s", booking.Carrier, len(parcels), booking.TrackingNumber),
			Location:    booking.Location,
			At:          now,
		}}
		return Result{Shipment: s, Events: []Event{Created{ShipmentID: s.ShipmentID, Carrier: s.Carrier, TrackingNumber: s.TrackingNumber}}}, nil
	}
	if booking.Reason == ReasonNone {
		return Result{}, fmt.Errorf("%w: refused booking for %s lacks a reason", ErrInvalid, order.OrderID)
	}
	s.Status = StatusFailed
	s.FailureReason, s.FailureDetail = booking.Reason, booking.Detail
	s.Tracking = []TrackingEntry{{Status: StatusFailed, Description: "carrier refused: " + booking.Detail, Location: booking.Location, At: now}}
	return Result{Shipment: s, Events: []Event{Failed{ShipmentID: s.ShipmentID, Reason: s.FailureReason, Detail: s.FailureDetail}}}, nil
}

// NeedsCarrierCancel reports whether ORDER_CANCELLED must cancel a booking
// with the carrier before Cancel: only a CREATED shipment has one.
func NeedsCarrierCancel(current *Shipment) bool {
	return current != nil && current.Status == StatusCreated
}

// Cancel applies ORDER_CANCELLED (the carrier has been told, when
// NeedsCarrierCancel said so). A CREATED shipment becomes CANCELLED with a
// timeline entry and emits Cancelled (SHIPMENT_CANCELLED: a step in the
// order's history); an unknown order gets a CANCELLED tombstone, without an
// event, so a late INVENTORY_UPDATED books nothing. FAILED and CANCELLED
// shipments stay as they are.
func Cancel(current *Shipment, orderID, customerID, detail string, now time.Time) (Result, error) {
	if orderID == "" {
		return Result{}, fmt.Errorf("%w: order id is required", ErrInvalid)
	}
	now = now.UTC()
	description := "order cancelled"
	if detail != "" {
		description += ": " + detail
	}
	if current == nil {
		return Result{Shipment: &Shipment{
			OrderID:    orderID,
			ShipmentID: IDFor(orderID),
			CustomerID: customerID,
			Status:     StatusCancelled,
			Tracking:   []TrackingEntry{{Status: StatusCancelled, Description: description + " (before shipping)", At: now}},
			CreatedAt:  now,
			UpdatedAt:  now,
		}}, nil
	}
	if current.Status != StatusCreated {
		return Result{}, nil
	}
	next := current.clone()
	next.Status = StatusCancelled
	next.Tracking = append(next.Tracking, TrackingEntry{Status: StatusCancelled, Description: description, At: now})
	next.UpdatedAt = now
	return Result{Shipment: next, Events: []Event{Cancelled{
		ShipmentID: next.ShipmentID, Carrier: next.Carrier, TrackingNumber: next.TrackingNumber,
	}}}, nil
}

// clone copies s deep enough that appending to the copy's slices leaves s alone.
func (s *Shipment) clone() *Shipment {
	c := *s
	c.Parcels = append([]Parcel(nil), s.Parcels...)
	c.Tracking = append([]TrackingEntry(nil), s.Tracking...)
	return &c
}
