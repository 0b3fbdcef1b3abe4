package adapters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sagasuite/sagasuite/libs/bus"
)

// Publisher is what the relay publishes through (a *bus.Producer, acks=all).
type Publisher = bus.Publisher

// RelayConfig tunes an OutboxRelay; zero values take the defaults.
type RelayConfig struct {
	// BatchSize is the most documents published per pass (default 128).
	BatchSize int
	// PollInterval is how often the relay looks for markers when no write of
	// this process woke it (default 100ms).
	PollInterval time.Duration
	Logger       *slog.Logger

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
type OutboxRelay struct {
	repo *ShipmentMongoRepository
	pub  Publisher
	cfg  RelayConfig
}

// NewOutboxRelay makes a relay over repo's documents.
func NewOutboxRelay(repo *ShipmentMongoRepository, pub Publisher, cfg RelayConfig) *OutboxRelay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 128
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &OutboxRelay{repo: repo, pub: pub, cfg: cfg}
}

// Run publishes until ctx ends; errors are logged and retried with backoff.
// It starts with RecoverMarkers, so entries whose marker was lost are found.
func (r *OutboxRelay) Run(ctx context.Context) error {
	if n, err := r.repo.RecoverMarkers(ctx); err != nil {
		r.cfg.Logger.WarnContext(ctx, "shipping outbox: recovering markers", "error", err)
	} else if n > 0 {
		r.cfg.Logger.InfoContext(ctx, "shipping outbox: documents with unpublished entries", "documents", n)
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 50*time.Millisecond, 5*time.Second
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	for {
		n, err := r.Flush(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			r.cfg.Logger.ErrorContext(ctx, "shipping outbox relay", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(bo.NextBackOff()):
			}
			continue
		}
		bo.Reset()
		if n == r.cfg.BatchSize {
			continue // more is waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.repo.Pending():
		case <-poll.C:
		}
	}
}

type pendingMarker struct {
	OrderID string `bson:"_id"`
}

// Flush publishes the entries of up to BatchSize pending documents, oldest
// marker first, removes them, and returns how many documents it handled.
func (r *OutboxRelay) Flush(ctx context.Context) (int, error) {
	cur, err := r.repo.pending.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "since", Value: 1}}).SetLimit(int64(r.cfg.BatchSize)))
	if err != nil {
		return 0, fmt.Errorf("read pending outbox markers: %w", err)
	}
	var markers []pendingMarker
	if err := cur.All(ctx, &markers); err != nil {
		return 0, fmt.Errorf("read pending outbox markers: %w", err)
	}
	if len(markers) == 0 {
		return 0, nil
	}
	var (
		msgs      []bus.Message
		published = make(map[string][]string, len(markers)) // order id → event ids
		orderIDs  = make([]string, 0, len(markers))
	)
	for _, m := range markers {
		doc, err := r.repo.loadOutbox(ctx, m.OrderID)
		if err != nil {
			return 0, err
		}
		orderIDs = append(orderIDs, m.OrderID)
		if doc == nil {
			continue
		}
		for _, item := range doc.Outbox {
			msgs = append(msgs, item.message())
			published[m.OrderID] = append(published[m.OrderID], item.EventID)
		}
	}
	if err := r.pub.Publish(ctx, msgs...); err != nil {
		return 0, fmt.Errorf("publish %d shipping events: %w", len(msgs), err)
	}
	if r.cfg.afterPublish != nil {
		if err := r.cfg.afterPublish(orderIDs); err != nil {
			return 0, err
		}
	}
	var errs []error
	for _, orderID := range orderIDs {
		if err := r.repo.removePublished(ctx, orderID, published[orderID]); err != nil {
			errs = append(errs, err)
		}
	}
	return len(orderIDs), errors.Join(errs...)
}

// loadOutbox reads only what the relay needs of a document.
func (r *ShipmentMongoRepository) loadOutbox(ctx context.Context, orderID string) (*shipmentDoc, error) {
	var doc shipmentDoc
	err := r.shipments(orderID).FindOne(ctx, bson.D{{Key: "_id", Value: orderID}},
		options.FindOne().SetProjection(bson.D{{Key: "outbox", Value: 1}, {Key: "version", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load outbox of %s: %w", orderID, err)
	}
	return &doc, nil
}

// removePublished drops the entries with the given event ids from the
// order's outbox (under the order's lock, version-checked) and the order's
// marker once its outbox is empty. Entries added since the relay read the
// document stay for the next pass.
func (r *ShipmentMongoRepository) removePublished(ctx context.Context, orderID string, eventIDs []string) error {
	unlock := r.locks.lock(orderID)
	defer unlock()
	for attempt := 1; ; attempt++ {
		err := r.removePublishedOnce(ctx, orderID, eventIDs)
		if !errors.Is(err, ErrConflict) || attempt == maxConflictRetries {
			return err
		}
	}
}

func (r *ShipmentMongoRepository) removePublishedOnce(ctx context.Context, orderID string, eventIDs []string) error {
	doc, err := r.loadOutbox(ctx, orderID)
	if err != nil {
		return err
	}
	remaining := []outboxItem{}
	if doc != nil {
		sent := make(map[string]bool, len(eventIDs))
		for _, id := range eventIDs {
			sent[id] = true
		}
		for _, item := range doc.Outbox {
			if !sent[item.EventID] {
				remaining = append(remaining, item)
			}
		}
		if len(remaining) < len(doc.Outbox) {
			update := bson.D{
				{Key: "$set", Value: bson.D{{Key: "outbox", Value: remaining}}},
				{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}},
			}
			if err := r.updateVersioned(ctx, orderID, doc.Version, update); err != nil {
				return err
			}
		}
	}
	if len(remaining) > 0 {
		return nil
	}
	if _, err := r.pending.DeleteOne(ctx, bson.D{{Key: "_id", Value: orderID}}); err != nil {
		return fmt.Errorf("drop outbox marker of %s: %w", orderID, err)
	}
	return nil
}

// RecoverMarkers re-creates the marker of every document with outbox entries
// (one scan of every bucket): run at start-up, it makes the relay correct
// even if markers were lost, e.g. deleted by hand.
func (r *ShipmentMongoRepository) RecoverMarkers(ctx context.Context) (int, error) {
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
