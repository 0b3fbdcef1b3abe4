package outage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// deadLetter is one record of a dead-letter topic, described for a failure message.
type deadLetter struct {
	group, typ, orderKey, reason string
}

func (d deadLetter) String() string {
	return fmt.Sprintf("%s: %s (order %s): %s", d.group, d.typ, d.orderKey, d.reason)
}

// deadLetters reads every record of the suite's dead-letter topics
// ("<prefix><group>.dlq", one group per service) from the start. A topic
// that does not exist holds none.
func deadLetters(ctx context.Context, brokers []string, prefix string) ([]deadLetter, error) {
	conn, err := (&kafka.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return nil, fmt.Errorf("kafka %s: %w", brokers[0], err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	// All topics' partitions, then filter: asking for a missing topic by name
	// could make the broker create it.
	parts, err := conn.ReadPartitions()
	if err != nil {
		return nil, fmt.Errorf("kafka: list partitions: %w", err)
	}
	var out []deadLetter
	for _, group := range suite.Services {
		topic := prefix + group + ".dlq"
		for _, p := range parts {
			if p.Topic != topic {
				continue
			}
			records, err := readPartition(ctx, brokers, topic, p.ID)
			if err != nil {
				return out, err
			}
			for _, m := range records {
				out = append(out, deadLetter{group: group, typ: header(m, bus.HeaderType), orderKey: string(m.Key), reason: header(m, bus.HeaderDLQError)})
			}
		}
	}
	return out, nil
}

func header(m kafka.Message, key string) string {
	i := slices.IndexFunc(m.Headers, func(h kafka.Header) bool { return h.Key == key })
	if i < 0 {
		return "?"
	}
	return string(m.Headers[i].Value)
}

// readPartition returns every record from the first offset to the end.
func readPartition(ctx context.Context, brokers []string, topic string, partition int) ([]kafka.Message, error) {
	leader, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, partition)
	if err != nil {
		return nil, fmt.Errorf("kafka: leader of %s/%d: %w", topic, partition, err)
	}
	first, last, err := leader.ReadOffsets()
	leader.Close()
	if err != nil {
		return nil, fmt.Errorf("kafka: offsets of %s/%d: %w", topic, partition, err)
	}
	if last <= first {
		return nil, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition, MaxBytes: 10 << 20, MaxWait: time.Second})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return nil, err
	}
	var out []kafka.Message
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return out, fmt.Errorf("kafka: read %s/%d at %d of [%d, %d): %w", topic, partition, len(out), first, last, err)
		}
		out = append(out, m)
		if m.Offset >= last-1 {
			return out, nil
		}
	}
}

// dlqSummary counts dead letters per group and type, e.g. "order: 12 (STOCK_RESERVED 7, …)".
func dlqSummary(dls []deadLetter) string {
	if len(dls) == 0 {
		return "none"
	}
	byGroup := map[string]map[string]int{}
	for _, d := range dls {
		if byGroup[d.group] == nil {
			byGroup[d.group] = map[string]int{}
		}
		byGroup[d.group][d.typ]++
	}
	var parts []string
	for _, g := range suite.Services {
		types := byGroup[g]
		if types == nil {
			continue
		}
		n := 0
		var ts []string
		for typ, c := range types {
			n += c
			ts = append(ts, fmt.Sprintf("%s %d", typ, c))
		}
		slices.Sort(ts)
		parts = append(parts, fmt.Sprintf("%s %d (%s)", g, n, strings.Join(ts, ", ")))
	}
	return strings.Join(parts, "; ")
}
