// Package capture is the recording format of sagasuite's event replay: JSON
// Lines, a header line then one line per Kafka record, the envelope as
// protojson so a recording is diffable, greppable and readable with jq. The
// record fields carry the names rpk's JSON output uses (topic, partition,
// offset, timestamp in Unix milliseconds, key, headers as key/value objects).
// A path ending in .gz is gzip-compressed.
//
// The format is versioned from day one: Version is what this code writes,
// and readers accept every earlier version (testdata/v1.jsonl is kept
// forever and read by a test).
package capture

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/events"
	eventsv1 "github.com/sagasuite/sagasuite/proto/gen/go/sagasuite/events/v1"
)

// Format names the file kind in every header.
const Format = "sagasuite-capture"

// Version is the capture format version this code writes.
const Version = 1

// Header is a recording's first line.
type Header struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// EnvelopeSchemaVersion is events.SchemaVersion of the code that recorded.
	EnvelopeSchemaVersion int `json:"envelope_schema_version"`
	// Source says where the records came from, e.g. "kafka://127.0.0.1:19092"
	// or "demo".
	Source string `json:"source"`
	// TopicPrefix is the prefix the source's topic names carried (stripped in
	// the records, which name the plain saga topics).
	TopicPrefix string `json:"topic_prefix,omitempty"`
	// Ranges are the offsets read per topic and partition: [start, end).
	Ranges      []Range   `json:"ranges,omitempty"`
	ToolVersion string    `json:"tool_version"`
	CapturedAt  time.Time `json:"captured_at"`
	// Seed is the state the recorded suite started from that no event
	// carries (the catalog's stock), so a replay can set up the same.
	Seed *Seed `json:"seed,omitempty"`
}

// Range is one partition's recorded offsets, start inclusive, end exclusive.
type Range struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Start     int64  `json:"start_offset"`
	End       int64  `json:"end_offset"`
}

// Seed is the starting state outside the events.
type Seed struct {
	Products []SeedProduct `json:"products,omitempty"`
}

// SeedProduct is one catalog entry as the recording's suite had it.
type SeedProduct struct {
	SKU           string `json:"sku"`
	Name          string `json:"name,omitempty"`
	PriceMinor    int64  `json:"price_minor"`
	Currency      string `json:"currency"`
	StockQuantity int32  `json:"stock_quantity"`
}

// Header is one Kafka record header (rpk's shape).
type KafkaHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Record is one Kafka record.
type Record struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	// Timestamp is the broker's record time in Unix milliseconds (UTC).
	Timestamp int64         `json:"timestamp"`
	Key       string        `json:"key"`
	Headers   []KafkaHeader `json:"headers,omitempty"`
	// Envelope is the decoded event as compact protojson (proto field
	// names). Empty when the value is not an envelope: then Value holds the
	// raw bytes and Error why, so nothing recorded is lost.
	Envelope json.RawMessage `json:"envelope,omitempty"`
	Value    []byte          `json:"value,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// NewHeader is the header this code writes, captured now (UTC).
func NewHeader(source, toolVersion string, now time.Time) Header {
	return Header{Format: Format, Version: Version, EnvelopeSchemaVersion: events.SchemaVersion,
		Source: source, ToolVersion: toolVersion, CapturedAt: now.UTC()}
}

var envelopeJSON = protojson.MarshalOptions{UseProtoNames: true}

// MarshalEnvelope is env as compact protojson with stable bytes.
func MarshalEnvelope(env *eventsv1.Envelope) (json.RawMessage, error) { return StableJSON(env) }

// StableJSON is m as compact protojson (proto field names) with stable
// bytes: protojson itself varies its whitespace on purpose, and recordings
// and replays' state files must not.
func StableJSON(m proto.Message) (json.RawMessage, error) {
	b, err := envelopeJSON.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// FromMessage is the record of a bus message read at topic/partition/offset.
// prefix is stripped from the topic name.
func FromMessage(m bus.Message, partition int, offset int64, at time.Time, prefix string) Record {
	rec := Record{Topic: strings.TrimPrefix(m.Topic, prefix), Partition: partition, Offset: offset,
		Timestamp: at.UTC().UnixMilli(), Key: m.Key, Headers: sortedHeaders(m.Headers)}
	env, err := events.Decode(m.Value)
	if err == nil {
		rec.Envelope, err = MarshalEnvelope(env)
	}
	if err != nil {
		rec.Envelope, rec.Value, rec.Error = nil, m.Value, err.Error()
	}
	return rec
}

// sortedHeaders keeps a header map in a stable order (sorted by key).
func sortedHeaders(h map[string]string) []KafkaHeader {
	out := make([]KafkaHeader, 0, len(h))
	for k, v := range h {
		out = append(out, KafkaHeader{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Event decodes the record's envelope.
func (r Record) Event() (*eventsv1.Envelope, error) {
	if len(r.Envelope) == 0 {
		return nil, fmt.Errorf("record %s/%d@%d holds no envelope: %s", r.Topic, r.Partition, r.Offset, r.Error)
	}
	env := &eventsv1.Envelope{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(r.Envelope, env); err != nil {
		return nil, fmt.Errorf("record %s/%d@%d: envelope: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return env, nil
}

// Message is the record as the bus would publish it again: the envelope in
// its wire encoding, the recorded headers, topic prefixed with prefix.
func (r Record) Message(prefix string) (bus.Message, error) {
	value := r.Value
	if len(r.Envelope) > 0 {
		env, err := r.Event()
		if err != nil {
			return bus.Message{}, err
		}
		if value, err = (proto.MarshalOptions{Deterministic: true}).Marshal(env); err != nil {
			return bus.Message{}, err
		}
	}
	headers := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		headers[h.Key] = h.Value
	}
	return bus.Message{Topic: prefix + r.Topic, Key: r.Key, Headers: headers, Value: value}, nil
}

// Time is the record's timestamp.
func (r Record) Time() time.Time { return time.UnixMilli(r.Timestamp).UTC() }

// Header returns the value of the header key ("" if absent).
func (r Record) Header(key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return ""
}

// Writer writes a recording.
type Writer struct {
	bw     *bufio.Writer
	enc    *json.Encoder
	closer []io.Closer
}

// NewWriter writes h to w and returns a Writer for the records.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if h.Format == "" {
		h.Format, h.Version = Format, Version
	}
	bw := bufio.NewWriter(w)
	cw := &Writer{bw: bw, enc: json.NewEncoder(bw)}
	cw.enc.SetEscapeHTML(false)
	if err := cw.enc.Encode(h); err != nil {
		return nil, err
	}
	return cw, nil
}

// Create creates the file at path (gzip when it ends in .gz) and writes h.
func Create(path string, h Header) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	var w io.Writer = f
	closers := []io.Closer{f}
	if strings.HasSuffix(path, ".gz") {
		zw := gzip.NewWriter(f)
		w, closers = zw, []io.Closer{zw, f}
	}
	cw, err := NewWriter(w, h)
	if err != nil {
		f.Close()
		return nil, err
	}
	cw.closer = closers
	return cw, nil
}

// Write appends one record.
func (w *Writer) Write(r Record) error { return w.enc.Encode(r) }

// Close flushes, and closes the file Create opened.
func (w *Writer) Close() error {
	err := w.bw.Flush()
	for _, c := range w.closer {
		err = errors.Join(err, c.Close())
	}
	return err
}

// Reader reads a recording.
type Reader struct {
	Header Header
	sc     *bufio.Scanner
	line   int
	closer []io.Closer
}

// maxLine bounds one record line (an envelope is far smaller; Kafka's
// default message limit is 1 MiB, base64 and JSON add a third).
const maxLine = 4 << 20

// NewReader reads and checks the header from r.
func NewReader(r io.Reader) (*Reader, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	cr := &Reader{sc: sc}
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("capture header: %w", err)
		}
		return nil, errors.New("capture header: empty file")
	}
	cr.line = 1
	if err := json.Unmarshal(sc.Bytes(), &cr.Header); err != nil {
		return nil, fmt.Errorf("capture header (line 1): %w", err)
	}
	if cr.Header.Format != Format {
		return nil, fmt.Errorf("capture header: format %q, want %q", cr.Header.Format, Format)
	}
	if cr.Header.Version < 1 || cr.Header.Version > Version {
		return nil, fmt.Errorf("capture header: version %d; this tool reads versions 1 to %d", cr.Header.Version, Version)
	}
	return cr, nil
}

// Open opens the recording at path (gunzipping a .gz).
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var r io.Reader = f
	closers := []io.Closer{f}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r, closers = zr, []io.Closer{zr, f}
	}
	cr, err := NewReader(r)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cr.closer = closers
	return cr, nil
}

// Next returns the next record, or io.EOF after the last.
func (r *Reader) Next() (Record, error) {
	for r.sc.Scan() {
		r.line++
		line := bytes.TrimSpace(r.sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return Record{}, fmt.Errorf("capture line %d: %w", r.line, err)
		}
		if rec.Topic == "" {
			return Record{}, fmt.Errorf("capture line %d: record without a topic", r.line)
		}
		return rec, nil
	}
	if err := r.sc.Err(); err != nil {
		return Record{}, fmt.Errorf("capture line %d: %w", r.line+1, err)
	}
	return Record{}, io.EOF
}

// Close closes the file Open opened.
func (r *Reader) Close() error {
	var err error
	for _, c := range r.closer {
		err = errors.Join(err, c.Close())
	}
	return err
}

// ReadFile reads a whole recording.
func ReadFile(path string) (Header, []Record, error) {
	r, err := Open(path)
	if err != nil {
		return Header{}, nil, err
	}
	defer r.Close()
	var recs []Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r.Header, recs, nil
		}
		if err != nil {
			return r.Header, recs, fmt.Errorf("%s: %w", path, err)
		}
		recs = append(recs, rec)
	}
}

// WriteFile writes a whole recording.
func WriteFile(path string, h Header, recs []Record) error {
	w, err := Create(path, h)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}
