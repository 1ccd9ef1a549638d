package train

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/olekukonko/tablewriter"
)

// Metric is one line of OUT/metrics.jsonl (and one row of OUT/metrics.csv). Values
// that are not finite, or not measured at this step, are null (empty in the CSV).
type Metric struct {
	Step       int      `json:"step"`
	Loss       *float64 `json:"loss"`
	LR         float64  `json:"lr"`
	GradNorm   *float64 `json:"grad_norm"`
	TokensPerS float64  `json:"tokens_per_s"`
	ElapsedS   float64  `json:"elapsed_s"`
	Skipped    int      `json:"skipped"` // non-finite steps skipped so far

	CommS *float64 `json:"comm_s,omitempty"` // data-parallel runs: seconds per step spent waiting for the other ranks
	Eval
}

// Eval holds the validation metrics of one evaluation.
type Eval struct {
	ValLoss       *float64 `json:"val_loss,omitempty"`
	ValPerplexity *float64 `json:"val_ppl,omitempty"`
	ValBitsPerTok *float64 `json:"val_bits_per_token,omitempty"`
	// Bits per byte of text, base of DNA or sample of audio, when a token
	// stands for a known number of them.
	ValBitsPerByte   *float64 `json:"val_bits_per_byte,omitempty"`
	ValBitsPerBase   *float64 `json:"val_bits_per_base,omitempty"`
	ValBitsPerSample *float64 `json:"val_bits_per_sample,omitempty"`
	ValAccuracy      *float64 `json:"val_accuracy,omitempty"` // synthetic tasks: answer positions
	// Tokens is the number of targets scored (not logged).
	Tokens int64 `json:"-"`
}

// bitsPerUnit returns the field of the bits per unit u ("byte", "base", "sample").
func (e *Eval) bitsPerUnit(u string) **float64 {
	switch u {
	case "base":
		return &e.ValBitsPerBase
	case "sample":
		return &e.ValBitsPerSample
	}
	return &e.ValBitsPerByte
}

var csvHeader = []string{"step", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s", "skipped",
	"val_loss", "val_ppl", "val_bits_per_token", "val_bits_per_byte", "val_bits_per_base", "val_bits_per_sample", "val_accuracy", "comm_s"}

// csvRow returns the metric as one CSV record (with its line end).
func (m Metric) csvRow() []byte {
	f := func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'g', -1, 64)
	}
	g := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	return csvRecord([]string{strconv.Itoa(m.Step), f(m.Loss), g(m.LR), f(m.GradNorm), g(m.TokensPerS),
		g(m.ElapsedS), strconv.Itoa(m.Skipped), f(m.ValLoss), f(m.ValPerplexity), f(m.ValBitsPerTok),
		f(m.ValBitsPerByte), f(m.ValBitsPerBase), f(m.ValBitsPerSample), f(m.ValAccuracy), f(m.CommS)})
}

// csvRecord encodes one CSV record with encoding/csv (quoting as RFC 4180 asks).
func csvRecord(fields []string) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(fields) // into a bytes.Buffer: cannot fail
	w.Flush()
	return b.Bytes()
}

// finite returns &x, or nil when x is NaN or infinite (JSON has no such numbers).
func finite(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// metricsLog appends to OUT/metrics.jsonl and OUT/metrics.csv, one write per line.
type metricsLog struct{ jsonl, csv *os.File }

const (
	metricsJSONL = "metrics.jsonl"
	metricsCSV   = "metrics.csv"
)

// openMetrics opens the metric files of out. When resuming from step, lines of
// later steps (written after that checkpoint by the interrupted run) are dropped;
// otherwise the files start empty. The files it creates are recorded in d.
func openMetrics(out string, resume bool, step int, d *runDir) (*metricsLog, error) {
	jp, cp := filepath.Join(out, metricsJSONL), filepath.Join(out, metricsCSV)
	var keepJ, keepC []byte
	if resume {
		var err error
		if keepJ, keepC, err = metricsUpTo(jp, step); err != nil {
			return nil, err
		}
	} else {
		keepC = csvRecord(csvHeader)
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{jp, keepJ}, {cp, keepC}} {
		_, before := os.Lstat(f.path)
		if err := writeFile(f.path, f.data); err != nil {
			return nil, err
		}
		d.made(f.path, before)
	}
	l := &metricsLog{}
	var err error
	if l.jsonl, err = os.OpenFile(jp, os.O_WRONLY|os.O_APPEND, 0); err != nil {
		return nil, err
	}
	if l.csv, err = os.OpenFile(cp, os.O_WRONLY|os.O_APPEND, 0); err != nil {
		l.jsonl.Close()
		return nil, err
	}
	return l, nil
}

// metricsUpTo returns the JSONL lines with step ≤ last, and the CSV (header and rows)
// rebuilt from them. A torn last line is dropped.
func metricsUpTo(path string, last int) (jsonl, csv []byte, err error) {
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	var j, c bytes.Buffer
	c.Write(csvRecord(csvHeader))
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m Metric
		if json.Unmarshal(sc.Bytes(), &m) != nil || m.Step > last {
			continue
		}
		j.Write(sc.Bytes())
		j.WriteByte('\n')
		c.Write(m.csvRow())
	}
	return j.Bytes(), c.Bytes(), nil
}

func (l *metricsLog) write(m Metric) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := l.jsonl.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if _, err := l.csv.Write(m.csvRow()); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

func (l *metricsLog) close() {
	l.jsonl.Close()
	l.csv.Close()
}

// progress reports the run on stdout: a redrawn bar on a terminal, log lines otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	total    int
	drawn    bool // a bar is on the current line
	last     time.Time
}

// IsTerminal reports whether f is a terminal (not merely a character device
// such as /dev/null).
func IsTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// line prints a whole line, clearing a bar first.
func (p *progress) line(format string, args ...any) {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// end moves past a drawn bar.
func (p *progress) end() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// step reports a finished step: the bar at most 10 times a second on a terminal,
// a log line at logging steps otherwise.
func (p *progress) step(step int, loss, tokPerS float64, eta time.Duration, logged bool, m Metric) {
	if !p.terminal {
		if logged {
			comm := ""
			if m.CommS != nil {
				comm = fmt.Sprintf(" | comm %.1f ms/step", 1e3**m.CommS)
			}
			p.line("step %d/%d | loss %s | lr %.3g | grad_norm %s | %.0f tok/s%s | eta %s",
				step, p.total, num(m.Loss, "%.4f"), m.LR, num(m.GradNorm, "%.3f"), m.TokensPerS, comm, fmtDur(eta))
		}
		return
	}
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond && step != p.total {
		return
	}
	p.last = now
	const width = 30
	done := width * step / p.total
	fmt.Fprintf(p.w, "\r\033[K[%s%s] %d/%d loss %.4f %.0f tok/s eta %s",
		strings.Repeat("=", done), strings.Repeat(" ", width-done), step, p.total, loss, tokPerS, fmtDur(eta))
	p.drawn = true
}

func num(p *float64, format string) string {
	if p == nil {
		return "nan"
	}
	return fmt.Sprintf(format, *p)
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(time.Second).String()
}

// Table prints the summary as a table.
func (s *Summary) Table(w io.Writer) {
	t := tablewriter.NewWriter(w)
	t.Header([]string{"summary", "value"})
	rows := [][]string{
		{"steps", strconv.Itoa(s.Steps)},
		{"parameters (trained)", fmt.Sprintf("%d (%d)", s.Params, s.Trainable)},
		{"tokens", strconv.FormatInt(s.Tokens, 10)},
		{"wall time", fmtDur(time.Duration(s.ElapsedS * float64(time.Second)))},
		{"tokens/s", fmt.Sprintf("%.0f", float64(s.Tokens)/max(s.ElapsedS, 1e-9))},
		{"final train loss", fmt.Sprintf("%.4f", s.Loss)},
	}
	if s.Ranks > 1 {
		rows = append(rows, []string{"ranks (global batch)", fmt.Sprintf("%d (%d sequences)", s.Ranks, s.GlobalBatch)},
			[]string{"communication/step", fmt.Sprintf("%.1f ms waited", 1e3*s.CommS)})
	}
	rows = append(rows, s.Eval.rows()...)
	rows = append(rows, []string{"skipped steps", strconv.Itoa(s.Skipped)}, []string{"checkpoint", s.Checkpoint})
	t.Bulk(rows)
	t.Render()
}

// Table prints the evaluation as a table, after the rows of head (what was
// evaluated).
func (e Eval) Table(w io.Writer, head ...[]string) {
	t := tablewriter.NewWriter(w)
	t.Header([]string{"evaluation", "value"})
	t.Bulk(append(head, e.rows()...))
	t.Render()
}

func (e Eval) rows() [][]string {
	var rows [][]string
	for _, r := range []struct {
		name string
		v    *float64
		f    string
	}{
		{"val loss", e.ValLoss, "%.4f"}, {"val perplexity", e.ValPerplexity, "%.3f"},
		{"val bits/token", e.ValBitsPerTok, "%.4f"}, {"val bits/byte", e.ValBitsPerByte, "%.4f"},
		{"val bits/base", e.ValBitsPerBase, "%.4f"}, {"val bits/sample", e.ValBitsPerSample, "%.4f"},
	} {
		if r.v != nil {
			rows = append(rows, []string{r.name, fmt.Sprintf(r.f, *r.v)})
		}
	}
	if e.ValAccuracy != nil {
		rows = append(rows, []string{"val accuracy", fmt.Sprintf("%.2f%%", 100**e.ValAccuracy)})
	}
	return rows
}
