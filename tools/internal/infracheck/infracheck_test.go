// Package infracheck proves that the local real stack started by deploy/local/infra.sh
// (Kafka, MariaDB, FerretDB on PostgreSQL, Cassandra) really serves requests.
//
// Run it with the stack up: `deploy/local/with-infra.sh go test -count=1 ./tools/...`.
// Nothing here skips: a server that is not there fails its test.
package infracheck

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sagasuite/sagasuite/libs/testenv"
)

// unique returns a name no earlier run used: prefix plus 12 random hex digits.
func unique(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

func firstHost(list string) string { return strings.TrimSpace(strings.Split(list, ",")[0]) }

func TestKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	broker := firstHost(testenv.KafkaBrokers())

	conn, err := kafka.DialContext(ctx, "tcp", broker)
	if err != nil {
		t.Fatalf("dial %s: %v", broker, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))

	// Topics are created through the controller (here the same node).
	ctl, err := conn.Controller()
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	ctlConn, err := kafka.DialContext(ctx, "tcp", net.JoinHostPort(ctl.Host, fmt.Sprint(ctl.Port)))
	if err != nil {
		t.Fatalf("dial controller: %v", err)
	}
	t.Cleanup(func() { ctlConn.Close() }) // after the topic is deleted
	_ = ctlConn.SetDeadline(time.Now().Add(30 * time.Second))

	topic := unique(t, "infracheck.")
	if err := ctlConn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		if err := ctlConn.DeleteTopics(topic); err != nil {
			t.Errorf("delete topic %s: %v", topic, err)
		}
	})

	// Wait until the broker reports the topic with a leader.
	deadline := time.Now().Add(15 * time.Second)
	for {
		parts, err := conn.ReadPartitions(topic)
		if err == nil && len(parts) == 1 && parts[0].Leader.ID != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s has no leader after 15s (partitions %v, err %v)", topic, parts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	w := &kafka.Writer{
		Addr:         kafka.TCP(broker),
		Topic:        topic,
		RequiredAcks: kafka.RequireAll, // the default is acks=0
		BatchTimeout: 5 * time.Millisecond,
		MaxAttempts:  5,
		// A fresh transport: the shared default caches metadata for 6 s and
		// may not know the topic created a moment ago.
		Transport: &kafka.Transport{},
	}
	defer w.Close()
	want := []kafka.Message{
		{Key: []byte("order-1"), Value: []byte("first"), Headers: []kafka.Header{{Key: "type", Value: []byte("ORDER_CREATED")}}},
		{Key: []byte("order-1"), Value: []byte("second")},
	}
	if err := w.WriteMessages(ctx, want...); err != nil {
		t.Fatalf("produce: %v", err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   []string{broker},
		Topic:     topic,
		Partition: 0,
		MinBytes:  1,
		MaxBytes:  1 << 20, // NewReader panics without it
		MaxWait:   100 * time.Millisecond,
	})
	defer r.Close()
	for i, w := range want {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read message %d: %v", i, err)
		}
		if string(m.Key) != string(w.Key) || string(m.Value) != string(w.Value) || m.Offset != int64(i) {
			t.Fatalf("message %d: got key %q value %q offset %d, want key %q value %q offset %d",
				i, m.Key, m.Value, m.Offset, w.Key, w.Value, i)
		}
		if len(w.Headers) > 0 && (len(m.Headers) != 1 || m.Headers[0].Key != "type" || string(m.Headers[0].Value) != "ORDER_CREATED") {
			t.Fatalf("message %d: headers %v", i, m.Headers)
		}
	}
}

func TestMariaDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cfg, err := mysql.ParseDSN(testenv.MySQLAdminDSN())
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	cfg.Timeout = 5 * time.Second
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() }) // after the database is dropped

	var version string
	if err := admin.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		t.Fatalf("select version: %v", err)
	}
	t.Logf("server %s", version)

	dbName := unique(t, "infracheck_")
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+dbName); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(c, "DROP DATABASE IF EXISTS "+dbName); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})

	cfg.DBName = dbName
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	if _, err := db.ExecContext(ctx, `CREATE TABLE stock (
		sku VARCHAR(64) PRIMARY KEY,
		available INT NOT NULL CHECK (available >= 0)
	) ENGINE=InnoDB`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO stock (sku, available) VALUES (?, ?), (?, ?)", "sku-1", 5, "sku-2", 7); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}

	// A duplicate key must be refused (error 1062).
	_, err = db.ExecContext(ctx, "INSERT INTO stock (sku, available) VALUES (?, ?)", "sku-1", 1)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1062 {
		t.Fatalf("duplicate insert: got %v, want MySQL error 1062", err)
	}

	var sum int
	if err := db.QueryRowContext(ctx, "SELECT SUM(available) FROM stock").Scan(&sum); err != nil {
		t.Fatalf("select: %v", err)
	}
	if sum != 12 {
		t.Fatalf("sum(available) = %d, want 12", sum)
	}
}

func TestFerretDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	client, err := mongo.Connect(options.Client().
		ApplyURI(testenv.MongoURI()).
		SetServerSelectionTimeout(5 * time.Second).
		SetTimeout(15 * time.Second))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) }) // after the drop
	if err := client.Ping(ctx, nil); err != nil {
		t.Fatalf("ping %s: %v", testenv.MongoURI(), err)
	}

	db := client.Database("infracheck")
	coll := db.Collection(unique(t, "shipments_"))
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := coll.Drop(c); err != nil {
			t.Errorf("drop collection: %v", err)
		}
	})

	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "tracking", Value: 1}},
		Options: options.Index().SetUnique(true),
	}); err != nil {
		t.Fatalf("create unique index: %v", err)
	}

	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "order-1"}, {Key: "tracking", Value: "TRK-1"}, {Key: "parcels", Value: 2}}); err != nil {
		t.Fatalf("insert: %v", err)
	}

	var got struct {
		ID       string `bson:"_id"`
		Tracking string `bson:"tracking"`
		Parcels  int    `bson:"parcels"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "order-1"}}).Decode(&got); err != nil {
		t.Fatalf("find: %v", err)
	}
	if got.ID != "order-1" || got.Tracking != "TRK-1" || got.Parcels != 2 {
		t.Fatalf("found %+v", got)
	}

	_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "order-2"}, {Key: "tracking", Value: "TRK-1"}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("duplicate tracking number: got %v, want a duplicate key error", err)
	}
	n, err := coll.CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	if n != 1 {
		t.Fatalf("collection holds %d documents, want 1", n)
	}
}

func TestCassandra(t *testing.T) {
	hosts := strings.Split(testenv.CassandraHosts(), ",")
	for i := range hosts {
		hosts[i] = strings.TrimSpace(hosts[i])
	}
	cluster := gocql.NewCluster(hosts...)
	cluster.Consistency = gocql.One
	cluster.ConnectTimeout = 10 * time.Second
	cluster.Timeout = 20 * time.Second // schema changes wait for agreement
	cluster.DisableInitialHostLookup = true
	session, err := cluster.CreateSession()
	if err != nil {
		t.Fatalf("connect %v: %v", hosts, err)
	}
	t.Cleanup(session.Close) // after the keyspace is dropped

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	ks := unique(t, "infracheck_")
	if err := session.Query(fmt.Sprintf(
		`CREATE KEYSPACE %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`, ks,
	)).ExecContext(ctx); err != nil {
		t.Fatalf("create keyspace: %v", err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := session.Query("DROP KEYSPACE IF EXISTS " + ks).ExecContext(c); err != nil {
			t.Errorf("drop keyspace: %v", err)
		}
	})

	if err := session.Query(fmt.Sprintf(`CREATE TABLE %s.notifications (
		customer_id text, sent_at timeuuid, body text,
		PRIMARY KEY (customer_id, sent_at)
	) WITH CLUSTERING ORDER BY (sent_at DESC)`, ks)).ExecContext(ctx); err != nil {
		t.Fatalf("create table: %v", err)
	}

	first, second := gocql.TimeUUID(), gocql.TimeUUID()
	for _, row := range []struct {
		id   gocql.UUID
		body string
	}{{first, "order placed"}, {second, "order shipped"}} {
		if err := session.Query(fmt.Sprintf(`INSERT INTO %s.notifications (customer_id, sent_at, body) VALUES (?, ?, ?)`, ks),
			"cust-1", row.id, row.body).ExecContext(ctx); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}

	iter := session.Query(fmt.Sprintf(`SELECT sent_at, body FROM %s.notifications WHERE customer_id = ?`, ks), "cust-1").
		IterContext(ctx)
	var (
		ids    []gocql.UUID
		bodies []string
		id     gocql.UUID
		body   string
	)
	for iter.Scan(&id, &body) {
		ids = append(ids, id)
		bodies = append(bodies, body)
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("select: %v", err)
	}
	// Newest first (CLUSTERING ORDER BY sent_at DESC).
	if len(bodies) != 2 || bodies[0] != "order shipped" || bodies[1] != "order placed" || ids[0] != second || ids[1] != first {
		t.Fatalf("rows = %v %v, want [order shipped, order placed]", ids, bodies)
	}
}
