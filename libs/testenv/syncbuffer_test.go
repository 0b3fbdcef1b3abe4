package testenv_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/sagasuite/sagasuite/libs/testenv"
)

// Writers on many goroutines lose nothing (run with -race); a limit keeps
// the start and still reports every write as done.
func TestSyncBuffer(t *testing.T) {
	var b testenv.SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if n, err := b.Write([]byte("x\n")); n != 2 || err != nil {
					t.Errorf("Write: %d, %v", n, err)
				}
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "x\n"); got != 800 {
		t.Errorf("%d lines kept, want 800", got)
	}

	limited := testenv.SyncBuffer{Limit: 4}
	for _, s := range []string{"abc", "def", "ghi"} {
		if n, err := limited.Write([]byte(s)); n != len(s) || err != nil {
			t.Errorf("Write(%q): %d, %v; want %d, nil", s, n, err, len(s))
		}
	}
	if got := limited.String(); got != "abcdef" {
		t.Errorf("limited buffer holds %q, want %q (the start; the write that crossed the limit kept whole)", got, "abcdef")
	}
}
