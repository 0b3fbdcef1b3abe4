// Package replaydiff compares a replay's output with a recording the way the
// saga's design judges them, not byte by byte: events are matched by their
// derived event id, compared field by field on the decoded protobuf, and
// their order is compared only where the design promises one — per topic and
// key (= order id), and along causation chains within such a stream — never
// across topics. Broker fields (partition, offset, timestamp, headers) are
// ignored, except that a record's `type` and `id` headers must agree with its
// envelope. The report groups the differences by order id.
package replaydiff

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
	"github.com/sagasuite/sagasuite/tools/internal/capture"
)

// Options tune a comparison.
type Options struct {
	// Ignore lists field paths whose differences are not reported, in the
	// report's spelling without indexes or map keys: "occurred_at",
	// "order_created.deadline", "order_created.lines.unit_price_minor".
	// A path covers everything below it; "*" stands for any one segment
	// ("*.deadline"). "topic" and "key" name the record's topic and key.
	Ignore []string
}

// ignored reports whether the field at path (indexes and map keys already
// stripped) is covered by an Ignore entry.
func (o Options) ignored(path string) bool {
	segs := strings.Split(path, ".")
	for _, pattern := range o.Ignore {
		pat := strings.Split(strings.TrimSpace(pattern), ".")
		if pattern == "" || len(pat) > len(segs) {
			continue
		}
		match := true
		for i, p := range pat {
			if p != "*" && p != segs[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// FieldDiff is one differing field: its path and both values as text
// ("<unset>" when a side has none).
type FieldDiff struct {
	Path string
	Want string
	Got  string
}

func (d FieldDiff) String() string { return fmt.Sprintf("%s: %s → %s", d.Path, d.Want, d.Got) }

// Unset is the text of a value one side does not have.
const Unset = "<unset>"

// EventRef names one recorded event (or, with NotEnvelope set, one record
// that holds no envelope).
type EventRef struct {
	ID    string // event id; "" for a record that is not an envelope
	Type  string // short event type name, e.g. ORDER_CREATED
	Topic string
	Key   string
	// NotEnvelope describes a record whose value is not an envelope: its
	// value bytes and why it could not be decoded.
	NotEnvelope string
}

func (r EventRef) String() string {
	if r.ID == "" {
		return fmt.Sprintf("record on %s key %q: %s", r.Topic, r.Key, r.NotEnvelope)
	}
	return fmt.Sprintf("%s %s (%s)", r.Type, r.ID, r.Topic)
}

// Change is a matched event whose fields differ.
type Change struct {
	Event  EventRef
	Fields []FieldDiff
}

// OrderReport is everything that differs for one order.
type OrderReport struct {
	OrderID string // "" for records with no order id
	Missing []EventRef
	Extra   []EventRef
	Changed []Change
	// Order holds order problems: a topic+key stream whose matched events
	// come in another order, a caused event before its cause.
	Order []string
	// Problems holds what is wrong with one side on its own: headers that
	// contradict the envelope, one event id recorded with two contents.
	Problems []string
}

func (o OrderReport) empty() bool {
	return len(o.Missing)+len(o.Extra)+len(o.Changed)+len(o.Order)+len(o.Problems) == 0
}

// Counts sums up a comparison.
type Counts struct {
	Want, Got int // records read on each side
	Matched   int // events (and non-envelope records) found on both sides
	Missing   int
	Extra     int
	Changed   int // matched events with at least one differing field
	Order     int
	Problems  int
}

// Report is the outcome of Compare: one entry per order with a difference,
// sorted by order id.
type Report struct {
	Orders []OrderReport
	Counts Counts
	// OrdersCompared is how many distinct order ids the two sides hold.
	OrdersCompared int
}

// Empty reports whether the two sides agree.
func (r Report) Empty() bool { return len(r.Orders) == 0 }

// Differences is the number of reported lines (missing, extra, changed
// events, order problems and other problems).
func (r Report) Differences() int {
	c := r.Counts
	return c.Missing + c.Extra + c.Changed + c.Order + c.Problems
}

// String is the readable report, one block per order.
func (r Report) String() string {
	var b strings.Builder
	c := r.Counts
	if r.Empty() {
		fmt.Fprintf(&b, "no differences: %d orders, %d events matched (want %d records, got %d)\n",
			r.OrdersCompared, c.Matched, c.Want, c.Got)
		return b.String()
	}
	fmt.Fprintf(&b, "%d differences in %d of %d orders (want %d records, got %d; matched %d, missing %d, extra %d, changed %d, order %d, problems %d)\n",
		r.Differences(), len(r.Orders), r.OrdersCompared, c.Want, c.Got, c.Matched, c.Missing, c.Extra, c.Changed, c.Order, c.Problems)
	for _, o := range r.Orders {
		id := o.OrderID
		if id == "" {
			id = "(no order id)"
		}
		fmt.Fprintf(&b, "\norder %s\n", id)
		for _, m := range o.Missing {
			fmt.Fprintf(&b, "  missing %s\n", m)
		}
		for _, e := range o.Extra {
			fmt.Fprintf(&b, "  extra   %s\n", e)
		}
		for _, ch := range o.Changed {
			fmt.Fprintf(&b, "  changed %s %s\n", ch.Event.Type, ch.Event.ID)
			for _, f := range ch.Fields {
				fmt.Fprintf(&b, "    %s\n", f)
			}
		}
		for _, p := range o.Order {
			fmt.Fprintf(&b, "  order   %s\n", p)
		}
		for _, p := range o.Problems {
			fmt.Fprintf(&b, "  problem %s\n", p)
		}
	}
	return b.String()
}

// item is one record prepared for matching.
type item struct {
	rec   capture.Record
	index int // position in its file
	env   *eventsv1.Envelope
	ref   EventRef
	order string
	match string // matching key: event id, or topic/key/value of a non-envelope
}

func prepare(side string, recs []capture.Record, problems map[string][]string) []item {
	items := make([]item, 0, len(recs))
	for i, rec := range recs {
		it := item{rec: rec, index: i, order: rec.Key}
		var err error
		if len(rec.Envelope) > 0 {
			it.env, err = rec.Event()
		} else {
			err = fmt.Errorf("%s", rec.Error)
		}
		if err != nil || it.env.GetEventId() == "" {
			if err == nil {
				err = fmt.Errorf("envelope without an event id")
			}
			it.env = nil
			shown := rec.Value
			if len(shown) == 0 {
				shown = rec.Envelope
			}
			it.ref = EventRef{Topic: rec.Topic, Key: rec.Key, NotEnvelope: describeValue(shown, err.Error())}
			// Not an envelope: only the bytes can tell two apart.
			// (An envelope that would not decode counts with its JSON.)
			it.match = "raw\x00" + rec.Topic + "\x00" + rec.Key + "\x00" + string(rec.Value) + "\x00" + string(rec.Envelope)
			items = append(items, it)
			continue
		}
		it.order = it.env.GetOrderId()
		it.ref = EventRef{ID: it.env.GetEventId(), Type: events.TypeName(it.env.GetType()), Topic: rec.Topic, Key: rec.Key}
		it.match = "event\x00" + it.env.GetEventId()
		for _, h := range []struct{ name, want string }{
			{bus.HeaderType, it.ref.Type}, {bus.HeaderEventID, it.ref.ID},
		} {
			if v, ok := header(rec, h.name); ok && v != h.want {
				problems[it.order] = append(problems[it.order], fmt.Sprintf("%s: %s %s/%d@%d: header %s=%q but the envelope says %q",
					side, it.ref.Type, rec.Topic, rec.Partition, rec.Offset, h.name, v, h.want))
			}
		}
		items = append(items, it)
	}
	return items
}

func header(rec capture.Record, key string) (string, bool) {
	for _, h := range rec.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}

// describeValue shows a non-envelope value: as text when it is printable,
// else in hex, cut to a readable length.
func describeValue(v []byte, why string) string {
	const maxShown = 48
	shown, cut := v, ""
	if len(shown) > maxShown {
		shown, cut = shown[:maxShown], "…"
	}
	text := hex.EncodeToString(shown)
	if isPrintable(shown) {
		text = fmt.Sprintf("%q", shown)
	}
	return fmt.Sprintf("value %d bytes %s%s, not an envelope: %s", len(v), text, cut, why)
}

func isPrintable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// firsts keeps each match key's first item; later copies with the same
// content are duplicates the design allows (at-least-once delivery), later
// copies with other content are reported.
func firsts(side string, items []item, problems map[string][]string) (map[string]item, []item) {
	byKey := make(map[string]item, len(items))
	var ordered []item
	for _, it := range items {
		first, seen := byKey[it.match]
		if !seen {
			byKey[it.match] = it
			ordered = append(ordered, it)
			continue
		}
		if it.env != nil && !proto.Equal(first.env, it.env) {
			problems[it.order] = append(problems[it.order], fmt.Sprintf("%s: event id %s recorded twice with different content (records %d and %d)",
				side, it.ref.ID, first.index+1, it.index+1))
		}
	}
	return byKey, ordered
}

// Compare compares got (a replay's output) with want (the recording).
func Compare(want, got []capture.Record, opts Options) Report {
	problems := map[string][]string{}
	wantItems := prepare("want", want, problems)
	gotItems := prepare("got", got, problems)
	wantBy, wantOrdered := firsts("want", wantItems, problems)
	gotBy, gotOrdered := firsts("got", gotItems, problems)

	orders := map[string]*OrderReport{}
	get := func(id string) *OrderReport {
		if o, ok := orders[id]; ok {
			return o
		}
		o := &OrderReport{OrderID: id}
		orders[id] = o
		return o
	}
	rep := Report{Counts: Counts{Want: len(want), Got: len(got)}}
	for _, w := range wantOrdered {
		get(w.order)
		g, ok := gotBy[w.match]
		if !ok {
			get(w.order).Missing = append(get(w.order).Missing, w.ref)
			rep.Counts.Missing++
			continue
		}
		rep.Counts.Matched++
		if w.env == nil {
			continue // same topic, key and bytes by construction
		}
		fields := compareRecords(w, g, opts)
		if len(fields) > 0 {
			get(w.order).Changed = append(get(w.order).Changed, Change{Event: w.ref, Fields: fields})
			rep.Counts.Changed++
		}
	}
	for _, g := range gotOrdered {
		get(g.order)
		if _, ok := wantBy[g.match]; !ok {
			get(g.order).Extra = append(get(g.order).Extra, g.ref)
			rep.Counts.Extra++
		}
	}
	for order, lines := range orderProblems(wantOrdered, gotOrdered, gotBy) {
		get(order).Order = append(get(order).Order, lines...)
		rep.Counts.Order += len(lines)
	}
	for order, lines := range problems {
		get(order).Problems = append(get(order).Problems, lines...)
		rep.Counts.Problems += len(lines)
	}

	ids := make([]string, 0, len(orders))
	for id := range orders {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	rep.OrdersCompared = len(ids)
	for _, id := range ids {
		if o := orders[id]; !o.empty() {
			rep.Orders = append(rep.Orders, *o)
		}
	}
	return rep
}

// compareRecords lists the differing fields of two matched events: their
// topic and key, then the envelope field by field.
func compareRecords(w, g item, opts Options) []FieldDiff {
	var out []FieldDiff
	if w.rec.Topic != g.rec.Topic && !opts.ignored("topic") {
		out = append(out, FieldDiff{Path: "topic", Want: w.rec.Topic, Got: g.rec.Topic})
	}
	if w.rec.Key != g.rec.Key && !opts.ignored("key") {
		out = append(out, FieldDiff{Path: "key", Want: fmt.Sprintf("%q", w.rec.Key), Got: fmt.Sprintf("%q", g.rec.Key)})
	}
	d := differ{opts: opts}
	d.message("", "", w.env.ProtoReflect(), g.env.ProtoReflect())
	return append(out, d.out...)
}

// stream is one topic+key's matched events in file order.
type stream struct{ topic, key string }

// orderProblems finds, per order: topic+key streams whose common events come
// in another order in got than in want, and events in got that come before
// their cause on the same topic+key. Nothing is compared across topics.
func orderProblems(wantOrdered, gotOrdered []item, gotBy map[string]item) map[string][]string {
	out := map[string][]string{}
	reported := map[[2]string]bool{}
	streamOf := func(it item) stream { return stream{it.rec.Topic, it.rec.Key} }

	// Positions of got's events in their own stream.
	gotPos := map[string]int{}
	gotStreams := map[stream][]item{}
	for _, g := range gotOrdered {
		if g.env == nil {
			continue
		}
		s := streamOf(g)
		gotPos[g.match] = len(gotStreams[s])
		gotStreams[s] = append(gotStreams[s], g)
	}

	// Causation: within one stream of got, a cause comes first.
	for _, g := range gotOrdered {
		if g.env == nil {
			continue
		}
		cause, ok := gotBy["event\x00"+g.env.GetCausationId()]
		if !ok || cause.env == nil || streamOf(cause) != streamOf(g) {
			continue
		}
		if gotPos[cause.match] > gotPos[g.match] {
			reported[[2]string{cause.match, g.match}] = true
			out[g.order] = append(out[g.order], fmt.Sprintf("%s key %s: %s %s comes before its cause %s %s in got",
				g.rec.Topic, g.rec.Key, g.ref.Type, short(g.ref.ID), cause.ref.Type, short(cause.ref.ID)))
		}
	}

	// Per stream: the events both sides hold on the same stream, in want's
	// order. If every consecutive pair keeps its order in got, the whole
	// sequence does, so checking neighbours finds every reordering.
	wantStreams := map[stream][]item{}
	var streamOrder []stream
	for _, w := range wantOrdered {
		if w.env == nil {
			continue
		}
		g, ok := gotBy[w.match]
		if !ok || g.env == nil || streamOf(g) != streamOf(w) {
			continue
		}
		s := streamOf(w)
		if _, seen := wantStreams[s]; !seen {
			streamOrder = append(streamOrder, s)
		}
		wantStreams[s] = append(wantStreams[s], w)
	}
	for _, s := range streamOrder {
		seq := wantStreams[s]
		for i := 1; i < len(seq); i++ {
			a, b := seq[i-1], seq[i]
			if gotPos[a.match] < gotPos[b.match] || reported[[2]string{a.match, b.match}] || reported[[2]string{b.match, a.match}] {
				continue
			}
			reported[[2]string{a.match, b.match}] = true
			out[a.order] = append(out[a.order], fmt.Sprintf("%s key %s: want %s %s before %s %s, got them the other way round",
				s.topic, s.key, a.ref.Type, short(a.ref.ID), b.ref.Type, short(b.ref.ID)))
		}
	}
	return out
}

// short is an event id cut to its first 8 characters, enough to tell events
// of one order apart in a sentence.
func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// differ walks two messages of one type and collects their differences.
type differ struct {
	opts Options
	out  []FieldDiff
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// message compares a and b; path is the report's path, plain the same
// without indexes and map keys (what Options.Ignore matches).
func (d *differ) message(path, plain string, a, b protoreflect.Message) {
	desc := a.Descriptor()
	if isTimestamp(desc) {
		if !proto.Equal(a.Interface(), b.Interface()) {
			d.add(path, plain, messageText(a), messageText(b))
		}
		return
	}
	oneofs := desc.Oneofs()
	skip := map[protoreflect.FullName]bool{}
	for i := 0; i < oneofs.Len(); i++ {
		oo := oneofs.Get(i)
		if oo.IsSynthetic() {
			continue
		}
		fa, fb := a.WhichOneof(oo), b.WhichOneof(oo)
		if caseName(fa) == caseName(fb) {
			continue
		}
		for j := 0; j < oo.Fields().Len(); j++ {
			skip[oo.Fields().Get(j).FullName()] = true
		}
		name := string(oo.Name())
		d.add(join(path, name), join(plain, name), "case "+caseName(fa), "case "+caseName(fb))
	}
	fields := desc.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if skip[f.FullName()] {
			continue
		}
		fp, fplain := join(path, string(f.Name())), join(plain, string(f.Name()))
		if d.opts.ignored(fplain) {
			continue
		}
		switch {
		case f.IsList():
			d.list(fp, fplain, f, a.Get(f).List(), b.Get(f).List())
		case f.IsMap():
			d.mapField(fp, fplain, f, a.Get(f).Map(), b.Get(f).Map())
		case f.Message() != nil:
			ha, hb := a.Has(f), b.Has(f)
			switch {
			case !ha && !hb:
			case ha && hb:
				d.message(fp, fplain, a.Get(f).Message(), b.Get(f).Message())
			case ha:
				d.add(fp, fplain, messageText(a.Get(f).Message()), Unset)
			default:
				d.add(fp, fplain, Unset, messageText(b.Get(f).Message()))
			}
		default:
			va, vb := a.Get(f), b.Get(f)
			if !va.Equal(vb) {
				d.add(fp, fplain, scalarText(f, va), scalarText(f, vb))
			}
		}
	}
}

func (d *differ) list(path, plain string, f protoreflect.FieldDescriptor, a, b protoreflect.List) {
	n := max(a.Len(), b.Len())
	for i := 0; i < n; i++ {
		ip := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case i >= a.Len():
			d.add(ip, plain, Unset, valueText(f, b.Get(i)))
		case i >= b.Len():
			d.add(ip, plain, valueText(f, a.Get(i)), Unset)
		case f.Message() != nil:
			d.message(ip, plain, a.Get(i).Message(), b.Get(i).Message())
		default:
			if !a.Get(i).Equal(b.Get(i)) {
				d.add(ip, plain, scalarText(f, a.Get(i)), scalarText(f, b.Get(i)))
			}
		}
	}
}

func (d *differ) mapField(path, plain string, f protoreflect.FieldDescriptor, a, b protoreflect.Map) {
	keys := map[string]protoreflect.MapKey{}
	collect := func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys[k.String()] = k
		return true
	}
	a.Range(collect)
	b.Range(collect)
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	vf := f.MapValue()
	for _, ks := range sorted {
		k := keys[ks]
		kp := fmt.Sprintf("%s[%q]", path, ks)
		ha, hb := a.Has(k), b.Has(k)
		switch {
		case !ha:
			d.add(kp, plain, Unset, valueText(vf, b.Get(k)))
		case !hb:
			d.add(kp, plain, valueText(vf, a.Get(k)), Unset)
		case vf.Message() != nil:
			d.message(kp, plain, a.Get(k).Message(), b.Get(k).Message())
		default:
			if !a.Get(k).Equal(b.Get(k)) {
				d.add(kp, plain, scalarText(vf, a.Get(k)), scalarText(vf, b.Get(k)))
			}
		}
	}
}

func (d *differ) add(path, plain, want, got string) {
	if d.opts.ignored(plain) {
		return
	}
	d.out = append(d.out, FieldDiff{Path: path, Want: want, Got: got})
}

func caseName(f protoreflect.FieldDescriptor) string {
	if f == nil {
		return "none"
	}
	return string(f.Name())
}

func isTimestamp(d protoreflect.MessageDescriptor) bool {
	return d.FullName() == "google.protobuf.Timestamp"
}

func valueText(f protoreflect.FieldDescriptor, v protoreflect.Value) string {
	if f.Message() != nil {
		return messageText(v.Message())
	}
	return scalarText(f, v)
}

// messageText is a whole message as compact protojson (a timestamp as its
// RFC 3339 string), for a side where the other has none.
func messageText(m protoreflect.Message) string {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m.Interface())
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return string(b)
	}
	return out.String()
}

func scalarText(f protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch f.Kind() {
	case protoreflect.StringKind:
		return fmt.Sprintf("%q", v.String())
	case protoreflect.BytesKind:
		return "0x" + hex.EncodeToString(v.Bytes())
	case protoreflect.EnumKind:
		if ev := f.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return fmt.Sprintf("%d", v.Enum())
	}
	return fmt.Sprint(v.Interface())
}
