package strictjson

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestDecodeRefuses(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`{"a": 1} x`, "data after the top-level value"},
		{`{"a": 1}}`, "data after the top-level value"},
		{"{\"a\": 1}\n\n{}", "line 3: data after the top-level value"},
		{`{"a": 1, "a": 2}`, `duplicate key "a"`},
		{`{"run": {"x": 1}, "run": {"y": 2}}`, `duplicate key "run"`},
		{`{"run": {"seed": 1, "seed": 1}}`, `duplicate key "run.seed"`},
		{`{"l": [{"k": 1, "k": 2}]}`, `duplicate key "l[0].k"`},
		{`{"a" 1}`, "invalid JSON at line 1"},
		{"{\n\"a\": 1,\n}", "invalid JSON at line 3"},
		{``, "unexpected end of input"},
		{`   `, "unexpected end of input"},
		{`{"a": [1, 2`, "unexpected end of input"},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), "nested deeper than"},
	} {
		_, err := Decode([]byte(tc.raw))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Decode(%q) = %v, want one line containing %q", tc.raw, err, tc.want)
		}
	}
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	raw := ` {"a": {"b": [1, 2.5e3, "x", true, null, {}]}, "c": "d", "e": -0} ` + "\n"
	got, err := Decode([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	var want any
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&want); err != nil {
		t.Fatal(err)
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("tree %s, encoding/json %s", g, w)
	}
	if n := got.(map[string]any)["a"].(map[string]any)["b"].([]any)[1]; n != json.Number("2.5e3") {
		t.Errorf("number kept as %T %v, want json.Number", n, n)
	}
	if p, ok := FindNull(got); !ok || p != "a.b[4]" {
		t.Errorf("FindNull = %q, %v; want a.b[4]", p, ok)
	}
	if _, ok := FindNull(map[string]any{"x": []any{1.0}}); ok {
		t.Error("FindNull found a null in a tree without one")
	}
}

func ExampleDecode() {
	_, err := Decode([]byte(`{"optim": {"lr": 1e-3}, "optim": {"beta2": 0.99}}`))
	fmt.Println(err)
	// Output: duplicate key "optim" at line 1
}
