package service

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/bus"
	opsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/ops/v1"
)

// With Kafka unreachable every Kafka-backed method answers Unavailable (a
// retryable state of the world, not a bug), never Internal, never a panic.
func TestOpsAPIWithoutKafkaIsUnavailable(t *testing.T) {
	// Port 1 on loopback: nothing listens there, the dial is refused at once.
	api := newOpsAPI(Spec{Name: "svctest", Kafka: KafkaConfig{Brokers: []string{"127.0.0.1:1"}, TopicPrefix: "x."},
		Consumers: []Consumer{{Group: "svctest", Topics: []string{"orders.v1"}}}}, bus.Security{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	calls := map[string]func() error{
		"GetDeliveryStatus": func() error { _, err := api.GetDeliveryStatus(ctx, &opsv1.GetDeliveryStatusRequest{}); return err },
		"ListDeadLetters": func() error {
			_, err := api.ListDeadLetters(ctx, &opsv1.ListDeadLettersRequest{Group: "svctest"})
			return err
		},
		"RedriveDeadLetter": func() error {
			_, err := api.RedriveDeadLetter(ctx, &opsv1.RedriveDeadLetterRequest{Group: "svctest", Reason: "x"})
			return err
		},
		"DropDeadLetter": func() error {
			_, err := api.DropDeadLetter(ctx, &opsv1.DropDeadLetterRequest{Group: "svctest", Reason: "x"})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); status.Code(err) != codes.Unavailable {
			t.Errorf("%s without Kafka = %v, want Unavailable", name, err)
		}
	}
	if _, err := api.RetryParkedOutbox(ctx, &opsv1.RetryParkedOutboxRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("RetryParkedOutbox without an outbox = %v, want FailedPrecondition", err)
	}
}
