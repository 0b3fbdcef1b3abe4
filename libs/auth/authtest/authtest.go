// Package authtest holds what the services' handler-isolation tests share:
// the callers the auth interceptor would hand a handler, and the checks that
// a customer cannot reach, or even detect, another customer's data.
package authtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/events"
)

// Callers are the contexts the interceptor would hand the handlers: two
// customers with fresh ids, an operator, and an in-process caller (no
// principal).
type Callers struct {
	Alice, Bob, Operator, Internal context.Context
	AliceID, BobID                 string
}

// NewCallers builds Callers whose contexts end after wait or when t ends.
func NewCallers(t testing.TB, wait time.Duration) Callers {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	c := Callers{AliceID: events.NewID(), BobID: events.NewID(), Internal: ctx}
	c.Alice = auth.WithPrincipal(ctx, auth.Principal{Subject: c.AliceID, Roles: []auth.Role{auth.RoleCustomer}})
	c.Bob = auth.WithPrincipal(ctx, auth.Principal{Subject: c.BobID, Roles: []auth.Role{auth.RoleCustomer}})
	c.Operator = auth.WithPrincipal(ctx, auth.Principal{Subject: "ops", Roles: []auth.Role{auth.RoleOperator}})
	return c
}

// WantCode fails t unless err carries the gRPC code want.
func WantCode(t testing.TB, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("%s: %v (code %s), want %s", what, err, got, want)
	}
}

// SameAnswer fails unless foreign (for an id that exists but is another
// customer's) is NotFound and, with each id masked, byte for byte the
// answer missing (for an id that does not exist) got: nothing tells them apart.
func SameAnswer(t testing.TB, what string, foreign error, foreignID string, missing error, missingID string) {
	t.Helper()
	WantCode(t, what+" (foreign)", foreign, codes.NotFound)
	mask := func(err error, id string) []byte {
		st := status.Convert(err).Proto()
		st.Message = strings.ReplaceAll(st.Message, id, "<id>")
		b, merr := proto.MarshalOptions{Deterministic: true}.Marshal(st)
		if merr != nil {
			t.Fatal(merr)
		}
		return b
	}
	if f, m := mask(foreign, foreignID), mask(missing, missingID); string(f) != string(m) {
		t.Fatalf("%s: a foreign id answers %q, a missing one %q", what, foreign, missing)
	}
}
