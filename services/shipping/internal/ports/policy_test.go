package ports_test

import (
	"testing"

	"github.com/sagasuite/sagasuite/libs/grpcserver"

	shippingv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/shipping/v1"
	"github.com/sagasuite/sagasuite/services/shipping/internal/ports"
)

// A method added to the API without a line in the policy fails here (and
// the server would refuse to start).
func TestEveryMethodHasAPolicy(t *testing.T) {
	if err := grpcserver.CheckPolicy(ports.Policy, &shippingv1.ShippingService_ServiceDesc); err != nil {
		t.Fatal(err)
	}
}
