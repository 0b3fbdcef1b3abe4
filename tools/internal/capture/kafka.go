package capture

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/sagasuite/sagasuite/libs/bus"
)

// Source says which Kafka records to read.
type Source struct {
	Brokers  []string
	Security bus.Security
	// Prefix is the topic prefix of the suite recorded (e.g. "sagasuite-dev."
	// on a shared Kafka); Topics are plain saga topic names.
	Prefix string
	Topics []string
	// Range bounds every partition's read (offsets or times); the end is
	// never past the end offset read when the partition's scan starts, so a
	// recording of a running suite stops.
	Range bus.ScanRange
	// OrderIDs, when set, keeps only records keyed by one of them.
	OrderIDs map[string]bool
}

// Scan reads src partition by partition (assigned partitions, no consumer
// group, nothing committed: the running suite is undisturbed) and hands each
// record to fn in offset order per partition. It returns the ranges read, for
// the header. progress, when set, hears after each partition.
func Scan(ctx context.Context, src Source, fn func(Record) error, progress func(r Range, kept int)) ([]Range, error) {
	dialer := src.Security.Dialer()
	names := make([]string, len(src.Topics))
	for i, t := range src.Topics {
		names[i] = src.Prefix + t
	}
	parts, err := bus.Partitions(ctx, src.Brokers, dialer, names...)
	if err != nil {
		return nil, fmt.Errorf("kafka %v: %w", src.Brokers, err)
	}
	found := map[string]bool{}
	for _, p := range parts {
		found[p.Topic] = true
	}
	for _, n := range names {
		if !found[n] {
			return nil, fmt.Errorf("kafka %v: topic %s does not exist", src.Brokers, n)
		}
	}
	var ranges []Range
	for _, p := range parts {
		kept := 0
		var fnErr error
		start, end, err := bus.ScanPartition(ctx, dialer, p, src.Range, func(m kafka.Message) bool {
			if len(src.OrderIDs) > 0 && !src.OrderIDs[string(m.Key)] {
				return true
			}
			kept++
			fnErr = fn(FromMessage(fromKafka(m), p.ID, m.Offset, m.Time, src.Prefix))
			return fnErr == nil
		})
		if fnErr != nil {
			return ranges, fnErr
		}
		if err != nil {
			return ranges, err
		}
		r := Range{Topic: p.Topic[len(src.Prefix):], Partition: p.ID, Start: start, End: end}
		ranges = append(ranges, r)
		if progress != nil {
			progress(r, kept)
		}
	}
	return ranges, nil
}

func fromKafka(m kafka.Message) bus.Message {
	headers := make(map[string]string, len(m.Headers))
	for _, h := range m.Headers {
		headers[h.Key] = string(h.Value)
	}
	return bus.Message{Topic: m.Topic, Key: string(m.Key), Headers: headers, Value: m.Value}
}
