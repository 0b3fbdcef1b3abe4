package wholesuite

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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

// lagging names the first consumer group (service) that has not yet
// committed every record on the topics it consumes, as "group topic/p:
// committed of end"; "" when every group has caught up. A handler that
// emits nothing (shipping keeping a cancelled order, say) shows its work
// only this way.
func lagging(ctx context.Context, client *kafka.Client, prefix string, consumes map[string][]string) (string, error) {
	var all []string
	for _, topics := range consumes {
		for _, t := range topics {
			if !slices.Contains(all, prefix+t) {
				all = append(all, prefix+t)
			}
		}
	}
	slices.Sort(all)
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: all})
	if err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	parts := map[string][]int{}
	reqs := map[string][]kafka.OffsetRequest{}
	for _, t := range md.Topics {
		if t.Error != nil {
			return "", fmt.Errorf("metadata of %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			parts[t.Name] = append(parts[t.Name], p.ID)
			reqs[t.Name] = append(reqs[t.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: reqs})
	if err != nil {
		return "", fmt.Errorf("end offsets: %w", err)
	}
	ends := map[string]map[int]int64{}
	for topic, ps := range resp.Topics {
		ends[topic] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				return "", fmt.Errorf("end offset of %s/%d: %w", topic, p.Partition, p.Error)
			}
			ends[topic][p.Partition] = p.LastOffset
		}
	}
	groups := slices.Sorted(maps.Keys(consumes))
	for _, name := range groups {
		want := map[string][]int{}
		for _, t := range consumes[name] {
			want[prefix+t] = parts[prefix+t]
		}
		got, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: prefix + name, Topics: want})
		if err != nil {
			return "", fmt.Errorf("committed offsets of group %s: %w", prefix+name, err)
		}
		committed := map[string]map[int]int64{}
		for topic, ps := range got.Topics {
			committed[topic] = map[int]int64{}
			for _, p := range ps {
				if p.Error == nil {
					committed[topic][p.Partition] = p.CommittedOffset
				}
			}
		}
		for topic, ps := range want {
			for _, p := range ps {
				end := ends[topic][p]
				c, ok := committed[topic][p]
				if end > 0 && (!ok || c < end) {
					return fmt.Sprintf("%s %s/%d: committed %d of %d", name, topic, p, c, end), nil
				}
			}
		}
	}
	return "", nil
}
