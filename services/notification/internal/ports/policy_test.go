package ports_test

import (
	"testing"

	"github.com/sagasuite/sagasuite/libs/grpcserver"

	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
	"github.com/sagasuite/sagasuite/services/notification/internal/ports"
)

// A method added to the API without a line in the policy fails here (and
// the server would refuse to start).
func TestEveryMethodHasAPolicy(t *testing.T) {
	if err := grpcserver.CheckPolicy(ports.Policy, &notificationv1.NotificationService_ServiceDesc); err != nil {
		t.Fatal(err)
	}
}
