package outbox

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Admin is what an operator does with a service's outbox (sagactl outbox,
// through the service's ops port): list what is parked or waiting, and
// un-park rows so the relay publishes them again. Both the MySQL relay and
// shipping's document relay implement it.
type Admin interface {
	// ListOutbox returns up to limit rows, oldest first: parked rows when
	// parked is true, else rows waiting to be published.
	ListOutbox(ctx context.Context, parked bool, limit int) ([]AdminRow, error)
	// RetryParked un-parks the row with id (every parked row when id is "")
	// and returns how many it un-parked; ErrNotParked when id names no
	// parked row, ErrBadID when id cannot be an id of this outbox.
	RetryParked(ctx context.Context, id string) (int, error)
	// RelayStatus says whether the relay can work right now.
	RelayStatus() Status
	// Counts reads the exact backlog, the oldest unsent row's age and the
	// parked rows (what the metrics report at scrape time).
	Counts(ctx context.Context) (Gauges, error)
}

// Errors of Admin.RetryParked.
var (
	ErrNotParked = errors.New("no parked outbox row with that id")
	ErrBadID     = errors.New("not an outbox row id")
)

// AdminRow is one outbox row as the admin API shows it (JSON).
type AdminRow struct {
	// ID names the row for RetryParked: the row id (MySQL) or the event id (shipping).
	ID        string     `json:"id"`
	EventID   string     `json:"event_id"`
	Type      string     `json:"type,omitempty"`
	Topic     string     `json:"topic"`
	Key       string     `json:"key"`
	Bytes     int        `json:"bytes"`
	Attempts  int        `json:"attempts"`
	CreatedAt time.Time  `json:"created_at"`
	ParkedAt  *time.Time `json:"parked_at,omitempty"`
	LastError string     `json:"last_error,omitempty"`
}

// State is what a relay is doing.
type State string

// Relay states. A service can work when its relay is active or standing by.
const (
	StateStarting State = "starting" // Run has not reached the store yet
	StateActive   State = "active"   // publishing
	StateStandby  State = "standby"  // another instance holds the relay lock
	StateFailing  State = "failing"  // store or Kafka errors; retrying with backoff
	StateStopped  State = "stopped"  // Run returned
)

// Status is a relay's state, since when, and the error that made it failing.
type Status struct {
	State     State     `json:"state"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
}

// Err is nil when the relay can work right now (active or standby), else
// why not: what readiness reports.
func (s Status) Err() error {
	switch s.State {
	case StateActive, StateStandby:
		return nil
	case StateFailing:
		return errors.New("outbox relay failing since " + s.Since.UTC().Format(time.RFC3339) + ": " + s.LastError)
	default:
		return errors.New("outbox relay " + string(s.State))
	}
}

// StatusTracker holds a relay's Status for concurrent readers (readiness,
// the admin API) while the relay's loop sets it. The zero value is "starting".
type StatusTracker struct {
	mu sync.Mutex
	s  Status
}

// Set records state (and err's text when failing); Since moves only when the
// state changes.
func (t *StatusTracker) Set(state State, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.s.State != state || t.s.Since.IsZero() {
		t.s.State, t.s.Since = state, time.Now()
	}
	t.s.LastError = ""
	if err != nil {
		t.s.LastError = err.Error()
	}
}

// Get returns the current status.
func (t *StatusTracker) Get() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.s
	if s.State == "" {
		s.State = StateStarting
	}
	return s
}

// Paths of the admin API on a service's ops port.
const (
	AdminListPath  = "/admin/outbox"       // GET ?state=parked|pending&limit=N → AdminList
	AdminRetryPath = "/admin/outbox/retry" // POST ?id=ID or ?all=true → AdminRetried
)

// AdminList is the answer of GET AdminListPath.
type AdminList struct {
	Service string     `json:"service"`
	State   string     `json:"state"` // which rows: parked or pending
	Relay   Status     `json:"relay"`
	Rows    []AdminRow `json:"rows"`
}

// AdminRetried is the answer of POST AdminRetryPath.
type AdminRetried struct {
	Service string `json:"service"`
	Retried int    `json:"retried"`
}
