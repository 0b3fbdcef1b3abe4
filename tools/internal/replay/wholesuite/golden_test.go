package wholesuite_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	orderv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/order/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/replay/wholesuite"
)

// goldenDir holds the golden recordings (sagactl record --demo) and, next
// to each <name>.jsonl, its replayed end state <name>.state.json.
const goldenDir = "../../../testdata/recordings"

// updateGolden rewrites the .state.json files instead of comparing with
// them: go test ./tools/internal/replay/wholesuite -run Golden -update (or
// SAGASUITE_UPDATE_GOLDEN=1, which works from go test ./...).
var updateGolden = flag.Bool("update", false, "rewrite the golden recordings' .state.json files from a replay")

// Every golden recording replays in whole-suite mode into a fresh suite:
// each recorded event comes again with its id, topic, key and an equal
// envelope (notReproducible aside), nothing extra comes, the order ends as
// the recording's terminal event says, and the end state equals the
// committed <name>.state.json byte for byte. With -update the state files
// are rewritten, from two replays that must agree byte for byte.
func TestGoldenRecordingsReplay(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden recordings in %s (%v)", goldenDir, err)
	}
	update := *updateGolden || os.Getenv("SAGASUITE_UPDATE_GOLDEN") == "1"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	began, ran := time.Now(), 0
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".jsonl")
		t.Run(name, func(t *testing.T) {
			ran++
			logs := &syncBuffer{}
			progress := &syncBuffer{}
			defer func() {
				if t.Failed() {
					t.Logf("replay progress:\n%s\nsuite logs:\n%s", progress.String(), logs.String())
				}
			}()
			header, recs, err := capture.ReadFile(file)
			if err != nil {
				t.Fatalf("read %s: %v", file, err)
			}
			res, err := wholesuite.Replay(ctx, wholesuite.Options{Header: header, Records: recs, LogOutput: logs, Progress: progress})
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			t.Logf("replayed in %s (%s replaying the saga; the recording spans %s)", res.Took.Round(time.Millisecond),
				res.SagasTook.Round(time.Millisecond), res.RecordedSpan.Round(time.Millisecond))
			diffs, err := compareGolden(recs, res.Records)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range diffs {
				t.Error(d)
			}
			if err := checkEndState(recs, res.State); err != nil {
				t.Error(err)
			}
			stateFile := filepath.Join(goldenDir, name+".state.json")
			state := append(append([]byte{}, res.State...), '\n')
			if update {
				again, err := wholesuite.Replay(ctx, wholesuite.Options{Header: header, Records: recs, LogOutput: logs})
				if err != nil {
					t.Fatalf("second Replay: %v", err)
				}
				if !bytes.Equal(res.State, again.State) {
					t.Fatalf("two replays ended in different states: not writing %s; differing lines:\n%s",
						stateFile, lineDiff(string(res.State), string(again.State)))
				}
				if err := os.WriteFile(stateFile, state, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s", stateFile)
				return
			}
			want, err := os.ReadFile(stateFile)
			if err != nil {
				t.Fatalf("%v (write it with -update or SAGASUITE_UPDATE_GOLDEN=1)", err)
			}
			if !bytes.Equal(want, state) {
				t.Errorf("end state differs from %s (rewrite it with -update only if the change is meant); differing lines:\n%s",
					stateFile, lineDiff(string(want), string(state)))
			}
		})
	}
	t.Logf("%d golden recording(s) replayed in %s", ran, time.Since(began).Round(time.Millisecond))
}

// notReproducible clears what whole-suite replay documents it cannot
// reproduce (see the package comment), and nothing else: the occurred_at
// of every event but the roots (ORDER_CREATED and the customer's or the
// deadline's ORDER_CANCELLED, whose times set the replay's clock). The
// services stamp their own events with a clock that stands at the
// stimulus's time while the recording's moved on in real time.
func notReproducible(env *eventsv1.Envelope) *eventsv1.Envelope {
	if root(env) {
		return env
	}
	env = proto.Clone(env).(*eventsv1.Envelope)
	env.OccurredAt = nil
	return env
}

// compareGolden checks the replay against the recording, event by event
// id: every recorded event emitted again on the same topic under the same
// key with an equal envelope (notReproducible cleared), and no event the
// recording lacks. A duplicate delivery in the recording counts once.
// (replaydiff.Compare will take this over.)
func compareGolden(recorded, replayed []capture.Record) ([]string, error) {
	type event struct {
		rec capture.Record
		env *eventsv1.Envelope
	}
	index := func(recs []capture.Record, what string) (map[string]event, []string, error) {
		byID := map[string]event{}
		var ids []string
		for i, r := range recs {
			env, err := r.Event()
			if err != nil {
				return nil, nil, fmt.Errorf("%s record %d (%s): %w", what, i, r.Topic, err)
			}
			if _, dup := byID[env.GetEventId()]; !dup {
				ids = append(ids, env.GetEventId())
			}
			byID[env.GetEventId()] = event{r, env}
		}
		return byID, ids, nil
	}
	want, wantIDs, err := index(recorded, "recorded")
	if err != nil {
		return nil, err
	}
	got, gotIDs, err := index(replayed, "replayed")
	if err != nil {
		return nil, err
	}
	if len(wantIDs) == 0 {
		return []string{"the recording holds no events"}, nil
	}
	var out []string
	for _, id := range wantIDs {
		w := want[id]
		name := fmt.Sprintf("%s %s (order %s)", events.TypeName(w.env.GetType()), id, w.env.GetOrderId())
		g, ok := got[id]
		if !ok {
			out = append(out, name+": recorded, not emitted by the replay")
			continue
		}
		if g.rec.Topic != w.rec.Topic || g.rec.Key != w.rec.Key {
			out = append(out, fmt.Sprintf("%s: recorded on %s key %s, replayed on %s key %s", name, w.rec.Topic, w.rec.Key, g.rec.Topic, g.rec.Key))
		}
		if a, b := notReproducible(w.env), notReproducible(g.env); !proto.Equal(a, b) {
			out = append(out, fmt.Sprintf("%s: envelope differs\nrecorded %v\nreplayed %v", name, a, b))
		}
	}
	for _, id := range gotIDs {
		if _, ok := want[id]; !ok {
			g := got[id]
			out = append(out, fmt.Sprintf("%s %s (order %s): emitted by the replay, not in the recording",
				events.TypeName(g.env.GetType()), id, g.env.GetOrderId()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// checkEndState checks the replayed order ended as the recording's last
// orders.v1 event (by occurred_at) says: COMPLETED, or CANCELLED with that
// reason.
func checkEndState(recorded []capture.Record, state json.RawMessage) error {
	var last *eventsv1.Envelope
	for _, r := range recorded {
		env, err := r.Event()
		if err != nil {
			return err
		}
		if r.Topic != events.TopicOrders || env.GetType() == eventsv1.EventType_EVENT_TYPE_ORDER_CREATED {
			continue
		}
		if last == nil || env.GetOccurredAt().AsTime().After(last.GetOccurredAt().AsTime()) {
			last = env
		}
	}
	if last == nil {
		return fmt.Errorf("the recording has no terminal orders.v1 event")
	}
	var st struct {
		Orders map[string]struct {
			Order json.RawMessage `json:"order"`
		} `json:"orders"`
	}
	if err := json.Unmarshal(state, &st); err != nil {
		return fmt.Errorf("end state: %w", err)
	}
	raw, ok := st.Orders[last.GetOrderId()]
	if !ok {
		return fmt.Errorf("end state has no order %s", last.GetOrderId())
	}
	var o orderv1.Order
	if err := protojson.Unmarshal(raw.Order, &o); err != nil {
		return fmt.Errorf("end state of order %s: %w", last.GetOrderId(), err)
	}
	switch last.GetType() {
	case eventsv1.EventType_EVENT_TYPE_ORDER_COMPLETED:
		if o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_COMPLETED {
			return fmt.Errorf("order %s: recorded ORDER_COMPLETED, replayed status %s", o.GetOrderId(), o.GetStatus())
		}
	case eventsv1.EventType_EVENT_TYPE_ORDER_CANCELLED:
		want := last.GetOrderCancelled().GetReason()
		if o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED || o.GetCancelReason() != want {
			return fmt.Errorf("order %s: recorded ORDER_CANCELLED %s, replayed status %s reason %s", o.GetOrderId(), want,
				o.GetStatus(), o.GetCancelReason())
		}
	default:
		return fmt.Errorf("order %s: the recording's last orders.v1 event is %s, not terminal", last.GetOrderId(), events.TypeName(last.GetType()))
	}
	return nil
}

// The golden comparison can fail: against a replay of itself a recording
// is clean, and a changed payload, a lost event, an extra event, a moved
// record and a wrong end state are each reported. No suite: the recording
// stands in for the replay.
func TestGoldenComparisonReportsDifferences(t *testing.T) {
	file := filepath.Join(goldenDir, "shipment-failed.jsonl")
	_, recs, err := capture.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := compareGolden(recs, recs); err != nil || len(d) != 0 {
		t.Fatalf("a recording compared with itself: %v %v", d, err)
	}
	// A non-root event's occurred_at is not compared; a root's is.
	later := tamper(t, recs, eventsv1.EventType_EVENT_TYPE_SHIPMENT_FAILED, func(e *eventsv1.Envelope) { e.OccurredAt.Seconds++ })
	if d, _ := compareGolden(recs, later); len(d) != 0 {
		t.Errorf("a non-root occurred_at was compared: %v", d)
	}
	moved := slices.Clone(recs)
	moved[0].Topic = "elsewhere.v1"
	extra := slices.Clone(recs)
	extraEnv, err := recs[0].Event()
	if err != nil {
		t.Fatal(err)
	}
	extraEnv.EventId = "0190c0de-0000-7000-8000-0000000000e1"
	extraRec := recs[0]
	if extraRec.Envelope, err = capture.MarshalEnvelope(extraEnv); err != nil {
		t.Fatal(err)
	}
	extra = append(extra, extraRec)
	for name, tc := range map[string]struct {
		replayed []capture.Record
		want     string
	}{
		"payload": {tamper(t, recs, eventsv1.EventType_EVENT_TYPE_PAYMENT_REFUNDED, func(e *eventsv1.Envelope) {
			e.GetPaymentRefunded().Amount.AmountMinor++
		}), "envelope differs"},
		"root time": {tamper(t, recs, eventsv1.EventType_EVENT_TYPE_ORDER_CREATED, func(e *eventsv1.Envelope) { e.OccurredAt.Nanos += 1000 }),
			"envelope differs"},
		"lost":  {recs[1:], "not emitted by the replay"},
		"extra": {extra, "not in the recording"},
		"moved": {moved, "recorded on"},
	} {
		d, err := compareGolden(recs, tc.replayed)
		if err != nil || len(d) == 0 || !strings.Contains(strings.Join(d, "\n"), tc.want) {
			t.Errorf("%s: compareGolden = %v, %v; want a difference saying %q", name, d, err, tc.want)
		}
	}
	state, err := os.ReadFile(filepath.Join(goldenDir, "shipment-failed.state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkEndState(recs, state); err != nil {
		t.Errorf("the committed end state: %v", err)
	}
	wrong := bytes.Replace(state, []byte("CANCEL_REASON_SHIPMENT_FAILED"), []byte("CANCEL_REASON_PAYMENT_FAILED"), 1)
	if err := checkEndState(recs, wrong); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Errorf("a wrong cancel reason passed checkEndState: %v", err)
	}
}
