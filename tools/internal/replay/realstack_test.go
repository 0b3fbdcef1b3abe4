package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/testenv"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/replay"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// realServers are the shared local real stack's servers (make infra-up;
// deploy/local/infra.sh env), in a namespace of the test's own.
func realServers(t *testing.T) replay.Servers {
	return replay.Servers{Kafka: testenv.Brokers(), MySQLDSN: testenv.MySQLAdminDSN(), MongoURI: testenv.MongoURI(),
		Cassandra: []string{testenv.CassandraHosts()}, Namespace: testenv.UniqueName("replay_t_") + "_"}
}

// stackOptions are the devstack options a replay with servers uses, as far
// as the namespace goes (what DropNamespace and NamespaceLeft need).
func stackOptions(s replay.Servers) devstack.Options {
	return devstack.Options{Kafka: s.Kafka, MySQLDSN: s.MySQLDSN, MongoURI: s.MongoURI, Cassandra: s.Cassandra,
		Namespace: s.Namespace, TopicPrefix: s.Namespace}
}

// The shipment-failed golden replayed into inventory (MariaDB), shipping
// (FerretDB) and notification (real Cassandra) alone, on the real Kafka,
// emits what the recording holds and exactly what the in-process replay
// emits, and ends in the same state. Each replay runs in a namespace of its
// own that was really used (its store is there while kept) and that
// DropNamespace removes completely.
func TestReplayServiceOnTheRealStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a bound for a hang, not a speed target
	defer cancel()
	header, recs, err := capture.ReadFile(filepath.Join(filepath.Dir(goldenRecordings), "shipment-failed.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	stores := map[string]string{suite.Inventory: "mysql:%sinventory", suite.Shipping: "mongo:%sshipping",
		suite.Notification: "cassandra:%snotification"}
	for _, service := range []string{suite.Inventory, suite.Shipping, suite.Notification} {
		t.Run(service, func(t *testing.T) {
			logs := &syncBuffer{}
			defer func() {
				if t.Failed() {
					t.Logf("service logs:\n%s", logs.String())
				}
			}()
			local, err := replay.Service(ctx, replay.Options{Service: service, Header: header, Records: recs, LogOutput: logs})
			if err != nil {
				t.Fatalf("in-process replay: %v", err)
			}
			servers := realServers(t)
			servers.Keep = true // to see the store was used; dropped below
			opts := stackOptions(servers)
			t.Cleanup(func() { devstack.DropNamespace(context.Background(), opts) })
			real, err := replay.Service(ctx, replay.Options{Service: service, Header: header, Records: recs, LogOutput: logs, Servers: servers})
			if err != nil {
				t.Fatalf("replay on the real stack: %v", err)
			}
			if recordedBy(service, recs) > 0 {
				checkEmitted(t, service, recs, real.Emitted)
			}
			if len(real.Emitted) != len(local.Emitted) {
				t.Errorf("real stack emitted %d records, in-process %d", len(real.Emitted), len(local.Emitted))
			}
			for i := range min(len(real.Emitted), len(local.Emitted)) {
				if a, b := real.Emitted[i], local.Emitted[i]; !equalRecords(t, a, b) {
					t.Errorf("emitted record %d differs:\n real       %+v\n in-process %+v", i, a, b)
				}
			}
			if err := sameState(real.State, local.State); err != nil {
				t.Errorf("end state differs: %v\n real:\n%s\n in-process:\n%s", err, real.State, local.State)
			}
			if service == suite.Notification {
				checkState(t, service, recs, idsOfRecording(recs), real.State)
			}

			left, err := devstack.NamespaceLeft(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("kept on the servers: %v", left)
			store := fmt.Sprintf(stores[service], servers.Namespace)
			if !slices.Contains(left, store) {
				t.Errorf("kept namespace lacks %s: %v", store, left)
			}
			if err := devstack.DropNamespace(ctx, opts); err != nil {
				t.Fatalf("DropNamespace: %v", err)
			}
			awaitNamespaceGone(ctx, t, opts)
		})
	}
}

// awaitNamespaceGone waits (bounded) until nothing of opts' namespace is
// left: Kafka deletes topics asynchronously.
func awaitNamespaceGone(ctx context.Context, t *testing.T, opts devstack.Options) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a bound for a hang, not a speed target
	for {
		left, err := devstack.NamespaceLeft(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s still has %v", opts.Namespace, left)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func equalRecords(t *testing.T, a, b capture.Record) bool {
	t.Helper()
	var x, y bytes.Buffer
	for buf, r := range map[*bytes.Buffer]capture.Record{&x: a, &y: b} {
		w, err := capture.NewWriter(buf, capture.Header{Format: capture.Format, Version: capture.Version})
		if err == nil {
			err = w.Write(r)
		}
		if err == nil {
			err = w.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// sameState compares two end states (JSON) value by value, timestamps
// within a microsecond: the services write their clock's nanoseconds to
// DATETIME(6) columns, which MariaDB truncates and go-mysql-server rounds.
func sameState(a, b []byte) error {
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return err
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return err
	}
	return sameValue("$", x, y)
}

func sameValue(path string, x, y any) error {
	switch xv := x.(type) {
	case map[string]any:
		yv, ok := y.(map[string]any)
		if !ok || len(xv) != len(yv) {
			return fmt.Errorf("%s: %v vs %v", path, x, y)
		}
		for k := range xv {
			if err := sameValue(path+"."+k, xv[k], yv[k]); err != nil {
				return err
			}
		}
		return nil
	case []any:
		yv, ok := y.([]any)
		if !ok || len(xv) != len(yv) {
			return fmt.Errorf("%s: %v vs %v", path, x, y)
		}
		for i := range xv {
			if err := sameValue(fmt.Sprintf("%s[%d]", path, i), xv[i], yv[i]); err != nil {
				return err
			}
		}
		return nil
	case string:
		ys, ok := y.(string)
		if ok && xv == ys {
			return nil
		}
		tx, errX := time.Parse(time.RFC3339Nano, xv)
		ty, errY := time.Parse(time.RFC3339Nano, ys)
		if ok && errX == nil && errY == nil && tx.Sub(ty).Abs() <= time.Microsecond {
			return nil
		}
		return fmt.Errorf("%s: %q vs %v", path, xv, y)
	default:
		if !reflect.DeepEqual(x, y) {
			return fmt.Errorf("%s: %v vs %v", path, x, y)
		}
		return nil
	}
}
