package ports_test

import (
	"testing"

	"github.com/sagasuite/sagasuite/libs/grpcserver"

	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/services/order/internal/ports"
)

// A method added to the API without a line in the policy fails here (and
// the server would refuse to start).
func TestEveryMethodHasAPolicy(t *testing.T) {
	if err := grpcserver.CheckPolicy(ports.Policy, &orderv1.OrderService_ServiceDesc); err != nil {
		t.Fatal(err)
	}
}
