package ports_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/auth/authtest"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/events"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters"
	"github.com/sagasuite/sagasuite/services/notification/internal/adapters/cassandratest"
	"github.com/sagasuite/sagasuite/services/notification/internal/app"
	"github.com/sagasuite/sagasuite/services/notification/internal/ports"
	"github.com/sagasuite/sagasuite/services/notification/internal/sagatest"
	"github.com/sagasuite/sagasuite/services/notification/migrations"
)

// wait bounds each call against the real store; no test asserts on timing.
const wait = 2 * time.Minute

// Words a caller typed into CancelOrder, and a payment method token: neither
// may reach a customer's notification, the saga log answer or the log.
const (
	freeText    = "Call 0800-SCAM-NOW and quote your card number <b>urgently</b>"
	secretToken = "tok_4242_alices_card"
)

// notificationService is the notification API and its event handler over a
// fresh keyspace on the shared Cassandra; what it "sends" goes to sent.
type notificationService struct {
	srv    *ports.GRPCServer
	handle func(context.Context, *eventsv1.Envelope) error
	sent   *bytes.Buffer
}

func newNotificationService(t *testing.T, ctx context.Context) notificationService {
	t.Helper()
	store, err := adapters.OpenCassandra(ctx, adapters.CassandraConfig{
		Hosts: cassandratest.Hosts(), Keyspace: cassandratest.Keyspace(t),
		Replication: "{'class':'SimpleStrategy','replication_factor':1}", Consistency: gocql.LocalQuorum, Timeout: 30 * time.Second,
	}, migrations.FS)
	if err != nil {
		t.Fatalf("open Cassandra store (run `make infra-up`): %v", err)
	}
	t.Cleanup(store.Close) // before the keyspace is dropped
	sent := &bytes.Buffer{}
	// DEBUG: the log sender's "notification sent" lines are DEBUG.
	logger := slog.New(slog.NewJSONHandler(sent, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := app.New(store, adapters.LogSender{Logger: logger}, clock.System{})
	return notificationService{srv: ports.NewGRPCServer(a, logger), handle: ports.NewEventHandler(a).Handle, sent: sent}
}

// record feeds a saga of customerID through the event handler.
func (s notificationService) record(t *testing.T, ctx context.Context, orderID, customerID string, steps []sagatest.Step) {
	t.Helper()
	for _, env := range sagatest.Envelopes(t, orderID, customerID, time.Now().Add(-time.Hour), steps) {
		if err := s.handle(ctx, env); err != nil {
			t.Fatalf("record %s of order %s: %v", env.GetType(), orderID, err)
		}
	}
}

// cancelledByCustomer is a saga the customer cancels with their own words.
func cancelledByCustomer() []sagatest.Step {
	lines := []*commonv1.LineItem{{Sku: "BOOK-1", Quantity: 1, UnitPriceMinor: 1250}}
	total := &commonv1.Money{AmountMinor: 1250, Currency: "EUR"}
	address := &commonv1.Address{Name: "Ada", Line1: "Main St 1", City: "Berlin", PostalCode: "10115", CountryCode: "DE"}
	return []sagatest.Step{
		{Producer: "order", Payload: &eventsv1.OrderCreated{Lines: lines, Total: total, ShippingAddress: address, PaymentMethodToken: secretToken,
			Deadline: timestamppb.New(time.Now().Add(time.Hour))}},
		{Producer: "inventory", Payload: &eventsv1.StockReserved{ReservationId: events.NewID(), Lines: lines, Total: total,
			PaymentMethodToken: secretToken, ShippingAddress: address}},
		{Producer: "order", Payload: &eventsv1.OrderCancelled{Reason: eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED, Detail: freeText}},
	}
}

func TestCustomerSeesOwnNotificationsAndSagaLogsOnly(t *testing.T) {
	c := authtest.NewCallers(t, wait)
	svc := newNotificationService(t, c.Internal)
	aliceOrder, bobOrder, missingOrder := events.NewID(), events.NewID(), events.NewID()
	svc.record(t, c.Internal, aliceOrder, c.AliceID, cancelledByCustomer())
	svc.record(t, c.Internal, bobOrder, c.BobID, sagatest.AllTypes(t))

	// GetSagaLog: bob's reads to alice like an order without events.
	if got, err := svc.srv.GetSagaLog(c.Alice, &notificationv1.GetSagaLogRequest{OrderId: aliceOrder}); err != nil || len(got.GetEvents()) != 3 {
		t.Fatalf("alice gets her saga log: %v, %v", got, err)
	}
	_, foreign := svc.srv.GetSagaLog(c.Alice, &notificationv1.GetSagaLogRequest{OrderId: bobOrder})
	_, missing := svc.srv.GetSagaLog(c.Alice, &notificationv1.GetSagaLogRequest{OrderId: missingOrder})
	authtest.SameAnswer(t, "GetSagaLog", foreign, bobOrder, missing, missingOrder)
	for name, ctx := range map[string]context.Context{"bob": c.Bob, "operator": c.Operator, "in-process": c.Internal} {
		if got, err := svc.srv.GetSagaLog(ctx, &notificationv1.GetSagaLogRequest{OrderId: bobOrder}); err != nil || len(got.GetEvents()) != len(sagatest.AllTypes(t)) {
			t.Fatalf("%s gets bob's saga log: %d events, %v", name, len(got.GetEvents()), err)
		}
	}

	// ListNotifications: only one's own customer_id.
	list, err := svc.srv.ListNotifications(c.Alice, &notificationv1.ListNotificationsRequest{CustomerId: c.AliceID})
	if err != nil || len(list.GetNotifications()) != 2 { // order received, order cancelled
		t.Fatalf("alice lists her notifications: %v, %v", list, err)
	}
	for _, n := range list.GetNotifications() {
		if n.GetCustomerId() != c.AliceID || n.GetOrderId() != aliceOrder {
			t.Fatalf("alice's list holds %v", n)
		}
	}
	_, err = svc.srv.ListNotifications(c.Alice, &notificationv1.ListNotificationsRequest{CustomerId: c.BobID})
	authtest.WantCode(t, "alice lists bob's notifications", err, codes.PermissionDenied)
	if list, err := svc.srv.ListNotifications(c.Alice, &notificationv1.ListNotificationsRequest{}); err != nil || len(list.GetNotifications()) != 2 {
		t.Fatalf("alice lists without a customer_id (her own filled in): %v, %v", list, err)
	}
	if list, err := svc.srv.ListNotifications(c.Operator, &notificationv1.ListNotificationsRequest{CustomerId: c.BobID}); err != nil || len(list.GetNotifications()) == 0 {
		t.Fatalf("an operator lists bob's notifications: %v, %v", list, err)
	}

	// A customer token without a subject owns nothing.
	nobody := auth.WithPrincipal(c.Internal, auth.Principal{Roles: []auth.Role{auth.RoleCustomer}})
	_, err = svc.srv.GetSagaLog(nobody, &notificationv1.GetSagaLogRequest{OrderId: bobOrder})
	authtest.WantCode(t, "GetSagaLog without a subject", err, codes.NotFound)
	_, err = svc.srv.ListNotifications(nobody, &notificationv1.ListNotificationsRequest{})
	authtest.WantCode(t, "ListNotifications without a subject", err, codes.PermissionDenied)
}

// The saga log answer carries no payment method token, to anyone: every
// payment_method_token reads as the mask, and the token's bytes appear
// nowhere in the answer or in what the service logged.
func TestSagaLogMasksPaymentTokens(t *testing.T) {
	c := authtest.NewCallers(t, wait)
	svc := newNotificationService(t, c.Internal)
	aliceOrder, bobOrder := events.NewID(), events.NewID()
	svc.record(t, c.Internal, aliceOrder, c.AliceID, cancelledByCustomer())
	svc.record(t, c.Internal, bobOrder, c.BobID, sagatest.AllTypes(t)) // every event type; its token is "tok_visa"

	for _, tc := range []struct {
		name    string
		ctx     context.Context
		orderID string
		token   string
	}{{"alice, her log", c.Alice, aliceOrder, secretToken}, {"operator, alice's log", c.Operator, aliceOrder, secretToken},
		{"operator, a log of every type", c.Operator, bobOrder, "tok_visa"}} {
		got, err := svc.srv.GetSagaLog(tc.ctx, &notificationv1.GetSagaLogRequest{OrderId: tc.orderID})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		masked := 0
		for _, env := range got.GetEvents() {
			for _, token := range []string{env.GetOrderCreated().GetPaymentMethodToken(), env.GetStockReserved().GetPaymentMethodToken()} {
				if token != "" {
					if token != ports.PaymentTokenMask {
						t.Fatalf("%s: %s carries token %q", tc.name, env.GetType(), token)
					}
					masked++
				}
			}
		}
		if masked != 2 { // ORDER_CREATED and STOCK_RESERVED
			t.Fatalf("%s: %d masked tokens, want 2", tc.name, masked)
		}
		wire, err := proto.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(wire, []byte(tc.token)) || strings.Contains(fmt.Sprint(got), tc.token) {
			t.Fatalf("%s: the answer holds the payment token %q", tc.name, tc.token)
		}
	}
	if strings.Contains(svc.sent.String(), secretToken) || strings.Contains(svc.sent.String(), "tok_visa") {
		t.Fatalf("the service logged a payment token:\n%s", svc.sent)
	}
}

// What a caller typed as a cancel reason never reaches the customer: the
// cancel notification is the fixed wording of its reason code, in the store
// and in what was sent.
func TestCancelNotificationUsesFixedWording(t *testing.T) {
	c := authtest.NewCallers(t, wait)
	svc := newNotificationService(t, c.Internal)
	aliceOrder := events.NewID()
	svc.record(t, c.Internal, aliceOrder, c.AliceID, cancelledByCustomer())

	list, err := svc.srv.ListNotifications(c.Alice, &notificationv1.ListNotificationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var cancelled *notificationv1.Notification
	for _, n := range list.GetNotifications() {
		if n.GetEventType() == eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED {
			cancelled = n
		}
	}
	ref := strings.ToUpper(aliceOrder[:8])
	want := "We are sorry: your order " + ref + " was cancelled because you asked us to cancel it."
	if cancelled == nil || cancelled.GetBody() != want || cancelled.GetSubject() != "Your order "+ref+" was cancelled" {
		t.Fatalf("cancel notification %v; want body %q", cancelled, want)
	}
	for _, word := range []string{freeText, "0800-SCAM-NOW", "<b>"} {
		if strings.Contains(fmt.Sprint(list), word) || strings.Contains(svc.sent.String(), word) {
			t.Fatalf("the customer's notification carries %q:\nlisted %v\nsent %s", word, list, svc.sent)
		}
	}
	if !strings.Contains(svc.sent.String(), want) {
		t.Fatalf("the cancel notification was not sent:\n%s", svc.sent)
	}
}
