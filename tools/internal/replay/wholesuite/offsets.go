package wholesuite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// groupOffsets reads and sets a stopped service's consumer-group offsets
// on one topic. The replay uses it to decide, for a service it held, which
// of two topics the service reads first when it comes back (see
// replayer.releaseInOrder): Kafka orders a partition, never two topics.
type groupOffsets struct {
	client *kafka.Client
	group  string
	topic  string
}

func newGroupOffsets(brokers []string, group, topic string) *groupOffsets {
	return &groupOffsets{client: &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}, group: group, topic: topic}
}

// partitions lists the topic's partition ids.
func (g *groupOffsets) partitions(ctx context.Context) ([]int, error) {
	md, err := g.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{g.topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", g.topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != g.topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", g.topic, t.Error)
		}
		var ids []int
		for _, p := range t.Partitions {
			ids = append(ids, p.ID)
		}
		return ids, nil
	}
	return nil, fmt.Errorf("metadata: no topic %s", g.topic)
}

// committed is the group's committed offset of each partition; a partition
// it never committed gets the log's start (where a new group begins).
func (g *groupOffsets) committed(ctx context.Context) (map[int]int64, error) {
	parts, err := g.partitions(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := g.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: g.group, Topics: map[string][]int{g.topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", g.group, err)
	}
	// A group that never committed (the service was stopped before it
	// joined) may not exist at all: then it has no offsets, which is what
	// the log's start stands for.
	if resp.Error != nil && !errors.Is(resp.Error, kafka.GroupIdNotFound) {
		return nil, fmt.Errorf("committed offsets of group %s: %w", g.group, resp.Error)
	}
	starts, err := g.logOffsets(ctx, parts, false)
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, p := range parts {
		out[p] = starts[p]
	}
	for _, p := range resp.Topics[g.topic] {
		if p.Error != nil && !errors.Is(p.Error, kafka.GroupIdNotFound) {
			return nil, fmt.Errorf("committed offset of group %s on %s/%d: %w", g.group, g.topic, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}

// ends is each partition's end offset (where the next record will go).
func (g *groupOffsets) ends(ctx context.Context) (map[int]int64, error) {
	parts, err := g.partitions(ctx)
	if err != nil {
		return nil, err
	}
	return g.logOffsets(ctx, parts, true)
}

// logOffsets is each partition's end offset (last) or start offset.
func (g *groupOffsets) logOffsets(ctx context.Context, parts []int, last bool) (map[int]int64, error) {
	var reqs []kafka.OffsetRequest
	for _, p := range parts {
		if last {
			reqs = append(reqs, kafka.LastOffsetOf(p))
		} else {
			reqs = append(reqs, kafka.FirstOffsetOf(p))
		}
	}
	resp, err := g.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{g.topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", g.topic, err)
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[g.topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", g.topic, p.Partition, p.Error)
		}
		if last {
			out[p.Partition] = p.LastOffset
		} else {
			out[p.Partition] = p.FirstOffset
		}
	}
	return out, nil
}

// commit sets the group's offsets. The group must have no member (the
// service is stopped): a member's leaving can take a moment to reach the
// coordinator, so a refusal for membership is retried until ctx ends.
func (g *groupOffsets) commit(ctx context.Context, offsets map[int]int64) error {
	var commits []kafka.OffsetCommit
	for p, o := range offsets {
		commits = append(commits, kafka.OffsetCommit{Partition: p, Offset: o})
	}
	for {
		// Generation -1, no member: a commit from outside the group, which
		// the broker accepts only while the group is empty.
		resp, err := g.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: g.group, GenerationID: -1,
			Topics: map[string][]kafka.OffsetCommit{g.topic: commits}})
		if err == nil {
			var errs []error
			for _, p := range resp.Topics[g.topic] {
				if p.Error != nil {
					errs = append(errs, fmt.Errorf("%s/%d: %w", g.topic, p.Partition, p.Error))
				}
			}
			if err = errors.Join(errs...); err == nil {
				return nil
			}
		}
		if !retriableCommit(err) {
			return fmt.Errorf("commit offsets of group %s: %w", g.group, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("commit offsets of group %s (is the service stopped?): %w", g.group, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// retriableCommit: the group still has the stopped service as a member, or
// is rebalancing.
func retriableCommit(err error) bool {
	return errors.Is(err, kafka.UnknownMemberId) || errors.Is(err, kafka.IllegalGeneration) ||
		errors.Is(err, kafka.RebalanceInProgress) || errors.Is(err, kafka.GroupLoadInProgress) ||
		errors.Is(err, kafka.GroupCoordinatorNotAvailable) || errors.Is(err, kafka.NotCoordinatorForGroup)
}
