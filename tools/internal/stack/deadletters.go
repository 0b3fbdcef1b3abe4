package stack

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

// DeadLetter is one record of a dead-letter topic, described for a failure message.
type DeadLetter struct {
	Group, Type, OrderKey, Reason string
}

func (d DeadLetter) String() string {
	return fmt.Sprintf("%s: %s (order %s): %s", d.Group, d.Type, d.OrderKey, d.Reason)
}

// DeadLetters reads every record of the stack's dead-letter topics
// ("<prefix><group>.dlq", one group per service) from the start. A topic
// that does not exist holds none.
func (s *Stack) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	return deadLetters(ctx, strings.Split(s.opts.Servers.KafkaBrokers, ","), s.topicPrefix)
}

func deadLetters(ctx context.Context, brokers []string, prefix string) ([]DeadLetter, error) {
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
	var out []DeadLetter
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
				out = append(out, DeadLetter{Group: group, Type: header(m, bus.HeaderType), OrderKey: string(m.Key), Reason: header(m, bus.HeaderDLQError)})
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

// DeadLetterSummary counts dead letters per group and type, e.g.
// "order 12 (STOCK_RESERVED 7, …)"; "none" when there are none.
func DeadLetterSummary(dls []DeadLetter) string {
	if len(dls) == 0 {
		return "none"
	}
	byGroup := map[string]map[string]int{}
	for _, d := range dls {
		if byGroup[d.Group] == nil {
			byGroup[d.Group] = map[string]int{}
		}
		byGroup[d.Group][d.Type]++
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

// DeadLetterLines lists up to max dead letters one a line, for a failure message.
func DeadLetterLines(dls []DeadLetter, max int) string {
	var lines []string
	for i, d := range dls {
		if i == max {
			lines = append(lines, fmt.Sprintf("… and %d more", len(dls)-max))
			break
		}
		lines = append(lines, d.String())
	}
	return strings.Join(lines, "\n  ")
}
