package app_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sagasuite/sagasuite/services/inventory/internal/app"
	"github.com/sagasuite/sagasuite/services/inventory/internal/domain/stock"
)

// Both checks come before the store (nil here) is touched.
func TestCatalogRefusesBadCurrencyAndPageSize(t *testing.T) {
	svc := app.New(nil, nil)
	ctx := context.Background()
	for _, code := range []string{"XXX", "XTS", "ABC", "eur"} {
		_, err := svc.UpsertProduct(ctx, "MUG-1", "Mug", stock.Money{AmountMinor: 100, Currency: code})
		var invalid *stock.InvalidError
		if !errors.As(err, &invalid) || invalid.Field != "unit_price.currency" {
			t.Errorf("currency %q: %v, want InvalidError on unit_price.currency", code, err)
		}
	}
	for _, size := range []int{app.MaxPageSize + 1, -1} {
		_, _, err := svc.ListProducts(ctx, "", size)
		var invalid *stock.InvalidError
		if !errors.As(err, &invalid) || invalid.Field != "page_size" {
			t.Errorf("page size %d: %v, want InvalidError on page_size", size, err)
		}
	}
}
