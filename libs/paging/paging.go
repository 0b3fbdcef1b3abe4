// Package paging is keyset pagination for the services' List methods: a page
// size check, opaque page tokens that carry a (time, id) cursor, and the cut
// of one extra fetched row into "there is a next page".
package paging

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Cursor is a position in a newest-first list: the last row's time and its
// id, which breaks ties between rows of the same time.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// ErrBadToken is returned for a page token this service did not hand out.
var ErrBadToken = errors.New("is not a token this service returned")

// Size checks a requested page size: 0 means def, otherwise 1..max.
func Size(requested, def, max int) (int, error) {
	switch {
	case requested < 0 || requested > max:
		return 0, fmt.Errorf("must be 0 to %d, got %d", max, requested)
	case requested == 0:
		return def, nil
	}
	return requested, nil
}

type token struct {
	CreatedAtMicros int64  `json:"t"`
	ID              string `json:"id"`
}

// Encode makes the opaque token for a cursor.
func Encode(c Cursor) string {
	b, _ := json.Marshal(token{CreatedAtMicros: c.CreatedAt.UnixMicro(), ID: c.ID}) // a struct of an int and a string cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode reads a token back: nil for "" (the first page), ErrBadToken for
// anything Encode did not make.
func Decode(s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var t token
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.ID == "" {
		return nil, ErrBadToken
	}
	return &Cursor{CreatedAt: time.UnixMicro(t.CreatedAtMicros).UTC(), ID: t.ID}, nil
}

// Cut takes rows fetched with a limit of size+1 and returns the page and the
// next page's token ("" when this is the last page).
func Cut[T any](rows []T, size int, cursorOf func(T) Cursor) ([]T, string) {
	if len(rows) <= size {
		return rows, ""
	}
	rows = rows[:size]
	return rows, Encode(cursorOf(rows[len(rows)-1]))
}
