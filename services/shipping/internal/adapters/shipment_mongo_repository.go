// Package adapters holds the shipping service's outside world: the MongoDB
// shipment repository with its in-document inbox and outbox, the outbox relay
// over it, and the simulated carrier.
package adapters

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/sagametrics"
	"github.com/sagasuite/sagasuite/services/shipping/internal/app"
	"github.com/sagasuite/sagasuite/services/shipping/internal/domain/shipment"
)

// Collections.
const (
	// Buckets is how many collections ("shipments_00" … "shipments_15") the
	// shipment documents are spread over, by a hash of the order id.
	// FerretDB v1 serves no query from an index, not even one by _id: every
	// read and update scans its collection, so its cost grows with the
	// collection (measured in README.md: get by id 521/s at 1k documents,
	// 64/s at 10k). Buckets divide that scan by 16 for every per-order
	// operation; only ListShipments reads them all. Changing it would need a
	// re-hash of the stored documents.
	Buckets = 16
	// PendingCollection holds one small marker document per order whose
	// shipment has unpublished outbox entries, so the relay never scans the
	// shipment collections (measured: 4.6 ms per pass against 1.5 s for a
	// query on 10k shipment documents).
	PendingCollection = "pending_outbox"
)

// BucketCollection is the name of the collection holding orderID's shipment.
func BucketCollection(orderID string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(orderID)) // never fails
	return fmt.Sprintf("shipments_%02d", h.Sum32()%Buckets)
}

// maxConflictRetries bounds Apply's re-reads after a version conflict (a
// write from outside this process, e.g. a second replica).
const maxConflictRetries = 5

// ErrConflict means the document changed under a version-checked update
// more often than Apply retries; the caller (the consumer) retries later.
var ErrConflict = errors.New("shipment changed concurrently")

// ShipmentMongoRepository stores shipment documents, one per order (_id =
// order id), with the inbox and the outbox inside the document.
type ShipmentMongoRepository struct {
	db      *mongo.Database
	buckets map[string]*mongo.Collection // by name
	pending *mongo.Collection
	parked  *mongo.Collection // entries Kafka refused too often (ParkedCollection)
	locks   *orderLocks
	lease   *WriterLease // nil: no lease, one process per database (tests)
	now     func() time.Time
	// wake tells the relay that outbox entries were written.
	wake chan struct{}
	// compensations counts the SHIPMENT_CANCELLED this store writes.
	compensations *sagametrics.Compensations
}

// NewShipmentMongoRepository uses db's shipment buckets and pending_outbox
// collection; call EnsureIndexes once at start-up. now stamps outbox entries.
func NewShipmentMongoRepository(db *mongo.Database, now func() time.Time) *ShipmentMongoRepository {
	r := &ShipmentMongoRepository{
		db:      db,
		buckets: make(map[string]*mongo.Collection, Buckets),
		pending: db.Collection(PendingCollection),
		parked:  db.Collection(ParkedCollection),
		locks:   newOrderLocks(),
		now:     now,
		wake:    make(chan struct{}, 1),

		compensations: sagametrics.NewCompensations(),
	}
	for i := range Buckets {
		name := fmt.Sprintf("shipments_%02d", i)
		r.buckets[name] = db.Collection(name)
	}
	return r
}

// UseLease makes every write wait for, and be fenced by, the writer lease:
// set it before the repository is used. Without one the repository trusts
// that it is the only writer of its database.
func (r *ShipmentMongoRepository) UseLease(l *WriterLease) { r.lease = l }

// guard admits one write under the lease (see WriterLease.Guard); without a
// lease the epoch is 0 and nothing is fenced.
func (r *ShipmentMongoRepository) guard(ctx context.Context) (context.Context, int64, func(), error) {
	if r.lease == nil {
		return ctx, 0, func() {}, nil
	}
	return r.lease.Guard(ctx)
}

// term waits until this process may write: at once without a lease.
func (r *ShipmentMongoRepository) term(ctx context.Context) (context.Context, error) {
	if r.lease == nil {
		return ctx, ctx.Err()
	}
	return r.lease.Term(ctx)
}

// fenced reports (and tells the lease) when a document was written under a
// newer epoch than ours.
func (r *ShipmentMongoRepository) fenced(orderID string, docEpoch, epoch int64) error {
	if epoch == 0 || docEpoch <= epoch {
		return nil
	}
	r.lease.Fenced(epoch)
	return fmt.Errorf("%w: order %s at epoch %d, this process holds %d", ErrFenced, orderID, docEpoch, epoch)
}

// shipments is the collection holding orderID's document.
func (r *ShipmentMongoRepository) shipments(orderID string) *mongo.Collection {
	return r.buckets[BucketCollection(orderID)]
}

// EnsureIndexes creates the indexes the queries use (idempotent). FerretDB v1
// does not use them for filtering; real MongoDB does.
func (r *ShipmentMongoRepository) EnsureIndexes(ctx context.Context) error {
	for name, coll := range r.buckets {
		if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys:    bson.D{{Key: "customer_id", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}},
			Options: options.Index().SetName("customer_newest_first"),
		}); err != nil {
			return fmt.Errorf("%s index: %w", name, err)
		}
	}
	if _, err := r.pending.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "since", Value: 1}}, Options: options.Index().SetName("oldest_first"),
	}); err != nil {
		return fmt.Errorf("pending_outbox index: %w", err)
	}
	return nil
}

// Ping checks that the store answers (readiness).
func (r *ShipmentMongoRepository) Ping(ctx context.Context) error {
	return r.db.Client().Ping(ctx, nil)
}

// Pending is signalled (without blocking) after a write that added outbox entries.
func (r *ShipmentMongoRepository) Pending() <-chan struct{} { return r.wake }

// Apply implements app.Repository.
func (r *ShipmentMongoRepository) Apply(ctx context.Context, orderID, eventID string,
	decide func(current *shipment.Shipment) (app.Change, error),
) (bool, error) {
	ctx, epoch, done, err := r.guard(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	unlock := r.locks.lock(orderID)
	defer unlock()
	for attempt := 1; ; attempt++ {
		applied, err := r.applyOnce(ctx, epoch, orderID, eventID, decide)
		if !errors.Is(err, ErrConflict) || attempt == maxConflictRetries {
			return applied, err
		}
	}
}

func (r *ShipmentMongoRepository) applyOnce(ctx context.Context, epoch int64, orderID, eventID string,
	decide func(current *shipment.Shipment) (app.Change, error),
) (bool, error) {
	current, err := r.load(ctx, orderID)
	if err != nil {
		return false, err
	}
	var state *shipment.Shipment
	if current != nil {
		if err := r.fenced(orderID, current.Epoch, epoch); err != nil {
			return false, err
		}
		if current.processed(eventID) {
			return false, nil
		}
		state = current.shipment()
	}
	change, err := decide(state)
	if err != nil {
		return false, err
	}
	if change.Shipment != nil && change.Shipment.OrderID != orderID {
		return false, fmt.Errorf("decision for order %s returned a shipment of order %s", orderID, change.Shipment.OrderID)
	}
	items, err := r.outboxItems(ctx, change)
	if err != nil {
		return false, err
	}
	if len(items) > 0 {
		// The marker goes first: a crash after it leaves an empty marker (the
		// relay drops it), never entries the relay cannot find.
		if err := r.markPending(ctx, orderID); err != nil {
			return false, err
		}
	}

	if current == nil {
		if change.Shipment == nil {
			// Nothing to store and no document to hold the event id: a
			// redelivery decides the same way.
			return true, nil
		}
		doc := stateOf(change.Shipment)
		doc.Version = 1
		doc.Epoch = epoch
		doc.Processed = []string{eventID}
		doc.Outbox = items
		if _, err := r.shipments(orderID).InsertOne(ctx, doc); err != nil {
			if mongo.IsDuplicateKeyError(err) {
				return false, fmt.Errorf("%w: order %s inserted meanwhile", ErrConflict, orderID)
			}
			return false, fmt.Errorf("insert shipment %s: %w", orderID, err)
		}
		r.signal(len(items))
		r.compensations.Committed(ctx, change.Events...)
		return true, nil
	}

	push := bson.D{{Key: "processed", Value: eventID}}
	if len(items) > 0 {
		push = append(push, bson.E{Key: "outbox", Value: bson.D{{Key: "$each", Value: items}}})
	}
	update := bson.D{{Key: "$push", Value: push}, {Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}}}
	if change.Shipment != nil {
		update = append(update, bson.E{Key: "$set", Value: stateFields(stateOf(change.Shipment))})
	}
	if err := r.updateVersioned(ctx, orderID, current.Version, epoch, update); err != nil {
		return false, err
	}
	r.signal(len(items))
	r.compensations.Committed(ctx, change.Events...)
	return true, nil
}

// stateFields is the $set of everything a decision may change (not the
// inbox, outbox or version, which have their own operators).
func stateFields(d shipmentDoc) bson.D {
	return bson.D{
		{Key: "shipment_id", Value: d.ShipmentID},
		{Key: "customer_id", Value: d.CustomerID},
		{Key: "status", Value: d.Status},
		{Key: "address", Value: d.Address},
		{Key: "parcels", Value: d.Parcels},
		{Key: "carrier", Value: d.Carrier},
		{Key: "tracking_number", Value: d.TrackingNumber},
		{Key: "tracking", Value: d.Tracking},
		{Key: "failure_reason", Value: d.FailureReason},
		{Key: "failure_detail", Value: d.FailureDetail},
		{Key: "created_at", Value: d.CreatedAt},
		{Key: "updated_at", Value: d.UpdatedAt},
	}
}

// updateVersioned applies update to the document if it is still at version
// and was not written under an epoch newer than epoch; otherwise
// ErrConflict. The update stamps the document with epoch (when there is a
// lease). The caller holds the writer lease and the order's lock: the
// version and epoch filters are the second line of defence, against writers
// outside this process (on FerretDB v1 they are not atomic with the write).
func (r *ShipmentMongoRepository) updateVersioned(ctx context.Context, orderID string, version, epoch int64, update bson.D) error {
	filter := bson.D{{Key: "_id", Value: orderID}, {Key: "version", Value: version}}
	if epoch > 0 {
		// $not/$gt also matches documents from before the lease (no epoch).
		filter = append(filter, bson.E{Key: "epoch", Value: bson.D{{Key: "$not", Value: bson.D{{Key: "$gt", Value: epoch}}}}})
		update = withSet(update, bson.E{Key: "epoch", Value: epoch})
	}
	res, err := r.shipments(orderID).UpdateOne(ctx, filter, update)
	if err != nil {
		return fmt.Errorf("update shipment %s: %w", orderID, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("%w: order %s is no longer at version %d", ErrConflict, orderID, version)
	}
	return nil
}

// withSet adds field to update's $set (making one when there is none).
func withSet(update bson.D, field bson.E) bson.D {
	out := make(bson.D, 0, len(update)+1)
	added := false
	for _, op := range update {
		if op.Key == "$set" {
			if set, ok := op.Value.(bson.D); ok {
				op.Value = append(slices.Clone(set), field)
				added = true
			}
		}
		out = append(out, op)
	}
	if !added {
		out = append(out, bson.E{Key: "$set", Value: bson.D{field}})
	}
	return out
}

func (r *ShipmentMongoRepository) outboxItems(ctx context.Context, change app.Change) ([]outboxItem, error) {
	items := make([]outboxItem, 0, len(change.Events))
	for _, env := range change.Events {
		m, err := bus.EncodeEnvelope(ctx, env)
		if err != nil {
			return nil, err
		}
		items = append(items, outboxItem{
			EventID: env.GetEventId(), Topic: m.Topic, Key: m.Key, Headers: m.Headers, Value: m.Value, AddedAt: r.now().UTC(),
		})
	}
	return items, nil
}

func (r *ShipmentMongoRepository) signal(items int) {
	if items == 0 {
		return
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// markPending records that orderID's document has outbox entries.
func (r *ShipmentMongoRepository) markPending(ctx context.Context, orderID string) error {
	_, err := r.pending.InsertOne(ctx, bson.D{{Key: "_id", Value: orderID}, {Key: "since", Value: r.now().UTC()}})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("mark outbox of %s pending: %w", orderID, err)
	}
	return nil
}

// load reads the order's document, nil when there is none.
func (r *ShipmentMongoRepository) load(ctx context.Context, orderID string) (*shipmentDoc, error) {
	var doc shipmentDoc
	err := r.shipments(orderID).FindOne(ctx, bson.D{{Key: "_id", Value: orderID}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load shipment %s: %w", orderID, err)
	}
	return &doc, nil
}

// stateProjection leaves the inbox and outbox out of query results.
var stateProjection = bson.D{{Key: "processed", Value: 0}, {Key: "outbox", Value: 0}}

// Get implements app.Repository.
func (r *ShipmentMongoRepository) Get(ctx context.Context, orderID string) (*shipment.Shipment, error) {
	var doc shipmentDoc
	err := r.shipments(orderID).FindOne(ctx, bson.D{{Key: "_id", Value: orderID}}, options.FindOne().SetProjection(stateProjection)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, shipment.NotFound(orderID)
	}
	if err != nil {
		return nil, fmt.Errorf("get shipment %s: %w", orderID, err)
	}
	return doc.shipment(), nil
}

// ListByCustomer implements app.Repository. The page token is the position
// of the page's last shipment: created_at (ms) and order id, the sort key.
func (r *ShipmentMongoRepository) ListByCustomer(ctx context.Context, customerID string, pageSize int, pageToken string) ([]*shipment.Shipment, string, error) {
	filter := bson.D{{Key: "customer_id", Value: customerID}}
	if pageToken != "" {
		after, orderID, err := decodePageToken(pageToken)
		if err != nil {
			return nil, "", err
		}
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: after}}}},
			bson.D{{Key: "created_at", Value: after}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: orderID}}}},
		}})
	}
	docs, err := r.findInBuckets(ctx, filter, int64(pageSize)+1)
	if err != nil {
		return nil, "", fmt.Errorf("list shipments of %s: %w", customerID, err)
	}
	var next string
	if len(docs) > pageSize {
		docs = docs[:pageSize]
		last := docs[len(docs)-1]
		next = encodePageToken(last.CreatedAt, last.OrderID)
	}
	page := make([]*shipment.Shipment, len(docs))
	for i := range docs {
		page[i] = docs[i].shipment()
	}
	return page, next, nil
}

// findInBuckets runs the query on every bucket at once, newest first, and
// merges the results: the first limit documents of them all.
func (r *ShipmentMongoRepository) findInBuckets(ctx context.Context, filter bson.D, limit int64) ([]shipmentDoc, error) {
	results := make([][]shipmentDoc, 0, len(r.buckets))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for name, coll := range r.buckets {
		g.Go(func() error {
			cur, err := coll.Find(gctx, filter, options.Find().SetSort(newestFirst).SetLimit(limit).SetProjection(stateProjection))
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			var docs []shipmentDoc
			if err := cur.All(gctx, &docs); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			mu.Lock()
			results = append(results, docs)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	merged := slices.Concat(results...)
	slices.SortFunc(merged, func(a, b shipmentDoc) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.OrderID, a.OrderID)
	})
	return merged[:min(int64(len(merged)), limit)], nil
}

// newestFirst is ListShipments' order (the page token's position).
var newestFirst = bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}

func encodePageToken(createdAt time.Time, orderID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(createdAt.UnixMilli(), 10) + "|" + orderID))
}

func decodePageToken(token string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return time.Time{}, "", app.ErrBadPageToken
	}
	millis, orderID, ok := strings.Cut(string(raw), "|")
	ms, err := strconv.ParseInt(millis, 10, 64)
	if !ok || err != nil || orderID == "" {
		return time.Time{}, "", app.ErrBadPageToken
	}
	return time.UnixMilli(ms).UTC(), orderID, nil
}
