package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/tools/internal/suite"

	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
)

// A payment method token never leaves the payment path: after a completed
// and a customer-cancelled order paid with one unique token, no answer of
// any read API — to the customer or to an operator — and no line of any
// service's log holds it; and the customer's free-text cancel reason
// reaches no notification.
func TestNoPaymentTokenOrCancelTextLeaks(t *testing.T) {
	w := newWorld(t, 15*time.Minute, nil)
	token := "tok_leakcheck_" + randomHex(t)
	cancelText := "LEAKCHECK-" + randomHex(t) + " please call me"
	sku := w.product(5)
	cust := w.customer()

	// One order cancelled by the customer mid-saga (shipping held back so
	// it cannot complete first), one completed.
	if err := w.s.Stop(suite.Shipping); err != nil {
		t.Fatal(err)
	}
	cancelledID := w.place(orderSpec{customer: cust, sku: sku, qty: 1, token: token})
	w.waitStep(cancelledID, eventsv1.EventType_EVENT_TYPE_INVENTORY_UPDATED)
	asCustomer := w.s.ClientsAs(w.s.Keys().Customer(cust))
	if _, err := asCustomer.Order.CancelOrder(w.ctx, &orderv1.CancelOrderRequest{OrderId: cancelledID, Reason: cancelText}); err != nil {
		t.Fatalf("CancelOrder: %v", err)
	}
	if err := w.s.StartService(w.ctx, suite.Shipping); err != nil {
		t.Fatal(err)
	}
	completedID := w.place(orderSpec{customer: cust, sku: sku, qty: 1, token: token})
	w.expect(completedID, completed, noReason)
	w.expect(cancelledID, cancelled, eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED)
	w.waitStep(cancelledID, eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED)
	w.published(cancelledID, eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED)
	w.caughtUp(suite.Notification, events.TopicOrders, events.TopicPayments, events.TopicInventory, events.TopicShipments)
	w.audit()

	operator := w.s.ClientsAs(suite.NewMintingSource(w.s.Keys().Signer,
		auth.Principal{Subject: "leak-operator", Roles: []auth.Role{auth.RoleOperator}}, time.Hour))
	var answers []proto.Message
	keep := func(m proto.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		answers = append(answers, m)
	}
	for _, c := range []suite.Clients{asCustomer, operator} {
		for _, id := range []string{cancelledID, completedID} {
			keep(c.Order.GetOrder(w.ctx, &orderv1.GetOrderRequest{OrderId: id}))
			keep(c.Payment.GetPayment(w.ctx, &paymentv1.GetPaymentRequest{OrderId: id}))
			keep(c.Notification.GetSagaLog(w.ctx, &notificationv1.GetSagaLogRequest{OrderId: id}))
		}
		keep(c.Shipping.GetShipment(w.ctx, &shippingv1.GetShipmentRequest{OrderId: completedID}))
		keep(c.Order.ListOrders(w.ctx, &orderv1.ListOrdersRequest{CustomerId: cust, PageSize: 100}))
		keep(c.Payment.ListPayments(w.ctx, &paymentv1.ListPaymentsRequest{CustomerId: cust, PageSize: 100}))
		keep(c.Shipping.ListShipments(w.ctx, &shippingv1.ListShipmentsRequest{CustomerId: cust, PageSize: 100}))
	}
	notes, err := asCustomer.Notification.ListNotifications(w.ctx, &notificationv1.ListNotificationsRequest{CustomerId: cust, PageSize: 100})
	keep(notes, err)
	for _, a := range answers {
		text := protojson.Format(a)
		if strings.Contains(text, token) {
			t.Errorf("%s answers with the payment token:\n%s", a.ProtoReflect().Descriptor().FullName(), text)
		}
	}
	// The saga log still shows the events that carried it, masked.
	log, err := operator.Notification.GetSagaLog(w.ctx, &notificationv1.GetSagaLogRequest{OrderId: completedID})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(protojson.Format(log), "[redacted]") {
		t.Errorf("the saga log shows no masked payment token:\n%s", protojson.Format(log))
	}
	if len(notes.GetNotifications()) == 0 {
		t.Fatal("the customer has no notifications: nothing was checked for the cancel text")
	}
	if text := protojson.Format(notes); strings.Contains(text, "LEAKCHECK-") {
		t.Errorf("a notification repeats the customer's cancel text:\n%s", text)
	}

	// Every line every service process wrote.
	for _, name := range suite.Services {
		path := w.s.LogPath(name)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s's log: %v", name, err)
		}
		if len(raw) == 0 {
			t.Errorf("%s's log %s is empty: nothing was checked", name, path)
		}
		for i, line := range strings.Split(string(raw), "\n") {
			if strings.Contains(line, token) {
				t.Errorf("%s's log line %d holds the payment token: %s", name, i+1, line)
			}
		}
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
