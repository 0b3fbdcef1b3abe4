package bench

import (
	"strings"
	"testing"
)

func TestParseMix(t *testing.T) {
	cases := []struct {
		in      string
		want    Mix
		wantErr string
	}{
		{in: "success=100", want: Mix{Success: 100}},
		{in: "success=70,declined=10,undeliverable=10,outofstock=10", want: Mix{70, 10, 10, 10}},
		{in: " Declined=50% , success=50 ", want: Mix{Success: 50, Declined: 50}},
		{in: "success=90", wantErr: "add up to 90"},
		{in: "success=60,declined=50", wantErr: "add up to 110"},
		{in: "refunded=100", wantErr: `unknown kind "refunded"`},
		{in: "success", wantErr: "want kind=percent"},
		{in: "success=-5,declined=105", wantErr: "not a percentage"},
		{in: "success=50,success=50", wantErr: "given twice"},
		{in: "", wantErr: "add up to 0"},
	}
	for _, tc := range cases {
		got, err := ParseMix(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseMix(%q) error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMix(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestPickerKeepsTheMixExactlyAndInterleaves(t *testing.T) {
	m := Mix{Success: 70, Declined: 10, Undeliverable: 15, OutOfStock: 5}
	p := newPicker(m)
	var counts [numKinds]int
	run := 0
	var prev Kind = -1
	for range 300 {
		k := p.next()
		counts[k]++
		if k == prev {
			run++
		} else {
			run = 1
		}
		prev = k
		if run > 4 { // 70% success can't come in runs much longer than 70/30
			t.Fatalf("%d %s orders in a row: the picker bunches kinds", run, k)
		}
	}
	for k := range numKinds {
		if counts[k] != 3*m[k] {
			t.Errorf("%s: %d of 300 picks, want %d", k, counts[k], 3*m[k])
		}
	}
	// A prefix is as close as whole orders allow: 20 picks of 50/50 are 10/10.
	p = newPicker(Mix{Success: 50, OutOfStock: 50})
	var half [numKinds]int
	for range 20 {
		half[p.next()]++
	}
	if half[Success] != 10 || half[OutOfStock] != 10 {
		t.Errorf("20 picks of 50/50: %v", half)
	}
	if newPicker(AllSuccess).next() != Success {
		t.Error("the default mix picks something other than success")
	}
}
