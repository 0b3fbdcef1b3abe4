package ports

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"regexp"

	"github.com/sagasuite/sagasuite/libs/grpcserver"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/common/v1"
	inventoryv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/inventory/v1"
	"github.com/sagasuite/sagasuite/services/inventory/internal/app"
	"github.com/sagasuite/sagasuite/services/inventory/internal/domain/stock"
)

// GRPCServer is the InventoryService API. Requests arrive already checked
// against their protovalidate rules (the server's interceptor). It holds no
// customer's data, so unlike the other services' ports it scopes nothing:
// GetStock and ListProducts are catalog reads for any caller, and who may
// UpsertProduct or AddStock is the policy table's role check (libs/grpcserver).
type GRPCServer struct {
	inventoryv1.UnimplementedInventoryServiceServer
	svc    *app.Service
	logger *slog.Logger
}

// NewGRPCServer returns the API over svc.
func NewGRPCServer(svc *app.Service, logger *slog.Logger) *GRPCServer {
	return &GRPCServer{svc: svc, logger: logger}
}

// UpsertProduct creates or updates a product.
func (s *GRPCServer) UpsertProduct(ctx context.Context, req *inventoryv1.UpsertProductRequest) (*inventoryv1.UpsertProductResponse, error) {
	if req.GetUnitPrice() == nil {
		return nil, s.toStatus(ctx, &stock.InvalidError{Field: "unit_price", Reason: "value is required"})
	}
	price := stock.Money{AmountMinor: req.GetUnitPrice().GetAmountMinor(), Currency: req.GetUnitPrice().GetCurrency()}
	view, err := s.svc.UpsertProduct(ctx, req.GetSku(), req.GetName(), price)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &inventoryv1.UpsertProductResponse{Product: productToProto(view)}, nil
}

// AddStock adds units, once per request id.
func (s *GRPCServer) AddStock(ctx context.Context, req *inventoryv1.AddStockRequest) (*inventoryv1.AddStockResponse, error) {
	levels, err := s.svc.AddStock(ctx, req.GetRequestId(), req.GetSku(), int64(req.GetQuantity()))
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &inventoryv1.AddStockResponse{Stock: levelsToProto(levels)}, nil
}

// GetStock returns a product's stock levels.
func (s *GRPCServer) GetStock(ctx context.Context, req *inventoryv1.GetStockRequest) (*inventoryv1.GetStockResponse, error) {
	levels, err := s.svc.GetStock(ctx, req.GetSku())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &inventoryv1.GetStockResponse{Stock: levelsToProto(levels)}, nil
}

// ListProducts pages through the catalog by SKU.
func (s *GRPCServer) ListProducts(ctx context.Context, req *inventoryv1.ListProductsRequest) (*inventoryv1.ListProductsResponse, error) {
	after, err := decodePageToken(req.GetPageToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	page, more, err := s.svc.ListProducts(ctx, after, int(req.GetPageSize()))
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &inventoryv1.ListProductsResponse{Products: make([]*inventoryv1.Product, len(page))}
	for i, v := range page {
		resp.Products[i] = productToProto(v)
	}
	if more {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(page[len(page)-1].Product.SKU))
	}
	return resp, nil
}

var skuPattern = regexp.MustCompile(`^[A-Z0-9][A-Z0-9_-]{1,63}$`)

// decodePageToken reads a next_page_token: the last SKU of the previous page.
func decodePageToken(token string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || !skuPattern.Match(b) {
		return "", &stock.InvalidError{Field: "page_token", Reason: "not a token from a previous ListProducts"}
	}
	return string(b), nil
}

// toStatus maps errors to gRPC codes, in this one place.
func (s *GRPCServer) toStatus(ctx context.Context, err error) error {
	var invalid *stock.InvalidError
	switch {
	case errors.As(err, &invalid):
		return grpcserver.InvalidArgument(invalid.Field, invalid.Reason)
	case errors.Is(err, stock.ErrProductNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, stock.ErrRequestConflict):
		return status.Error(codes.FailedPrecondition, "request_id: "+err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	s.logger.ErrorContext(ctx, "inventory API", "error", err)
	return status.Error(codes.Internal, "internal error")
}

func productToProto(v app.ProductView) *inventoryv1.Product {
	updated := v.Product.UpdatedAt
	if v.Levels.UpdatedAt.After(updated) {
		updated = v.Levels.UpdatedAt
	}
	return &inventoryv1.Product{
		Sku:        v.Product.SKU,
		Name:       v.Product.Name,
		UnitPrice:  &commonv1.Money{AmountMinor: v.Product.UnitPrice.AmountMinor, Currency: v.Product.UnitPrice.Currency},
		Stock:      levelsToProto(v.Levels),
		CreateTime: timestamppb.New(v.Product.CreatedAt),
		UpdateTime: timestamppb.New(updated),
	}
}

func levelsToProto(l stock.Levels) *inventoryv1.Stock {
	return &inventoryv1.Stock{Sku: l.SKU, Available: l.Available, Reserved: l.Reserved, Sold: l.Sold, Added: l.Added, Restored: l.Restored}
}
