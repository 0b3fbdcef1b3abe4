// Package payment is the payment service: one payment per order in MySQL,
// charged through a Gateway with the order id as idempotency key when
// inventory has reserved the stock (STOCK_RESERVED), and refunded exactly once
// when the order is cancelled or its shipment fails. An order cancelled
// before any charge leaves a tombstone, so a late STOCK_RESERVED charges
// nothing. The built-in gateway is a deterministic simulator (see
// internal/adapters/simgateway and README.md for its decline rules).
package payment

import (
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/logging"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/sqlstore"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	"github.com/sagasuite/sagasuite/services/payment/internal/adapters"
	"github.com/sagasuite/sagasuite/services/payment/internal/adapters/simgateway"
	"github.com/sagasuite/sagasuite/services/payment/internal/app"
	"github.com/sagasuite/sagasuite/services/payment/internal/ports"
)

// Name is the service's name: its consumer group, inbox consumer and producer.
const Name = "payment"

// Config is read from PAYMENT_* variables (config.Load[Config]("PAYMENT")).
type Config struct {
	config.Common
	service.KafkaConfig

	// MySQLDSN is the go-sql-driver DSN of the payment database.
	MySQLDSN string `env:"MYSQL_DSN,required"`
	// MySQLMaxOpenConns bounds the pool; the dev stack's in-process MySQL
	// needs 1 (it is not safe with concurrent connections).
	MySQLMaxOpenConns int `env:"MYSQL_MAX_OPEN_CONNS" envDefault:"16"`
	// GatewayFailureRate is the share of orders, in [0, 1], the simulated
	// gateway declines on top of its fixed rules (chosen by a hash of the
	// order id, so a replay decides the same).
	GatewayFailureRate float64 `env:"GATEWAY_FAILURE_RATE" envDefault:"0"`
}

// Validate is called by config.Load after parsing.
func (c Config) Validate() error {
	var problems []error
	if _, err := simgateway.New(c.GatewayFailureRate); err != nil {
		problems = append(problems, &config.VarError{Key: "PAYMENT_GATEWAY_FAILURE_RATE",
			Problem: fmt.Sprintf(": must be between 0 and 1, got %v", c.GatewayFailureRate), Err: err})
	}
	if c.MySQLMaxOpenConns <= 0 {
		problems = append(problems, &config.VarError{Key: "PAYMENT_MYSQL_MAX_OPEN_CONNS",
			Problem: fmt.Sprintf(": must be positive, got %d", c.MySQLMaxOpenConns)})
	}
	return errors.Join(problems...)
}

// Run builds the service (store and migrations, simulated gateway, outbox
// relay, consumer, gRPC API) and runs it until ctx ends or a part fails.
func Run(ctx context.Context, cfg Config, rt service.Runtime) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if rt.Logger == nil {
		rt.Logger = logging.New(os.Stderr, cfg.LogLevel, string(cfg.LogFormat)).With("service", Name)
	}
	gateway, err := simgateway.New(cfg.GatewayFailureRate)
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	db, err := sqlstore.Open(ctx, cfg.MySQLDSN, sqlstore.Options{MaxOpenConns: cfg.MySQLMaxOpenConns})
	if err != nil {
		return fmt.Errorf("%s: store: %w", Name, err)
	}
	defer db.Close()
	if err := adapters.Migrate(ctx, db); err != nil {
		return fmt.Errorf("%s: migrate: %w", Name, err)
	}

	producer, err := cfg.KafkaConfig.NewProducer()
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	defer producer.Close()
	relay := outbox.NewRelay(db, producer, outbox.RelayConfig{LockName: Name + "-outbox-relay", Logger: rt.Logger})
	application := app.New(app.Deps{
		Repo:    adapters.NewPaymentMySQLRepository(db, Name, rt.Now),
		Gateway: gateway,
		Encode:  ports.Encode,
		Now:     rt.Now,
		Changed: relay.Notify,
	})
	api := ports.NewGRPCServer(application)

	return service.Run(ctx, service.Spec{
		Runtime:  rt,
		Produces: []string{events.TopicPayments},
		Name:     Name,
		Common:   cfg.Common,
		Kafka:    cfg.KafkaConfig,
		Register: func(s *grpc.Server) { paymentv1.RegisterPaymentServiceServer(s, api) },
		Consumers: []service.Consumer{{
			Group:   Name,
			Topics:  []string{events.TopicInventory, events.TopicOrders, events.TopicShipments},
			Handler: ports.EventHandler(application),
		}},
		Background: map[string]func(context.Context) error{"outbox relay": relay.Run},
		Ready:      db.PingContext,
		Outbox:     relay,
	})
}
