// Package suite names the five sagasuite services and connects to their gRPC
// APIs: what the end-to-end harness, the invariant audit and sagactl share.
package suite

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
)

// The services, in the order they are listed everywhere (services/README.md).
const (
	Order        = "order"
	Inventory    = "inventory"
	Payment      = "payment"
	Shipping     = "shipping"
	Notification = "notification"
)

// Services lists every service name.
var Services = []string{Order, Inventory, Payment, Shipping, Notification}

// Clients are the gRPC clients of the five services.
type Clients struct {
	Order        orderv1.OrderServiceClient
	Inventory    inventoryv1.InventoryServiceClient
	Payment      paymentv1.PaymentServiceClient
	Shipping     shippingv1.ShippingServiceClient
	Notification notificationv1.NotificationServiceClient
}

// Addrs are the gRPC addresses (host:port) of the five services.
type Addrs struct {
	Order, Inventory, Payment, Shipping, Notification string
}

// Of returns the address of the named service ("" for an unknown name).
func (a Addrs) Of(name string) string {
	switch name {
	case Order:
		return a.Order
	case Inventory:
		return a.Inventory
	case Payment:
		return a.Payment
	case Shipping:
		return a.Shipping
	case Notification:
		return a.Notification
	}
	return ""
}

// Set sets the named service's address (an unknown name changes nothing).
func (a *Addrs) Set(name, addr string) {
	switch name {
	case Order:
		a.Order = addr
	case Inventory:
		a.Inventory = addr
	case Payment:
		a.Payment = addr
	case Shipping:
		a.Shipping = addr
	case Notification:
		a.Notification = addr
	}
}

// Conns holds the client connections behind Clients.
type Conns struct {
	Clients
	conns []*grpc.ClientConn
}

// DialOption tunes Dial and DialReplicas.
type DialOption func(*dialConfig)

type dialConfig struct {
	token TokenSource
}

// WithToken sends src's bearer token with every call (the services require
// one on every method but health). Without it, calls carry no token.
func WithToken(src TokenSource) DialOption {
	return func(c *dialConfig) { c.token = src }
}

// Dial makes plaintext client connections to every address (gRPC connects
// lazily and reconnects, so a service that restarts on the same address is
// reached again). Close releases them.
func Dial(addrs Addrs, opts ...DialOption) (*Conns, error) {
	each := map[string][]string{}
	for _, name := range Services {
		if addr := addrs.Of(name); addr != "" {
			each[name] = []string{addr}
		}
	}
	return DialReplicas(each, opts...)
}

// replicaConnect: a replica that starts on an address that refused
// connections so far is reached within about a second, not after gRPC's
// default backoff of up to two minutes (a rolling restart brings new
// processes up on spare addresses).
var replicaConnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// DialReplicas is Dial for services that run as several processes: a
// service with more than one address gets a connection that spreads calls
// over the addresses that accept connections (round robin), as a
// Kubernetes Service spreads them over ready pods.
func DialReplicas(addrs map[string][]string, opts ...DialOption) (*Conns, error) {
	var cfg dialConfig
	for _, o := range opts {
		o(&cfg)
	}
	c := &Conns{}
	conn := func(name string) (*grpc.ClientConn, error) {
		list := addrs[name]
		if len(list) == 0 {
			return nil, fmt.Errorf("no address for %s", name)
		}
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if cfg.token != nil {
			opts = append(opts, grpc.WithPerRPCCredentials(PerRPCCredentials(cfg.token)))
		}
		target := list[0]
		if len(list) > 1 {
			r := manual.NewBuilderWithScheme("replicas-" + name)
			state := resolver.State{}
			for _, addr := range list {
				state.Addresses = append(state.Addresses, resolver.Address{Addr: addr})
			}
			r.InitialState(state)
			target = r.Scheme() + ":///" + name
			opts = append(opts, grpc.WithResolvers(r), grpc.WithConnectParams(replicaConnect),
				grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
		}
		cc, err := grpc.NewClient(target, opts...)
		if err != nil {
			return nil, fmt.Errorf("%s client for %v: %w", name, list, err)
		}
		c.conns = append(c.conns, cc)
		return cc, nil
	}
	for _, name := range Services {
		cc, err := conn(name)
		if err != nil {
			c.Close()
			return nil, err
		}
		switch name {
		case Order:
			c.Order = orderv1.NewOrderServiceClient(cc)
		case Inventory:
			c.Inventory = inventoryv1.NewInventoryServiceClient(cc)
		case Payment:
			c.Payment = paymentv1.NewPaymentServiceClient(cc)
		case Shipping:
			c.Shipping = shippingv1.NewShippingServiceClient(cc)
		case Notification:
			c.Notification = notificationv1.NewNotificationServiceClient(cc)
		}
	}
	return c, nil
}

// Close closes every connection.
func (c *Conns) Close() error {
	var errs []error
	for _, cc := range c.conns {
		errs = append(errs, cc.Close())
	}
	c.conns = nil
	return errors.Join(errs...)
}
