package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/mambago/mamba/data"
)

// evaluator runs data.eval_batches validation batches from the start of the
// validation stream: mean loss, perplexity, bits per token (and byte), accuracy.
type evaluator struct {
	cfg     Config
	model   Model
	stepper Stepper
	ds      *Dataset
	start   data.Cursor
	batch   data.Batch
}

func newEvaluator(cfg Config, m Model, s Stepper, ds *Dataset) *evaluator {
	return &evaluator{cfg: cfg, model: m, stepper: s, ds: ds, start: ds.Valid.Cursor()}
}

// Evaluate compiles m for cfg's batch shape on cfg's device and evaluates it on ds's validation
// stream.
func Evaluate(cfg Config, m Model, ds *Dataset) (Eval, error) {
	s, g, err := compileOn(cfg, m)
	if err != nil {
		return Eval{}, err
	}
	defer g.close()
	return newEvaluator(cfg, m, s, ds).run(context.Background())
}

// run evaluates from the start of the validation stream; a signal (ctx) seen
// between batches stops it with errStopped.
func (e *evaluator) run(ctx context.Context) (Eval, error) {
	v := e.ds.Valid
	if err := v.Restore(e.start); err != nil {
		return Eval{}, fmt.Errorf("validation data: %w", err)
	}
	var sum float64
	var scored int64
	n, correct, total := 0, 0, 0
	for range e.cfg.Data.EvalBatches {
		if ctx.Err() != nil {
			return Eval{}, errStopped
		}
		err := v.Next(&e.batch)
		if err == io.EOF {
			break
		}
		if err != nil {
			return Eval{}, fmt.Errorf("validation data: %w", err)
		}
		l, err := e.stepper.Eval(e.batch.Inputs, e.batch.Targets, e.batch.Resets)
		if err != nil {
			return Eval{}, fmt.Errorf("evaluation: %w", err)
		}
		sum += l
		n++
		for _, t := range e.batch.Targets {
			if t >= 0 {
				scored++
			}
		}
		if e.ds.Accuracy {
			c, t := e.accuracy()
			correct, total = correct+c, total+t
		}
	}
	if n == 0 {
		return Eval{}, errors.New("validation data: no batch")
	}
	loss := sum / float64(n)
	r := Eval{ValLoss: finite(loss), ValPerplexity: finite(math.Exp(loss)), ValBitsPerTok: finite(loss / math.Ln2)}
	if e.ds.UnitsPerToken > 0 {
		*r.bitsPerUnit(e.ds.Unit) = finite(loss / math.Ln2 / e.ds.UnitsPerToken)
	}
	r.Tokens = scored
	if total > 0 {
		r.ValAccuracy = finite(float64(correct) / float64(total))
	}
	return r, nil
}

// accuracy counts the arg-max predictions of the last Eval (over the real
// vocabulary, not its padding) that equal the targets other than -1.
func (e *evaluator) accuracy() (correct, total int) {
	logits, vocab := e.stepper.Logits(), e.model.Config().VocabSize
	V := len(logits) / len(e.batch.Targets)
	for i, t := range e.batch.Targets {
		if t >= 0 {
			total++
			if argmax(logits[i*V:i*V+vocab]) == t {
				correct++
			}
		}
	}
	return correct, total
}

func evalString(e Eval) string {
	s := fmt.Sprintf("val_loss %s ppl %s bits/token %s", num(e.ValLoss, "%.4f"), num(e.ValPerplexity, "%.3f"), num(e.ValBitsPerTok, "%.4f"))
	for _, u := range []struct {
		name string
		v    *float64
	}{{"byte", e.ValBitsPerByte}, {"base", e.ValBitsPerBase}, {"sample", e.ValBitsPerSample}} {
		if u.v != nil {
			s += fmt.Sprintf(" bits/%s %.4f", u.name, *u.v)
		}
	}
	if e.ValAccuracy != nil {
		s += fmt.Sprintf(" accuracy %.2f%%", 100**e.ValAccuracy)
	}
	return s
}
