package ports

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/auth"
)

// Per-customer authorization: libs/grpcserver's policy table decides which
// roles may call a method; these decide what a customer (a scoped caller)
// may see of it. Operators, services and catalog admins are not scoped, nor
// is a context without a principal (an in-process caller). Every service's
// ports carry the same helpers.

// errForeignCustomer answers a scoped caller that names another customer.
var errForeignCustomer = status.Error(codes.PermissionDenied, "customer_id: a customer may only name themselves")

// customerFilter is the customer a request may act on or list: for a scoped
// caller their own id (filled in when the request left it empty), and
// errForeignCustomer for any other; for everyone else requested as it is.
func customerFilter(ctx context.Context, requested string) (string, error) {
	own, scoped := auth.CustomerScope(ctx)
	if !scoped {
		return requested, nil
	}
	if own == "" || (requested != "" && requested != own) {
		return "", errForeignCustomer // a customer without a subject owns nothing
	}
	return own, nil
}

// visible tells whether the caller may see data of customerID. The caller
// answers what it may not see exactly like what does not exist.
func visible(ctx context.Context, customerID string) bool {
	own, scoped := auth.CustomerScope(ctx)
	return !scoped || (own != "" && customerID == own)
}
