// Package shipping is the shipping service: one MongoDB document per order
// (_id = order id) holding the shipment — address, parcels, carrier booking,
// tracking timeline — together with its inbox (processed event ids) and its
// outbox (events not yet published), so a state change, the events it causes
// and the consumed event's id are one single-document write.
//
// INVENTORY_UPDATED books the order with the simulated carrier: CREATED +
// SHIPMENT_CREATED, or FAILED + SHIPMENT_FAILED for an undeliverable address
// (country AQ or KP, postal code "00000") or more than 20 parcels.
// ORDER_CANCELLED turns a CREATED shipment into CANCELLED, or leaves a
// CANCELLED tombstone so a later INVENTORY_UPDATED books nothing. Parcels:
// up to 5 units each, 500 g per unit plus 200 g of packaging.
//
// FerretDB v1 (our MongoDB-wire server) loses concurrent updates of one
// document, so exactly one process per database writes: the holder of a
// writer lease kept in the database (an epoch document per holder, taken by
// an insert with a unique _id; the epoch is the fencing token every write
// carries and is filtered on). Only the writer consumes (it joins the
// consumer group when it takes the lease and leaves it when it loses it) and
// runs the outbox relay; a standby serves the read API and takes over within
// about 2×SHIPPING_LEASE_TTL after the writer dies, at once after it shut
// down. Inside the writer, every write of an order's document — handlers
// and the relay — runs under a per-order lock, with version-checked updates
// as a second line of defence. Details and measurements: README.md.
package shipping

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"google.golang.org/grpc"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/logging"
	"github.com/sagasuite/sagasuite/libs/service"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/adapters"
	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/ports"
)

// Name is the service's name: consumer group, producer.
const Name = "shipping"

// DefaultLeaseTTL is SHIPPING_LEASE_TTL's default (also for a Config built
// in code with LeaseTTL 0).
const DefaultLeaseTTL = 5 * time.Second

// Config is the shipping service's environment (prefix SHIPPING_).
type Config struct {
	config.Common
	service.KafkaConfig
	// MongoURI is the MongoDB (FerretDB) connection string.
	MongoURI string `env:"MONGO_URI,required"`
	// MongoDatabase is the database holding the shipments.
	MongoDatabase string `env:"MONGO_DATABASE" envDefault:"shipping"`
	// LeaseTTL bounds how long a dead writer blocks the others: a standby
	// takes the lease after LeaseTTL of silence and writes LeaseTTL later
	// (about 2×LeaseTTL in all). Shorter means faster takeover but more
	// lease traffic (six renewals per TTL) and less slack for a slow store.
	LeaseTTL time.Duration `env:"LEASE_TTL" envDefault:"5s"`
}

// Validate is called by config.Load after parsing (and by Run).
func (c Config) Validate() error {
	if c.LeaseTTL < time.Second || c.LeaseTTL > 10*time.Minute {
		return fmt.Errorf("SHIPPING_LEASE_TTL must be between 1s and 10m, got %s", c.LeaseTTL)
	}
	return nil
}

// Run builds the service (store and indexes, outbox relay, consumer, gRPC
// API) and runs it until ctx ends or a part fails.
func Run(ctx context.Context, cfg Config, rt service.Runtime) error {
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL // callers building Config in code (dev stack, tests)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if rt.Logger == nil {
		rt.Logger = logging.New(os.Stderr, cfg.LogLevel, string(cfg.LogFormat)).With("service", Name)
	}
	client, err := adapters.Connect(cfg.MongoURI)
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = client.Disconnect(closeCtx)
	}()
	db := client.Database(cfg.MongoDatabase)
	repo := adapters.NewShipmentMongoRepository(db, rt.Now)
	lease, err := adapters.NewWriterLease(db, adapters.LeaseConfig{TTL: cfg.LeaseTTL, Holder: holderName(), Logger: rt.Logger})
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	repo.UseLease(lease)
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = repo.EnsureIndexes(setupCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: store %s: %w", Name, cfg.MongoDatabase, err)
	}
	producer, err := cfg.KafkaConfig.NewProducer()
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	defer producer.Close()
	relay := adapters.NewOutboxRelay(repo, producer, adapters.RelayConfig{Logger: rt.Logger})
	svc := app.New(repo, adapters.NewSimulatedCarrier(), ports.EncodeEvent, rt.Now)
	consumer := &leasedConsumer{lease: lease, cfg: bus.ConsumerConfig{
		Brokers: cfg.Brokers, Group: cfg.TopicPrefix + Name,
		Topics:            []string{cfg.Topic(events.TopicInventory), cfg.Topic(events.TopicOrders)},
		ReplicationFactor: cfg.ReplicationFactor, StrictTopics: true, Logger: rt.Logger,
	}, handler: ports.EventHandler(svc)}

	return service.Run(ctx, service.Spec{
		Runtime:  rt,
		Produces: []string{events.TopicShipments},
		Name:     Name,
		Common:   cfg.Common,
		Kafka:    cfg.KafkaConfig,
		Policy:   ports.Policy,
		Register: func(s *grpc.Server) {
			shippingv1.RegisterShippingServiceServer(s, ports.NewGRPCServer(svc))
		},
		// No Consumers: the consumer group is joined only by the writer
		// (leasedConsumer), so a standby holds no partitions. OwnGroups
		// shows it to the operations API (lag, dead letters).
		OwnGroups: []service.Consumer{{Group: Name, Topics: []string{events.TopicInventory, events.TopicOrders}}},
		Background: map[string]func(context.Context) error{
			"writer-lease": lease.Run,
			"consumer":     consumer.Run,
			"outbox-relay": relay.Run,
		},
		Ready: func(ctx context.Context) error {
			if err := repo.Ping(ctx); err != nil {
				return err
			}
			return consumer.ready()
		},
		Outbox: relay,
	})
}

// holderName names this process in the lease: host, pid and a random part
// (a restarted process is a new holder).
func holderName() string {
	host, _ := os.Hostname()
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + uuid.NewString()[:8]
}

// leasedConsumer is the consumer group member of the writer: it joins the
// group each time this process becomes the writer and leaves it when the
// term ends, so Kafka assigns every partition to the writer and a standby
// holds none (its handlers could not write, and its partitions would stall).
type leasedConsumer struct {
	lease   *adapters.WriterLease
	cfg     bus.ConsumerConfig
	handler bus.Handler

	mu      sync.Mutex
	current *bus.Consumer // of the current term; nil while standing by
}

func (c *leasedConsumer) Run(ctx context.Context) error {
	for {
		term, err := c.lease.Term(ctx)
		if err != nil {
			return nil // ctx ended
		}
		consumer, err := bus.NewConsumer(c.cfg, c.handler)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.current = consumer
		c.mu.Unlock()
		err = consumer.Run(term)
		c.mu.Lock()
		c.current = nil
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// ready: the writer is ready once its consumer has joined the group; a
// standby is ready too (it serves the read API; its relay reports
// "standby" and the sagasuite.shipping.lease_holder gauge says 0).
func (c *leasedConsumer) ready() error {
	holding, epoch := c.lease.Holding()
	if !holding {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current == nil || !c.current.Ready() {
		return fmt.Errorf("writer (epoch %d): consumer %s has not joined its group", epoch, c.cfg.Group)
	}
	return nil
}
