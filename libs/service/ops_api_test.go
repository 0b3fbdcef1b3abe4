package service_test

// The operations API end to end on the real Kafka of the local stack: a
// service started through Run dead-letters a malformed record and a refused
// event, and an operator sees them, the lag and the outbox through gRPC,
// redrives and drops them, and finds the audit signed with their subject.

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/clock"
	"github.com/sagasuite/sagasuite/libs/events"
	"github.com/sagasuite/sagasuite/libs/grpcserver"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/service/servicetest"
	"github.com/sagasuite/sagasuite/libs/testenv"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	opsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/ops/v1"
)

// rowsOutbox is an outbox.Admin with fixed rows (the real relays are tested
// on the real stack in libs/outbox; here only the API's mapping is at stake).
type rowsOutbox struct {
	pending, parked []outbox.AdminRow
	retried         atomic.Int32
}

func (o *rowsOutbox) ListOutbox(_ context.Context, parked bool, limit int) ([]outbox.AdminRow, error) {
	rows := o.pending
	if parked {
		rows = o.parked
	}
	return rows[:min(limit, len(rows))], nil
}

func (o *rowsOutbox) RetryParked(_ context.Context, id string) (int, error) {
	switch id {
	case "":
		o.retried.Add(int32(len(o.parked)))
		return len(o.parked), nil
	case "bad id":
		return 0, outbox.ErrBadID
	case o.parked[0].ID:
		o.retried.Add(1)
		return 1, nil
	}
	return 0, outbox.ErrNotParked
}

func (o *rowsOutbox) RelayStatus() outbox.Status {
	return outbox.Status{State: outbox.StateActive, Since: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
}

func TestOperationsAPIDeadLettersLagAndOutbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	prefix := testenv.UniqueName("svctest-ops-") + "."
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := spec(t, prefix)
	s.Clock = clock.NewManual(now)
	s.Produces = []string{events.TopicOrders}
	s.Outbox = &rowsOutbox{
		pending: []outbox.AdminRow{{ID: "1", CreatedAt: now.Add(-90 * time.Second)}, {ID: "2", CreatedAt: now.Add(-time.Second)}},
		parked:  []outbox.AdminRow{{ID: "7", CreatedAt: now.Add(-time.Hour)}},
	}

	refusedOrder, blockedOrder := events.NewID(), events.NewID()
	var fixed, blocked atomic.Bool
	blocked.Store(true)
	var handledAfterFix atomic.Int32
	s.Consumers = []service.Consumer{{Group: "svctest", Topics: []string{events.TopicOrders},
		Handler: func(ctx context.Context, env *eventsv1.Envelope) error {
			switch env.GetOrderId() {
			case refusedOrder:
				if !fixed.Load() {
					return bus.Permanent(errors.New("order total does not add up"))
				}
				handledAfterFix.Add(1)
			case blockedOrder:
				if blocked.Load() {
					return errors.New("store down (test)") // transient: retried, holds the offset back
				}
			}
			return nil
		}}}
	inst := servicetest.Launch(t, s.Runtime, func(ctx context.Context, rt service.Runtime) error {
		s.Runtime = rt
		return service.Run(ctx, s)
	})
	inst.WaitReady()
	operator := auth.Principal{Subject: "ops-alice", Roles: []auth.Role{auth.RoleOperator}}
	ops := opsv1.NewOperationsServiceClient(inst.DialAs(operator))

	// Offsets 0, 1, 2 of the one partition: garbage, the refused event, the blocked one.
	source := prefix + events.TopicOrders
	producer := bus.NewProducer(testenv.Brokers())
	defer producer.Close()
	message := func(order string) bus.Message {
		env, err := events.New(events.Meta{OrderID: order, CustomerID: events.NewID(), Producer: "test",
			CausationID: events.NewID(), OccurredAt: now}, &eventsv1.OrderCompleted{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := bus.EncodeEnvelope(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		m.Topic = source
		return m
	}
	garbageKey := testenv.UniqueName("garbage-")
	if err := producer.Publish(ctx,
		bus.Message{Topic: source, Key: garbageKey, Value: []byte("not protobuf"), Headers: map[string]string{"id": "junk-1"}},
		message(refusedOrder), message(blockedOrder)); err != nil {
		t.Fatal(err)
	}

	status := func() *opsv1.GetDeliveryStatusResponse {
		t.Helper()
		resp, err := ops.GetDeliveryStatus(ctx, &opsv1.GetDeliveryStatusRequest{})
		if err != nil {
			t.Fatalf("GetDeliveryStatus: %v", err)
		}
		if len(resp.GetConsumerGroups()) != 1 {
			t.Fatalf("GetDeliveryStatus groups: %v", resp.GetConsumerGroups())
		}
		return resp
	}
	// The blocked event holds the committed offset at 2 of 3: lag 1.
	var st *opsv1.GetDeliveryStatusResponse
	waitFor(t, "two open dead letters and lag 1", func() bool {
		st = status()
		g := st.GetConsumerGroups()[0]
		return g.GetOpenDeadLetters() == 2 && g.GetLag() == 1
	})
	g := st.GetConsumerGroups()[0]
	if st.GetService() != "svctest" || !st.GetObserveTime().AsTime().Equal(now) || g.GetGroup() != "svctest" ||
		g.GetKafkaGroup() != prefix+"svctest" || g.GetDeadLetterTopic() != prefix+"svctest.dlq" ||
		len(g.GetTopics()) != 1 || g.GetTopics()[0] != source || len(g.GetPartitions()) != 1 {
		t.Fatalf("status: %v", st)
	}
	if p := g.GetPartitions()[0]; p.GetTopic() != source || p.GetHighWaterMark() != 3 || p.GetCommittedOffset() != 2 || p.GetLag() != 1 {
		t.Fatalf("partition lag: %v", p)
	}
	o := st.GetOutbox()
	if o.GetPendingRows() != 2 || o.GetParkedRows() != 1 || o.GetCountLimit() != 1000 ||
		!o.GetOldestPendingCreateTime().AsTime().Equal(now.Add(-90*time.Second)) ||
		o.GetOldestPendingAge().AsDuration() != 90*time.Second || o.GetRelay().GetState() != "active" {
		t.Fatalf("outbox: %v", o)
	}
	blocked.Store(false)
	waitFor(t, "lag 0 once the blocked event went through", func() bool { return status().GetConsumerGroups()[0].GetLag() == 0 })

	list, err := ops.ListDeadLetters(ctx, &opsv1.ListDeadLettersRequest{Group: "svctest"})
	if err != nil || len(list.GetDeadLetters()) != 2 || list.GetTotalSize() != 2 || list.GetTruncated() {
		t.Fatalf("ListDeadLetters = %v, %v", list, err)
	}
	byOrder := map[string]*opsv1.DeadLetter{}
	for _, d := range list.GetDeadLetters() {
		byOrder[d.GetOrderId()] = d
	}
	garbage, refused := byOrder[garbageKey], byOrder[refusedOrder]
	if garbage == nil || !strings.Contains(garbage.GetReason(), "decode envelope") || garbage.GetDecodeError() == "" ||
		garbage.GetEventId() != "junk-1" || garbage.GetSourceOffset() != 0 || garbage.GetSourceTopic() != source ||
		garbage.GetDeadLetterTime() == nil || garbage.GetResolution() != nil {
		t.Fatalf("malformed record's dead letter: %v", garbage)
	}
	if refused == nil || !strings.Contains(refused.GetReason(), "order total does not add up") || refused.GetEventType() != "ORDER_COMPLETED" ||
		refused.GetSourceOffset() != 1 || refused.GetRef() != refused.GetDeadLetterTopic()+"/0/"+strconv.FormatInt(refused.GetOffset(), 10) {
		t.Fatalf("refused event's dead letter: %v", refused)
	}
	page, err := ops.ListDeadLetters(ctx, &opsv1.ListDeadLettersRequest{Group: "svctest", PageSize: 1})
	if err != nil || len(page.GetDeadLetters()) != 1 || page.GetTotalSize() != 2 || !page.GetTruncated() {
		t.Fatalf("ListDeadLetters page 1 = %v, %v", page, err)
	}
	if f, err := ops.ListDeadLetters(ctx, &opsv1.ListDeadLettersRequest{Group: "svctest", OrderId: refusedOrder}); err != nil ||
		len(f.GetDeadLetters()) != 1 || f.GetDeadLetters()[0].GetOrderId() != refusedOrder {
		t.Fatalf("ListDeadLetters by order = %v, %v", f, err)
	}

	// Fixed: redrive the refused event, drop the garbage.
	fixed.Store(true)
	red, err := ops.RedriveDeadLetter(ctx, &opsv1.RedriveDeadLetterRequest{Group: "svctest",
		Partition: refused.GetPartition(), Offset: refused.GetOffset(), Reason: "TICKET-1 totals fixed"})
	if err != nil {
		t.Fatalf("RedriveDeadLetter: %v", err)
	}
	if r := red.GetDeadLetter().GetResolution(); r.GetAction() != "redrive" || r.GetOperator() != "ops-alice" ||
		r.GetReason() != "TICKET-1 totals fixed" || r.GetRedrivenTo() != source || !r.GetActionTime().AsTime().Equal(now) {
		t.Fatalf("redrive resolution: %v", r)
	}
	waitFor(t, "the redriven event handled", func() bool { return handledAfterFix.Load() >= 1 })
	if _, err := ops.DropDeadLetter(ctx, &opsv1.DropDeadLetterRequest{Group: "svctest",
		Partition: garbage.GetPartition(), Offset: garbage.GetOffset(), Reason: "not ours"}); err != nil {
		t.Fatalf("DropDeadLetter: %v", err)
	}
	waitFor(t, "no open dead letter and lag 0", func() bool {
		g := status().GetConsumerGroups()[0]
		return g.GetOpenDeadLetters() == 0 && g.GetLag() == 0
	})
	// The audit, as sagactl dlq reads it, carries the operator's subject.
	q, err := bus.NewDeadLetterQueue(testenv.Brokers(), prefix+"svctest.dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	all, err := q.List(ctx, bus.DeadLetterFilter{IncludeResolved: true})
	if err != nil || len(all) != 2 {
		t.Fatalf("dead letters on Kafka: %v, %v", all, err)
	}
	for _, d := range all {
		if d.Resolution == nil || d.Resolution.By != "ops-alice" || !d.Resolution.Applied {
			t.Errorf("%s: audit %+v, want an applied action by ops-alice", d.Ref(), d.Resolution)
		}
	}
	resolved, err := ops.ListDeadLetters(ctx, &opsv1.ListDeadLettersRequest{Group: "svctest", IncludeResolved: true})
	if err != nil || len(resolved.GetDeadLetters()) != 2 {
		t.Fatalf("ListDeadLetters include_resolved = %v, %v", resolved, err)
	}
	for _, d := range resolved.GetDeadLetters() {
		if d.GetResolution().GetOperator() != "ops-alice" {
			t.Errorf("listed %s without its resolution: %v", d.GetRef(), d.GetResolution())
		}
	}

	// A second redrive is refused: it was resolved.
	_, err = ops.RedriveDeadLetter(ctx, &opsv1.RedriveDeadLetterRequest{Group: "svctest",
		Partition: refused.GetPartition(), Offset: refused.GetOffset(), Reason: "again"})
	wantCode(t, "redrive of a resolved dead letter", err, codes.FailedPrecondition, "already resolved")
	_, err = ops.DropDeadLetter(ctx, &opsv1.DropDeadLetterRequest{Group: "svctest", Partition: 0, Offset: 999, Reason: "x"})
	wantCode(t, "drop of no dead letter", err, codes.NotFound, "not found")

	// Outbox retries, with the admin API's semantics.
	if r, err := ops.RetryParkedOutbox(ctx, &opsv1.RetryParkedOutboxRequest{Target: &opsv1.RetryParkedOutboxRequest_Id{Id: "7"}}); err != nil || r.GetRetried() != 1 {
		t.Fatalf("RetryParkedOutbox(7) = %v, %v", r, err)
	}
	if r, err := ops.RetryParkedOutbox(ctx, &opsv1.RetryParkedOutboxRequest{Target: &opsv1.RetryParkedOutboxRequest_All{All: true}}); err != nil || r.GetRetried() != 1 {
		t.Fatalf("RetryParkedOutbox(all) = %v, %v", r, err)
	}
	_, err = ops.RetryParkedOutbox(ctx, &opsv1.RetryParkedOutboxRequest{Target: &opsv1.RetryParkedOutboxRequest_Id{Id: "8"}})
	wantCode(t, "retry of a row not parked", err, codes.NotFound, "no parked outbox row")
	_, err = ops.RetryParkedOutbox(ctx, &opsv1.RetryParkedOutboxRequest{Target: &opsv1.RetryParkedOutboxRequest_Id{Id: "bad id"}})
	wantCode(t, "retry of a bad id", err, codes.InvalidArgument, "id")

	// Bad input: InvalidArgument naming the field.
	for name, tc := range map[string]struct {
		call  func() error
		field string
	}{
		"no group": {func() error { _, err := ops.ListDeadLetters(ctx, &opsv1.ListDeadLettersRequest{}); return err }, "group"},
		"someone else's group": {func() error {
			_, err := ops.ListDeadLetters(ctx, &opsv1.ListDeadLettersRequest{Group: "payment"})
			return err
		}, "group"},
		"page too large": {func() error {
			_, err := ops.ListDeadLetters(ctx, &opsv1.ListDeadLettersRequest{Group: "svctest", PageSize: 501})
			return err
		}, "page_size"},
		"no reason": {func() error {
			_, err := ops.RedriveDeadLetter(ctx, &opsv1.RedriveDeadLetterRequest{Group: "svctest", Offset: 1})
			return err
		}, "reason"},
		"negative offset": {func() error {
			_, err := ops.DropDeadLetter(ctx, &opsv1.DropDeadLetterRequest{Group: "svctest", Offset: -1, Reason: "x"})
			return err
		}, "offset"},
		"no retry target": {func() error { _, err := ops.RetryParkedOutbox(ctx, &opsv1.RetryParkedOutboxRequest{}); return err }, "target"},
		"all=false": {func() error {
			_, err := ops.RetryParkedOutbox(ctx, &opsv1.RetryParkedOutboxRequest{Target: &opsv1.RetryParkedOutboxRequest_All{All: false}})
			return err
		}, "all"},
	} {
		wantCode(t, name, tc.call(), codes.InvalidArgument, tc.field)
	}

	// A customer is refused every method; so is a caller without a token.
	customer := opsv1.NewOperationsServiceClient(inst.DialAs(auth.Principal{Subject: events.NewID(), Roles: []auth.Role{auth.RoleCustomer}}))
	_, err = customer.GetDeliveryStatus(ctx, &opsv1.GetDeliveryStatusRequest{})
	wantCode(t, "customer GetDeliveryStatus", err, codes.PermissionDenied, "permission denied")
	_, err = customer.RedriveDeadLetter(ctx, &opsv1.RedriveDeadLetterRequest{Group: "svctest", Reason: "x"})
	wantCode(t, "customer RedriveDeadLetter", err, codes.PermissionDenied, "permission denied")
	anonymous := opsv1.NewOperationsServiceClient(servicetest.Dial(t, inst.GRPCAddr(), ""))
	_, err = anonymous.ListDeadLetters(ctx, &opsv1.ListDeadLettersRequest{Group: "svctest"})
	wantCode(t, "anonymous ListDeadLetters", err, codes.Unauthenticated, "")
}

// The operations policy covers exactly the API's methods.
func TestOpsPolicyCoversTheAPI(t *testing.T) {
	if err := grpcserver.CheckPolicy(service.OpsPolicy, &opsv1.OperationsService_ServiceDesc); err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, what string, err error, code codes.Code, inMessage string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), inMessage) {
		t.Errorf("%s: %v, want %s mentioning %q", what, err, code, inMessage)
	}
}

// waitFor polls cond until it holds; the bound only catches a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 2 min", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
