package adapters

import "sync"

// orderLocks serializes every write of one order's document inside this
// process. FerretDB v1 does not make an update of one document atomic against
// a concurrent update of the same document: both read it, both write back, and
// one write is lost while both are acknowledged — version-checked filters
// included (see shared/INFRA-NOTES.md). So handlers and the relay take the
// order's lock around each read-decide-write. Entries live only while held.
type orderLocks struct {
	mu    sync.Mutex
	locks map[string]*orderLock
}

type orderLock struct {
	mu   sync.Mutex
	refs int // holders and waiters; the entry is dropped at zero
}

func newOrderLocks() *orderLocks { return &orderLocks{locks: make(map[string]*orderLock)} }

// lock blocks until the caller holds orderID's lock and returns its release.
func (l *orderLocks) lock(orderID string) (unlock func()) {
	l.mu.Lock()
	e := l.locks[orderID]
	if e == nil {
		e = &orderLock{}
		l.locks[orderID] = e
	}
	e.refs++
	l.mu.Unlock()

	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(l.locks, orderID)
		}
		l.mu.Unlock()
	}
}

// held reports how many orders have a holder or waiter (tests check that
// entries do not leak).
func (l *orderLocks) held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.locks)
}
