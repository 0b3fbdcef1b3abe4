package e2e

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	notificationv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/notification/v1"
)

// published waits until the notification service has recorded typ for the
// order: the event is on its topic then (the order's state alone commits
// before its relay publishes the event).
func (w *world) published(orderID string, typ eventsv1.EventType) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, sagaWait)
	defer cancel()
	for {
		resp, err := w.s.Clients().Notification.GetSagaLog(ctx, &notificationv1.GetSagaLogRequest{OrderId: orderID})
		if err == nil {
			for _, env := range resp.GetEvents() {
				if env.GetType() == typ {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			w.t.Fatalf("order %s: %s not in the saga log within %s (last error %v)", orderID, typ, sagaWait, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// caughtUp waits until the service's consumer group has committed, on every
// partition of the given saga topics, the partition's end as of now: every
// event published to them so far has had its effect (offsets are committed
// only after). A barrier on outcomes, not on time.
func (w *world) caughtUp(service string, topics ...string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, sagaWait)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(testenv.Brokers()...), Timeout: 10 * time.Second}
	full := make([]string, len(topics))
	for i, t := range topics {
		full[i] = w.s.TopicPrefix() + t
	}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: full})
	if err != nil {
		w.t.Fatalf("metadata of %v: %v", full, err)
	}
	ends := map[string]map[int]int64{}
	partitions := map[string][]int{}
	request := map[string][]kafka.OffsetRequest{}
	for _, t := range meta.Topics {
		for _, p := range t.Partitions {
			partitions[t.Name] = append(partitions[t.Name], p.ID)
			request[t.Name] = append(request[t.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: request})
	if err != nil {
		w.t.Fatalf("end offsets of %v: %v", full, err)
	}
	for topic, ps := range offs.Topics {
		ends[topic] = map[int]int64{}
		for _, p := range ps {
			ends[topic][p.Partition] = p.LastOffset
		}
	}
	group := w.s.TopicPrefix() + service
	for {
		committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: partitions})
		behind := err != nil
		if err == nil {
			for topic, ps := range committed.Topics {
				for _, p := range ps {
					if end := ends[topic][p.Partition]; end > 0 && p.CommittedOffset < end {
						behind = true
					}
				}
			}
		}
		if !behind {
			return
		}
		select {
		case <-ctx.Done():
			w.t.Fatalf("group %s did not catch up with %v within %s (last error %v)", group, full, sagaWait, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
