package devstack

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// Product is one catalog entry the stack seeds.
type Product struct {
	SKU   string
	Name  string
	Price int64 // EUR cents
	Stock int32 // units added once per database (0: none, e.g. to show OUT_OF_STOCK)
}

// Currency of the seeded catalog.
const Currency = "EUR"

// DefaultCatalog is the small shop the dev stack starts with.
var DefaultCatalog = []Product{
	{SKU: "DEV-MUG", Name: "Saga mug", Price: 1250, Stock: 1000},
	{SKU: "DEV-TSHIRT", Name: "Choreography T-shirt", Price: 2490, Stock: 500},
	{SKU: "DEV-STICKERS", Name: "Outbox sticker pack", Price: 350, Stock: 5000},
	{SKU: "DEV-HOODIE", Name: "Compensation hoodie (limited)", Price: 5900, Stock: 3},
	{SKU: "DEV-POSTER", Name: "Sold-out poster", Price: 1500, Stock: 0},
}

// seedNamespace derives the AddStock request ids, so re-seeding a kept
// database (an external MySQL) adds each product's stock only once.
var seedNamespace = uuid.MustParse("0b7e3f5c-3a5e-4d8e-9c59-1d7c1b0de5a1")

// seed upserts each product and adds its stock once.
func seed(ctx context.Context, inventoryAddr string, catalog []Product, token suite.TokenSource) error {
	if len(catalog) == 0 {
		return nil
	}
	conn, err := grpc.NewClient(inventoryAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(suite.PerRPCCredentials(token)))
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer conn.Close()
	inv := inventoryv1.NewInventoryServiceClient(conn)
	for _, p := range catalog {
		if _, err := inv.UpsertProduct(ctx, &inventoryv1.UpsertProductRequest{
			Sku: p.SKU, Name: p.Name, UnitPrice: &commonv1.Money{AmountMinor: p.Price, Currency: Currency},
		}); err != nil {
			return fmt.Errorf("seed %s: UpsertProduct: %w", p.SKU, err)
		}
		if p.Stock > 0 {
			if _, err := inv.AddStock(ctx, &inventoryv1.AddStockRequest{
				Sku: p.SKU, Quantity: p.Stock, RequestId: uuid.NewSHA1(seedNamespace, []byte("seed/"+p.SKU)).String(),
			}); err != nil {
				return fmt.Errorf("seed %s: AddStock: %w", p.SKU, err)
			}
		}
	}
	return nil
}
