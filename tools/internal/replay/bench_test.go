package replay_test

import (
	"cmp"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/replay"
	"github.com/sagasuite/sagasuite/tools/internal/replay/wholesuite"
)

// demoRecording is the eight goldens as one recording: they are the eight
// orders of one `sagactl record --demo` run (one Kafka, disjoint offsets),
// so together they are that demo's recording.
func demoRecording(b *testing.B) (capture.Header, []capture.Record) {
	b.Helper()
	var header capture.Header
	var all []capture.Record
	for i, path := range goldens(b) {
		h, recs, err := capture.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			header = h
		}
		all = append(all, recs...)
	}
	slices.SortFunc(all, func(x, y capture.Record) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition), cmp.Compare(x.Offset, y.Offset))
	})
	return header, all
}

// BenchmarkReplayService replays the demo recording into each service
// alone. Reported: deliveries (records and, for order, API stimuli) per
// second and × real time (the delivered records' recorded span ÷ the time
// the deliveries took); the dev stack's start and the end-state reads are
// outside both (they are in ns/op).
func BenchmarkReplayService(b *testing.B) {
	header, recs := demoRecording(b)
	for _, service := range replay.Supported {
		b.Run(service, func(b *testing.B) {
			var delivered int
			var elapsed, recorded time.Duration
			for range b.N {
				res, err := replay.Service(context.Background(), replay.Options{Service: service, Header: header, Records: recs})
				if err != nil {
					b.Fatal(err)
				}
				delivered += res.Delivered
				elapsed += res.Elapsed
				recorded += res.Recorded
			}
			b.ReportMetric(float64(delivered)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(recorded.Seconds()/elapsed.Seconds(), "x-real-time")
		})
	}
}

// BenchmarkReplaySuite replays the demo recording into the whole suite
// (wholesuite). Reported: the suite's emitted records of the orders per
// second and × real time, both over the sagas' replay (first stimulus to the
// last saga's last event: wholesuite.Result.SagasTook); the suite's start
// and the end-state reads are in ns/op only.
func BenchmarkReplaySuite(b *testing.B) {
	header, recs := demoRecording(b)
	var emitted int
	var took, recorded time.Duration
	for range b.N {
		res, err := wholesuite.Replay(context.Background(), wholesuite.Options{Header: header, Records: recs})
		if err != nil {
			b.Fatal(err)
		}
		emitted += len(res.Records)
		took += res.SagasTook
		recorded += res.RecordedSpan
	}
	b.ReportMetric(float64(emitted)/took.Seconds(), "events/s")
	b.ReportMetric(recorded.Seconds()/took.Seconds(), "x-real-time")
}
