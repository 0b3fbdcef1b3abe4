// Package auth holds who is calling: the principal a verified bearer token
// names, carried in the request context from the gRPC interceptor
// (libs/grpcserver) to the handlers, which scope what a customer may see.
package auth

import (
	"context"
	"slices"
)

// Role is what a token's "roles" claim grants.
type Role string

const (
	// RoleCustomer: the token's subject is a customer id; the caller sees and
	// acts on that customer's orders, payments, shipments and notifications only.
	RoleCustomer Role = "customer"
	// RoleOperator reads everything, cancels any order, runs the DLQ and
	// replay tools.
	RoleOperator Role = "operator"
	// RoleCatalogAdmin manages products, prices and stock.
	RoleCatalogAdmin Role = "catalog-admin"
	// RoleService is a tool's identity (sagactl audit, bench, demo): it acts
	// for any customer and reads everything.
	RoleService Role = "service"
)

// Roles lists every role a token may carry.
var Roles = []Role{RoleCustomer, RoleOperator, RoleCatalogAdmin, RoleService}

// Principal is a verified caller.
type Principal struct {
	// Subject is the token's "sub": a customer id for a customer, a name
	// (e.g. "sagactl-audit") for the others.
	Subject string
	Roles   []Role
}

// Has tells whether p was granted r.
func (p Principal) Has(r Role) bool { return slices.Contains(p.Roles, r) }

// CustomerScope returns the customer id p is confined to and true when p may
// act only as that customer (a customer token without a wider role);
// operators, catalog admins and services are not confined ("", false).
func (p Principal) CustomerScope() (string, bool) {
	if p.Has(RoleOperator) || p.Has(RoleService) || p.Has(RoleCatalogAdmin) {
		return "", false
	}
	return p.Subject, true
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p (the interceptor's job; tests may use
// it to call handlers directly).
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the verified caller, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// CustomerScope is FromContext(ctx)'s scope. A context without a principal
// (an in-process call that passed no interceptor, e.g. the event handlers)
// is not confined: every gRPC method passes the interceptor, which refuses
// a call without a verified principal.
func CustomerScope(ctx context.Context) (string, bool) {
	p, ok := FromContext(ctx)
	if !ok {
		return "", false
	}
	return p.CustomerScope()
}
