package app

import (
	"context"
	"fmt"

	"github.com/sagasuite/sagasuite/libs/currency"
	"github.com/sagasuite/sagasuite/libs/paging"

	"github.com/sagasuite/sagasuite/services/inventory/internal/domain/stock"
)

// ListProducts' page sizes: the default when the caller gives none, and
// the most one call may ask for (the API's validation says the same; this
// holds for any caller of the use case).
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// UpsertProduct creates a product (stock all zero) or updates its name and price.
func (s *Service) UpsertProduct(ctx context.Context, sku, name string, price stock.Money) (ProductView, error) {
	if price.AmountMinor < 0 {
		return ProductView{}, &stock.InvalidError{Field: "unit_price.amount_minor", Reason: "must not be negative"}
	}
	if !currency.Valid(price.Currency) {
		return ProductView{}, &stock.InvalidError{Field: "unit_price.currency",
			Reason: fmt.Sprintf("must be an active ISO 4217 currency code like EUR, got %q", price.Currency)}
	}
	now := s.now()
	view, err := s.repo.UpsertProduct(ctx, stock.Product{SKU: sku, Name: name, UnitPrice: price, CreatedAt: now, UpdatedAt: now}, now)
	if err != nil {
		return ProductView{}, fmt.Errorf("upsert product %s: %w", sku, err)
	}
	return view, nil
}

// AddStock adds quantity units to sku, once per requestID.
func (s *Service) AddStock(ctx context.Context, requestID, sku string, quantity int64) (stock.Levels, error) {
	if quantity <= 0 {
		return stock.Levels{}, &stock.InvalidError{Field: "quantity", Reason: "must be positive"}
	}
	levels, err := s.repo.AddStock(ctx, requestID, sku, quantity, s.now())
	if err != nil {
		return stock.Levels{}, fmt.Errorf("add %d to %s: %w", quantity, sku, err)
	}
	return levels, nil
}

// GetStock returns sku's stock levels.
func (s *Service) GetStock(ctx context.Context, sku string) (stock.Levels, error) {
	levels, err := s.repo.GetStock(ctx, sku)
	if err != nil {
		return stock.Levels{}, fmt.Errorf("get stock of %s: %w", sku, err)
	}
	return levels, nil
}

// ListProducts returns one page of products after afterSKU and whether more follow.
func (s *Service) ListProducts(ctx context.Context, afterSKU string, pageSize int) (page []ProductView, more bool, err error) {
	pageSize, err = paging.Size(pageSize, DefaultPageSize, MaxPageSize)
	if err != nil {
		return nil, false, &stock.InvalidError{Field: "page_size", Reason: err.Error()}
	}
	views, err := s.repo.ListProducts(ctx, afterSKU, pageSize+1)
	if err != nil {
		return nil, false, fmt.Errorf("list products after %q: %w", afterSKU, err)
	}
	if len(views) > pageSize {
		return views[:pageSize], true, nil
	}
	return views, false, nil
}
