package wholesuite_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/replay/wholesuite"
)

// Recordings the replay cannot work from are refused with a clear error
// before any suite starts.
func TestReplayRefusesRecordingsWithoutRoots(t *testing.T) {
	ctx := context.Background()
	orderID, customerID := "0190c0de-0000-7000-8000-0000000000a1", "0190c0de-0000-7000-8000-0000000000c1"
	cancelled, err := events.New(events.Meta{OrderID: orderID, CustomerID: customerID, Producer: "order",
		CausationID: "0190c0de-0000-7000-8000-0000000000f1", OccurredAt: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)},
		&eventsv1.OrderCancelled{Reason: eventsv1.CancelReason_CANCEL_REASON_CUSTOMER_REQUESTED})
	if err != nil {
		t.Fatal(err)
	}
	value, err := proto.Marshal(cancelled)
	if err != nil {
		t.Fatal(err)
	}
	onlyCancel := capture.FromMessage(bus.Message{Topic: events.TopicOrders, Key: orderID, Value: value}, 0, 0, time.Now(), "")
	notAnEvent := capture.FromMessage(bus.Message{Topic: events.TopicOrders, Key: orderID, Value: []byte("garbage")}, 0, 1, time.Now(), "")
	for _, tc := range []struct {
		name string
		recs []capture.Record
		want string
	}{
		{"empty", nil, "no ORDER_CREATED"},
		{"records that are no events", []capture.Record{notAnEvent}, "no ORDER_CREATED"},
		{"a cancel without its order", []capture.Record{onlyCancel}, "without its ORDER_CREATED"},
	} {
		_, err := wholesuite.Replay(ctx, wholesuite.Options{Records: tc.recs})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Replay = %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
