package paging

import (
	"errors"
	"testing"
	"time"
)

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		in, want int
		ok       bool
	}{{0, 20, true}, {1, 1, true}, {100, 100, true}, {101, 0, false}, {-1, 0, false}} {
		got, err := Size(tc.in, 20, 100)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Size(%d) = %d, %v", tc.in, got, err)
		}
	}
}

func TestTokensRoundTripAndRejectForgeries(t *testing.T) {
	c := Cursor{CreatedAt: time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC), ID: "o-1"}
	back, err := Decode(Encode(c))
	if err != nil || back == nil || !back.CreatedAt.Equal(c.CreatedAt) || back.ID != c.ID {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if first, err := Decode(""); first != nil || err != nil {
		t.Errorf("empty token: %v, %v; want the first page", first, err)
	}
	for _, bad := range []string{"garbage!", "e30", Encode(Cursor{})} {
		if _, err := Decode(bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("Decode(%q) = %v, want ErrBadToken", bad, err)
		}
	}
}

func TestCutSaysWhetherAnotherPageExists(t *testing.T) {
	at := func(id string) Cursor { return Cursor{CreatedAt: time.Unix(1, 0), ID: id} }
	page, next := Cut([]string{"a", "b", "c"}, 2, at)
	if len(page) != 2 || next == "" {
		t.Fatalf("3 rows at size 2: %v %q", page, next)
	}
	if c, _ := Decode(next); c.ID != "b" {
		t.Errorf("next token points at %v, want b", c)
	}
	if page, next := Cut([]string{"a", "b"}, 2, at); len(page) != 2 || next != "" {
		t.Errorf("2 rows at size 2: %v %q", page, next)
	}
}
