package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/devstack"
)

// Servers are external servers a replay uses instead of the in-process
// ones (same meaning as devstack.Options' fields of the same names and
// `sagactl dev`'s flags), e.g. the local real stack. Any subset may be
// given; the rest stay in-process.
type Servers struct {
	Kafka     []string // bootstrap brokers
	MySQLDSN  string   // a go-sql-driver DSN whose user may create and drop databases
	MongoURI  string   // MongoDB or FerretDB
	Cassandra []string // contact points (without them notification keeps its data in memory)
	// Namespace names the replay's databases, keyspace and topic prefix on
	// the external servers (default: replay_<random>_, new for every
	// replay, so each starts on fresh stores and topics).
	Namespace string
	// Keep leaves the namespace on the servers after the replay (to look
	// at); by default it is dropped: databases, keyspace, topics, groups.
	Keep bool
}

// External reports whether any external server is given.
func (s Servers) External() bool {
	return len(s.Kafka) > 0 || s.MySQLDSN != "" || s.MongoURI != "" || len(s.Cassandra) > 0
}

// Apply makes o use the external servers, in a namespace and topic prefix
// of this replay's own, and a gateway ledger of its own (the dev stack's
// default with an external MySQL is a file kept across runs, whose earlier
// charges would answer this replay's). done, called after the stack
// stopped, drops the namespace (unless Keep) and removes the ledger; it
// does nothing when no external server is given.
func (s Servers) Apply(o *devstack.Options) (done func(context.Context) error, err error) {
	if !s.External() {
		return func(context.Context) error { return nil }, nil
	}
	ns := s.Namespace
	if ns == "" {
		if ns, err = NewNamespace(); err != nil {
			return nil, err
		}
	}
	if err := devstack.CheckNamespace(ns); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	if ns == devstack.Namespace {
		return nil, fmt.Errorf("replay: namespace %q is the dev stack's: a replay needs fresh stores", ns)
	}
	dir, err := os.MkdirTemp("", "sagactl-replay-gateway-")
	if err != nil {
		return nil, err
	}
	o.Kafka, o.MySQLDSN, o.MongoURI, o.Cassandra = s.Kafka, s.MySQLDSN, s.MongoURI, s.Cassandra
	o.Namespace, o.GatewayLedger = ns, filepath.Join(dir, "ledger.jsonl")
	if len(s.Kafka) > 0 {
		o.TopicPrefix = ns
	}
	applied := *o
	return func(ctx context.Context) error {
		os.RemoveAll(dir)
		if s.Keep {
			return nil
		}
		// Bounded: a server gone away must not hang the end of a replay.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if err := devstack.DropNamespace(ctx, applied); err != nil {
			return fmt.Errorf("replay: drop namespace %s: %w", ns, err)
		}
		return nil
	}, nil
}

// NewNamespace returns a namespace no other replay uses: replay_<random>_.
func NewNamespace() (string, error) {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("replay: namespace: %w", err)
	}
	return "replay_" + hex.EncodeToString(b) + "_", nil
}
