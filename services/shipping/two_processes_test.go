package shipping_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/adapters"
)

// leaseTTL of the processes under test: short, so the test is short; the
// takeover waits for outcomes, never for a fixed time.
const leaseTTL = 2 * time.Second

// shippingProcess is one real `shipping` binary.
type shippingProcess struct {
	name string
	cmd  *exec.Cmd
	ops  string // host:port
	log  string
	done chan struct{}
}

func (p *shippingProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// leaseHolder reads the process's sagasuite.shipping.lease_holder gauge:
// 1 writer, 0 standby.
func (p *shippingProcess) leaseHolder() (bool, error) {
	resp, err := http.Get("http://" + p.ops + "/metrics")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "sagasuite_shipping_lease_holder") {
			return strings.HasSuffix(line, " 1"), nil
		}
	}
	return false, fmt.Errorf("%s: no sagasuite_shipping_lease_holder metric", p.name)
}

func (p *shippingProcess) ready() bool {
	resp, err := http.Get("http://" + p.ops + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (p *shippingProcess) logTail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// freePorts returns n loopback ports below Linux's ephemeral range that
// nothing listened on when probed.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for tries := 0; len(ports) < n && tries < 1000; tries++ {
		p := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		ports = append(ports, p)
	}
	if len(ports) < n {
		t.Fatalf("found only %d free ports", len(ports))
	}
	return ports
}

func buildShipping(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shipping")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/shipping")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/shipping: %v\n%s", err, out)
	}
	return bin
}

func startShipping(t *testing.T, bin, name string, env []string) *shippingProcess {
	t.Helper()
	ports := freePorts(t, 2)
	p := &shippingProcess{name: name, ops: fmt.Sprintf("127.0.0.1:%d", ports[1]), log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	logFile, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(os.Environ(), append(env,
		fmt.Sprintf("SHIPPING_GRPC_ADDR=127.0.0.1:%d", ports[0]), "SHIPPING_OPS_ADDR="+p.ops)...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); logFile.Close(); close(p.done) }()
	t.Cleanup(func() {
		if p.exited() {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop within 30s of SIGTERM; killed", name)
		}
	})
	deadline := time.Now().Add(wait)
	for !p.ready() {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("%s not ready within %s (exited: %v); log:\n%s", name, wait, p.exited(), p.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// Two shipping processes on one database and one consumer group; 200 orders
// with INVENTORY_UPDATED and ORDER_CANCELLED interleaved; the writer is
// killed with SIGKILL midway. Afterwards every cancelled order's shipment is
// CANCELLED, every decided shipment has exactly one SHIPMENT_* event of each
// kind its state implies (by event id) on the topic, and the outbox is drained.
func TestTwoProcessesSurviveKillOfTheWriter(t *testing.T) {
	bin := buildShipping(t)
	mongoClient, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI()).SetTimeout(15 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	dbName := testenv.UniqueName("shipping_2p_")
	db := mongoClient.Database(dbName)
	t.Cleanup(func() { // registered first: runs after both processes stopped
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Errorf("drop %s: %v", dbName, err)
		}
		_ = mongoClient.Disconnect(ctx)
	})
	prefix := testenv.UniqueName("shipping2p-") + "."
	// The topics shipping reads belong to other services: the test makes them.
	servicetest.SagaTopics(t, service.KafkaConfig{Brokers: testenv.Brokers(), TopicPrefix: prefix, Partitions: 3, ReplicationFactor: 1})
	env := []string{
		"SHIPPING_KAFKA_BROKERS=" + strings.Join(testenv.Brokers(), ","), "SHIPPING_KAFKA_TOPIC_PREFIX=" + prefix,
		"SHIPPING_MONGO_URI=" + testenv.MongoURI(), "SHIPPING_MONGO_DATABASE=" + dbName,
		"SHIPPING_LEASE_TTL=" + leaseTTL.String(), "SHIPPING_LOG_LEVEL=info",
	}
	env = append(env, servicetest.AuthEnv(t, "SHIPPING")...) // the binary refuses to start without it
	a := startShipping(t, bin, "shipping-a", env)
	waitUntil(t, "shipping-a to be the writer", func() bool { h, _ := a.leaseHolder(); return h })
	b := startShipping(t, bin, "shipping-b", env)
	if h, err := b.leaseHolder(); err != nil || h {
		t.Fatalf("shipping-b lease_holder = %v, %v; want a standby", h, err)
	}

	producer := bus.NewProducer(testenv.Brokers(), bus.WithTopicPrefix(prefix))
	defer producer.Close()
	h := &harness{prefix: prefix, db: db, producer: producer}

	// Four kinds of order, interleaved: cancelled before and after their
	// INVENTORY_UPDATED (the two topics are consumed independently, so
	// either may land first), booked, and refused by the carrier.
	const orders = 200
	type kind int
	const (
		cancelFirst kind = iota
		cancelAfter
		booked
		refused
	)
	ids := make([]string, orders)
	kinds := make([]kind, orders)
	var killedAt time.Time
	for i := range orders {
		o := newOrder()
		ids[i], kinds[i] = o.id, kind(i%4)
		switch kinds[i] {
		case cancelFirst:
			h.publish(t, o.cancelled(t), o.inventoryUpdated(t, address("DE", "10115"), 2))
		case cancelAfter:
			h.publish(t, o.inventoryUpdated(t, address("FR", "75001"), 3), o.cancelled(t))
		case booked:
			h.publish(t, o.inventoryUpdated(t, address("NL", "1011"), 1))
		case refused:
			h.publish(t, o.inventoryUpdated(t, address("AQ", "1"), 1))
		}
		if i == orders/2 {
			// Kill the writer while the first half is still being worked on.
			if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killedAt = time.Now()
			<-a.done
		}
	}
	waitUntil(t, "shipping-b to take over the writer lease", func() bool { h, _ := b.leaseHolder(); return h })
	takeover := time.Since(killedAt)

	// Outcomes: every order in its final state, no outbox entry, no marker.
	want := map[kind]string{cancelFirst: "CANCELLED", cancelAfter: "CANCELLED", booked: "CREATED", refused: "FAILED"}
	var docs map[string]twoProcDoc
	var markers int64
	waitUntil(t, "every order's final state, published", func() bool {
		docs = readAllShipments(t, db)
		n, err := db.Collection(adapters.PendingCollection).CountDocuments(context.Background(), bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		markers = n
		if markers != 0 {
			return false
		}
		for i, id := range ids {
			d, ok := docs[id]
			if !ok || d.Status != want[kinds[i]] || len(d.Outbox) != 0 {
				return false
			}
		}
		return true
	})
	t.Logf("takeover: shipping-b was the writer %s after the SIGKILL of shipping-a (SHIPPING_LEASE_TTL %s)", takeover.Round(time.Millisecond), leaseTTL)

	// Events: per order, exactly one decision (distinct event ids), and it
	// agrees with the state.
	byOrder := map[string]map[eventsv1.EventType]map[string]int{}
	raw := 0
	for _, e := range readTopic(t, prefix+events.TopicShipments) {
		if byOrder[e.GetOrderId()] == nil {
			byOrder[e.GetOrderId()] = map[eventsv1.EventType]map[string]int{}
		}
		if byOrder[e.GetOrderId()][e.GetType()] == nil {
			byOrder[e.GetOrderId()][e.GetType()] = map[string]int{}
		}
		byOrder[e.GetOrderId()][e.GetType()][e.GetEventId()]++
		raw++
	}
	distinct, republished := 0, 0
	for i, id := range ids {
		d := docs[id]
		got := byOrder[id]
		wantTypes := map[eventsv1.EventType]bool{}
		switch {
		case kinds[i] == booked:
			wantTypes[eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED] = true
		case kinds[i] == refused:
			wantTypes[eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED] = true
		case d.TrackingNumber != "": // booked before the cancel arrived: the booking is cancelled
			wantTypes[eventsv1.EventType_EVENT_TYPE_SHIPMENT_CREATED] = true
			wantTypes[eventsv1.EventType_EVENT_TYPE_SHIPMENT_CANCELLED] = true
		}
		for typ, ids := range got {
			if !wantTypes[typ] {
				t.Errorf("order %d (%s, %s): unexpected %s on the topic", i, id, d.Status, events.TypeName(typ))
			}
			distinct += len(ids)
			for _, n := range ids {
				republished += n - 1
			}
		}
		for typ := range wantTypes {
			if len(got[typ]) != 1 {
				t.Errorf("order %d (%s, %s): %d distinct %s events, want exactly 1", i, id, d.Status, len(got[typ]), events.TypeName(typ))
			}
		}
	}
	t.Logf("%d orders; %d shipment events on the topic, %d distinct (%d re-publications of one event id after the kill)", orders, raw, distinct, republished)
	if t.Failed() {
		t.Logf("shipping-b log tail:\n%s", b.logTail())
	}
}

type twoProcDoc struct {
	OrderID        string     `bson:"_id"`
	Status         string     `bson:"status"`
	TrackingNumber string     `bson:"tracking_number"`
	Outbox         []bson.Raw `bson:"outbox"`
}

func readAllShipments(t *testing.T, db *mongo.Database) map[string]twoProcDoc {
	t.Helper()
	out := map[string]twoProcDoc{}
	for i := range adapters.Buckets {
		cur, err := db.Collection(fmt.Sprintf("shipments_%02d", i)).Find(context.Background(), bson.D{},
			options.Find().SetProjection(bson.D{{Key: "status", Value: 1}, {Key: "tracking_number", Value: 1}, {Key: "outbox", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var docs []twoProcDoc
		if err := cur.All(context.Background(), &docs); err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			out[d.OrderID] = d
		}
	}
	return out
}

// readTopic reads every event of topic, all partitions, up to its end.
func readTopic(t *testing.T, topic string) []*eventsv1.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
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
		out = append(out, readPartition(ctx, t, broker, topic, p.ID, "")...)
	}
	return out
}

// waitUntil polls cond for up to 3 minutes (generous: outcomes, not speed).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after 3m waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
