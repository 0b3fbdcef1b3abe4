package currency_test

import (
	"testing"

	"github.com/sagasuite/sagasuite/libs/currency"
)

func TestValid(t *testing.T) {
	for _, code := range []string{"EUR", "USD", "JPY", "GBP", "CHF", "XOF", "XCG", "ZWG", "SLE"} {
		if !currency.Valid(code) {
			t.Errorf("Valid(%q) = false, want true", code)
		}
	}
	for _, code := range []string{"XXX", "XTS", "XAU", "XDR", "ABC", "eur", "EU", "EURO", "", "HRK", "ZWL", "ANG", "CLF"} {
		if currency.Valid(code) {
			t.Errorf("Valid(%q) = true, want false", code)
		}
	}
}
