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
	return EnsureTopicsWith(ctx, brokers, Security{}, specs...)
}

// EnsureTopicsWith is EnsureTopics over connections secured with sec.
func EnsureTopicsWith(ctx context.Context, brokers []string, sec Security, specs ...TopicSpec) error {
	if len(brokers) == 0 {
		return errors.New("ensure topics: no brokers")
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		if s.Partitions <= 0 || s.ReplicationFactor <= 0 {
			return fmt.Errorf("topic %q: partitions and replication factor must be positive", s.Name)
		}
		names[i] = s.Name
	}
	// kafka-go's Client.CreateTopics gets BROKER_NOT_AVAILABLE from Kafka 4
	// (KRaft); a plain connection to the controller the broker names works.
	dialer := sec.Dialer()
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
	// Ask the controller connection directly: kafka-go's Client caches
	// metadata (6 s TTL), which would make every new topic wait seconds.
	for {
		parts, err := ctl.ReadPartitions(names...)
		if err == nil && partitionsReady(parts, specs) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for topics %v: %w (last metadata error: %v)", names, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// partitionsReady reports whether every topic has all its partitions with a leader.
func partitionsReady(parts []kafka.Partition, specs []TopicSpec) bool {
	led := map[string]int{}
	for _, p := range parts {
		if p.Leader.Host != "" {
			led[p.Topic]++
		}
	}
	for _, s := range specs {
		if led[s.Name] < s.Partitions {
			return false
		}
	}
	return true
}
