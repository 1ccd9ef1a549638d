package scaling

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// RunsHeader is the start of every runs CSV: arch, N (non-embedding parameters), D
// (training tokens) and the final validation loss in nats per token. A column named
// "flops" after them, when present, gives each run's compute C.
var RunsHeader = []string{"arch", "params", "tokens", "loss"}

// ReadRunsCSV reads runs from a CSV whose header starts with RunsHeader. Errors
// name the line and the column.
func ReadRunsCSV(r io.Reader) ([]Run, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 0
	head, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the CSV is empty (want a header %s)", ErrInput, strings.Join(RunsHeader, ","))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInput, err)
	}
	if len(head) < len(RunsHeader) || !slices.Equal(head[:len(RunsHeader)], RunsHeader) {
		return nil, fmt.Errorf("%w: the header must start with %s, got %s", ErrInput, strings.Join(RunsHeader, ","), strings.Join(head, ","))
	}
	flops := slices.Index(head, "flops")
	var runs []Run
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return runs, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("%w: line %d: %v", ErrInput, pe.Line, pe.Err)
			}
			return nil, fmt.Errorf("%w: %v", ErrInput, err)
		}
		line, _ := cr.FieldPos(0)
		num := func(col int) (float64, error) {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[col]), 64)
			if err != nil {
				return 0, fmt.Errorf("%w: line %d: %s %q is not a number", ErrInput, line, head[col], rec[col])
			}
			return v, nil
		}
		run := Run{Arch: rec[0]}
		for col, dst := range []*float64{1: &run.Params, 2: &run.Tokens, 3: &run.Loss} {
			if dst == nil {
				continue
			}
			if *dst, err = num(col); err != nil {
				return nil, err
			}
		}
		if flops >= 0 && strings.TrimSpace(rec[flops]) != "" {
			if run.FLOPs, err = num(flops); err != nil {
				return nil, err
			}
		}
		if run.Arch == "" {
			return nil, fmt.Errorf("%w: line %d: empty arch", ErrInput, line)
		}
		runs = append(runs, run)
	}
}
