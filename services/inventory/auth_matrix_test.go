package inventory_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	"github.com/sagasuite/sagasuite/services/inventory/internal/ports"
)

// Every InventoryService method under every kind of caller (issue 14). The
// catalog belongs to no customer: every signed-in caller reads it, so a
// "foreign" customer reads it too.
func TestAuthMatrix(t *testing.T) {
	h := start(t)
	const sku = "MATRIX-1"
	h.product(t, sku, 500, 10)
	client := func(conn *grpc.ClientConn) inventoryv1.InventoryServiceClient {
		return inventoryv1.NewInventoryServiceClient(conn)
	}
	servicetest.Matrix{
		Addr:   h.addr,
		Owner:  testenv.IDFor("inventory matrix customer"),
		Policy: ports.Policy,
		Cases: []servicetest.MatrixCase{
			{Method: inventoryv1.InventoryService_UpsertProduct_FullMethodName, Foreign: codes.OK,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{Sku: sku, Name: "Matrix product",
						UnitPrice: &commonv1.Money{AmountMinor: 500, Currency: "EUR"}})
					return err
				}},
			{Method: inventoryv1.InventoryService_AddStock_FullMethodName, Foreign: codes.OK,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).AddStock(ctx, &inventoryv1.AddStockRequest{Sku: sku, Quantity: 1, RequestId: events.NewID()})
					return err
				}},
			{Method: inventoryv1.InventoryService_GetStock_FullMethodName, Foreign: codes.OK,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).GetStock(ctx, &inventoryv1.GetStockRequest{Sku: sku})
					return err
				}},
			{Method: inventoryv1.InventoryService_ListProducts_FullMethodName, Foreign: codes.OK,
				Call: func(ctx context.Context, conn *grpc.ClientConn) error {
					_, err := client(conn).ListProducts(ctx, &inventoryv1.ListProductsRequest{PageSize: 10})
					return err
				}},
		},
	}.Run(t)
}
