package replaydiff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strings"
)

// StateDiff lists the differing fields of two JSON documents.
type StateDiff []FieldDiff

// Empty reports whether the documents agree.
func (s StateDiff) Empty() bool { return len(s) == 0 }

func (s StateDiff) String() string {
	if s.Empty() {
		return "end state: no differences\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "end state: %d differences\n", len(s))
	for _, d := range s {
		fmt.Fprintf(&b, "  %s\n", d)
	}
	return b.String()
}

// CompareState compares two JSON documents (the end state files of
// replays): objects key by key in sorted order, arrays by index, numbers by
// value (1 and 1.0 agree). Paths read "orders[0].status"; the root is "$"
// when the documents differ as a whole. Options.Ignore applies to the paths
// without indexes. Invalid JSON on either side is an error.
func CompareState(want, got []byte, opts ...Options) (StateDiff, error) {
	var o Options
	for _, x := range opts {
		o.Ignore = append(o.Ignore, x.Ignore...)
	}
	w, err := decodeJSON(want)
	if err != nil {
		return nil, fmt.Errorf("want state: %w", err)
	}
	g, err := decodeJSON(got)
	if err != nil {
		return nil, fmt.Errorf("got state: %w", err)
	}
	d := jsonDiffer{opts: o}
	d.value("", "", w, g)
	return d.out, nil
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

type jsonDiffer struct {
	opts Options
	out  StateDiff
}

func (d *jsonDiffer) add(path, plain string, want, got any) {
	if plain != "" && d.opts.ignored(plain) {
		return
	}
	if path == "" {
		path = "$"
	}
	d.out = append(d.out, FieldDiff{Path: path, Want: jsonText(want), Got: jsonText(got)})
}

func (d *jsonDiffer) value(path, plain string, a, b any) {
	if plain != "" && d.opts.ignored(plain) {
		return
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			d.add(path, plain, a, b)
			return
		}
		keys := map[string]bool{}
		for k := range av {
			keys[k] = true
		}
		for k := range bv {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			x, inA := av[k]
			y, inB := bv[k]
			kp, kplain := join(path, k), join(plain, k)
			switch {
			case !inA:
				d.add(kp, kplain, absent{}, y)
			case !inB:
				d.add(kp, kplain, x, absent{})
			default:
				d.value(kp, kplain, x, y)
			}
		}
	case []any:
		bv, ok := b.([]any)
		if !ok {
			d.add(path, plain, a, b)
			return
		}
		for i := 0; i < max(len(av), len(bv)); i++ {
			ip := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= len(av):
				d.add(ip, plain, absent{}, bv[i])
			case i >= len(bv):
				d.add(ip, plain, av[i], absent{})
			default:
				d.value(ip, plain, av[i], bv[i])
			}
		}
	case json.Number:
		bv, ok := b.(json.Number)
		if !ok || !sameNumber(av, bv) {
			d.add(path, plain, a, b)
		}
	default: // string, bool, nil
		if a != b {
			d.add(path, plain, a, b)
		}
	}
}

// sameNumber compares two JSON numbers by value, exactly (big.Float with
// enough precision for any int64 or float64).
func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, _, errA := big.ParseFloat(string(a), 10, 256, big.ToNearestEven)
	y, _, errB := big.ParseFloat(string(b), 10, 256, big.ToNearestEven)
	return errA == nil && errB == nil && x.Cmp(y) == 0
}

// absent marks a key or index one side does not have.
type absent struct{}

func jsonText(v any) string {
	if _, ok := v.(absent); ok {
		return Unset
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}
