package app

import (
	"context"
	"fmt"

	"github.com/sagasuite/sagasuite/libs/paging"

	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// ListShipments' page sizes: the default for 0, and the most one call may
// ask for (as the API's validation; this holds for any caller).
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

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
	size, err := paging.Size(q.PageSize, DefaultPageSize, MaxPageSize)
	if err != nil {
		return nil, "", fmt.Errorf("%w: page_size %v", shipment.ErrInvalid, err)
	}
	return h.repo.ListByCustomer(ctx, q.CustomerID, size, q.PageToken)
}
