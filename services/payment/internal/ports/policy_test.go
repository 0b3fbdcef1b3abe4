package ports_test

import (
	"testing"

	"github.com/sagasuite/sagasuite/libs/grpcserver"

	paymentv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/payment/v1"
	"github.com/sagasuite/sagasuite/services/payment/internal/ports"
)

// A method added to the API without a line in the policy fails here (and
// the server would refuse to start).
func TestEveryMethodHasAPolicy(t *testing.T) {
	if err := grpcserver.CheckPolicy(ports.Policy, &paymentv1.PaymentService_ServiceDesc); err != nil {
		t.Fatal(err)
	}
}
