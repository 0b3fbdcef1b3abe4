package fielderr

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorNamesTheFieldAndIsInvalid(t *testing.T) {
	err := fmt.Errorf("create order: %w", New("lines[1].quantity", "must be positive, got %d", 0))
	var fe *Error
	if !errors.As(err, &fe) || fe.Field != "lines[1].quantity" || fe.Reason != "must be positive, got 0" {
		t.Fatalf("errors.As: %#v", fe)
	}
	if !errors.Is(err, ErrInvalid) || err.Error() != "create order: lines[1].quantity: must be positive, got 0" {
		t.Fatalf("err = %v", err)
	}
	if errors.Is(errors.New("other"), ErrInvalid) {
		t.Fatal("an unrelated error is not invalid input")
	}
}
