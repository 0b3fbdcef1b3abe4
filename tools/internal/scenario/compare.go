package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
)

// expected is one event of then.events.jsonl.
type expected struct {
	env   *eventsv1.Envelope
	where string // topic/key
	raw   json.RawMessage
}

// CompareEvents compares the emitted records with the expected ones by event
// id: equal when proto.Equal and on the same topic and key. Each difference
// is one line naming the event type and id; a changed event lists the
// differing field paths. Broker fields (partition, offset, timestamp) and
// the order across topics are not compared.
func CompareEvents(want, got []capture.Record) []string {
	var problems []string
	wantByID := map[string]expected{}
	var wantIDs []string
	for _, r := range want {
		env, err := r.Event()
		if err != nil {
			problems = append(problems, fmt.Sprintf("expected record %s/%d@%d is no event: %v", r.Topic, r.Partition, r.Offset, err))
			continue
		}
		id := env.GetEventId()
		if _, dup := wantByID[id]; dup {
			problems = append(problems, fmt.Sprintf("expected event %s (%s) listed twice", id, events.TypeName(env.GetType())))
			continue
		}
		wantByID[id] = expected{env: env, where: r.Topic + "/" + r.Key, raw: r.Envelope}
		wantIDs = append(wantIDs, id)
	}
	seen := map[string]bool{}
	for _, r := range got {
		env, err := r.Event()
		if err != nil {
			problems = append(problems, fmt.Sprintf("emitted record %s/%d@%d is no event: %v", r.Topic, r.Partition, r.Offset, err))
			continue
		}
		id, typ := env.GetEventId(), events.TypeName(env.GetType())
		if seen[id] {
			problems = append(problems, fmt.Sprintf("%s %s emitted twice", typ, id))
			continue
		}
		seen[id] = true
		w, ok := wantByID[id]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("extra %s %s of order %s: %s", typ, id, env.GetOrderId(), r.Envelope))
		case !proto.Equal(w.env, env):
			diffs := JSONDiff(w.raw, r.Envelope)
			if len(diffs) == 0 { // proto.Equal is the judge; the JSON forms only explain
				diffs = []string{"(no difference in the JSON forms; compare the files)"}
			}
			problems = append(problems, fmt.Sprintf("changed %s %s:", typ, id))
			for _, d := range diffs {
				problems = append(problems, "    "+d)
			}
		case w.where != r.Topic+"/"+r.Key:
			problems = append(problems, fmt.Sprintf("%s %s emitted on %s/%s, expected on %s", typ, id, r.Topic, r.Key, w.where))
		}
	}
	for _, id := range wantIDs {
		if !seen[id] {
			env := wantByID[id].env
			problems = append(problems, fmt.Sprintf("missing %s %s of order %s", events.TypeName(env.GetType()), id, env.GetOrderId()))
		}
	}
	return problems
}

// CompareState compares two end states as JSON values (not bytes) and
// returns one line per differing path.
func CompareState(want, got []byte) []string {
	diffs := JSONDiff(want, got)
	for i, d := range diffs {
		diffs[i] = "state " + d
	}
	return diffs
}

// JSONDiff lists the paths where two JSON documents differ, as
// `path: expected X, got Y` (numbers compared by their text, so large ids
// keep their precision). Invalid JSON is reported, not panicked on.
func JSONDiff(want, got []byte) []string {
	var w, g any
	if err := decode(want, &w); err != nil {
		return []string{"expected: invalid JSON: " + err.Error()}
	}
	if err := decode(got, &g); err != nil {
		return []string{"actual: invalid JSON: " + err.Error()}
	}
	var out []string
	diffValue("$", w, g, &out)
	return out
}

func decode(b []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func diffValue(path string, want, got any, out *[]string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(w)+len(g))
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			wv, inW := w[k]
			gv, inG := g[k]
			p := path + "." + k
			switch {
			case !inG:
				*out = append(*out, fmt.Sprintf("%s: expected %s, absent", p, show(wv)))
			case !inW:
				*out = append(*out, fmt.Sprintf("%s: not expected, got %s", p, show(gv)))
			default:
				diffValue(p, wv, gv, out)
			}
		}
		return
	case []any:
		g, ok := got.([]any)
		if !ok {
			break
		}
		for i := range max(len(w), len(g)) {
			p := path + "[" + strconv.Itoa(i) + "]"
			switch {
			case i >= len(g):
				*out = append(*out, fmt.Sprintf("%s: expected %s, absent", p, show(w[i])))
			case i >= len(w):
				*out = append(*out, fmt.Sprintf("%s: not expected, got %s", p, show(g[i])))
			default:
				diffValue(p, w[i], g[i], out)
			}
		}
		return
	default:
		if equalScalar(want, got) {
			return
		}
	}
	*out = append(*out, fmt.Sprintf("%s: expected %s, got %s", path, show(want), show(got)))
}

func equalScalar(a, b any) bool {
	switch a.(type) {
	case map[string]any, []any:
		return false
	}
	switch b.(type) {
	case map[string]any, []any:
		return false
	}
	return a == b
}

// show is v as compact JSON, cut short when long.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// lockedBuffer collects a service's logs, written from its goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
