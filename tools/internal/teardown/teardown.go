// Package teardown drops what a test or replay namespace left on external
// servers: a MongoDB database, a Cassandra keyspace, Kafka topics and
// consumer groups under a prefix. Both the per-test stacks (tools/internal/
// stack) and replays on a real stack (tools/internal/devstack) use it.
package teardown

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/segmentio/kafka-go"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DropMongoDatabase drops the MongoDB database name.
func DropMongoDatabase(ctx context.Context, uri, name string) error {
	client, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(10 * time.Second).SetTimeout(30 * time.Second))
	if err != nil {
		return fmt.Errorf("mongo %s: %w", uri, err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx)) //nolint:errcheck // nothing left to do with it
	if err := client.Database(name).Drop(ctx); err != nil {
		return fmt.Errorf("drop mongo database %s: %w", name, err)
	}
	return nil
}

// DropKeyspace drops a Cassandra keyspace (IF EXISTS).
func DropKeyspace(ctx context.Context, hosts []string, keyspace string) error {
	cluster := gocql.NewCluster(hosts...)
	cluster.Consistency = gocql.One
	cluster.ConnectTimeout = 10 * time.Second
	cluster.Timeout = 30 * time.Second // schema changes wait for agreement
	cluster.DisableInitialHostLookup = true
	session, err := cluster.CreateSession()
	if err != nil {
		return fmt.Errorf("cassandra %s: %w", strings.Join(hosts, ","), err)
	}
	defer session.Close()
	if err := session.Query("DROP KEYSPACE IF EXISTS " + keyspace).ExecContext(ctx); err != nil {
		return fmt.Errorf("drop keyspace %s: %w", keyspace, err)
	}
	return nil
}

// DropKafka deletes the topics and consumer groups whose names start with
// prefix.
func DropKafka(ctx context.Context, brokers []string, prefix string) error {
	dialer := &kafka.Dialer{Timeout: 10 * time.Second}
	conn, err := dialer.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("kafka %s: %w", brokers[0], err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	parts, err := conn.ReadPartitions()
	if err != nil {
		return fmt.Errorf("kafka: list topics: %w", err)
	}
	var topics []string
	for _, p := range parts {
		if strings.HasPrefix(p.Topic, prefix) && !slices.Contains(topics, p.Topic) {
			topics = append(topics, p.Topic)
		}
	}
	var errs []error
	if len(topics) > 0 {
		// Deleting goes through the controller, as creating does (bus.EnsureTopics).
		controller, err := conn.Controller()
		if err != nil {
			return fmt.Errorf("kafka: find controller: %w", err)
		}
		ctl, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
		if err != nil {
			return fmt.Errorf("kafka: dial controller: %w", err)
		}
		defer ctl.Close()
		if deadline, ok := ctx.Deadline(); ok {
			_ = ctl.SetDeadline(deadline)
		}
		if err := ctl.DeleteTopics(topics...); err != nil {
			errs = append(errs, fmt.Errorf("kafka: delete topics %v: %w", topics, err))
		}
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	listed, err := client.ListGroups(ctx, &kafka.ListGroupsRequest{})
	if err == nil {
		err = listed.Error
	}
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("kafka: list groups: %w", err))...)
	}
	var groups []string
	for _, g := range listed.Groups {
		if strings.HasPrefix(g.GroupID, prefix) {
			groups = append(groups, g.GroupID)
		}
	}
	if len(groups) > 0 {
		resp, err := client.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: groups})
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("kafka: delete groups %v: %w", groups, err))...)
		}
		for g, gerr := range resp.Errors {
			if gerr != nil {
				errs = append(errs, fmt.Errorf("kafka: delete group %s: %w", g, gerr))
			}
		}
	}
	return errors.Join(errs...)
}
