package bus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
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
	names := make([]string, len(specs))
	for i, s := range specs {
		if s.Partitions <= 0 || s.ReplicationFactor <= 0 {
			return fmt.Errorf("topic %q: partitions and replication factor must be positive", s.Name)
		}
		names[i] = s.Name
	}
	// kafka-go's Client.CreateTopics gets BROKER_NOT_AVAILABLE from Kafka 4
	// (KRaft); a plain connection to the controller the broker names works.
	dialer := &kafka.Dialer{Timeout: 10 * time.Second}
	conn, err := dialer.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("dial %s: %w", brokers[0], err)
	}
	controller, err := conn.Controller()
	conn.Close()
	if err != nil {
		return fmt.Errorf("find controller: %w", err)
	}
	ctl, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	if err != nil {
		return fmt.Errorf("dial controller: %w", err)
	}
	defer ctl.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = ctl.SetDeadline(deadline)
	}
	for _, s := range specs {
		err := ctl.CreateTopics(kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: s.ReplicationFactor})
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %q: %w", s.Name, err)
		}
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
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
