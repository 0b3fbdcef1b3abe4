package authtest_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/auth/authtest"
)

// recorder stands in for a test so a check's failure can be observed
// instead of failing this test; Fatal ends the check's goroutine as
// testing.T does.
type recorder struct {
	testing.TB
	failure string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failure = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatal(args ...any) {
	r.failure = fmt.Sprint(args...)
	runtime.Goexit()
}

// failure runs check against a recorder and returns what it failed with.
func failure(t *testing.T, check func(testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r)
	}()
	<-done
	return r.failure
}

func TestSameAnswer(t *testing.T) {
	const foreignID, missingID = "0192-foreign", "0192-missing"
	notFound := func(id string) error { return status.Errorf(codes.NotFound, "order %s not found", id) }
	for _, tc := range []struct {
		name             string
		foreign, missing error
		wantFail         bool
	}{
		{"same answer but for the id", notFound(foreignID), notFound(missingID), false},
		{"foreign is PermissionDenied", status.Error(codes.PermissionDenied, "not yours"), notFound(missingID), true},
		{"foreign succeeds", nil, notFound(missingID), true},
		{"messages differ beyond the id", status.Errorf(codes.NotFound, "order %s belongs to someone", foreignID), notFound(missingID), true},
		{"foreign id left in the answer", notFound(foreignID + " " + missingID), notFound(missingID + " " + missingID), true},
	} {
		got := failure(t, func(tb testing.TB) {
			authtest.SameAnswer(tb, tc.name, tc.foreign, foreignID, tc.missing, missingID)
		})
		if (got != "") != tc.wantFail {
			t.Errorf("%s: failure %q, want failing %v", tc.name, got, tc.wantFail)
		}
	}
}

func TestWantCode(t *testing.T) {
	if got := failure(t, func(tb testing.TB) { authtest.WantCode(tb, "ok", status.Error(codes.NotFound, "x"), codes.NotFound) }); got != "" {
		t.Errorf("matching code failed: %s", got)
	}
	if got := failure(t, func(tb testing.TB) { authtest.WantCode(tb, "off", nil, codes.NotFound) }); got == "" {
		t.Error("OK passed as NotFound")
	}
}

func TestNewCallers(t *testing.T) {
	c := authtest.NewCallers(t, time.Hour)
	if c.AliceID == "" || c.BobID == "" || c.AliceID == c.BobID {
		t.Fatalf("customer ids %q, %q: want two distinct ids", c.AliceID, c.BobID)
	}
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		subject string
		role    auth.Role
	}{
		{"alice", c.Alice, c.AliceID, auth.RoleCustomer},
		{"bob", c.Bob, c.BobID, auth.RoleCustomer},
		{"operator", c.Operator, "ops", auth.RoleOperator},
	} {
		p, ok := auth.FromContext(tc.ctx)
		if !ok || p.Subject != tc.subject || len(p.Roles) != 1 || p.Roles[0] != tc.role {
			t.Errorf("%s: principal %+v (%v), want subject %q role %s", tc.name, p, ok, tc.subject, tc.role)
		}
	}
	if p, ok := auth.FromContext(c.Internal); ok {
		t.Errorf("the in-process caller carries principal %+v", p)
	}
	if _, ok := c.Internal.Deadline(); !ok {
		t.Error("the callers' context has no deadline")
	}
}
