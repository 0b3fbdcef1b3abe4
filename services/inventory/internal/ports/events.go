// Package ports is inventory's edge: the gRPC API (grpc.go) and the saga
// events (events.go), translated to and from the app's types in one place.
package ports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/inventory/internal/app"
	"github.com/sagasuite/sagasuite/services/inventory/internal/domain/stock"
)

// Producer is the envelope producer name of every event inventory emits.
const Producer = "inventory"

// Topics inventory consumes.
var Topics = []string{events.TopicOrders, events.TopicPayments, events.TopicShipments}

// EventHandler turns consumed envelopes into the app's saga reactions.
// Events inventory does not react to are acknowledged and ignored.
func EventHandler(svc *app.Service, logger *slog.Logger) bus.Handler {
	return func(ctx context.Context, env *eventsv1.Envelope) error {
		cause := app.Cause{EventID: env.GetEventId(), OrderID: env.GetOrderId(), CustomerID: env.GetCustomerId()}
		var (
			applied bool
			err     error
		)
		switch env.GetType() {
		case eventsv1.EventType_EVENT_TYPE_ORDER_CREATED:
			applied, err = svc.ReserveStock(ctx, cause, orderFromEvent(env.GetOrderCreated()))
		case eventsv1.EventType_EVENT_TYPE_PAYMENT_PROCESSED:
			applied, err = svc.DeductStock(ctx, cause)
		case eventsv1.EventType_EVENT_TYPE_PAYMENT_FAILED:
			applied, err = svc.ReleaseStock(ctx, cause)
		case eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED:
			applied, err = svc.CancelReservation(ctx, cause)
		case eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED:
			applied, err = svc.RestoreShippedStock(ctx, cause)
		default:
			return nil
		}
		var invalid *stock.InvalidError
		if errors.As(err, &invalid) || errors.Is(err, stock.ErrInvariant) {
			// Retrying cannot fix bad order data or a broken invariant: dead-letter it now.
			return bus.Permanent(err)
		}
		if err != nil {
			return err
		}
		if !applied {
			logger.DebugContext(ctx, "duplicate event ignored", "event_id", cause.EventID,
				"event_type", events.TypeName(env.GetType()), "order_id", cause.OrderID)
		}
		return nil
	}
}

func orderFromEvent(p *eventsv1.OrderCreated) stock.Order {
	lines := make([]stock.Line, len(p.GetLines()))
	for i, l := range p.GetLines() {
		lines[i] = stock.Line{SKU: l.GetSku(), Quantity: int64(l.GetQuantity()), UnitPriceMinor: l.GetUnitPriceMinor()}
	}
	a := p.GetShippingAddress()
	return stock.Order{
		Lines:        lines,
		Total:        stock.Money{AmountMinor: p.GetTotal().GetAmountMinor(), Currency: p.GetTotal().GetCurrency()},
		PaymentToken: p.GetPaymentMethodToken(),
		ShippingAddress: stock.Address{Name: a.GetName(), Line1: a.GetLine1(), Line2: a.GetLine2(), City: a.GetCity(),
			PostalCode: a.GetPostalCode(), CountryCode: a.GetCountryCode()},
	}
}

// EncodeEvent builds the envelope of a domain event caused by cause: its id
// derives from the cause and type, so a re-run emits the very same event.
func EncodeEvent(cause app.Cause, ev stock.Event) (*eventsv1.Envelope, error) {
	meta := events.Meta{OrderID: cause.OrderID, CustomerID: cause.CustomerID, Producer: Producer, CausationID: cause.EventID, OccurredAt: cause.At}
	switch e := ev.(type) {
	case stock.Reserved:
		return events.New(meta, &eventsv1.StockReserved{
			ReservationId: e.ReservationID, Lines: linesToProto(e.Lines), Total: moneyToProto(e.Total),
			PaymentMethodToken: e.PaymentToken, ShippingAddress: addressToProto(e.ShippingAddress),
		})
	case stock.Rejected:
		return events.New(meta, &eventsv1.OutOfStock{
			Sku: e.SKU, Requested: int32(e.Requested), Available: e.Available, Reason: rejectReasons[e.Reason],
		})
	case stock.Deducted:
		return events.New(meta, &eventsv1.InventoryUpdated{
			ReservationId: e.ReservationID, Lines: linesToProto(e.Lines), ShippingAddress: addressToProto(e.ShippingAddress),
		})
	case stock.Restored:
		return events.New(meta, &eventsv1.StockRestored{
			ReservationId: e.ReservationID, Lines: linesToProto(e.Lines), Reason: restoreReasons[e.Reason], WasDeducted: e.WasDeducted,
		})
	}
	return nil, fmt.Errorf("%w: inventory cannot encode %T", events.ErrInvalid, ev)
}

var rejectReasons = map[stock.RejectReason]eventsv1.OutOfStockReason{
	stock.RejectUnknownSKU:        eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_UNKNOWN_SKU,
	stock.RejectCurrencyMismatch:  eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_CURRENCY_MISMATCH,
	stock.RejectPriceMismatch:     eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_PRICE_MISMATCH,
	stock.RejectInsufficientStock: eventsv1.OutOfStockReason_OUT_OF_STOCK_REASON_INSUFFICIENT_STOCK,
}

var restoreReasons = map[stock.RestoreReason]eventsv1.RestoreReason{
	stock.RestorePaymentFailed:  eventsv1.RestoreReason_RESTORE_REASON_PAYMENT_FAILED,
	stock.RestoreOrderCancelled: eventsv1.RestoreReason_RESTORE_REASON_ORDER_CANCELLED,
	stock.RestoreShipmentFailed: eventsv1.RestoreReason_RESTORE_REASON_SHIPMENT_FAILED,
}

func linesToProto(lines []stock.Line) []*commonv1.LineItem {
	out := make([]*commonv1.LineItem, len(lines))
	for i, l := range lines {
		out[i] = &commonv1.LineItem{Sku: l.SKU, Quantity: int32(l.Quantity), UnitPriceMinor: l.UnitPriceMinor}
	}
	return out
}

func moneyToProto(m stock.Money) *commonv1.Money {
	return &commonv1.Money{AmountMinor: m.AmountMinor, Currency: m.Currency}
}

func addressToProto(a stock.Address) *commonv1.Address {
	return &commonv1.Address{Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, CountryCode: a.CountryCode}
}
