// Package inventory is the inventory service: products, stock and reservations
// (MySQL). It reserves every line of an order or none, turns paid reservations
// into deductions, and gives stock back on every compensation, keeping
// added = available + reserved + sold − restored for each SKU at all times.
package inventory

import (
	"context"
	"fmt"
	"os"

	"google.golang.org/grpc"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/logging"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	"github.com/sagasuite/sagasuite/services/inventory/internal/adapters"
	"github.com/sagasuite/sagasuite/services/inventory/internal/app"
	"github.com/sagasuite/sagasuite/services/inventory/internal/ports"
	"github.com/sagasuite/sagasuite/services/inventory/migrations"
)

// Name is the service's name: consumer group, inbox consumer, producer.
const Name = "inventory"

// Config is the inventory service's environment (prefix INVENTORY_).
type Config struct {
	config.Common
	service.KafkaConfig
	// MySQLDSN is the go-sql-driver DSN of the inventory database.
	MySQLDSN string `env:"MYSQL_DSN,required"`
	// MySQLMaxOpenConns bounds the pool; the dev stack's in-process MySQL
	// needs 1 (it is not safe with concurrent connections).
	MySQLMaxOpenConns int `env:"MYSQL_MAX_OPEN_CONNS" envDefault:"16"`
}

// Run builds the service (store and migrations, outbox relay, consumers,
// gRPC API) and runs it until ctx ends or a part fails.
func Run(ctx context.Context, cfg Config, rt service.Runtime) error {
	if rt.Logger == nil {
		rt.Logger = logging.New(os.Stderr, cfg.LogLevel, string(cfg.LogFormat)).With("service", Name)
	}
	db, err := adapters.Open(ctx, cfg.MySQLDSN, sqlstore.Options{MaxOpenConns: cfg.MySQLMaxOpenConns})
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	defer db.Close()
	if err := migrations.Apply(ctx, db); err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	producer, err := cfg.KafkaConfig.NewProducer()
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	defer producer.Close()
	relay := outbox.NewRelay(db, producer, outbox.RelayConfig{LockName: Name + "-outbox-relay", Logger: rt.Logger})
	repo := adapters.NewMySQLRepository(db, Name, ports.EncodeEvent, relay.Notify)
	svc := app.New(repo, rt.Clock)

	return service.Run(ctx, service.Spec{
		Runtime:  rt,
		Produces: []string{events.TopicInventory},
		Name:     Name,
		Common:   cfg.Common,
		Kafka:    cfg.KafkaConfig,
		Policy:   ports.Policy,
		Register: func(s *grpc.Server) {
			inventoryv1.RegisterInventoryServiceServer(s, ports.NewGRPCServer(svc, rt.Logger))
		},
		Consumers: []service.Consumer{{Group: Name, Topics: ports.Topics, Handler: ports.EventHandler(svc, rt.Logger)}},
		Background: map[string]func(context.Context) error{
			"outbox-relay": relay.Run,
		},
		Ready:  db.PingContext,
		Outbox: relay,
	})
}
