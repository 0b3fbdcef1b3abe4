// Package app holds inventory's use cases: the saga reactions (reserve,
// deduct, release, restore) and the catalog commands and queries behind the
// gRPC API. Each takes its time from the injected clock and reaches the store
// only through Repository.
package app

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/services/inventory/internal/domain/stock"
)

// Cause is the event a change answers to. Emitted events take their ids from
// its id (so a re-run emits the same event), its order and customer, and At.
type Cause struct {
	EventID    string
	OrderID    string
	CustomerID string
	At         time.Time
}

// Decide is a decision taken under the order's and its SKUs' locks: given the
// order's reservation (nil: none yet) and the catalog items it may touch
// (levels changed in place are saved), it returns the reservation to save
// (nil: unchanged) and the event to emit (nil: none).
type Decide func(existing *stock.Reservation, catalog stock.Catalog) (save *stock.Reservation, emit stock.Event, err error)

// ProductView is a product with its stock levels.
type ProductView struct {
	Product stock.Product
	Levels  stock.Levels
}

// Repository is inventory's store.
type Repository interface {
	// Apply runs decide in one transaction that first claims cause.EventID in
	// the inbox, then locks the order's reservation and the stock rows of skus
	// plus the reservation's SKUs (in sorted order), and finally saves what
	// decide changed together with the emitted event in the outbox. It reports
	// false, changing nothing, when the event was processed before.
	Apply(ctx context.Context, cause Cause, skus []string, decide Decide) (applied bool, err error)
	// UpsertProduct creates p (with zero stock) or updates its name and price.
	UpsertProduct(ctx context.Context, p stock.Product, now time.Time) (ProductView, error)
	// AddStock adds quantity to sku's stock once per requestID;
	// stock.ErrProductNotFound when sku is unknown, stock.ErrRequestConflict
	// when requestID was used for another SKU or quantity.
	AddStock(ctx context.Context, requestID, sku string, quantity int64, now time.Time) (stock.Levels, error)
	// GetStock returns sku's levels, or stock.ErrProductNotFound.
	GetStock(ctx context.Context, sku string) (stock.Levels, error)
	// ListProducts returns up to limit products with SKU > afterSKU, by SKU.
	ListProducts(ctx context.Context, afterSKU string, limit int) ([]ProductView, error)
}

// Service is inventory's application: every use case, over one repository.
type Service struct {
	repo  Repository
	clock clock.Clock
}

// New returns the application over repo, telling time by clk (nil: the system clock).
func New(repo Repository, clk clock.Clock) *Service {
	if clk == nil {
		clk = clock.System{}
	}
	return &Service{repo: repo, clock: clk}
}

func (s *Service) now() time.Time { return s.clock.Now().UTC() }

// reservationNamespace scopes reservation ids derived from order ids.
var reservationNamespace = uuid.MustParse("3f2b0c8e-51a4-4f7c-9d0e-6b1f8e2a7c45")

// ReservationID is the id of an order's reservation: derived, so a replay of
// the same saga yields the same id.
func ReservationID(orderID string) string {
	return uuid.NewSHA1(reservationNamespace, []byte(orderID)).String()
}
