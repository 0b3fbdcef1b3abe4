package wholesuite

import (
	"context"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Lagging exposes the replay's consumer-group check to the tests: the first
// group of consumes (service name → topics) that has not committed to the
// end of a topic, or "".
func Lagging(ctx context.Context, brokers, prefix string, consumes map[string][]string) (string, error) {
	client := &kafka.Client{Addr: kafka.TCP(strings.Split(brokers, ",")...), Timeout: 30 * time.Second}
	return lagging(ctx, client, prefix, consumes)
}
