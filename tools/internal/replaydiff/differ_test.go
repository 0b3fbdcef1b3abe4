package replaydiff

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

// The saga's events hold no maps; structpb.Struct (a map of oneof values)
// checks the walk's map keys, their order and a changed oneof case.
func TestDifferMapsBySortedKey(t *testing.T) {
	want, err := structpb.NewStruct(map[string]any{"b": 1.0, "a": "x", "c": true, "d": []any{1.0}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := structpb.NewStruct(map[string]any{"b": 2.0, "a": 3.0, "e": "new", "d": []any{1.0, 2.0}})
	if err != nil {
		t.Fatal(err)
	}
	d := differ{}
	d.message("", "", want.ProtoReflect(), got.ProtoReflect())
	expect := []FieldDiff{
		{Path: `fields["a"].kind`, Want: "case string_value", Got: "case number_value"},
		{Path: `fields["b"].number_value`, Want: "1", Got: "2"},
		{Path: `fields["c"]`, Want: `true`, Got: Unset},
		{Path: `fields["d"].list_value.values[1]`, Want: Unset, Got: `2`},
		{Path: `fields["e"]`, Want: Unset, Got: `"new"`},
	}
	if !reflect.DeepEqual(d.out, expect) {
		t.Fatalf("diff:\n%v\nwant:\n%v", d.out, expect)
	}
	d = differ{opts: Options{Ignore: []string{"fields.kind", "fields.number_value"}}}
	d.message("", "", want.ProtoReflect(), got.ProtoReflect())
	if len(d.out) != 3 {
		t.Fatalf("with ignore: %v", d.out)
	}
}
