package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
)

// Partitions returns the partitions of the named topics (all topics when
// none is named), sorted by topic and id; a missing topic has none. It asks
// for every topic's metadata on purpose: a metadata request naming a topic
// (kafka-go's Conn.ReadPartitions with names) lets a broker with
// auto.create.topics.enable create it — a typo would leave an empty topic
// behind.
func Partitions(ctx context.Context, brokers []string, dialer *kafka.Dialer, topics ...string) ([]kafka.Partition, error) {
	var errs []error
	var conn *kafka.Conn
	for _, b := range brokers {
		c, err := dialer.DialContext(ctx, "tcp", b)
		if err == nil {
			conn = c
			break
		}
		errs = append(errs, err)
	}
	if conn == nil {
		return nil, fmt.Errorf("no broker reachable: %w", errors.Join(errs...))
	}
	defer conn.Close()
	setDeadline(ctx, conn)
	all, err := conn.ReadPartitions()
	if err != nil {
		return nil, fmt.Errorf("read metadata: %w", err)
	}
	want := map[string]bool{}
	for _, t := range topics {
		want[t] = true
	}
	var parts []kafka.Partition
	for _, p := range all {
		if len(topics) == 0 || want[p.Topic] {
			parts = append(parts, p)
		}
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].Topic != parts[j].Topic {
			return parts[i].Topic < parts[j].Topic
		}
		return parts[i].ID < parts[j].ID
	})
	return parts, nil
}

// ScanRange selects the offsets ScanPartition reads: [From, To). From -1 is
// the partition's first offset, To -1 its end offset as of the call; a
// non-zero FromTime/ToTime is turned into an offset by the broker
// (ListOffsets by timestamp: the first record at or after that time).
type ScanRange struct {
	From, To         int64
	FromTime, ToTime time.Time
}

// ScanPartition reads partition p over r without a consumer group (nothing
// is committed), handing each record to fn until fn returns false. It
// returns the offsets it resolved: start inclusive, end exclusive.
func ScanPartition(ctx context.Context, dialer *kafka.Dialer, p kafka.Partition, r ScanRange, fn func(kafka.Message) bool) (start, end int64, err error) {
	if p.Leader.Host == "" {
		return 0, 0, fmt.Errorf("%s/%d has no leader right now", p.Topic, p.ID)
	}
	// DialPartition goes straight to the leader we know, without the topic
	// lookup (auto-creating, see Partitions) that kafka.DialLeader does.
	pconn, err := dialer.DialPartition(ctx, "tcp", "", p)
	if err != nil {
		return 0, 0, fmt.Errorf("dial leader of %s/%d: %w", p.Topic, p.ID, err)
	}
	defer pconn.Close()
	setDeadline(ctx, pconn)
	first, last, err := pconn.ReadOffsets()
	if err != nil {
		return 0, 0, fmt.Errorf("read offsets of %s/%d: %w", p.Topic, p.ID, err)
	}
	start, end = first, last
	if r.From > first {
		start = r.From
	}
	if r.To >= 0 && r.To < end {
		end = r.To
	}
	if !r.FromTime.IsZero() {
		if start, err = offsetAt(pconn, r.FromTime, end); err != nil {
			return 0, 0, fmt.Errorf("offset of %s/%d at %s: %w", p.Topic, p.ID, r.FromTime.UTC().Format(time.RFC3339), err)
		}
	}
	if !r.ToTime.IsZero() {
		to, err := offsetAt(pconn, r.ToTime, end)
		if err != nil {
			return 0, 0, fmt.Errorf("offset of %s/%d at %s: %w", p.Topic, p.ID, r.ToTime.UTC().Format(time.RFC3339), err)
		}
		end = min(end, to)
	}
	next := start
	for next < end {
		if _, err := pconn.Seek(next, kafka.SeekAbsolute); err != nil {
			return start, end, fmt.Errorf("seek %s/%d to %d: %w", p.Topic, p.ID, next, err)
		}
		setDeadline(ctx, pconn)
		batch := pconn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 10 << 20, MaxWait: time.Second})
		progressed := false
		stop := false
		for !stop {
			m, err := batch.ReadMessage()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					batch.Close()
					return start, end, fmt.Errorf("read %s/%d at %d: %w", p.Topic, p.ID, next, err)
				}
				break
			}
			if m.Offset < next || m.Offset >= end {
				continue // a compressed batch starts before next; or past the end we took
			}
			next, progressed = m.Offset+1, true
			stop = !fn(m)
		}
		if err := batch.Close(); err != nil && !errors.Is(err, io.EOF) {
			return start, end, fmt.Errorf("read %s/%d at %d: %w", p.Topic, p.ID, next, err)
		}
		if stop {
			return start, end, nil
		}
		if !progressed {
			// Offsets without records (transaction markers, compaction) end
			// a batch without a message; the batch's offset moves past them.
			if bo := batch.Offset(); bo > next {
				next = bo
				continue
			}
			return start, end, fmt.Errorf("read %s/%d: no record between offset %d and the end %d", p.Topic, p.ID, next, end)
		}
	}
	return start, end, nil
}

// offsetAt is the first offset whose record time is at or after t; past the
// last record the broker answers -1, which is the partition's end (def).
func offsetAt(conn *kafka.Conn, t time.Time, def int64) (int64, error) {
	off, err := conn.ReadOffset(t)
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return def, nil
	}
	return off, nil
}

// setDeadline bounds the connection's next operations by ctx, or by 30 s.
func setDeadline(ctx context.Context, c *kafka.Conn) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	_ = c.SetDeadline(deadline)
}
