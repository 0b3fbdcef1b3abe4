package replay_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/replay"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// goldenRecordings are the saga-path recordings of sagactl record --demo.
const goldenRecordings = "../../testdata/recordings/*.jsonl"

func goldens(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob(goldenRecordings)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no golden recordings match %s", goldenRecordings)
	}
	return paths
}

// recordedBy counts the recorded events service produced.
func recordedBy(service string, recs []capture.Record) int {
	n := 0
	for _, r := range recs {
		if env, err := r.Event(); err == nil && env.GetProducer() == service {
			n++
		}
	}
	return n
}

// idsOfRecording are the recording's distinct order ids.
func idsOfRecording(recs []capture.Record) (orders []string) {
	seen := map[string]bool{}
	for _, r := range recs {
		if env, err := r.Event(); err == nil && !seen[env.GetOrderId()] {
			seen[env.GetOrderId()] = true
			orders = append(orders, env.GetOrderId())
		}
	}
	return orders
}

// Every golden recording, replayed into each of the five services alone,
// makes the service emit exactly the events it emitted when recorded: the
// same event ids on the same topic and key, proto-equal envelopes (payload,
// causation, occurred_at: nothing is excluded), none missing, none extra,
// none twice (checkEmitted). A service the path never reached emits
// nothing; notification (which emits nothing) must log every event of the
// order in its saga log.
func TestReplayGoldenRecordingsPerService(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	for _, path := range goldens(t) {
		header, recs, err := capture.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(path), ".jsonl")
		for _, service := range replay.Supported {
			t.Run(name+"/"+service, func(t *testing.T) {
				logs := &syncBuffer{}
				res, err := replay.Service(ctx, replay.Options{Service: service, Header: header, Records: recs, LogOutput: logs})
				if err != nil {
					t.Fatalf("replay: %v\nservice logs:\n%s", err, logs.String())
				}
				if recordedBy(service, recs) == 0 {
					// This path never reached the service's turn (or it
					// only records: notification): it must emit nothing.
					for _, r := range res.Emitted {
						env, _ := r.Event()
						t.Errorf("%s emitted nothing in the recording, the replay emitted %s/%s: %v", service, r.Topic, r.Key, env)
					}
				} else {
					checkEmitted(t, service, recs, res.Emitted)
				}
				if service == suite.Notification {
					orders := idsOfRecording(recs)
					checkState(t, service, recs, orders, res.State)
				}
				if t.Failed() {
					t.Logf("service logs:\n%s", logs.String())
				}
			})
		}
	}
}
