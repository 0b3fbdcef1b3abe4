package app

import (
	"context"

	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// DefaultPageSize is ListShipments' page size when the caller asks for 0.
const DefaultPageSize = 20

// ListShipments asks for one page of a customer's shipments.
type ListShipments struct {
	CustomerID string
	PageSize   int // 0: DefaultPageSize
	PageToken  string
}

// ListShipmentsHandler pages through a customer's shipments, newest first.
type ListShipmentsHandler struct{ repo Repository }

// Handle returns one page and the token of the next ("" on the last page).
func (h ListShipmentsHandler) Handle(ctx context.Context, q ListShipments) ([]*shipment.Shipment, string, error) {
	size := q.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	return h.repo.ListByCustomer(ctx, q.CustomerID, size, q.PageToken)
}
