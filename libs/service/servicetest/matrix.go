package servicetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/grpcserver"
	"github.com/sagasuite/sagasuite/libs/testenv"
)

// MatrixCase is one method under the matrix.
type MatrixCase struct {
	// Method is the full method name, as in the service's policy.
	Method string
	// Call makes one call on conn naming data of the matrix's Owner (its
	// customer id, an order of theirs …) and returns the call's error.
	// A call that changes state prepares fresh data itself each time.
	Call func(ctx context.Context, conn *grpc.ClientConn) error
	// Foreign is what another customer gets for the same call: NotFound for an id of another's (ids cannot
	// be probed), PermissionDenied for another's customer_id, OK for data
	// no customer owns (products).
	Foreign codes.Code
}

// Matrix is every method of one service, under every kind of caller.
type Matrix struct {
	// Addr is the service's gRPC address (conn.Target() of Start's conn).
	Addr string
	// Owner is the customer id the cases' data belongs to.
	Owner string
	// Policy is the service's declared policy: it decides which roles are
	// admitted, and every method in it needs a case.
	Policy grpcserver.Policy
	Cases  []MatrixCase
}

// matrixRow is one kind of caller.
type matrixRow struct {
	name  string
	token string
	// role is the role the row's token grants; "" for the rows that must
	// fail authentication.
	role auth.Role
	// customer: "right" or "foreign" for the customer rows.
	customer string
}

// Run calls every case as: no token, an expired token, a token for another
// audience, a foreign customer, the right customer, an operator, a catalog
// admin and a service identity; and checks each code against the policy.
func (m Matrix) Run(t *testing.T) {
	t.Helper()
	for method := range m.Policy {
		if !slices.ContainsFunc(m.Cases, func(c MatrixCase) bool { return c.Method == method }) {
			t.Errorf("matrix: %s has a policy but no case", method)
		}
	}
	now := time.Now()
	customer := func(id string) auth.Principal {
		return auth.Principal{Subject: id, Roles: []auth.Role{auth.RoleCustomer}}
	}
	role := func(r auth.Role) auth.Principal {
		return auth.Principal{Subject: "matrix-" + string(r), Roles: []auth.Role{r}}
	}
	foreign := testenv.IDFor("matrix foreign customer of " + m.Owner)
	rows := []matrixRow{
		{name: "no token"},
		{name: "expired", token: Mint(t, customer(m.Owner), Audience, now.Add(-2*time.Hour), time.Hour)},
		{name: "wrong audience", token: Mint(t, role(auth.RoleOperator), "another-api", now, time.Hour)},
		{name: "foreign customer", token: Token(t, customer(foreign)), role: auth.RoleCustomer, customer: "foreign"},
		{name: "right customer", token: Token(t, customer(m.Owner)), role: auth.RoleCustomer, customer: "right"},
		{name: "operator", token: Token(t, role(auth.RoleOperator)), role: auth.RoleOperator},
		{name: "catalog admin", token: Token(t, role(auth.RoleCatalogAdmin)), role: auth.RoleCatalogAdmin},
		{name: "service", token: Token(t, role(auth.RoleService)), role: auth.RoleService},
	}
	for _, row := range rows {
		conn := Dial(t, m.Addr, row.token)
		for _, c := range m.Cases {
			ctx, cancel := context.WithTimeout(context.Background(), Wait)
			err := c.Call(ctx, conn)
			cancel()
			got := status.Code(err)
			admitted := row.role != "" && slices.Contains(m.Policy[c.Method], row.role)
			var want codes.Code
			switch {
			case row.role == "":
				want = codes.Unauthenticated
			case !admitted:
				want = codes.PermissionDenied
			case row.customer == "foreign":
				want = c.Foreign
			default:
				want = codes.OK
			}
			if got != want {
				t.Errorf("%s as %s: %v, want %s", c.Method, row.name, err, want)
			}
		}
	}
}
