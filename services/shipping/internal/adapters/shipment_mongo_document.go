package adapters

import (
	"time"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// shipmentDoc is one order's document in the shipments collection: the
// shipment's state, its inbox (processed event ids) and its outbox (events
// not yet published), so a state change, the events it causes and the
// consumed event's id are written by one single-document update.
type shipmentDoc struct {
	OrderID        string        `bson:"_id"`
	ShipmentID     string        `bson:"shipment_id"`
	CustomerID     string        `bson:"customer_id"`
	Status         string        `bson:"status"`
	Address        addressDoc    `bson:"address"`
	Parcels        []parcelDoc   `bson:"parcels"`
	Carrier        string        `bson:"carrier"`
	TrackingNumber string        `bson:"tracking_number"`
	Tracking       []trackingDoc `bson:"tracking"`
	FailureReason  string        `bson:"failure_reason"`
	FailureDetail  string        `bson:"failure_detail"`
	CreatedAt      time.Time     `bson:"created_at"`
	UpdatedAt      time.Time     `bson:"updated_at"`
	// Version counts writes; every update filters on it and increments it.
	Version int64 `bson:"version"`
	// Epoch is the writer epoch (WriterLease) of the document's last write;
	// a writer holding an older epoch is fenced off by it. 0: no lease.
	Epoch     int64        `bson:"epoch"`
	Processed []string     `bson:"processed"`
	Outbox    []outboxItem `bson:"outbox"`
}

type addressDoc struct {
	Name        string `bson:"name"`
	Line1       string `bson:"line1"`
	Line2       string `bson:"line2"`
	City        string `bson:"city"`
	PostalCode  string `bson:"postal_code"`
	CountryCode string `bson:"country_code"`
}

type lineDoc struct {
	SKU            string `bson:"sku"`
	Quantity       int64  `bson:"quantity"`
	UnitPriceMinor int64  `bson:"unit_price_minor"`
}

type parcelDoc struct {
	ParcelID    string    `bson:"parcel_id"`
	Lines       []lineDoc `bson:"lines"`
	WeightGrams int64     `bson:"weight_grams"`
}

type trackingDoc struct {
	Status      string    `bson:"status"`
	Description string    `bson:"description"`
	Location    string    `bson:"location"`
	At          time.Time `bson:"at"`
}

// outboxItem is one pending record, exactly as it will be published.
type outboxItem struct {
	EventID string            `bson:"event_id"`
	Topic   string            `bson:"topic"`
	Key     string            `bson:"key"`
	Headers map[string]string `bson:"headers"`
	Value   []byte            `bson:"value"`
	AddedAt time.Time         `bson:"added_at"`
	// Attempts counts Kafka's permanent refusals (the relay parks the entry
	// at its MaxAttempts); LastError is the latest refusal.
	Attempts  int    `bson:"attempts,omitempty"`
	LastError string `bson:"last_error,omitempty"`
}

func (o outboxItem) message() bus.Message {
	return bus.Message{Topic: o.Topic, Key: o.Key, Headers: o.Headers, Value: o.Value}
}

func (d *shipmentDoc) processed(eventID string) bool {
	for _, id := range d.Processed {
		if id == eventID {
			return true
		}
	}
	return false
}

// stateOf is the document's shipment state: the fields a decision rewrites.
func stateOf(s *shipment.Shipment) shipmentDoc {
	d := shipmentDoc{
		OrderID:        s.OrderID,
		ShipmentID:     s.ShipmentID,
		CustomerID:     s.CustomerID,
		Status:         string(s.Status),
		Address:        addressDoc(s.Address),
		Parcels:        make([]parcelDoc, len(s.Parcels)),
		Carrier:        s.Carrier,
		TrackingNumber: s.TrackingNumber,
		Tracking:       make([]trackingDoc, len(s.Tracking)),
		FailureReason:  string(s.FailureReason),
		FailureDetail:  s.FailureDetail,
		CreatedAt:      s.CreatedAt.UTC(),
		UpdatedAt:      s.UpdatedAt.UTC(),
		Processed:      []string{},
		Outbox:         []outboxItem{},
	}
	for i, p := range s.Parcels {
		lines := make([]lineDoc, len(p.Lines))
		for j, l := range p.Lines {
			lines[j] = lineDoc(l)
		}
		d.Parcels[i] = parcelDoc{ParcelID: p.ParcelID, Lines: lines, WeightGrams: p.WeightGrams}
	}
	for i, t := range s.Tracking {
		d.Tracking[i] = trackingDoc{Status: string(t.Status), Description: t.Description, Location: t.Location, At: t.At.UTC()}
	}
	return d
}

// shipment turns the document back into the aggregate.
func (d *shipmentDoc) shipment() *shipment.Shipment {
	s := &shipment.Shipment{
		OrderID:        d.OrderID,
		ShipmentID:     d.ShipmentID,
		CustomerID:     d.CustomerID,
		Status:         shipment.Status(d.Status),
		Address:        shipment.Address(d.Address),
		Carrier:        d.Carrier,
		TrackingNumber: d.TrackingNumber,
		FailureReason:  shipment.FailureReason(d.FailureReason),
		FailureDetail:  d.FailureDetail,
		CreatedAt:      d.CreatedAt.UTC(),
		UpdatedAt:      d.UpdatedAt.UTC(),
	}
	for _, p := range d.Parcels {
		lines := make([]shipment.Line, len(p.Lines))
		for j, l := range p.Lines {
			lines[j] = shipment.Line(l)
		}
		s.Parcels = append(s.Parcels, shipment.Parcel{ParcelID: p.ParcelID, Lines: lines, WeightGrams: p.WeightGrams})
	}
	for _, t := range d.Tracking {
		s.Tracking = append(s.Tracking, shipment.TrackingEntry{Status: shipment.Status(t.Status), Description: t.Description, Location: t.Location, At: t.At.UTC()})
	}
	return s
}
