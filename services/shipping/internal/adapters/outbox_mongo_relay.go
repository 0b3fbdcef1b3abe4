package adapters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/outbox"
)

// Publisher is what the relay publishes through (a *bus.Producer, acks=all).
type Publisher = bus.Publisher

// ParkedCollection holds the outbox entries Kafka refused MaxAttempts
// times, one document per event (_id = event id), until an operator retries
// them (sagactl outbox retry): out of the shipment document, so that
// document's later entries are published.
const ParkedCollection = "parked_outbox"

// RelayConfig tunes an OutboxRelay; zero values take the defaults.
type RelayConfig struct {
	// BatchSize is the most documents published per pass (default 128).
	BatchSize int
	// PollInterval is how often the relay looks for markers when no write of
	// this process woke it (default 100ms).
	PollInterval time.Duration
	// MaxAttempts, RetryBackoff and MaxRetryBackoff: as outbox.RelayConfig's
	// (defaults 10, 100ms, 5s): an entry Kafka refuses permanently is tried
	// MaxAttempts times, with doubling waits, then parked.
	MaxAttempts                   int
	RetryBackoff, MaxRetryBackoff time.Duration
	Logger                        *slog.Logger

	// afterPublish runs between publishing and removing the entries; tests
	// use it to crash the relay at the worst moment.
	afterPublish func(orderIDs []string) error
}

// OutboxRelay publishes the outbox entries of shipment documents and then
// removes exactly the entries it published. It finds the documents through
// the pending_outbox markers, publishes without holding any lock, and
// removes entries under the order's lock with a version-checked update. A
// crash between publishing and removing publishes them again: consumers
// deduplicate by event id. Run one relay per store (a second one would only
// publish duplicates, and could reorder one order's events).
//
// Like the MySQL relay (libs/outbox), Run returns only when its context ends
// (store and Kafka errors are retried with capped backoff, Status says so),
// and an entry Kafka refuses permanently is retried MaxAttempts times, then
// moved to the parked_outbox collection (counted, logged with the reason).
// While it waits for its next attempt the document's later entries wait
// with it (one document is one order: its events stay in order); once it is
// parked they are published. Retrying a parked entry puts it back at the
// head of its document's outbox.
type OutboxRelay struct {
	repo    *ShipmentMongoRepository
	pub     Publisher
	cfg     RelayConfig
	status  outbox.StatusTracker
	metrics *outbox.Metrics

	retryMu sync.Mutex
	retryAt map[string]time.Time // refused entries by event id → next attempt
}

// NewOutboxRelay makes a relay over repo's documents.
func NewOutboxRelay(repo *ShipmentMongoRepository, pub Publisher, cfg RelayConfig) *OutboxRelay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 128
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 100 * time.Millisecond
	}
	if cfg.MaxRetryBackoff <= 0 {
		cfg.MaxRetryBackoff = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &OutboxRelay{repo: repo, pub: pub, cfg: cfg, metrics: outbox.NewMetrics(), retryAt: map[string]time.Time{}}
}

// Status says whether the relay can work right now (readiness).
func (r *OutboxRelay) Status() outbox.Status { return r.status.Get() }

// RelayStatus implements outbox.Admin.
func (r *OutboxRelay) RelayStatus() outbox.Status { return r.Status() }

// Counts implements outbox.Admin.
func (r *OutboxRelay) Counts(ctx context.Context) (outbox.Gauges, error) {
	return r.repo.outboxGauges(ctx)
}

// Run publishes until ctx ends and then returns nil; errors are logged and
// retried with backoff. It first runs RecoverMarkers (until it succeeds), so
// entries whose marker was lost are found.
func (r *OutboxRelay) Run(ctx context.Context) error {
	defer r.status.Set(outbox.StateStopped, nil)
	if reg, err := r.metrics.RegisterGauges(r.repo.outboxGauges); err == nil {
		defer func() { _ = reg.Unregister() }()
	}
	for ctx.Err() == nil {
		if r.repo.lease != nil {
			if holding, _ := r.repo.lease.Holding(); !holding {
				r.status.Set(outbox.StateStandby, nil)
			}
		}
		term, err := r.repo.term(ctx)
		if err != nil {
			break
		}
		r.runTerm(term)
	}
	return nil
}

// runTerm publishes while this process is the writer (term lives): it
// starts with RecoverMarkers, since a previous writer that died (or was
// fenced) may have dropped a marker another write had just re-created.
func (r *OutboxRelay) runTerm(ctx context.Context) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 50*time.Millisecond, 5*time.Second
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	recovered := false
	for ctx.Err() == nil {
		if !recovered {
			n, err := r.repo.RecoverMarkers(ctx)
			if ctx.Err() != nil {
				break
			}
			if err != nil {
				r.failed(ctx, fmt.Errorf("recovering markers: %w", err), bo.NextBackOff())
				continue
			}
			recovered = true
			if n > 0 {
				r.cfg.Logger.InfoContext(ctx, "shipping outbox: documents with unpublished entries", "documents", n)
			}
		}
		n, err := r.Flush(ctx)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			r.failed(ctx, err, bo.NextBackOff())
			continue
		}
		r.status.Set(outbox.StateActive, nil)
		bo.Reset()
		if n == r.cfg.BatchSize {
			continue // more is waiting
		}
		select {
		case <-ctx.Done():
		case <-r.repo.Pending():
		case <-poll.C:
		}
	}
}

func (r *OutboxRelay) failed(ctx context.Context, err error, wait time.Duration) {
	if ctx.Err() != nil {
		return
	}
	r.status.Set(outbox.StateFailing, err)
	r.cfg.Logger.ErrorContext(ctx, "shipping outbox relay", "error", err)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

type pendingMarker struct {
	OrderID string    `bson:"_id"`
	Since   time.Time `bson:"since"`
}

// Flush publishes the entries of up to BatchSize pending documents, oldest
// marker first, removes them (parking what Kafka refused too often), and
// returns how many documents it settled.
func (r *OutboxRelay) Flush(ctx context.Context) (int, error) {
	// One guard for the whole pass: publishing stops with the lease too, so
	// a relay that lost it never publishes behind its successor's back.
	ctx, epoch, done, err := r.repo.guard(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	markers, err := r.repo.pendingMarkers(ctx, r.cfg.BatchSize)
	if err != nil {
		return 0, err
	}
	if len(markers) == 0 {
		return 0, nil
	}
	type entry struct{ orderID, eventID string }
	var (
		msgs    []bus.Message
		entries []entry
		docs    = make([]string, 0, len(markers)) // documents to settle
		now     = time.Now()
	)
	r.retryMu.Lock()
	for _, m := range markers {
		doc, err := r.repo.loadOutbox(ctx, m.OrderID)
		if err != nil {
			r.retryMu.Unlock()
			return 0, err
		}
		due := 0
		if doc != nil {
			for _, item := range doc.Outbox {
				if at, ok := r.retryAt[item.EventID]; ok && now.Before(at) {
					break // it and the order's later entries wait
				}
				msgs = append(msgs, item.message())
				entries = append(entries, entry{m.OrderID, item.EventID})
				due++
			}
		}
		if doc == nil || len(doc.Outbox) == 0 || due > 0 {
			docs = append(docs, m.OrderID)
		}
	}
	r.retryMu.Unlock()

	start := time.Now()
	errs := outbox.PublishEach(ctx, r.pub, msgs)
	if r.cfg.afterPublish != nil && len(msgs) > 0 {
		if err := r.cfg.afterPublish(docs); err != nil {
			return 0, err
		}
	}
	sent := make(map[string][]string, len(docs)) // order id → event ids
	refused := map[string]map[string]error{}     // order id → event id → reason
	var transient error
	for i, e := range entries {
		switch err := errs[i]; {
		case err == nil:
			sent[e.orderID] = append(sent[e.orderID], e.eventID)
		case errors.Is(err, outbox.ErrHeldBehind):
		case outbox.PermanentPublishError(err):
			if refused[e.orderID] == nil {
				refused[e.orderID] = map[string]error{}
			}
			refused[e.orderID][e.eventID] = err
		default:
			transient = err
		}
	}
	published := 0
	for _, n := range sent {
		published += len(n)
	}
	if published > 0 {
		r.metrics.Published(ctx, published, time.Since(start))
	}
	var errs2 []error
	for _, orderID := range docs {
		res, err := r.repo.settleOutbox(ctx, epoch, orderID, sent[orderID], refused[orderID], r.cfg.MaxAttempts)
		if err != nil {
			errs2 = append(errs2, err)
			continue
		}
		r.noteRefusals(ctx, orderID, res)
	}
	if transient != nil {
		errs2 = append(errs2, fmt.Errorf("publish shipping events: %w", transient))
	}
	return len(docs), errors.Join(errs2...)
}

// noteRefusals schedules the next attempt of refused entries, and counts and
// logs the parked ones.
func (r *OutboxRelay) noteRefusals(ctx context.Context, orderID string, res settled) {
	r.retryMu.Lock()
	defer r.retryMu.Unlock()
	for _, id := range res.sent {
		delete(r.retryAt, id)
	}
	for _, item := range res.retried {
		delay := min(r.cfg.RetryBackoff<<min(item.Attempts-1, 20), r.cfg.MaxRetryBackoff)
		r.retryAt[item.EventID] = time.Now().Add(delay)
		r.cfg.Logger.WarnContext(ctx, "shipping outbox: Kafka refused an entry, will retry", "order_id", orderID,
			"event_id", item.EventID, "topic", item.Topic, "attempt", item.Attempts, "max_attempts", r.cfg.MaxAttempts,
			"retry_in", delay, "error", item.LastError)
	}
	for _, item := range res.parked {
		delete(r.retryAt, item.EventID)
		r.metrics.Parked(ctx, item.Topic)
		r.cfg.Logger.ErrorContext(ctx, "shipping outbox: entry parked, the order's later entries go on (sagactl outbox list|retry)",
			"order_id", orderID, "event_id", item.EventID, "type", item.Headers[bus.HeaderType], "topic", item.Topic,
			"attempts", item.Attempts, "reason", item.LastError)
	}
}

// pendingMarkers reads up to limit markers, oldest first.
func (r *ShipmentMongoRepository) pendingMarkers(ctx context.Context, limit int) ([]pendingMarker, error) {
	cur, err := r.pending.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "since", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("read pending outbox markers: %w", err)
	}
	var markers []pendingMarker
	if err := cur.All(ctx, &markers); err != nil {
		return nil, fmt.Errorf("read pending outbox markers: %w", err)
	}
	return markers, nil
}

// loadOutbox reads only what the relay needs of a document.
func (r *ShipmentMongoRepository) loadOutbox(ctx context.Context, orderID string) (*shipmentDoc, error) {
	var doc shipmentDoc
	err := r.shipments(orderID).FindOne(ctx, bson.D{{Key: "_id", Value: orderID}},
		options.FindOne().SetProjection(bson.D{{Key: "outbox", Value: 1}, {Key: "version", Value: 1}, {Key: "epoch", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load outbox of %s: %w", orderID, err)
	}
	return &doc, nil
}

// settled is what settleOutbox did with a document's refused entries.
type settled struct {
	sent    []string
	retried []outboxItem // refused, attempts counted, kept for another try
	parked  []outboxItem // refused for the last time, moved to parked_outbox
}

// settleOutbox drops the published entries from the order's outbox, counts
// an attempt on each refused one and parks those that reached maxAttempts
// (under the order's lock, version-checked), and drops the order's marker
// once its outbox is empty. Entries added since the relay read the document
// stay for the next pass.
func (r *ShipmentMongoRepository) settleOutbox(ctx context.Context, epoch int64, orderID string, sent []string, refused map[string]error, maxAttempts int) (settled, error) {
	unlock := r.locks.lock(orderID)
	defer unlock()
	for attempt := 1; ; attempt++ {
		res, err := r.settleOutboxOnce(ctx, epoch, orderID, sent, refused, maxAttempts)
		if !errors.Is(err, ErrConflict) || attempt == maxConflictRetries {
			return res, err
		}
	}
}

func (r *ShipmentMongoRepository) settleOutboxOnce(ctx context.Context, epoch int64, orderID string, sent []string, refused map[string]error, maxAttempts int) (settled, error) {
	res := settled{sent: sent}
	doc, err := r.loadOutbox(ctx, orderID)
	if err != nil {
		return res, err
	}
	remaining := []outboxItem{}
	if doc != nil {
		if err := r.fenced(orderID, doc.Epoch, epoch); err != nil {
			return res, err
		}
		isSent := make(map[string]bool, len(sent))
		for _, id := range sent {
			isSent[id] = true
		}
		changed := false
		for _, item := range doc.Outbox {
			if isSent[item.EventID] {
				changed = true
				continue
			}
			if reason, ok := refused[item.EventID]; ok {
				changed = true
				item.Attempts++
				item.LastError = truncate(reason.Error(), 1024)
				if item.Attempts >= maxAttempts {
					res.parked = append(res.parked, item)
					continue
				}
				res.retried = append(res.retried, item)
			}
			remaining = append(remaining, item)
		}
		// Park first: a crash before the outbox update leaves the entry in
		// both places, and the next pass parks it again (idempotent).
		for _, item := range res.parked {
			if err := r.park(ctx, orderID, item); err != nil {
				return res, err
			}
		}
		if changed {
			update := bson.D{
				{Key: "$set", Value: bson.D{{Key: "outbox", Value: remaining}}},
				{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}},
			}
			if err := r.updateVersioned(ctx, orderID, doc.Version, epoch, update); err != nil {
				return res, err
			}
		}
	}
	if len(remaining) > 0 {
		return res, nil
	}
	if _, err := r.pending.DeleteOne(ctx, bson.D{{Key: "_id", Value: orderID}}); err != nil {
		return res, fmt.Errorf("drop outbox marker of %s: %w", orderID, err)
	}
	return res, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// parkedDoc is one parked entry in the parked_outbox collection.
type parkedDoc struct {
	EventID  string     `bson:"_id"`
	OrderID  string     `bson:"order_id"`
	Item     outboxItem `bson:"item"`
	ParkedAt time.Time  `bson:"parked_at"`
}

func (r *ShipmentMongoRepository) park(ctx context.Context, orderID string, item outboxItem) error {
	_, err := r.parked.InsertOne(ctx, parkedDoc{EventID: item.EventID, OrderID: orderID, Item: item, ParkedAt: r.now().UTC()})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("park outbox entry %s of %s: %w", item.EventID, orderID, err)
	}
	return nil
}

// RecoverMarkers re-creates the marker of every document with outbox entries
// (one scan of every bucket): run at start-up, it makes the relay correct
// even if markers were lost, e.g. deleted by hand.
func (r *ShipmentMongoRepository) RecoverMarkers(ctx context.Context) (int, error) {
	ctx, _, done, err := r.guard(ctx)
	if err != nil {
		return 0, err
	}
	defer done()
	found := 0
	for name, coll := range r.buckets {
		cur, err := coll.Find(ctx, bson.D{{Key: "outbox.0", Value: bson.D{{Key: "$exists", Value: true}}}},
			options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			return found, fmt.Errorf("find unpublished shipments in %s: %w", name, err)
		}
		var docs []pendingMarker
		if err := cur.All(ctx, &docs); err != nil {
			return found, fmt.Errorf("find unpublished shipments in %s: %w", name, err)
		}
		for _, d := range docs {
			if err := r.markPending(ctx, d.OrderID); err != nil {
				return found, err
			}
		}
		found += len(docs)
	}
	return found, nil
}

// outboxGauges reports the documents waiting to be published (the markers:
// counting entries would read every marked document), the oldest marker's
// age, and the parked entries.
func (r *ShipmentMongoRepository) outboxGauges(ctx context.Context) (outbox.Gauges, error) {
	var g outbox.Gauges
	var err error
	if g.Backlog, err = r.pending.CountDocuments(ctx, bson.D{}); err != nil {
		return g, err
	}
	oldest, err := r.pendingMarkers(ctx, 1)
	if err != nil {
		return g, err
	}
	if len(oldest) == 1 {
		g.OldestUnsent = oldest[0].Since.UTC()
		g.OldestUnsentAge = max(time.Since(g.OldestUnsent), 0)
	}
	g.Parked, err = r.parked.CountDocuments(ctx, bson.D{})
	return g, err
}

// ListOutbox implements outbox.Admin: parked entries oldest first, or the
// entries of the oldest marked documents.
func (r *OutboxRelay) ListOutbox(ctx context.Context, parked bool, limit int) ([]outbox.AdminRow, error) {
	if limit <= 0 {
		limit = 100
	}
	rows := []outbox.AdminRow{}
	if parked {
		cur, err := r.repo.parked.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "parked_at", Value: 1}}).SetLimit(int64(limit)))
		if err != nil {
			return nil, fmt.Errorf("list parked outbox entries: %w", err)
		}
		var docs []parkedDoc
		if err := cur.All(ctx, &docs); err != nil {
			return nil, fmt.Errorf("list parked outbox entries: %w", err)
		}
		for _, d := range docs {
			row := d.Item.adminRow()
			at := d.ParkedAt
			row.ParkedAt = &at
			rows = append(rows, row)
		}
		return rows, nil
	}
	markers, err := r.repo.pendingMarkers(ctx, limit)
	if err != nil {
		return nil, err
	}
	for _, m := range markers {
		doc, err := r.repo.loadOutbox(ctx, m.OrderID)
		if err != nil {
			return nil, err
		}
		for i := 0; doc != nil && i < len(doc.Outbox) && len(rows) < limit; i++ {
			rows = append(rows, doc.Outbox[i].adminRow())
		}
	}
	return rows, nil
}

func (o outboxItem) adminRow() outbox.AdminRow {
	return outbox.AdminRow{ID: o.EventID, EventID: o.EventID, Type: o.Headers[bus.HeaderType], Topic: o.Topic, Key: o.Key,
		Bytes: len(o.Value), Attempts: o.Attempts, CreatedAt: o.AddedAt, LastError: o.LastError}
}

// RetryParked implements outbox.Admin: the parked entry (every one when id
// is "") goes back to the head of its document's outbox, attempts reset.
func (r *OutboxRelay) RetryParked(ctx context.Context, id string) (int, error) {
	var filter bson.D
	if id != "" {
		filter = bson.D{{Key: "_id", Value: id}}
	} else {
		filter = bson.D{}
	}
	cur, err := r.repo.parked.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "parked_at", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("read parked outbox entries: %w", err)
	}
	var docs []parkedDoc
	if err := cur.All(ctx, &docs); err != nil {
		return 0, fmt.Errorf("read parked outbox entries: %w", err)
	}
	if len(docs) == 0 && id != "" {
		return 0, fmt.Errorf("%w: %s", outbox.ErrNotParked, id)
	}
	for i, d := range docs {
		if err := r.repo.unpark(ctx, d); err != nil {
			return i, err
		}
	}
	r.cfg.Logger.InfoContext(ctx, "shipping outbox: parked entries un-parked", "id", id, "entries", len(docs))
	r.repo.signal(len(docs))
	return len(docs), nil
}

// unpark puts a parked entry back at the head of its order's outbox (unless
// it is there already), marks the document pending, then deletes the parked
// copy: a crash in between leaves a copy that a second retry handles.
func (r *ShipmentMongoRepository) unpark(ctx context.Context, d parkedDoc) error {
	ctx, epoch, done, err := r.guard(ctx)
	if err != nil {
		return err
	}
	defer done()
	unlock := r.locks.lock(d.OrderID)
	defer unlock()
	item := d.Item
	item.Attempts, item.LastError = 0, ""
	for attempt := 1; ; attempt++ {
		doc, err := r.loadOutbox(ctx, d.OrderID)
		if err != nil {
			return err
		}
		if doc == nil {
			return fmt.Errorf("un-park %s: shipment %s is gone", d.EventID, d.OrderID)
		}
		if err := r.fenced(d.OrderID, doc.Epoch, epoch); err != nil {
			return err
		}
		present := false
		for _, o := range doc.Outbox {
			present = present || o.EventID == item.EventID
		}
		if present {
			break
		}
		if err := r.markPending(ctx, d.OrderID); err != nil {
			return err
		}
		update := bson.D{
			{Key: "$set", Value: bson.D{{Key: "outbox", Value: append([]outboxItem{item}, doc.Outbox...)}}},
			{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}},
		}
		err = r.updateVersioned(ctx, d.OrderID, doc.Version, epoch, update)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrConflict) || attempt == maxConflictRetries {
			return err
		}
	}
	if _, err := r.parked.DeleteOne(ctx, bson.D{{Key: "_id", Value: d.EventID}}); err != nil {
		return fmt.Errorf("drop parked copy of %s: %w", d.EventID, err)
	}
	return nil
}
