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
// document, so every write of an order's document — handlers and the outbox
// relay — runs under a per-order lock in this process, with version-checked
// updates as a second line of defence. Run one instance per database.
// Details and measurements: README.md.
package shipping

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"

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

// Config is the shipping service's environment (prefix SHIPPING_).
type Config struct {
	config.Common
	service.KafkaConfig
	// MongoURI is the MongoDB (FerretDB) connection string.
	MongoURI string `env:"MONGO_URI,required"`
	// MongoDatabase is the database holding the shipments.
	MongoDatabase string `env:"MONGO_DATABASE" envDefault:"shipping"`
}

// Run builds the service (store and indexes, outbox relay, consumer, gRPC
// API) and runs it until ctx ends or a part fails.
func Run(ctx context.Context, cfg Config, rt service.Runtime) error {
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
	repo := adapters.NewShipmentMongoRepository(client.Database(cfg.MongoDatabase), rt.Now)
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = repo.EnsureIndexes(setupCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: store %s: %w", Name, cfg.MongoDatabase, err)
	}
	producer := cfg.KafkaConfig.NewProducer()
	defer producer.Close()
	relay := adapters.NewOutboxRelay(repo, producer, adapters.RelayConfig{Logger: rt.Logger})
	svc := app.New(repo, adapters.SimulatedCarrier{}, ports.EncodeEvent, rt.Now)

	return service.Run(ctx, service.Spec{
		Runtime: rt,
		Name:    Name,
		Common:  cfg.Common,
		Kafka:   cfg.KafkaConfig,
		Register: func(s *grpc.Server) {
			shippingv1.RegisterShippingServiceServer(s, ports.NewGRPCServer(svc))
		},
		Consumers: []service.Consumer{{
			Group: Name, Topics: []string{events.TopicInventory, events.TopicOrders}, Handler: ports.EventHandler(svc),
		}},
		Background: map[string]func(context.Context) error{
			"outbox-relay": relay.Run,
		},
		Ready:  repo.Ping,
		Outbox: relay,
	})
}
