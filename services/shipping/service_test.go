package shipping_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
	"github.com/sagasuite/sagasuite/services/shipping"
	"github.com/sagasuite/sagasuite/services/shipping/internal/adapters"
)

const wait = 2 * time.Minute

var now = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// harness is one shipping service started through Run on a fresh database and
// a unique topic prefix, with a producer for the events it consumes.
type harness struct {
	prefix   string
	db       *mongo.Database
	client   shippingv1.ShippingServiceClient
	producer *bus.Producer
	addr     string // the gRPC API, for callers other than the test's service identity
}

func start(t *testing.T) *harness {
	t.Helper()
	mongoClient, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI()).SetTimeout(15 * time.Second))
	if err != nil {
		t.Fatalf("FerretDB (SAGASUITE_MONGO_URI; run `make infra-up`): %v", err)
	}
	dbName := testenv.UniqueName("shipping_c_")
	db := mongoClient.Database(dbName)
	t.Cleanup(func() { // runs after the service stopped (registered first)
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Errorf("drop %s: %v", dbName, err)
		}
		_ = mongoClient.Disconnect(ctx)
	})

	prefix := testenv.UniqueName("shipping-") + "."
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := shipping.Config{
		Common:        servicetest.Common(),
		KafkaConfig:   servicetest.SagaTopics(t, service.KafkaConfig{Brokers: testenv.Brokers(), TopicPrefix: prefix, Partitions: 3, ReplicationFactor: 1}),
		MongoURI:      testenv.MongoURI(),
		MongoDatabase: dbName,
	}
	rt := service.Runtime{Clock: clock.NewManual(now), Logger: quiet}
	conn := servicetest.Start(t, rt, func(ctx context.Context, rt service.Runtime) error { return shipping.Run(ctx, cfg, rt) })
	producer := bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(prefix))
	t.Cleanup(func() { producer.Close() })
	return &harness{prefix: prefix, db: db, client: shippingv1.NewShippingServiceClient(conn), producer: producer, addr: conn.Target()}
}

func (h *harness) publish(t *testing.T, envs ...*eventsv1.Envelope) {
	t.Helper()
	for _, env := range envs {
		msg, err := bus.EncodeEnvelope(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.producer.Publish(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
}

// deliver publishes env and waits until shipping settled it.
func (h *harness) deliver(t *testing.T, env *eventsv1.Envelope) {
	t.Helper()
	h.publish(t, env)
	h.settled(t, env)
}

// settled waits until shipping processed env (its id is in the order's
// document) and the relay published everything the order's document held:
// from then on, the shipments topic holds every event shipping emitted for it.
func (h *harness) settled(t *testing.T, env *eventsv1.Envelope) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var doc struct {
			Processed []string   `bson:"processed"`
			Outbox    []bson.Raw `bson:"outbox"`
		}
		err := h.db.Collection(adapters.BucketCollection(env.GetOrderId())).FindOne(context.Background(), bson.D{{Key: "_id", Value: env.GetOrderId()}}).Decode(&doc)
		if err != nil && err != mongo.ErrNoDocuments {
			t.Fatal(err)
		}
		if slices.Contains(doc.Processed, env.GetEventId()) && len(doc.Outbox) == 0 {
			n, err := h.db.Collection(adapters.PendingCollection).CountDocuments(context.Background(), bson.D{{Key: "_id", Value: env.GetOrderId()}})
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("shipping did not process and publish after %s %s within %s", events.TypeName(env.GetType()), env.GetEventId(), wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// emitted reads the whole shipments topic up to its end and returns the
// events for orderID. Call after settled: then nothing is missing.
func (h *harness) emitted(t *testing.T, orderID string) []*eventsv1.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	topic := h.prefix + events.TopicShipments
	broker := testenv.Brokers()[0]
	conn, err := kafka.DialContext(ctx, "tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	partitions, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	var out []*eventsv1.Envelope
	for _, p := range partitions {
		out = append(out, readPartition(ctx, t, broker, topic, p.ID, orderID)...)
	}
	return out
}

// readPartition fetches one partition from its first to its last offset
// (synchronous fetches on the leader connection) and keeps orderID's events
// (every event when orderID is "").
func readPartition(ctx context.Context, t *testing.T, broker, topic string, partition int, orderID string) []*eventsv1.Envelope {
	t.Helper()
	leader, err := kafka.DialLeader(ctx, "tcp", broker, topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Close()
	first, last, err := leader.ReadOffsets()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.Seek(first, kafka.SeekAbsolute); err != nil {
		t.Fatal(err)
	}
	if err := leader.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	var out []*eventsv1.Envelope
	for next := first; next < last; {
		batch := leader.ReadBatch(1, 10<<20)
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			next = m.Offset + 1
			if orderID != "" && string(m.Key) != orderID {
				continue
			}
			env, err := events.Unmarshal(m.Value)
			if err != nil {
				t.Fatalf("shipping emitted a malformed event: %v", err)
			}
			out = append(out, env)
		}
		if err := batch.Close(); err != nil {
			t.Fatalf("read %s/%d at %d: %v", topic, partition, next, err)
		}
	}
	return out
}

func (h *harness) shipment(t *testing.T, orderID string) *shippingv1.Shipment {
	t.Helper()
	resp, err := h.client.GetShipment(context.Background(), &shippingv1.GetShipmentRequest{OrderId: orderID})
	if err != nil {
		t.Fatalf("GetShipment(%s): %v", orderID, err)
	}
	return resp.GetShipment()
}

// order builds the events of one saga as inventory and order would send them.
type order struct {
	id, customerID string
}

func newOrder() order { return order{id: events.NewID(), customerID: events.NewID()} }

func (o order) event(t *testing.T, producer string, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	env, err := events.New(events.Meta{OrderID: o.id, CustomerID: o.customerID, Producer: producer, CausationID: events.NewID(), OccurredAt: now}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func address(country, postal string) *commonv1.Address {
	return &commonv1.Address{Name: "Ada Lovelace", Line1: "Main St 1", City: "Somewhere", PostalCode: postal, CountryCode: country}
}

func (o order) inventoryUpdated(t *testing.T, addr *commonv1.Address, units int32) *eventsv1.Envelope {
	return o.event(t, "inventory", &eventsv1.InventoryUpdated{
		ReservationId: events.NewID(), ShippingAddress: addr,
		Lines: []*commonv1.LineItem{{Sku: "BOOK-1", Quantity: units, UnitPriceMinor: 1500}},
	})
}

func (o order) cancelled(t *testing.T) *eventsv1.Envelope {
	return o.event(t, "order", &eventsv1.OrderCancelled{Reason: eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED, Detail: "changed my mind"})
}

func types(envs []*eventsv1.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = events.TypeName(e.GetType())
	}
	return out
}

func TestShippingService(t *testing.T) {
	h := start(t)

	t.Run("INVENTORY_UPDATED books the shipment: CREATED + SHIPMENT_CREATED; duplicates change nothing", func(t *testing.T) {
		o := newOrder()
		updated := o.inventoryUpdated(t, address("DE", "10115"), 7)
		h.deliver(t, updated)
		got := h.emitted(t, o.id)
		if !slices.Equal(types(got), []string{"SHIPMENT_CREATED"}) {
			t.Fatalf("emitted %v, want [SHIPMENT_CREATED]", types(got))
		}
		ev := got[0]
		if ev.GetCausationId() != updated.GetEventId() || ev.GetProducer() != "shipping" || ev.GetCustomerId() != o.customerID ||
			ev.GetShipmentCreated().GetCarrier() != "simpost" || !strings.HasPrefix(ev.GetShipmentCreated().GetTrackingNumber(), "SP") {
			t.Fatalf("SHIPMENT_CREATED = %v", ev)
		}
		s := h.shipment(t, o.id)
		if s.GetStatus() != shippingv1.ShipmentStatus_SHIPMENT_STATUS_CREATED || s.GetShipmentId() != ev.GetShipmentCreated().GetShipmentId() ||
			s.GetTrackingNumber() != ev.GetShipmentCreated().GetTrackingNumber() || s.GetCustomerId() != o.customerID ||
			len(s.GetParcels()) != 2 || s.GetParcels()[0].GetWeightGrams() != 2700 || s.GetAddress().GetCountryCode() != "DE" ||
			len(s.GetTracking()) != 1 || !s.GetCreateTime().AsTime().Equal(now) {
			t.Fatalf("shipment = %v", s)
		}

		// The same event again, then another INVENTORY_UPDATED for the order
		// (same partition, so handled after the copy): nothing changes.
		second := o.inventoryUpdated(t, address("DE", "10115"), 7)
		h.publish(t, updated, second)
		h.settled(t, second)
		if again := h.emitted(t, o.id); !slices.Equal(types(again), []string{"SHIPMENT_CREATED"}) {
			t.Fatalf("after duplicates emitted %v, want still one SHIPMENT_CREATED", types(again))
		}
		if after := h.shipment(t, o.id); !proto.Equal(after, s) {
			t.Fatalf("duplicates changed the shipment:\n%v\nwas\n%v", after, s)
		}
	})

	t.Run("carrier refuses: FAILED + SHIPMENT_FAILED with the reason", func(t *testing.T) {
		for _, tc := range []struct {
			addr   *commonv1.Address
			units  int32
			reason eventsv1.ShipmentFailureReason
		}{
			{address("AQ", "12345"), 1, eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_UNDELIVERABLE_ADDRESS},
			{address("DE", "00000"), 1, eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_UNDELIVERABLE_ADDRESS},
			{address("FR", "75001"), 101, eventsv1.ShipmentFailureReason_SHIPMENT_FAILURE_REASON_CARRIER_REJECTED}, // 21 parcels
		} {
			o := newOrder()
			h.deliver(t, o.inventoryUpdated(t, tc.addr, tc.units))
			got := h.emitted(t, o.id)
			if !slices.Equal(types(got), []string{"SHIPMENT_FAILED"}) || got[0].GetShipmentFailed().GetReason() != tc.reason {
				t.Fatalf("%s/%s, %d units: emitted %v, want SHIPMENT_FAILED (%s)", tc.addr.GetCountryCode(), tc.addr.GetPostalCode(), tc.units, got, tc.reason)
			}
			s := h.shipment(t, o.id)
			if s.GetStatus() != shippingv1.ShipmentStatus_SHIPMENT_STATUS_FAILED || s.GetCarrier() != "" || s.GetTrackingNumber() != "" ||
				s.GetFailureReason() != tc.reason || len(s.GetTracking()) != 1 {
				t.Fatalf("shipment = %v", s)
			}
		}
	})

	t.Run("ORDER_CANCELLED after CREATED: CANCELLED with a timeline entry, SHIPMENT_CANCELLED", func(t *testing.T) {
		o := newOrder()
		updated := o.inventoryUpdated(t, address("DE", "10115"), 2)
		h.deliver(t, updated)
		cancel := o.cancelled(t)
		h.deliver(t, cancel)
		got := h.emitted(t, o.id)
		if !slices.Equal(types(got), []string{"SHIPMENT_CREATED", "SHIPMENT_CANCELLED"}) {
			t.Fatalf("emitted %v, want SHIPMENT_CREATED, then SHIPMENT_CANCELLED", types(got))
		}
		if c := got[1].GetShipmentCancelled(); c.GetTrackingNumber() != got[0].GetShipmentCreated().GetTrackingNumber() ||
			c.GetCarrier() != adapters.SimulatedCarrierName || got[1].GetCausationId() != cancel.GetEventId() {
			t.Fatalf("SHIPMENT_CANCELLED = %v", got[1])
		}
		s := h.shipment(t, o.id)
		last := s.GetTracking()[len(s.GetTracking())-1]
		if s.GetStatus() != shippingv1.ShipmentStatus_SHIPMENT_STATUS_CANCELLED || len(s.GetTracking()) != 2 ||
			last.GetStatus() != shippingv1.ShipmentStatus_SHIPMENT_STATUS_CANCELLED || !strings.Contains(last.GetDescription(), "changed my mind") ||
			s.GetTrackingNumber() == "" {
			t.Fatalf("shipment = %v", s)
		}
	})

	t.Run("ORDER_CANCELLED first: a tombstone, and the late INVENTORY_UPDATED books nothing", func(t *testing.T) {
		o := newOrder()
		cancel := o.cancelled(t)
		h.deliver(t, cancel)
		late := o.inventoryUpdated(t, address("DE", "10115"), 2)
		h.deliver(t, late)
		if got := h.emitted(t, o.id); len(got) != 0 {
			t.Fatalf("emitted %v for a cancelled order, want nothing", types(got))
		}
		s := h.shipment(t, o.id)
		if s.GetStatus() != shippingv1.ShipmentStatus_SHIPMENT_STATUS_CANCELLED || len(s.GetParcels()) != 0 || s.GetTrackingNumber() != "" || s.GetAddress() != nil {
			t.Fatalf("tombstone = %v", s)
		}
	})

	t.Run("ListShipments pages a customer's shipments", func(t *testing.T) {
		customer := events.NewID()
		var ids []string
		for range 3 {
			o := order{id: events.NewID(), customerID: customer}
			updated := o.inventoryUpdated(t, address("NL", "1011"), 1)
			h.deliver(t, updated)
			ids = append(ids, o.id)
		}
		// Same clock instant for all: newest first falls back to order id, descending.
		slices.Sort(ids)
		slices.Reverse(ids)
		var got []string
		token := ""
		for range 3 {
			resp, err := h.client.ListShipments(context.Background(), &shippingv1.ListShipmentsRequest{CustomerId: customer, PageSize: 2, PageToken: token})
			if err != nil {
				t.Fatalf("ListShipments: %v", err)
			}
			for _, s := range resp.GetShipments() {
				got = append(got, s.GetOrderId())
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("listed %v, want %v", got, ids)
		}
	})

	t.Run("bad gRPC input: InvalidArgument naming the field; unknown order: NotFound", func(t *testing.T) {
		ctx := context.Background()
		_, err := h.client.GetShipment(ctx, &shippingv1.GetShipmentRequest{OrderId: "not-a-uuid"})
		wantInvalid(t, err, "order_id")
		_, err = h.client.ListShipments(ctx, &shippingv1.ListShipmentsRequest{CustomerId: ""})
		wantInvalid(t, err, "customer_id")
		_, err = h.client.ListShipments(ctx, &shippingv1.ListShipmentsRequest{CustomerId: events.NewID(), PageSize: 101})
		wantInvalid(t, err, "page_size")
		_, err = h.client.ListShipments(ctx, &shippingv1.ListShipmentsRequest{CustomerId: events.NewID(), PageToken: "garbage!"})
		wantInvalid(t, err, "page_token")
		_, err = h.client.GetShipment(ctx, &shippingv1.GetShipmentRequest{OrderId: events.NewID()})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("GetShipment(unknown) = %v, want NotFound", err)
		}
	})
}

func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), field) {
		t.Fatalf("err = %v, want InvalidArgument naming %s", err, field)
	}
}
