package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The command measures every point it is asked for and writes the results, the table and a plot;
// bad flags are errors.
func TestGeneration(t *testing.T) {
	out := t.TempDir()
	var stdout strings.Builder
	if err := run([]string{"--out", out, "--pairs", "bench", "--contexts", "1,40", "--batches", "1,3", "--seconds", "60", "--max-steps", "2"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	var res Results
	raw, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil || json.Unmarshal(raw, &res) != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(res.Rows) != 2*2*2 {
		t.Errorf("%d rows, want 8 (2 archs × 2 batches × 2 contexts)", len(res.Rows))
	}
	for _, r := range res.Rows {
		if !(r.TokensPerS > 0) || r.Steps != 2 || r.Params == 0 {
			t.Errorf("row %+v", r)
		}
	}
	table, _ := os.ReadFile(filepath.Join(out, "table.md"))
	if !strings.Contains(string(table), "| 40 |") || !strings.Contains(stdout.String(), "Transformer++, batch 3") {
		t.Errorf("table.md:\n%s", table)
	}
	if st, err := os.Stat(filepath.Join(out, "generation-bench.png")); err != nil || st.Size() == 0 {
		t.Errorf("no plot: %v", err)
	}
	for _, args := range [][]string{{"--pairs", "gpt"}, {"--contexts", "0"}, {"--batches", "x"}, {"--max-steps", "0"}} {
		if err := run(append(args, "--out", out), io.Discard, io.Discard); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
