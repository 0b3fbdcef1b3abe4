// Package fielderr is the one error type for bad input across the services'
// domains: it names the field at fault in the API's spelling
// ("lines[1].quantity"), so a gRPC port can answer InvalidArgument naming it.
// Plain Go, no dependencies: domain packages may import it.
package fielderr

import (
	"errors"
	"fmt"
)

// ErrInvalid is the class of every *Error: errors.Is(err, ErrInvalid).
var ErrInvalid = errors.New("invalid argument")

// Error is bad input in one field.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// New returns an *Error for field with a formatted reason.
func New(field, format string, args ...any) error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}
