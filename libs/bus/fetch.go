package bus

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// fetchMargin is how much longer than MaxWait a fetch may take before the
// connection is called dead. kafka-go's Reader keeps a fixed 1 s (MaxWait/4
// below 1.33 s): on a busy box the broker's answer came later than that
// hundreds of times per run, and each time the reader closed the connection
// and redialled. Our own fetch loop sends MaxWait to the broker as is and
// waits MaxWait + fetchMargin on the socket.
const fetchMargin = 15 * time.Second

// fetchMaxBytes bounds one fetch response per partition (memory: a fetch is
// read whole before its records enter the scheduler).
const fetchMaxBytes = 4 << 20

// fetch reads one partition from offset (or its first offset when
// negative: no commit yet) into the scheduler until ctx ends. It holds one
// connection to the partition's leader; each fetch returns what the broker
// has (MinBytes 1) or, when idle, nothing after MaxWait. Errors (leader
// moved, broker restarted, network) close the connection and redial with
// capped backoff; the fetcher never gives up while ctx lasts.
func (c *Consumer) fetch(ctx context.Context, p *partition, offset int64, sched *scheduler) {
	var (
		mu   sync.Mutex
		conn *kafka.Conn
	)
	setConn := func(cn *kafka.Conn) {
		mu.Lock()
		if conn != nil && conn != cn {
			conn.Close()
		}
		conn = cn
		mu.Unlock()
	}
	// Closing the connection interrupts a fetch blocked at the broker, so a
	// stop or revocation does not wait out MaxWait.
	stop := context.AfterFunc(ctx, func() { setConn(nil) })
	defer stop()
	defer setConn(nil)

	attrs := metric.WithAttributes(attribute.String("group", c.cfg.Group))
	errs := newThrottle(30 * time.Second)
	next := cappedBackoff(100*time.Millisecond, 5*time.Second)
	failures := 0
	fail := func(what string, err error) bool {
		if ctx.Err() != nil {
			return false
		}
		failures++
		c.metrics.readerErrors.Add(ctx, 1, attrs)
		if n, ok := errs.allow(); ok {
			c.cfg.Logger.WarnContext(ctx, "fetch: "+what+"; retrying", "group", c.cfg.Group, "topic", p.topic,
				"partition", p.id, "offset", offset, "error", err, "errors_since_last_log", n)
		}
		setConn(nil)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(next(failures)):
			return true
		}
	}
	dialer := c.cfg.Security.Dialer()
	for ctx.Err() == nil {
		mu.Lock()
		cn := conn
		mu.Unlock()
		if cn == nil {
			var err error
			cn, err = c.dialLeader(ctx, dialer, p)
			c.metrics.readerDials.Add(ctx, 1, attrs)
			if err != nil {
				if !fail("dial partition leader", err) {
					return
				}
				continue
			}
			setConn(cn)
			if ctx.Err() != nil {
				return
			}
			if offset < 0 {
				first, err := cn.ReadFirstOffset()
				if err != nil {
					if !fail("read first offset", err) {
						return
					}
					continue
				}
				offset = first
			}
		}

		msgs, nextOffset, err := readBatch(cn, offset, c.cfg.MaxWait)
		switch {
		case err == nil:
		case errors.Is(err, kafka.OffsetOutOfRange):
			// Records at offset are gone (retention) or not there yet.
			first, ferr := cn.ReadFirstOffset()
			if ferr == nil && offset < first {
				c.cfg.Logger.ErrorContext(ctx, "fetch: offset before the partition's first record (retention); skipping ahead",
					"group", c.cfg.Group, "topic", p.topic, "partition", p.id, "offset", offset, "first", first)
				offset = first
				continue
			}
			if !fail("offset out of range", err) {
				return
			}
			continue
		default:
			if !fail("fetch", err) {
				return
			}
			continue
		}
		failures = 0
		for _, m := range msgs {
			if !sched.acquire(ctx) {
				return
			}
			p.track.fetched(m.Offset, m.HighWaterMark)
			sched.enqueue(&delivery{msg: m, part: p})
		}
		offset = nextOffset
	}
}

func (c *Consumer) dialLeader(ctx context.Context, dialer *kafka.Dialer, p *partition) (*kafka.Conn, error) {
	var errs []error
	for _, broker := range c.cfg.Brokers {
		conn, err := dialer.DialLeader(ctx, "tcp", broker, p.topic, p.id)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// readBatch makes one fetch at offset and reads its records whole. It returns
// the offset to fetch next (past compacted gaps too).
func readBatch(conn *kafka.Conn, offset int64, maxWait time.Duration) ([]kafka.Message, int64, error) {
	if _, err := conn.Seek(offset, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		return nil, offset, err
	}
	if err := conn.SetReadDeadline(time.Now().Add(maxWait + fetchMargin)); err != nil {
		return nil, offset, err
	}
	batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: fetchMaxBytes, MaxWait: maxWait})
	var msgs []kafka.Message
	for {
		m, err := batch.ReadMessage()
		if err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	next := batch.Offset()
	if err := batch.Close(); err != nil && !errors.Is(err, kafka.RequestTimedOut) {
		return msgs, next, err
	} // RequestTimedOut: an idle long poll that ended empty; the connection is fine

	return msgs, max(next, offset), nil
}
