package train

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// /dev/null is a character device, not a terminal: no progress bar for it.
func TestIsTerminal(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for name, f := range map[string]*os.File{os.DevNull: null, "a pipe": w, "a file": file} {
		if IsTerminal(f) {
			t.Errorf("IsTerminal(%s) = true", name)
		}
	}
}

// metrics.csv is read by encoding/csv into the columns of metrics.jsonl, after
// a run and after the rebuild a resume makes.
func TestMetricsCSVMatchesJSONL(t *testing.T) {
	cfg := fakeConfig()
	cfg.Run.MaxSteps, cfg.Run.EvalEvery, cfg.Optim.WarmupSteps = 6, 3, 0
	out := t.TempDir()
	if _, err := Run(context.Background(), cfg, fakeOptions(out)); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		f, err := os.Open(filepath.Join(out, metricsCSV))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatalf("%s: metrics.csv: %v", when, err)
		}
		ms := readMetrics(t, out)
		if len(rows) != len(ms)+1 || len(rows[0]) != len(csvHeader) || rows[0][0] != "step" {
			t.Fatalf("%s: %d CSV rows of %d fields for %d JSONL lines", when, len(rows), len(rows[0]), len(ms))
		}
		for i, m := range ms {
			row := rows[i+1]
			loss, _ := strconv.ParseFloat(row[1], 64)
			if row[0] != strconv.Itoa(m.Step) || m.Loss == nil || loss != *m.Loss || (m.ValLoss == nil) != (row[7] == "") {
				t.Errorf("%s: CSV row %v, JSONL %+v", when, row, m)
			}
		}
	}
	check("after the run")
	cfg.Run.MaxSteps = 8
	o := fakeOptions(out)
	o.Resume = true
	if _, err := Run(context.Background(), cfg, o); err != nil {
		t.Fatal(err)
	}
	check("after a resume")
}
