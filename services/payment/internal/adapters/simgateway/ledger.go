package simgateway

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/sagasuite/sagasuite/services/payment/internal/domain/payment"
)

// Charge statuses in the ledger.
const (
	StatusSucceeded = "succeeded"
	StatusDeclined  = "declined"
)

// ChargeRecord is the gateway's record of the charge made under Key.
type ChargeRecord struct {
	Key           string    `json:"key"`
	Status        string    `json:"status"`
	ChargeID      string    `json:"charge_id,omitempty"`
	AmountMinor   int64     `json:"amount_minor"`
	Currency      string    `json:"currency"`
	DeclineReason string    `json:"decline_reason,omitempty"`
	DeclineCode   string    `json:"decline_code,omitempty"`
	DeclineDetail string    `json:"decline_detail,omitempty"`
	At            time.Time `json:"at"`
}

// Result is the charge as Charge returns it: the charge id, or a *payment.Decline.
func (c ChargeRecord) Result() (string, error) {
	if c.Status == StatusDeclined {
		return "", &payment.Decline{Reason: payment.FailureReason(c.DeclineReason), Code: c.DeclineCode, Detail: c.DeclineDetail}
	}
	return c.ChargeID, nil
}

// RefundRecord is the gateway's record of the refund made under Key, of the
// charge made under ChargeKey.
type RefundRecord struct {
	Key         string    `json:"key"`
	RefundID    string    `json:"refund_id"`
	ChargeID    string    `json:"charge_id"`
	ChargeKey   string    `json:"charge_key"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	At          time.Time `json:"at"`
}

// Account is what the ledger holds for one charge key (an order): its
// charge (nil: none) and the refunds of it.
type Account struct {
	Key     string         `json:"key"`
	Charge  *ChargeRecord  `json:"charge"`
	Refunds []RefundRecord `json:"refunds"`
	// NetMinor is the money the gateway holds: a succeeded charge minus its refunds.
	NetMinor int64 `json:"net_minor"`
}

// entry is one line of the ledger file.
type entry struct {
	Charge *ChargeRecord `json:"charge,omitempty"`
	Refund *RefundRecord `json:"refund,omitempty"`
}

// Ledger records charges and refunds by idempotency key. With a file, each
// record is appended and synced before the call answers, and the file is
// replayed on open, so the ledger outlives the processes that call it.
type Ledger struct {
	mu       sync.Mutex
	file     *os.File
	charges  map[string]ChargeRecord
	byID     map[string]string // charge id → charge key
	refunds  map[string]RefundRecord
	ofCharge map[string][]string // charge key → refund keys, in order
}

// OpenLedger opens (or creates) the ledger file at path; "" keeps the ledger
// in memory.
func OpenLedger(path string) (*Ledger, error) {
	l := &Ledger{charges: map[string]ChargeRecord{}, byID: map[string]string{},
		refunds: map[string]RefundRecord{}, ofCharge: map[string][]string{}}
	if path == "" {
		return l, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("simgateway: open ledger: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var good int64 // bytes up to the end of the last whole record
	for line := 1; sc.Scan(); line++ {
		var e entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// A torn last line (a crash mid-append) was never acknowledged:
			// cut it off, so the next record starts on a line of its own.
			if !sc.Scan() {
				if err := f.Truncate(good); err != nil {
					f.Close()
					return nil, fmt.Errorf("simgateway: cut torn ledger line: %w", err)
				}
				break
			}
			f.Close()
			return nil, fmt.Errorf("simgateway: ledger %s line %d: %w", path, line, err)
		}
		good += int64(len(sc.Bytes())) + 1
		l.add(e)
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, fmt.Errorf("simgateway: read ledger %s: %w", path, err)
	}
	l.file = f
	return l, nil
}

// Close closes the ledger file.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}

func (l *Ledger) add(e entry) {
	if c := e.Charge; c != nil {
		l.charges[c.Key] = *c
		if c.ChargeID != "" {
			l.byID[c.ChargeID] = c.Key
		}
	}
	if r := e.Refund; r != nil {
		l.refunds[r.Key] = *r
		l.ofCharge[r.ChargeKey] = append(l.ofCharge[r.ChargeKey], r.Key)
	}
}

// persist appends e durably, then applies it; l.mu is held.
func (l *Ledger) persist(e entry) error {
	if l.file != nil {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := l.file.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("simgateway: append to ledger: %w", err)
		}
		if err := l.file.Sync(); err != nil {
			return fmt.Errorf("simgateway: sync ledger: %w", err)
		}
	}
	l.add(e)
	return nil
}

// charge returns the record under key, or decides and stores a new one.
func (l *Ledger) charge(key string, amount payment.Money, decide func() ChargeRecord) (ChargeRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.charges[key]; ok {
		if c.AmountMinor != amount.AmountMinor || c.Currency != amount.Currency {
			return ChargeRecord{}, fmt.Errorf("%w: key %s was used for %d %s, now %d %s", ErrRejected, key,
				c.AmountMinor, c.Currency, amount.AmountMinor, amount.Currency)
		}
		return c, nil
	}
	c := decide()
	return c, l.persist(entry{Charge: &c})
}

// refund returns the refund under key, or stores a new one when the charge
// holds enough money.
func (l *Ledger) refund(key, chargeID string, amount payment.Money, refundID string) (RefundRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.refunds[key]; ok {
		if r.ChargeID != chargeID || r.AmountMinor != amount.AmountMinor {
			return RefundRecord{}, fmt.Errorf("%w: refund key %s was used for %d of charge %s", ErrRejected, key, r.AmountMinor, r.ChargeID)
		}
		return r, nil
	}
	chargeKey, ok := l.byID[chargeID]
	if !ok {
		return RefundRecord{}, fmt.Errorf("%w: no charge %s", ErrRejected, chargeID)
	}
	c := l.charges[chargeKey]
	if amount.Currency != c.Currency || amount.AmountMinor < 0 || amount.AmountMinor > l.netLocked(chargeKey) {
		return RefundRecord{}, fmt.Errorf("%w: refund of %d %s exceeds what charge %s holds (%d %s)", ErrRejected,
			amount.AmountMinor, amount.Currency, chargeID, l.netLocked(chargeKey), c.Currency)
	}
	r := RefundRecord{Key: key, RefundID: refundID, ChargeID: chargeID, ChargeKey: chargeKey,
		AmountMinor: amount.AmountMinor, Currency: amount.Currency, At: time.Now().UTC()}
	return r, l.persist(entry{Refund: &r})
}

func (l *Ledger) netLocked(chargeKey string) int64 {
	c, ok := l.charges[chargeKey]
	if !ok || c.Status != StatusSucceeded {
		return 0
	}
	net := c.AmountMinor
	for _, k := range l.ofCharge[chargeKey] {
		net -= l.refunds[k].AmountMinor
	}
	return net
}

// Charge returns the charge under key, or ErrNotFound.
func (l *Ledger) Charge(key string) (ChargeRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.charges[key]
	if !ok {
		return ChargeRecord{}, fmt.Errorf("%w: charge %s", ErrNotFound, key)
	}
	return c, nil
}

// Refund returns the refund under key, or ErrNotFound.
func (l *Ledger) Refund(key string) (RefundRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.refunds[key]
	if !ok {
		return RefundRecord{}, fmt.Errorf("%w: refund %s", ErrNotFound, key)
	}
	return r, nil
}

// Account returns what the ledger holds for charge key (an empty account
// when nothing was charged under it).
func (l *Ledger) Account(key string) Account {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := Account{Key: key, Refunds: []RefundRecord{}, NetMinor: l.netLocked(key)}
	if c, ok := l.charges[key]; ok {
		a.Charge = &c
	}
	for _, k := range l.ofCharge[key] {
		a.Refunds = append(a.Refunds, l.refunds[k])
	}
	slices.SortFunc(a.Refunds, func(x, y RefundRecord) int { return x.At.Compare(y.At) })
	return a
}

// IsNotFound reports whether err says the gateway has no record.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
