package bench

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is what an order is made to do.
type Kind int

// The kinds of order, each with a deterministic outcome on a healthy stack.
const (
	Success       Kind = iota // deliverable, paid, in stock → COMPLETED
	Declined                  // payment token tok_decline → CANCELLED (PAYMENT_FAILED)
	Undeliverable             // destination AQ (simulated carrier refuses) → CANCELLED (SHIPMENT_FAILED)
	OutOfStock                // a SKU with no stock → CANCELLED (OUT_OF_STOCK)
	numKinds
)

var kindNames = [numKinds]string{"success", "declined", "undeliverable", "outofstock"}

func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// Expected is the outcome an order of this kind gets on a healthy stack, as
// Outcome names it ("COMPLETED", "OUT_OF_STOCK", …).
func (k Kind) Expected() string {
	return [numKinds]string{"COMPLETED", "PAYMENT_FAILED", "SHIPMENT_FAILED", "OUT_OF_STOCK"}[k]
}

// Mix is the share of each kind in percent; the shares add up to 100.
type Mix [numKinds]int

// AllSuccess is the default mix.
var AllSuccess = Mix{Success: 100}

// ParseMix reads "success=70,declined=10,undeliverable=10,outofstock=10".
// Kinds not named get 0; the named shares must add up to 100.
func ParseMix(s string) (Mix, error) {
	var m Mix
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return Mix{}, fmt.Errorf("mix %q: want kind=percent, e.g. success=90,declined=10", part)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		k := -1
		for i, n := range kindNames {
			if n == name {
				k = i
			}
		}
		if k < 0 {
			return Mix{}, fmt.Errorf("mix: unknown kind %q (want %s)", name, strings.Join(kindNames[:], ", "))
		}
		if seen[name] {
			return Mix{}, fmt.Errorf("mix: %s given twice", name)
		}
		seen[name] = true
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(val, "%")))
		if err != nil || n < 0 || n > 100 {
			return Mix{}, fmt.Errorf("mix: %s=%q is not a percentage 0..100", name, val)
		}
		m[k] = n
	}
	if sum := m.total(); sum != 100 {
		return Mix{}, fmt.Errorf("mix: shares add up to %d, want 100", sum)
	}
	return m, nil
}

func (m Mix) total() int {
	sum := 0
	for _, v := range m {
		sum += v
	}
	return sum
}

func (m Mix) String() string {
	var parts []string
	for k, v := range m {
		if v > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", Kind(k), v))
		}
	}
	return strings.Join(parts, ",")
}

// picker hands out kinds in the mix's proportions, interleaved and
// deterministic (smooth weighted round robin): every 100 picks hold exactly
// the mix, and any prefix is as close to it as whole orders allow.
type picker struct {
	mix     Mix
	current [numKinds]int
}

func newPicker(m Mix) *picker { return &picker{mix: m} }

// next is not safe for concurrent use; callers serialize.
func (p *picker) next() Kind {
	best := Kind(-1)
	for k := range numKinds {
		p.current[k] += p.mix[k]
		if p.mix[k] > 0 && (best < 0 || p.current[k] > p.current[best]) {
			best = k
		}
	}
	p.current[best] -= p.mix.total()
	return best
}
