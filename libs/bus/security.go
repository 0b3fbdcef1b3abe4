package bus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// Security is how a client authenticates to the brokers and protects the
// connection: TLS (nil: plaintext) and a SASL mechanism (nil: none). The
// zero value is a plaintext, unauthenticated client (the local stack and the
// dev stack). Production gives each service its own SASL user, so the
// cluster's ACLs can confine it to its own topics and groups.
type Security struct {
	TLS  *tls.Config
	SASL sasl.Mechanism
}

// Dialer returns a kafka-go dialer that connects with s.
func (s Security) Dialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: 10 * time.Second, TLS: s.TLS, SASLMechanism: s.SASL}
}

// Transport returns a kafka-go transport (writers, clients) that connects
// with s and refreshes its metadata every metadataTTL.
func (s Security) Transport(metadataTTL time.Duration) *kafka.Transport {
	return &kafka.Transport{MetadataTTL: metadataTTL, TLS: s.TLS, SASL: s.SASL}
}

// WithSecurity makes the producer connect with s.
func WithSecurity(s Security) ProducerOption {
	return func(p *Producer) { p.w.Transport = s.Transport(time.Second) }
}

// WithDeadLetterSecurity makes the dead-letter tools connect with s.
func WithDeadLetterSecurity(s Security) DeadLetterOption {
	return func(q *DeadLetterQueue) { q.dialer, q.security = s.Dialer(), s }
}

// MissingTopics returns which of topics the cluster does not have (or has
// without partitions) right now. It asks without auto-creation, so a broker
// with auto.create.topics.enable does not make a topic, with the broker's
// default partition count, just because a consumer looked for it.
func MissingTopics(ctx context.Context, brokers []string, sec Security, topics ...string) ([]string, error) {
	// A fresh transport per call: kafka-go's transport serves metadata
	// from a cache, which would hide a topic created a moment ago.
	transport := sec.Transport(time.Second)
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport}
	resp, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("read metadata: %w", err)
	}
	present := map[string]bool{}
	for _, t := range resp.Topics {
		if t.Error == nil && len(t.Partitions) > 0 {
			present[t.Name] = true
		}
	}
	var missing []string
	for _, t := range topics {
		if !present[t] {
			missing = append(missing, t)
		}
	}
	return missing, nil
}

// WaitForTopics returns once every topic exists, or with ctx's error. A
// service reads topics other services create (each creates only those it
// produces to, so per-service ACLs can forbid the rest): until their owner
// has started once, the reader waits here instead of failing. poll bounds
// the pause between checks (the first checks come sooner); onWait, if set,
// is told what is missing (or why the check failed) after each failed check.
func WaitForTopics(ctx context.Context, brokers []string, sec Security, poll time.Duration, onWait func(missing []string, err error), topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	pause := min(100*time.Millisecond, poll)
	for {
		missing, err := MissingTopics(ctx, brokers, sec, topics...)
		if err == nil && len(missing) == 0 {
			return nil
		}
		if onWait != nil {
			onWait(missing, err)
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("topics %v do not exist", missing)
			}
			return errors.Join(ctx.Err(), err)
		case <-time.After(pause):
		}
		pause = min(2*pause, poll)
	}
}

// waitForTopics is WaitForTopics for a consumer, logging at most every 30 s.
func (c *Consumer) waitForTopics(ctx context.Context) error {
	logs := newThrottle(30 * time.Second)
	return WaitForTopics(ctx, c.cfg.Brokers, c.cfg.Security, 5*time.Second, func(missing []string, err error) {
		if n, ok := logs.allow(); ok {
			c.cfg.Logger.WarnContext(ctx, "consumer: waiting for its topics to be created by the services that produce to them",
				"group", c.cfg.Group, "missing", missing, "error", err, slog.Int("checks_since_last_log", n))
		}
	}, c.cfg.Topics...)
}
