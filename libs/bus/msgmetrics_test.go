package bus

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

// error.type stays a small set: the class the consumer acts on, or the
// innermost cause's Go type, never a message (which holds ids).
func TestErrorTypeIsLowCardinality(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{Permanent(errors.New("order 42 not found")), "permanent"},
		{fmt.Errorf("store: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("drain: %w", context.Canceled), "canceled"},
		{fmt.Errorf("record: %w", fmt.Errorf("open: %w", &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist})), "*fs.PathError"},
		{errors.New("order 42: deadlock"), "*errors.errorString"},
	} {
		if got := errorType(tt.err); got != tt.want {
			t.Errorf("errorType(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
