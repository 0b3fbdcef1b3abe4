package audit

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/events"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
)

func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// check runs every check on a snapshot; it is pure, so the tests drive it
// through hand-built API responses.
func check(s *snapshot) Report {
	a := &auditor{Report: Report{Violations: append([]string(nil), s.listed...)}}
	a.orders(s)
	a.payments(s)
	a.shipments(s)
	a.stock(s)
	a.sagaLogs(s)
	a.gatewayLedger(s)
	return a.Report
}

type auditor struct {
	Report
}

func (a *auditor) violate(format string, args ...any) {
	a.Violations = append(a.Violations, fmt.Sprintf(format, args...))
}

func orderStatus(s orderv1.OrderStatus) string {
	return strings.TrimPrefix(s.String(), "ORDER_STATUS_")
}
func paymentStatus(s paymentv1.PaymentStatus) string {
	return strings.TrimPrefix(s.String(), "PAYMENT_STATUS_")
}
func shipmentStatus(s shippingv1.ShipmentStatus) string {
	return strings.TrimPrefix(s.String(), "SHIPMENT_STATUS_")
}
func money(m *commonv1.Money) string {
	return fmt.Sprintf("%d %s", m.GetAmountMinor(), m.GetCurrency())
}

func (a *auditor) orders(s *snapshot) {
	a.Orders = len(s.orders)
	for _, o := range s.orders {
		switch o.GetStatus() {
		case orderv1.OrderStatus_ORDER_STATUS_COMPLETED:
			a.Completed++
		case orderv1.OrderStatus_ORDER_STATUS_CANCELLED:
			a.Cancelled++
		default:
			a.Pending++
			a.violate("Order %s of customer %s is %s, not COMPLETED or CANCELLED (deadline %s).",
				o.GetOrderId(), o.GetCustomerId(), orderStatus(o.GetStatus()), o.GetDeadline().AsTime().UTC().Format("2006-01-02T15:04:05.000Z"))
		}
	}
}

// isCaptured: the charge went through (a refunded payment was captured first).
func isCaptured(p *paymentv1.Payment) bool {
	return p.GetStatus() == paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED ||
		p.GetStatus() == paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED
}

func (a *auditor) payments(s *snapshot) {
	byOrder := map[string][]*paymentv1.Payment{}
	for _, p := range s.payments {
		byOrder[p.GetOrderId()] = append(byOrder[p.GetOrderId()], p)
	}
	known := map[string]*orderv1.Order{}
	byCurrency := map[string]*CurrencyLine{}
	line := func(currency string) *CurrencyLine {
		if byCurrency[currency] == nil {
			byCurrency[currency] = &CurrencyLine{Currency: currency}
		}
		return byCurrency[currency]
	}

	for _, o := range s.orders {
		known[o.GetOrderId()] = o
		ps := byOrder[o.GetOrderId()]
		if len(ps) > 1 {
			a.violate("Order %s has %d payments; at most one is allowed.", o.GetOrderId(), len(ps))
		}
		switch o.GetStatus() {
		case orderv1.OrderStatus_ORDER_STATUS_COMPLETED:
			line(o.GetTotal().GetCurrency()).CompletedTotal += o.GetTotal().GetAmountMinor()
			captured := 0
			for _, p := range ps {
				if p.GetStatus() == paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED {
					captured++
					if p.GetAmount().GetAmountMinor() != o.GetTotal().GetAmountMinor() || p.GetAmount().GetCurrency() != o.GetTotal().GetCurrency() {
						a.violate("Payment %s of COMPLETED order %s captured %s, but the order's total is %s.",
							p.GetPaymentId(), o.GetOrderId(), money(p.GetAmount()), money(o.GetTotal()))
					}
				}
				if len(p.GetRefunds()) > 0 {
					a.violate("Payment %s of COMPLETED order %s was refunded (%d refund(s), status %s); a completed order keeps its money.",
						p.GetPaymentId(), o.GetOrderId(), len(p.GetRefunds()), paymentStatus(p.GetStatus()))
				}
			}
			if captured == 0 {
				a.violate("COMPLETED order %s (total %s) has no CAPTURED payment (%s).", o.GetOrderId(), money(o.GetTotal()), describePayments(ps))
			}
		case orderv1.OrderStatus_ORDER_STATUS_CANCELLED:
			for _, p := range ps {
				if p.GetStatus() == paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED {
					a.violate("Payment %s of CANCELLED order %s is still CAPTURED (%s kept, never refunded).",
						p.GetPaymentId(), o.GetOrderId(), money(p.GetAmount()))
				}
			}
		}
	}

	for _, p := range s.payments {
		if known[p.GetOrderId()] == nil {
			a.violate("Payment %s (%s, %s) is for order %s, which the order service does not list for customer %s.",
				p.GetPaymentId(), paymentStatus(p.GetStatus()), money(p.GetAmount()), p.GetOrderId(), p.GetCustomerId())
		}
		refunds := p.GetRefunds()
		var refunded int64
		for _, r := range refunds {
			refunded += r.GetAmount().GetAmountMinor()
			if r.GetAmount().GetCurrency() != p.GetAmount().GetCurrency() {
				a.violate("Refund %s of payment %s (order %s) is in %s, the payment in %s.",
					r.GetRefundId(), p.GetPaymentId(), p.GetOrderId(), r.GetAmount().GetCurrency(), p.GetAmount().GetCurrency())
			}
			line(r.GetAmount().GetCurrency()).Refunded += r.GetAmount().GetAmountMinor()
		}
		if len(refunds) > 1 {
			a.violate("Payment %s of order %s was refunded %d times (%d minor units in all); a charge is refunded at most once.",
				p.GetPaymentId(), p.GetOrderId(), len(refunds), refunded)
		}
		switch {
		case p.GetStatus() == paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED && len(refunds) == 0:
			a.violate("Payment %s of order %s is REFUNDED but lists no refund.", p.GetPaymentId(), p.GetOrderId())
		case p.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED && len(refunds) > 0:
			a.violate("Payment %s of order %s is %s but lists %d refund(s).", p.GetPaymentId(), p.GetOrderId(), paymentStatus(p.GetStatus()), len(refunds))
		}
		if refunded > p.GetAmount().GetAmountMinor() {
			a.violate("Payment %s of order %s refunded %d minor units, more than the %s charged.",
				p.GetPaymentId(), p.GetOrderId(), refunded, money(p.GetAmount()))
		}
		if isCaptured(p) {
			line(p.GetAmount().GetCurrency()).Captured += p.GetAmount().GetAmountMinor()
		}
	}

	currencies := make([]string, 0, len(byCurrency))
	for c := range byCurrency {
		currencies = append(currencies, c)
	}
	slices.Sort(currencies)
	for _, c := range currencies {
		l := *byCurrency[c]
		a.Money = append(a.Money, l)
		if l.Captured-l.Refunded != l.CompletedTotal {
			a.violate("Money in %s does not add up: captured %d − refunded %d = %d, but COMPLETED orders total %d.",
				c, l.Captured, l.Refunded, l.Captured-l.Refunded, l.CompletedTotal)
		}
	}
}

func describePayments(ps []*paymentv1.Payment) string {
	if len(ps) == 0 {
		return "no payment at all"
	}
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("payment %s %s", p.GetPaymentId(), paymentStatus(p.GetStatus()))
	}
	return strings.Join(parts, ", ")
}

// isLive: the shipment is (or was) on its way to the customer.
func isLive(sh *shippingv1.Shipment) bool {
	switch sh.GetStatus() {
	case shippingv1.ShipmentStatus_SHIPMENT_STATUS_CANCELLED, shippingv1.ShipmentStatus_SHIPMENT_STATUS_FAILED:
		return false
	}
	return true
}

func (a *auditor) shipments(s *snapshot) {
	byOrder := map[string][]*shippingv1.Shipment{}
	for _, sh := range s.shipments {
		byOrder[sh.GetOrderId()] = append(byOrder[sh.GetOrderId()], sh)
	}
	known := map[string]bool{}
	for _, o := range s.orders {
		known[o.GetOrderId()] = true
		var live []string
		for _, sh := range byOrder[o.GetOrderId()] {
			if isLive(sh) {
				live = append(live, fmt.Sprintf("%s %s", sh.GetShipmentId(), shipmentStatus(sh.GetStatus())))
			}
		}
		switch o.GetStatus() {
		case orderv1.OrderStatus_ORDER_STATUS_COMPLETED:
			if len(live) != 1 {
				a.violate("COMPLETED order %s has %d live shipments (%s); exactly one is required.",
					o.GetOrderId(), len(live), orNone(live))
			}
		case orderv1.OrderStatus_ORDER_STATUS_CANCELLED:
			if len(live) > 0 {
				a.violate("CANCELLED order %s still has %d live shipment(s): %s.", o.GetOrderId(), len(live), strings.Join(live, ", "))
			}
		}
	}
	for _, sh := range s.shipments {
		if !known[sh.GetOrderId()] {
			a.violate("Shipment %s (%s) is for order %s, which the order service does not list for customer %s.",
				sh.GetShipmentId(), shipmentStatus(sh.GetStatus()), sh.GetOrderId(), sh.GetCustomerId())
		}
	}
}

func orNone(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}

func (a *auditor) stock(s *snapshot) {
	ordered := map[string]int64{}
	for _, o := range s.orders {
		if o.GetStatus() == orderv1.OrderStatus_ORDER_STATUS_COMPLETED {
			for _, l := range o.GetLines() {
				ordered[l.GetSku()] += int64(l.GetQuantity())
			}
		}
	}
	for _, sku := range s.missing {
		a.violate("SKU %s is unknown to the inventory service.", sku)
	}
	settled := a.Pending == 0
	for _, st := range s.stock {
		l := StockLine{
			SKU: st.GetSku(), Added: st.GetAdded(), Available: st.GetAvailable(), Reserved: st.GetReserved(),
			Sold: st.GetSold(), Restored: st.GetRestored(), OrderedUnits: ordered[st.GetSku()],
		}
		a.Stock = append(a.Stock, l)
		if sum := l.Available + l.Reserved + l.Sold - l.Restored; sum != l.Added {
			a.violate("SKU %s: added %d ≠ available %d + reserved %d + sold %d − restored %d = %d.",
				l.SKU, l.Added, l.Available, l.Reserved, l.Sold, l.Restored, sum)
		}
		for _, c := range []struct {
			name  string
			value int64
		}{{"available", l.Available}, {"reserved", l.Reserved}, {"sold", l.Sold}, {"added", l.Added}, {"restored", l.Restored}} {
			if c.value < 0 {
				a.violate("SKU %s: %s is %d, below zero.", l.SKU, c.name, c.value)
			}
		}
		if l.Restored > l.Sold {
			a.violate("SKU %s: restored %d exceeds sold %d (more units put back than were ever deducted).", l.SKU, l.Restored, l.Sold)
		}
		if !settled {
			continue // reservations of running sagas are legitimate
		}
		if l.Reserved != 0 {
			a.violate("SKU %s: %d units still reserved although every order is terminal (a reservation was never deducted or released).", l.SKU, l.Reserved)
		}
		if kept := l.Sold - l.Restored; kept != l.OrderedUnits {
			a.violate("SKU %s: sold %d − restored %d = %d units kept, but COMPLETED orders hold %d.",
				l.SKU, l.Sold, l.Restored, kept, l.OrderedUnits)
		}
	}
}

func (a *auditor) sagaLogs(s *snapshot) {
	for _, o := range s.orders {
		logged := map[string]int{}
		for _, e := range s.logs[o.GetOrderId()] {
			logged[e.GetEventId()]++
			if logged[e.GetEventId()] == 2 {
				a.violate("Saga log of order %s records event %s (%s) more than once.", o.GetOrderId(), e.GetEventId(), typeName(e.GetType()))
			}
			if e.GetOrderId() != o.GetOrderId() {
				a.violate("Saga log of order %s holds event %s (%s) of order %s.", o.GetOrderId(), e.GetEventId(), typeName(e.GetType()), e.GetOrderId())
			}
		}
		var missing []string
		for _, st := range o.GetSteps() {
			if logged[st.GetEventId()] == 0 {
				missing = append(missing, fmt.Sprintf("%s %s", typeName(st.GetEventType()), st.GetEventId()))
			}
		}
		if len(missing) > 0 {
			a.violate("Saga log of order %s (%d events) lacks %d of its %d steps: %s.",
				o.GetOrderId(), len(s.logs[o.GetOrderId()]), len(missing), len(o.GetSteps()), strings.Join(missing, ", "))
		}
	}
}

func typeName(t eventsv1.EventType) string { return events.TypeName(t) }
