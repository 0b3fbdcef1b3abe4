package auth

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Per-customer authorization: libs/grpcserver's policy table decides which
// roles may call a method; these decide what a customer (a scoped caller)
// may see of it. Operators, services and catalog admins are not scoped, nor
// is a context without a principal (an in-process caller).

// ErrForeignCustomer answers a scoped caller that names another customer.
var ErrForeignCustomer = status.Error(codes.PermissionDenied, "customer_id: a customer may only name themselves")

// CustomerFilter is the customer a request may act on or list: for a scoped
// caller their own id (filled in when the request left it empty), and
// ErrForeignCustomer for any other; for everyone else requested as it is.
func CustomerFilter(ctx context.Context, requested string) (string, error) {
	own, scoped := CustomerScope(ctx)
	if !scoped {
		return requested, nil
	}
	if own == "" || (requested != "" && requested != own) {
		return "", ErrForeignCustomer // a customer without a subject owns nothing
	}
	return own, nil
}

// Visible tells whether the caller may see data of customerID. The caller
// answers what it may not see exactly like what does not exist, so ids
// cannot be probed.
func Visible(ctx context.Context, customerID string) bool {
	own, scoped := CustomerScope(ctx)
	return !scoped || (own != "" && customerID == own)
}
