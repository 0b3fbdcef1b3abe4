package adapters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// LeaseCollection holds the writer lease: one document per epoch (_id = the
// epoch number, the fencing token). A process becomes the writer by
// inserting the next epoch's document — an insert with a unique _id, which
// FerretDB v1 does make atomic (unlike a conditional update of one
// document, which can have two winners). Only the epoch's holder ever
// updates its own document (the heartbeat and the release), so no document
// here is updated concurrently either. README.md has the argument.
const LeaseCollection = "writer_lease"

// ErrNotWriter is returned by guarded writes of a process that does not hold
// the writer lease right now (a standby, or a holder whose lease lapsed).
// It is transient: the bus retries the event, the relay waits for a term.
var ErrNotWriter = errors.New("this shipping process is not the writer (standby or lease lapsed)")

// ErrFenced means a document carries a newer epoch than this process's: a
// newer writer exists, so this one steps down.
var ErrFenced = errors.New("fenced: a newer writer epoch wrote this document")

// LeaseConfig tunes a WriterLease. Only TTL is a setting (SHIPPING_LEASE_TTL);
// the rest derive from it.
type LeaseConfig struct {
	// TTL: a holder whose heartbeat stops is replaced after about 2×TTL (TTL
	// of silence seen by a standby, then TTL of waiting after its insert).
	TTL time.Duration
	// Holder names this process in the lease documents (host, pid, random).
	Holder string
	Logger *slog.Logger
}

// renewEvery and margin are fractions of the TTL: the holder renews six
// times per TTL and stops writing one sixth of a TTL before a successor
// could start (the margin absorbs a write the server still runs after its
// client gave up, and clock-rate differences).
func (c LeaseConfig) renewEvery() time.Duration { return c.TTL / 6 }
func (c LeaseConfig) margin() time.Duration     { return c.TTL / 6 }

type leaseDoc struct {
	Epoch      int64     `bson:"_id"`
	Holder     string    `bson:"holder"`
	Beat       int64     `bson:"beat"`
	Released   bool      `bson:"released"`
	AcquiredAt time.Time `bson:"acquired_at"` // wall clock, for operators only
	RenewedAt  time.Time `bson:"renewed_at"`  // wall clock, for operators only
}

// WriterLease is the single-writer lease of one shipping database. Run keeps
// it (acquire, renew, release); Guard admits one write under it; Term hands
// the consumer and the relay a context that lives as long as this process's
// turn as the writer.
//
// All timing is on this process's monotonic clock; the store holds no
// times that matter, so clock skew between processes does not break it.
type WriterLease struct {
	coll *mongo.Collection
	cfg  LeaseConfig

	// ops is held shared by every guarded write; stepping down takes it
	// exclusively, so a term ends only after its writes are done.
	ops sync.RWMutex

	mu         sync.Mutex
	epoch      int64     // ours; 0: none
	notBefore  time.Time // a fresh epoch writes only from here (the predecessor's lease has surely lapsed)
	validUntil time.Time // last renewal's send time + TTL − margin
	termCtx    context.Context
	endTerm    context.CancelFunc
	termStart  chan struct{} // closed when a term starts; replaced when it ends
	// a standby's view of the latest epoch: what it saw and since when
	seen   leaseDoc
	seenAt time.Time

	meter     metric.Meter
	takeovers metric.Int64Counter
	holder    metric.Int64ObservableGauge
	epochNow  metric.Int64ObservableGauge
}

// NewWriterLease keeps the lease in db's LeaseCollection.
func NewWriterLease(db *mongo.Database, cfg LeaseConfig) (*WriterLease, error) {
	if cfg.TTL < time.Second {
		return nil, fmt.Errorf("writer lease TTL must be at least 1s, got %s", cfg.TTL)
	}
	if cfg.Holder == "" {
		return nil, errors.New("writer lease needs a holder name")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &WriterLease{coll: db.Collection(LeaseCollection), cfg: cfg, termStart: make(chan struct{})}
	l.meter = otel.Meter("github.com/sagasuite/sagasuite/services/shipping")
	l.takeovers, _ = l.meter.Int64Counter("sagasuite.shipping.lease_acquired",
		metric.WithDescription("times this process took a new writer epoch"))
	l.holder, _ = l.meter.Int64ObservableGauge("sagasuite.shipping.lease_holder",
		metric.WithDescription("1 while this process is the shipping writer, 0 while it stands by"))
	l.epochNow, _ = l.meter.Int64ObservableGauge("sagasuite.shipping.lease_epoch",
		metric.WithDescription("the writer epoch this process holds (0: none)"))
	return l, nil
}

// Holding reports whether this process is the writer right now, and its epoch.
func (l *WriterLease) Holding() (bool, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.termCtx != nil, l.epoch
}

// Guard admits one write: it returns a context that ends when the lease
// could lapse (the write must not outlive it), the epoch to stamp and fence
// the write with, and done, to call when the write is over. ErrNotWriter
// when this process is not the writer now.
func (l *WriterLease) Guard(ctx context.Context) (context.Context, int64, func(), error) {
	l.ops.RLock()
	l.mu.Lock()
	epoch, until, active := l.epoch, l.validUntil, l.termCtx != nil
	l.mu.Unlock()
	if !active || !time.Now().Before(until) {
		l.ops.RUnlock()
		return nil, 0, nil, ErrNotWriter
	}
	gctx, cancel := context.WithDeadline(ctx, until)
	return gctx, epoch, func() { cancel(); l.ops.RUnlock() }, nil
}

// Term blocks until this process is the writer and returns a context (a
// child of ctx) that ends when it no longer is (lost, lapsed, shutting
// down), or ctx's error.
func (l *WriterLease) Term(ctx context.Context) (context.Context, error) {
	for {
		l.mu.Lock()
		term, started := l.termCtx, l.termStart
		l.mu.Unlock()
		if term != nil && term.Err() == nil {
			tctx, cancel := context.WithCancel(ctx)
			context.AfterFunc(term, cancel)
			return tctx, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-started:
		}
	}
}

// Fenced tells the lease that a document carried a newer epoch than ours:
// a successor exists, so step down now instead of at the next renewal.
func (l *WriterLease) Fenced(epoch int64) {
	l.mu.Lock()
	mine := l.epoch == epoch && epoch != 0
	l.mu.Unlock()
	if mine {
		go l.stepDown(epoch, "a document carries a newer epoch", true)
	}
}

// Run keeps the lease until ctx ends: a standby watches the latest epoch
// and takes the next one when its holder fell silent for TTL (or released
// it); the holder renews and steps down when it sees a newer epoch or its
// renewals keep failing. At the end the holder stops writing and releases
// the epoch, so a successor starts at once (a rolling update's overlap).
func (l *WriterLease) Run(ctx context.Context) error {
	if reg, err := l.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		holding, epoch := l.Holding()
		v := int64(0)
		if holding {
			v = 1
		}
		o.ObserveInt64(l.holder, v)
		o.ObserveInt64(l.epochNow, epoch)
		return nil
	}, l.holder, l.epochNow); err == nil {
		defer func() { _ = reg.Unregister() }()
	}
	tick := time.NewTicker(l.cfg.renewEvery())
	defer tick.Stop()
	for {
		l.step(ctx)
		select {
		case <-ctx.Done():
			l.release()
			return nil
		case <-tick.C:
		}
	}
}

func (l *WriterLease) step(ctx context.Context) {
	l.mu.Lock()
	epoch := l.epoch
	l.mu.Unlock()
	opCtx, cancel := context.WithTimeout(ctx, l.cfg.renewEvery()*2)
	defer cancel()
	if epoch == 0 {
		if err := l.tryAcquire(opCtx); err != nil && ctx.Err() == nil {
			l.cfg.Logger.WarnContext(ctx, "shipping writer lease: cannot check the lease", "error", err)
		}
		return
	}
	l.renew(ctx, opCtx, epoch)
}

// latest reads the newest epoch's document (nil when none exists).
func (l *WriterLease) latest(ctx context.Context) (*leaseDoc, error) {
	var doc leaseDoc
	err := l.coll.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read writer lease: %w", err)
	}
	return &doc, nil
}

func (l *WriterLease) tryAcquire(ctx context.Context) error {
	latest, err := l.latest(ctx)
	if err != nil {
		return err
	}
	next, wait := int64(1), time.Duration(0)
	switch {
	case latest == nil:
		// Nobody ever wrote: no predecessor to outwait.
	case latest.Released:
		// The holder stopped writing before it released: no wait either.
		next = latest.Epoch + 1
	default:
		now := time.Now()
		if latest.Epoch != l.seen.Epoch || latest.Beat != l.seen.Beat || l.seenAt.IsZero() {
			l.seen, l.seenAt = *latest, now
			return nil
		}
		if now.Sub(l.seenAt) < l.cfg.TTL {
			return nil // the holder may be alive
		}
		// Silent for TTL: take the next epoch, then wait a full TTL before
		// writing. The holder's last successful renewal read the lease before
		// our insert, so its lease ends before insert + TTL − margin: it has
		// stopped writing by the time we start, whatever we observed.
		next, wait = latest.Epoch+1, l.cfg.TTL
	}
	now := time.Now()
	_, err = l.coll.InsertOne(ctx, leaseDoc{Epoch: next, Holder: l.cfg.Holder, AcquiredAt: now.UTC(), RenewedAt: now.UTC()})
	if mongo.IsDuplicateKeyError(err) {
		l.seenAt = time.Time{} // someone else took it; watch the new one
		return nil
	}
	if err != nil {
		return fmt.Errorf("take writer epoch %d: %w", next, err)
	}
	inserted := time.Now()
	l.mu.Lock()
	l.epoch = next
	l.notBefore = inserted.Add(wait)
	l.validUntil = now.Add(l.cfg.TTL - l.cfg.margin())
	l.mu.Unlock()
	l.takeovers.Add(ctx, 1)
	l.cfg.Logger.InfoContext(ctx, "shipping writer lease: epoch taken", "epoch", next, "holder", l.cfg.Holder,
		"previous_holder", holderOf(latest), "writes_from", wait.String())
	// Old epochs are history; nobody updates them but their holders, which
	// step down when theirs is gone.
	if _, err := l.coll.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: next - 8}}}}); err != nil {
		l.cfg.Logger.WarnContext(ctx, "shipping writer lease: pruning old epochs", "error", err)
	}
	l.maybeStartTerm()
	return nil
}

func holderOf(d *leaseDoc) string {
	if d == nil {
		return ""
	}
	return d.Holder
}

// renew proves the holder alive: it checks that no newer epoch exists, then
// bumps its own document's beat. Only on success is the lease extended, to
// the check's send time + TTL − margin.
func (l *WriterLease) renew(ctx, opCtx context.Context, epoch int64) {
	sent := time.Now()
	latest, err := l.latest(opCtx)
	if err == nil && latest != nil && latest.Epoch != epoch {
		l.stepDown(epoch, fmt.Sprintf("epoch %d taken by %s", latest.Epoch, latest.Holder), true)
		return
	}
	if err == nil && latest == nil {
		l.stepDown(epoch, "lease documents gone", true)
		return
	}
	var res *mongo.UpdateResult
	if err == nil {
		res, err = l.coll.UpdateOne(opCtx, bson.D{{Key: "_id", Value: epoch}, {Key: "holder", Value: l.cfg.Holder}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "beat", Value: 1}}}, {Key: "$set", Value: bson.D{{Key: "renewed_at", Value: sent.UTC()}}}})
	}
	if err == nil && res.MatchedCount == 0 {
		l.stepDown(epoch, "epoch document gone", true)
		return
	}
	if err != nil {
		l.mu.Lock()
		lapsed := !time.Now().Before(l.validUntil)
		l.mu.Unlock()
		if ctx.Err() == nil {
			l.cfg.Logger.WarnContext(ctx, "shipping writer lease: renewal failed", "epoch", epoch, "lapsed", lapsed, "error", err)
		}
		if lapsed {
			// Stop writing but keep the epoch: a later renewal that finds no
			// newer epoch resumes (a successor would have to wait TTL after
			// its insert, which follows our last successful check).
			l.stepDown(epoch, "renewals failing", false)
		}
		return
	}
	l.mu.Lock()
	l.validUntil = sent.Add(l.cfg.TTL - l.cfg.margin())
	l.mu.Unlock()
	l.maybeStartTerm()
}

// maybeStartTerm starts a term when we hold a valid epoch past its wait.
func (l *WriterLease) maybeStartTerm() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.epoch == 0 || l.termCtx != nil || now.Before(l.notBefore) || !now.Before(l.validUntil) {
		return
	}
	l.termCtx, l.endTerm = context.WithCancel(context.Background())
	close(l.termStart)
	l.termStart = make(chan struct{})
	l.cfg.Logger.Info("shipping writer lease: this process is the writer", "epoch", l.epoch, "holder", l.cfg.Holder)
}

// stepDown ends the current term (if any) and waits for its guarded writes;
// forget drops the epoch (lost to a successor), else it is kept for a resume.
func (l *WriterLease) stepDown(epoch int64, why string, forget bool) {
	l.mu.Lock()
	if l.epoch != epoch {
		l.mu.Unlock()
		return
	}
	end := l.endTerm
	l.termCtx, l.endTerm = nil, nil
	if forget {
		l.epoch = 0
	}
	l.mu.Unlock()
	if end != nil {
		end()
		l.cfg.Logger.Warn("shipping writer lease: this process stopped writing", "epoch", epoch, "reason", why)
	}
	l.ops.Lock() // every guarded write of the term is over
	l.ops.Unlock()
}

// release ends our term and marks the epoch released, so a standby takes
// over without waiting: we have stopped writing for good.
func (l *WriterLease) release() {
	l.mu.Lock()
	epoch := l.epoch
	l.mu.Unlock()
	if epoch == 0 {
		return
	}
	l.stepDown(epoch, "shutting down", true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := l.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: epoch}, {Key: "holder", Value: l.cfg.Holder}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "released", Value: true}}}})
	if err != nil {
		l.cfg.Logger.Warn("shipping writer lease: release failed; a standby takes over after the TTL", "epoch", epoch, "error", err)
		return
	}
	l.cfg.Logger.Info("shipping writer lease: released", "epoch", epoch)
}
