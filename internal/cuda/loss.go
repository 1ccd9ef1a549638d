package cuda

import (
	"fmt"
	"math"
	"unsafe"
)

// ceParams mirrors CEParams in kernels/embed.cu.
type ceParams struct {
	x, targets, lse, rowloss, loss, dx, dloss, stats uint64
	rows                                             int64
	vocab, pad                                       int32
}

// IgnoreIndex is the target of a row the loss skips.
const IgnoreIndex = -1

// CrossEntropy is the mean negative log-likelihood of targets under softmax(logits) for logits
// (Rows, Vocab), over the rows whose target is not IgnoreIndex (0 when there are none). SetTargets
// gives the targets. Input [logits]; output loss (one float32); gradient [dlogits] from dloss (one
// float32 on the device).
type CrossEntropy struct {
	d                     *Device
	rows, vocab           int
	targets, lse, rowloss Buffer
	stats                 Buffer // float64 [Σ row losses, counted rows]
	set                   bool
	fwd, sum, bwd         function
	p                     ceParams
}

// NewCrossEntropy returns the loss over rows × vocab logits.
func (d *Device) NewCrossEntropy(rows, vocab int) (*CrossEntropy, error) {
	if rows < 1 || vocab < 1 || !fits(sizeLimit, rows, vocab) || rows > math.MaxInt32 || vocab > math.MaxInt32 {
		return nil, fmt.Errorf("cuda: CrossEntropy: %d × %d logits out of range", rows, vocab)
	}
	k := &CrossEntropy{d: d, rows: rows, vocab: vocab, fwd: d.function("ce_fwd"), sum: d.function("ce_sum"), bwd: d.function("ce_bwd")}
	var err error
	if k.targets, err = d.Alloc32(rows); err == nil {
		if k.lse, err = d.Alloc32(rows); err == nil {
			if k.rowloss, err = d.Alloc32(rows); err == nil {
				k.stats, err = d.Alloc(16)
			}
		}
	}
	if err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// Close frees the op's device memory.
func (k *CrossEntropy) Close() error {
	return firstErr(k.d.Free(k.targets), k.d.Free(k.lse), k.d.Free(k.rowloss), k.d.Free(k.stats))
}

// SetTargets uploads the targets: rows values in [0, vocab) or IgnoreIndex.
func (k *CrossEntropy) SetTargets(t []int32) error {
	if len(t) != k.rows {
		return fmt.Errorf("cuda: CrossEntropy: %d targets, want %d", len(t), k.rows)
	}
	for r, v := range t {
		if v != IgnoreIndex && (v < 0 || int(v) >= k.vocab) {
			return fmt.Errorf("cuda: CrossEntropy: target %d at row %d is outside [0, %d) and not %d", v, r, k.vocab, IgnoreIndex)
		}
	}
	k.set = false
	if err := Upload(k.d, k.targets, t); err != nil {
		return err
	}
	k.set = true
	return nil
}

func (k *CrossEntropy) params(logits Buffer) {
	k.p = ceParams{x: logits.ptr, targets: k.targets.ptr, lse: k.lse.ptr, rowloss: k.rowloss.ptr, stats: k.stats.ptr,
		rows: int64(k.rows), vocab: int32(k.vocab)}
}

// Forward writes the loss (one float32) from in = [logits] and keeps each row's logsumexp.
func (k *CrossEntropy) Forward(in []Buffer, loss Buffer) error {
	if err := countArgs("CrossEntropy", "inputs", in, 1); err != nil {
		return err
	}
	if !k.set {
		return fmt.Errorf("cuda: CrossEntropy: no targets (call SetTargets)")
	}
	if err := firstErr(need("CrossEntropy", "logits", in[0], k.rows*k.vocab, 4, false), need("CrossEntropy", "loss", loss, 1, 4, false)); err != nil {
		return err
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	k.params(in[0])
	k.p.loss = loss.ptr
	if err := d.launch(k.fwd.name, k.fwd.f, dim3{x: k.rows}, dim3{x: 256}, 0, unsafe.Pointer(&k.p)); err != nil {
		return err
	}
	return d.launch(k.sum.name, k.sum.f, dim3{x: 1}, dim3{x: 1024}, 0, unsafe.Pointer(&k.p))
}

// Backward writes din = [dlogits] from dloss (one float32), after Forward.
func (k *CrossEntropy) Backward(in []Buffer, dloss Buffer, din []Buffer) error {
	if err := firstErr(countArgs("CrossEntropy", "inputs", in, 1), countArgs("CrossEntropy", "gradients", din, 1)); err != nil {
		return err
	}
	n := k.rows * k.vocab
	if err := firstErr(need("CrossEntropy", "logits", in[0], n, 4, false), need("CrossEntropy", "dloss", dloss, 1, 4, false),
		need("CrossEntropy", "dlogits", din[0], n, 4, true)); err != nil {
		return err
	}
	if din[0].Nil() {
		return nil
	}
	d := k.d
	err := d.enter()
	defer d.exit()
	if err != nil {
		return err
	}
	k.params(in[0])
	k.p.dloss, k.p.dx = dloss.ptr, din[0].ptr
	return d.launch(k.bwd.name, k.bwd.f, d.elems(n), dim3{x: threads}, 0, unsafe.Pointer(&k.p))
}
