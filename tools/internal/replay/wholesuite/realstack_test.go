package wholesuite_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/replay"
	"github.com/sagasuite/sagasuite/tools/internal/replay/wholesuite"
)

// The shipment-failed golden replayed in whole-suite mode on the shared
// real stack (Kafka, MariaDB, FerretDB, Cassandra): the recorded events come
// again (compareGolden, as in-process), the records equal the in-process
// replay's byte for byte, the end state equals the committed golden state,
// and afterwards nothing of the replay's namespace is left on the servers.
func TestReplayOnTheRealStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	file := filepath.Join(goldenDir, "shipment-failed.jsonl")
	header, recs, err := capture.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("suite logs:\n%s", logs.String())
		}
	}()
	local, err := wholesuite.Replay(ctx, wholesuite.Options{Header: header, Records: recs, LogOutput: logs})
	if err != nil {
		t.Fatalf("in-process Replay: %v", err)
	}
	servers := replay.Servers{Kafka: testenv.Brokers(), MySQLDSN: testenv.MySQLAdminDSN(), MongoURI: testenv.MongoURI(),
		Cassandra: []string{testenv.CassandraHosts()}, Namespace: testenv.UniqueName("replay_t_") + "_"}
	opts := devstack.Options{Kafka: servers.Kafka, MySQLDSN: servers.MySQLDSN, MongoURI: servers.MongoURI,
		Cassandra: servers.Cassandra, Namespace: servers.Namespace, TopicPrefix: servers.Namespace}
	t.Cleanup(func() { devstack.DropNamespace(context.Background(), opts) }) // should the replay's own drop fail
	real, err := wholesuite.Replay(ctx, wholesuite.Options{Header: header, Records: recs, LogOutput: logs, Servers: servers})
	if err != nil {
		t.Fatalf("Replay on the real stack: %v", err)
	}
	diffs, err := compareGolden(recs, real.Records)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Error(d)
	}
	if err := checkEndState(recs, real.State); err != nil {
		t.Error(err)
	}
	if len(real.Records) != len(local.Records) {
		t.Errorf("real stack: %d records, in-process %d", len(real.Records), len(local.Records))
	}
	for i := range min(len(real.Records), len(local.Records)) {
		a, b := real.Records[i], local.Records[i]
		if a.Topic != b.Topic || a.Partition != b.Partition || a.Offset != b.Offset || a.Key != b.Key ||
			!bytes.Equal(a.Envelope, b.Envelope) {
			t.Errorf("record %d differs:\n real       %+v\n in-process %+v", i, a, b)
		}
	}
	want, err := os.ReadFile(filepath.Join(goldenDir, "shipment-failed.state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := append(append([]byte{}, real.State...), '\n'); !bytes.Equal(want, got) {
		t.Errorf("end state differs from the golden; differing lines:\n%s", lineDiff(string(want), string(got)))
	}

	// Replay dropped its namespace; Kafka deletes topics asynchronously.
	deadline := time.Now().Add(2 * time.Minute) // a bound for a hang, not a speed target
	for {
		left, err := devstack.NamespaceLeft(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s still has %v after the replay", opts.Namespace, left)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
