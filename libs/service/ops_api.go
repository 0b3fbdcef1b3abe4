package service

// The operations gRPC API (sagasuite.ops.v1.OperationsService) every service
// serves through Run: consumer lag and dead letters of its groups, its
// outbox backlog, and the dead-letter and outbox actions — the same code
// paths as `sagactl dlq` (bus.DeadLetterQueue) and the ops port's outbox
// admin (outbox.Admin), reachable from browsers through the web listener.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/grpcserver"
	"github.com/sagasuite/sagasuite/libs/outbox"
	opsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/ops/v1"
)

// OpsPolicy is who may call the operations API: operators and service
// identities (tools), as on the ops port's admin API. Run adds it to every
// service's own Policy, so the services' policy tables stay theirs alone.
var OpsPolicy = grpcserver.Policy{
	opsv1.OperationsService_GetDeliveryStatus_FullMethodName: AdminRoles,
	opsv1.OperationsService_ListDeadLetters_FullMethodName:   AdminRoles,
	opsv1.OperationsService_RedriveDeadLetter_FullMethodName: AdminRoles,
	opsv1.OperationsService_DropDeadLetter_FullMethodName:    AdminRoles,
	opsv1.OperationsService_RetryParkedOutbox_FullMethodName: AdminRoles,
}

// withOpsPolicy is the service's policy plus OpsPolicy, in a new map (the
// service's table is a package variable others read).
func withOpsPolicy(p grpcserver.Policy) grpcserver.Policy {
	merged := make(grpcserver.Policy, len(p)+len(OpsPolicy))
	maps.Copy(merged, p)
	maps.Copy(merged, OpsPolicy)
	return merged
}

// Bounds of the operations API's answers.
const (
	// outboxCountLimit caps the outbox counts: outbox.Admin lists rows, it
	// does not count them, and a backlog past this is "large" to an operator.
	outboxCountLimit = 1000
	// defaultDeadLetterPage is ListDeadLetters' page when none is asked for.
	defaultDeadLetterPage = 100
	// opsKafkaTimeout bounds each call's Kafka work, so an unreachable
	// broker answers Unavailable instead of hanging the caller.
	opsKafkaTimeout = 20 * time.Second
)

// opsAPI implements OperationsService for one service.
type opsAPI struct {
	opsv1.UnimplementedOperationsServiceServer

	name      string
	kafka     KafkaConfig
	security  bus.Security
	consumers []Consumer
	outbox    outbox.Admin // nil: the service has no outbox
	now       func() time.Time
}

func newOpsAPI(spec Spec, security bus.Security) *opsAPI {
	return &opsAPI{name: spec.Name, kafka: spec.Kafka, security: security,
		consumers: append(slices.Clip(spec.Consumers), spec.OwnGroups...), outbox: spec.Outbox, now: spec.Runtime.Now}
}

func (a *opsAPI) register(s *grpc.Server) { opsv1.RegisterOperationsServiceServer(s, a) }

// consumer finds the service's group by its short name, or answers
// InvalidArgument naming the field and the groups it has.
func (a *opsAPI) consumer(group string) (Consumer, error) {
	names := make([]string, 0, len(a.consumers))
	for _, c := range a.consumers {
		if c.Group == group {
			return c, nil
		}
		names = append(names, c.Group)
	}
	if len(names) == 0 {
		return Consumer{}, grpcserver.InvalidArgument("group", fmt.Sprintf("service %s has no consumer groups", a.name))
	}
	return Consumer{}, grpcserver.InvalidArgument("group", fmt.Sprintf("service %s has no consumer group %q (its groups: %s)",
		a.name, group, strings.Join(names, ", ")))
}

func (a *opsAPI) kafkaGroup(c Consumer) string { return a.kafka.TopicPrefix + c.Group }

func (a *opsAPI) fullTopics(c Consumer) []string {
	full := make([]string, len(c.Topics))
	for i, t := range c.Topics {
		full[i] = a.kafka.Topic(t)
	}
	return full
}

// deadLetters opens the group's dead-letter topic, acting as the caller.
func (a *opsAPI) deadLetters(ctx context.Context, c Consumer) (*bus.DeadLetterQueue, error) {
	opts := []bus.DeadLetterOption{bus.WithDeadLetterClock(a.now), bus.WithDeadLetterSecurity(a.security)}
	if p, ok := auth.FromContext(ctx); ok {
		opts = append(opts, bus.WithDeadLetterOperator(p.Subject))
	}
	q, err := bus.NewDeadLetterQueue(a.kafka.Brokers, bus.DeadLetterTopic(a.kafkaGroup(c)), opts...)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error()) // a config error: brokers are required
	}
	return q, nil
}

// kafkaStatus turns a Kafka-side failure into the caller's status: the
// broker or topic not answering is Unavailable (retry later), never Internal.
func kafkaStatus(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return status.Error(codes.Canceled, what+": canceled")
	case errors.Is(err, bus.ErrDeadLetterNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, bus.ErrDeadLetterResolved):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return status.Errorf(codes.Unavailable, "%s: Kafka did not answer: %v", what, err)
}

// GetDeliveryStatus implements opsv1.OperationsServiceServer.
func (a *opsAPI) GetDeliveryStatus(ctx context.Context, _ *opsv1.GetDeliveryStatusRequest) (*opsv1.GetDeliveryStatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, opsKafkaTimeout)
	defer cancel()
	now := a.now().UTC()
	resp := &opsv1.GetDeliveryStatusResponse{Service: a.name, ObserveTime: timestamppb.New(now)}
	for _, c := range a.consumers {
		g := &opsv1.ConsumerGroupStatus{Group: c.Group, KafkaGroup: a.kafkaGroup(c), Topics: a.fullTopics(c),
			DeadLetterTopic: bus.DeadLetterTopic(a.kafkaGroup(c))}
		parts, err := GroupLag(ctx, a.kafka.Brokers, a.security, g.KafkaGroup, g.Topics)
		if err != nil {
			return nil, kafkaStatus(ctx, "consumer lag of "+c.Group, err)
		}
		for _, p := range parts {
			g.Lag += p.Lag
			g.Partitions = append(g.Partitions, &opsv1.PartitionLag{Topic: p.Topic, Partition: int32(p.Partition),
				HighWaterMark: p.HighWaterMark, CommittedOffset: p.Committed, Lag: p.Lag})
		}
		open, err := a.listDeadLetters(ctx, c, bus.DeadLetterFilter{})
		if err != nil {
			return nil, err
		}
		g.OpenDeadLetters = int64(len(open))
		resp.ConsumerGroups = append(resp.ConsumerGroups, g)
	}
	if a.outbox != nil {
		o, err := a.outboxStatus(ctx, now)
		if err != nil {
			return nil, err
		}
		resp.Outbox = o
	}
	return resp, nil
}

func (a *opsAPI) outboxStatus(ctx context.Context, now time.Time) (*opsv1.OutboxStatus, error) {
	pending, err := a.outbox.ListOutbox(ctx, false, outboxCountLimit)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "outbox: the store did not answer: %v", err)
	}
	parked, err := a.outbox.ListOutbox(ctx, true, outboxCountLimit)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "outbox: the store did not answer: %v", err)
	}
	relay := a.outbox.RelayStatus()
	o := &opsv1.OutboxStatus{PendingRows: int64(len(pending)), ParkedRows: int64(len(parked)), CountLimit: outboxCountLimit,
		Relay: &opsv1.RelayStatus{State: string(relay.State), LastError: relay.LastError}}
	if !relay.Since.IsZero() {
		o.Relay.SinceTime = timestamppb.New(relay.Since.UTC())
	}
	if len(pending) > 0 { // ListOutbox returns the oldest first
		oldest := pending[0].CreatedAt.UTC()
		o.OldestPendingCreateTime = timestamppb.New(oldest)
		o.OldestPendingAge = durationpb.New(max(now.Sub(oldest), 0))
	}
	return o, nil
}

// listDeadLetters lists the group's dead letters; a dead-letter topic that
// does not exist yet holds none.
func (a *opsAPI) listDeadLetters(ctx context.Context, c Consumer, f bus.DeadLetterFilter) ([]bus.DeadLetter, error) {
	q, err := a.deadLetters(ctx, c)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	list, err := q.List(ctx, f)
	if errors.Is(err, bus.ErrTopicNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, kafkaStatus(ctx, "dead letters of "+c.Group, err)
	}
	return list, nil
}

// ListDeadLetters implements opsv1.OperationsServiceServer.
func (a *opsAPI) ListDeadLetters(ctx context.Context, req *opsv1.ListDeadLettersRequest) (*opsv1.ListDeadLettersResponse, error) {
	c, err := a.consumer(req.GetGroup())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opsKafkaTimeout)
	defer cancel()
	list, err := a.listDeadLetters(ctx, c, bus.DeadLetterFilter{OrderID: req.GetOrderId(), Type: req.GetEventType(),
		EventID: req.GetEventId(), IncludeResolved: req.GetIncludeResolved()})
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultDeadLetterPage
	}
	resp := &opsv1.ListDeadLettersResponse{TotalSize: int32(len(list)), Truncated: len(list) > size}
	for _, d := range list[:min(size, len(list))] {
		resp.DeadLetters = append(resp.DeadLetters, deadLetterProto(c.Group, d))
	}
	return resp, nil
}

// RedriveDeadLetter implements opsv1.OperationsServiceServer.
func (a *opsAPI) RedriveDeadLetter(ctx context.Context, req *opsv1.RedriveDeadLetterRequest) (*opsv1.RedriveDeadLetterResponse, error) {
	d, err := a.act(ctx, req.GetGroup(), int(req.GetPartition()), req.GetOffset(), req.GetReason(), bus.DeadLetterRedrive)
	if err != nil {
		return nil, err
	}
	return &opsv1.RedriveDeadLetterResponse{DeadLetter: d}, nil
}

// DropDeadLetter implements opsv1.OperationsServiceServer.
func (a *opsAPI) DropDeadLetter(ctx context.Context, req *opsv1.DropDeadLetterRequest) (*opsv1.DropDeadLetterResponse, error) {
	d, err := a.act(ctx, req.GetGroup(), int(req.GetPartition()), req.GetOffset(), req.GetReason(), bus.DeadLetterDrop)
	if err != nil {
		return nil, err
	}
	return &opsv1.DropDeadLetterResponse{DeadLetter: d}, nil
}

// act redrives or drops one dead letter (never forced: a resolved one is
// FailedPrecondition) and returns it as it is afterwards.
func (a *opsAPI) act(ctx context.Context, group string, partition int, offset int64, reason, action string) (*opsv1.DeadLetter, error) {
	c, err := a.consumer(group)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opsKafkaTimeout)
	defer cancel()
	q, err := a.deadLetters(ctx, c)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	d, err := q.Get(ctx, partition, offset)
	if errors.Is(err, bus.ErrTopicNotFound) {
		return nil, status.Errorf(codes.NotFound, "%s: group %s has no dead letters yet", bus.ErrDeadLetterNotFound, c.Group)
	}
	if err != nil {
		return nil, kafkaStatus(ctx, "read dead letter", err)
	}
	do := bus.DeadLetterAction{Apply: true, Reason: reason}
	var rec bus.DeadLetterAudit
	if action == bus.DeadLetterRedrive {
		if d.SourceTopic == "" {
			return nil, status.Errorf(codes.FailedPrecondition, "%s has no %s header: cannot tell where to redrive it; drop it instead",
				d.Ref(), bus.HeaderDLQTopic)
		}
		rec, err = q.Redrive(ctx, d, do)
	} else {
		rec, err = q.Drop(ctx, d, do)
	}
	if err != nil {
		return nil, kafkaStatus(ctx, action+" "+d.Ref(), err)
	}
	d.Resolution = &rec
	return deadLetterProto(c.Group, d), nil
}

// RetryParkedOutbox implements opsv1.OperationsServiceServer, with the
// outbox admin's semantics (the ops port's POST /admin/outbox/retry).
func (a *opsAPI) RetryParkedOutbox(ctx context.Context, req *opsv1.RetryParkedOutboxRequest) (*opsv1.RetryParkedOutboxResponse, error) {
	if a.outbox == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "service %s has no outbox", a.name)
	}
	n, err := a.outbox.RetryParked(ctx, req.GetId()) // "" with all=true: every parked row
	switch {
	case errors.Is(err, outbox.ErrBadID):
		return nil, grpcserver.InvalidArgument("id", err.Error())
	case errors.Is(err, outbox.ErrNotParked):
		return nil, status.Error(codes.NotFound, err.Error())
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "outbox: the store did not answer: %v", err)
	}
	return &opsv1.RetryParkedOutboxResponse{Retried: int32(n)}, nil
}

func deadLetterProto(group string, d bus.DeadLetter) *opsv1.DeadLetter {
	out := &opsv1.DeadLetter{
		Group: group, DeadLetterTopic: d.DLQTopic, Partition: int32(d.Partition), Offset: d.Offset, Ref: d.Ref(),
		SourceTopic: d.SourceTopic, SourcePartition: int32(d.SourcePartition), SourceOffset: d.SourceOffset,
		EventId: d.EventID, EventType: d.Type, OrderId: d.OrderID, Reason: d.Error,
		Attempts: int32(d.Attempts), DecodeError: d.DecodeError,
	}
	if !d.At.IsZero() {
		out.DeadLetterTime = timestamppb.New(d.At.UTC())
	}
	if r := d.Resolution; r != nil {
		out.Resolution = &opsv1.DeadLetterResolution{Action: r.Action, ActionTime: timestamppb.New(r.At.UTC()),
			Operator: r.By, Reason: r.Reason, RedrivenTo: r.RedrivenTo}
	}
	return out
}

// PartitionLag is a consumer group's position on one topic partition.
type PartitionLag struct {
	Topic         string
	Partition     int
	HighWaterMark int64 // the partition's end offset
	Committed     int64 // the group's committed offset; -1: none
	Lag           int64 // HighWaterMark − Committed (− the first offset when none), ≥ 0
}

// GroupLag measures group's lag on every partition of topics (full names):
// the partitions' end offsets (ListOffsets) minus the group's committed
// offsets (OffsetFetch), the way `kafka-consumer-groups --describe` does.
// A group that committed nothing lags by everything still in the log, as it
// starts at the first offset.
func GroupLag(ctx context.Context, brokers []string, sec bus.Security, group string, topics []string) ([]PartitionLag, error) {
	parts, err := bus.Partitions(ctx, brokers, sec.Dialer(), topics...)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		return nil, nil // the topics do not exist yet: nothing to lag behind
	}
	transport := sec.Transport(time.Minute)
	defer transport.CloseIdleConnections() // its connection pools end with the call
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: opsKafkaTimeout, Transport: transport}
	want := map[string][]int{}
	offsetReqs := map[string][]kafka.OffsetRequest{}
	for _, p := range parts {
		want[p.Topic] = append(want[p.Topic], p.ID)
		offsetReqs[p.Topic] = append(offsetReqs[p.Topic], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: want})
	if err != nil {
		return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	if committed.Error != nil {
		return nil, fmt.Errorf("committed offsets of %s: %w", group, committed.Error)
	}
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: offsetReqs})
	if err != nil {
		return nil, fmt.Errorf("end offsets: %w", err)
	}
	type key struct {
		topic     string
		partition int
	}
	commits := map[key]int64{}
	for topic, ps := range committed.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("committed offset of %s on %s/%d: %w", group, topic, p.Partition, p.Error)
			}
			commits[key{topic, p.Partition}] = p.CommittedOffset
		}
	}
	var out []PartitionLag
	for topic, ps := range ends.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", topic, p.Partition, p.Error)
			}
			c, ok := commits[key{topic, p.Partition}]
			if !ok {
				c = -1
			}
			from := c
			if from < 0 {
				from = p.FirstOffset
			}
			out = append(out, PartitionLag{Topic: topic, Partition: p.Partition, HighWaterMark: p.LastOffset,
				Committed: c, Lag: max(p.LastOffset-from, 0)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}
