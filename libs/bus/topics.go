package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// TopicSpec says how to create a topic that does not exist yet.
type TopicSpec struct {
	Name              string
	Partitions        int
	ReplicationFactor int
}

// EnsureTopics creates the topics that are missing and waits until every one
// has a leader for each partition, so the first publish does not fail. An
// existing topic is left as it is.
func EnsureTopics(ctx context.Context, brokers []string, specs ...TopicSpec) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	for _, s := range specs {
		if s.Partitions <= 0 || s.ReplicationFactor <= 0 {
			return fmt.Errorf("topic %q: partitions and replication factor must be positive", s.Name)
		}
		req.Topics = append(req.Topics, kafka.TopicConfig{
			Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: s.ReplicationFactor,
		})
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for name, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %q: %w", name, terr)
		}
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		if err == nil && topicsReady(md, len(names)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for topics %v: %w (last metadata error: %v)", names, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func topicsReady(md *kafka.MetadataResponse, want int) bool {
	if len(md.Topics) != want {
		return false
	}
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			return false
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return false
			}
		}
	}
	return true
}
