package train

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mambago/mamba/internal/mpi"
	"github.com/mambago/mamba/internal/parallel"
	"github.com/mambago/mamba/optim"
)

// Data-parallel training: every rank of an MPI job runs this file's part of a run
// (the scheme and its cost are in the package doc).

// dist is this process's part in a data-parallel run: rank `rank` of `size`.
type dist struct {
	w          *mpi.World
	rank, size int
	signals    context.Context    // the caller's context, polled at the end of each step
	stop       context.CancelFunc // cancels the context the loop sees, on every rank at once
	summary    *Summary

	params []optim.Param
	g      int       // local micro-batches per step (optim.grad_accum)
	c      int       // elements of one rank's chunk per piece (one Alltoall moves size·c)
	pieces int       // pieces per chunk: a rank owns pieces·c elements
	segs   []segment // how Param.Grad maps onto stage
	stage  []float32 // size·pieces·c, piece-major: stage[(b·size+q)·c+i] = element i of piece b of rank q's chunk
	recv   []float32 // size·c: piece b of this rank's chunk from every rank, in rank order
	sum    []float32 // pieces·c: running sum of this rank's chunk
	losses []float64 // the g local losses of the step, then the stop flag
	all    []float64 // size·(g+1): every rank's losses
	copyJ  parallel.Job
	unpack bool // direction of the copies: stage → Param.Grad

	j     int        // local micro-batches of this step so far
	start chan int   // micro-batch j's gradient is staged: exchange it
	done  chan error // the exchange has finished with stage
	busy  bool       // an exchange is running
	err   error      // first failed exchange

	// Time the training goroutine waited for communication: in this step's
	// micro-batches, since the last log line (over steps), over the run (allSteps).
	waited, blocked, allBlocked time.Duration
	steps, allSteps             int
}

// floatBytes is the size of a gradient element.
const floatBytes = 4

// pieceBytes bounds one collective call (a variable so that tests can make
// gradients of a few elements go in many pieces).
var pieceBytes = mpi.MaxCall

// segment says that Param p's Grad[lo:hi] is stage[at : at+hi−lo].
type segment struct{ p, lo, hi, at int }

// agreedError is an outcome that every rank of the job returned at the same point.
type agreedError struct{ err error }

func (e agreedError) Error() string { return e.err.Error() }
func (e agreedError) Unwrap() error { return e.err }

// Agreed reports whether err is the outcome of the whole data-parallel job: every
// rank returned it (rank 0 reports it, the others stay silent) and every process may
// exit normally. Any other error of a rank is its own, and must abort the job, which
// would otherwise wait for that rank forever.
func Agreed(err error) bool {
	var a agreedError
	return errors.As(err, &a)
}

// Agreement statuses.
const (
	statusOK byte = iota
	statusFailed
	statusInput
)

// agree is a collective: every rank passes its outcome (err) and extra bytes of the
// same length, and gets back every rank's extra bytes, and nil when no rank failed;
// otherwise the error of the lowest failing rank, as every rank's agreedError (an
// *InputError if it was one).
func agree(w *mpi.World, err error, extra []byte) ([]byte, error) {
	n := 1 + len(extra)
	send, all := make([]byte, n), make([]byte, n*w.Size())
	send[0] = statusOK
	if err != nil {
		send[0] = statusFailed
		var ie *InputError
		if errors.As(err, &ie) {
			send[0] = statusInput
		}
	}
	copy(send[1:], extra)
	if e := mpi.Allgather(w, send, all); e != nil {
		return nil, e
	}
	for q := range w.Size() {
		st := all[q*n]
		if st == statusOK {
			continue
		}
		var msg []byte
		if q == w.Rank() {
			msg = []byte(err.Error())
		}
		msg, e := bcastBytes(w, msg, q)
		if e != nil {
			return nil, e
		}
		if q == w.Rank() {
			return all, agreedError{err}
		}
		text := string(msg)
		if q != 0 {
			text = fmt.Sprintf("rank %d: %s", q, text)
		}
		if st == statusInput {
			return all, agreedError{&InputError{errors.New(text)}}
		}
		return all, agreedError{errors.New(text)}
	}
	return all, nil
}

// bcastBytes sends b from rank root to all ranks (its length first).
func bcastBytes(w *mpi.World, b []byte, root int) ([]byte, error) {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
	if err := mpi.Bcast(w, n[:], root); err != nil {
		return nil, err
	}
	if w.Rank() != root {
		b = make([]byte, binary.LittleEndian.Uint64(n[:]))
	}
	return b, mpi.Bcast(w, b, root)
}

// StartFailed is the part in the start of a data-parallel run of a rank that cannot
// start (err: its command line or config is unusable): it answers the other ranks'
// start-up check and returns the job's agreed outcome.
func StartFailed(w *mpi.World, err error) error {
	_, e := agree(w, &InputError{err}, make([]byte, sha256.Size))
	if e == nil {
		e = err
	}
	return e
}

// runRank runs one rank of a data-parallel run. The ranks first agree that their
// configs are the same; rank 0 sets the run up (output directory, checkpoint,
// weights) and sends the resolved config, trainer state, weights and optimizer
// moments to the others, which set up alike in a scratch directory; then every rank
// trains on its lane of the data stream.
func runRank(ctx context.Context, cfg Config, o Options) (*Summary, error) {
	w := o.Comm
	h := sha256.Sum256(cfg.JSON())
	all, err := agree(w, nil, h[:])
	if err != nil {
		return nil, err
	}
	for q := range w.Size() {
		if !bytes.Equal(all[q*(1+len(h))+1:(q+1)*(1+len(h))], h[:]) {
			return nil, agreedError{&InputError{fmt.Errorf("rank %d was started with a config other than rank 0's (the resolved configs differ): give every rank the same --config and --set", q)}}
		}
	}

	if cfg.Run.Device == DeviceCUDA {
		return nil, agreedError{&InputError{errors.New("run.device cuda does not train data-parallel over MPI yet: run one process, or run.device cpu")}}
	}

	// Ranks write their progress through mpirun, on a pseudo-terminal whether or not
	// the user's output is one: log lines suit both.
	o.Terminal = false
	var r *runner
	if w.Rank() == 0 {
		if r, err = setup(cfg, o); err != nil {
			err = &InputError{err}
		}
	}
	if _, err := agree(w, err, nil); err != nil {
		return nil, err
	}
	var state []byte
	if w.Rank() == 0 {
		r.st.Cursor = r.ds.Train.Cursor()
		if state, err = json.Marshal(r.st); err != nil {
			return nil, err
		}
	}
	if state, err = bcastBytes(w, state, 0); err != nil {
		return nil, err
	}
	var scratch string
	if w.Rank() != 0 {
		r, scratch, err = setupFollower(o, state)
	}
	if err == nil {
		if err = interleave(r.ds, w); err != nil {
			err = &InputError{err}
		}
	}
	if _, err := agree(w, err, nil); err != nil {
		if r != nil {
			r.close()
		}
		os.RemoveAll(scratch)
		return nil, err
	}
	defer os.RemoveAll(scratch)
	defer r.close()
	if err := r.share(w); err != nil {
		return nil, err
	}

	d := newDist(w, r.opt.Params(), r.cfg.Optim.GradAccum, &r.summary)
	r.summary.GlobalBatch = r.cfg.Data.BatchSize * d.g * d.size
	defer d.close()
	dctx, stop := context.WithCancel(context.Background())
	defer stop()
	d.signals, d.stop = ctx, stop
	r.dist, r.acc = d, nil
	r.o.Notes = append(r.o.Notes, d.note(r.cfg))
	s, err := r.loop(dctx)
	// Interruption is agreed at the end of a step, and the non-finite stop follows
	// from the same losses on every rank: all ranks return these errors together.
	if err != nil && (errors.Is(err, ErrInterrupted) || r.st.Consecutive >= r.cfg.Run.MaxNonFinite) && !Agreed(err) {
		err = agreedError{err}
	}
	return s, err
}

// setupFollower sets up a rank other than 0 from the resolved config and trainer
// state of rank 0 (state, JSON): a fresh model (its weights arrive from rank 0), no
// output but metrics in a scratch directory, which the caller removes.
func setupFollower(o Options, state []byte) (*runner, string, error) {
	var st trainerState
	if err := json.Unmarshal(state, &st); err != nil {
		return nil, "", err
	}
	cfg, err := ParseConfig(st.Config, nil)
	if err != nil {
		return nil, "", fmt.Errorf("rank 0's config: %w", err)
	}
	scratch, err := os.MkdirTemp("", "mamba-rank-")
	if err != nil {
		return nil, "", err
	}
	r, err := setup(cfg, Options{Out: scratch, Backend: o.Backend, Data: o.Data, Stdout: io.Discard})
	if err != nil {
		return nil, scratch, &InputError{err}
	}
	r.st = st
	if err := r.ds.Train.Restore(st.Cursor); err != nil {
		r.close()
		return nil, scratch, &InputError{fmt.Errorf("training data: %w", err)}
	}
	return r, scratch, nil
}

// interleaver is a data source that can be split among ranks (data.Stream).
type interleaver interface{ Interleave(lane, lanes int) error }

// interleave gives this rank its lane of the global training stream: micro-batch m
// of a step goes to rank m mod size.
func interleave(ds *Dataset, w *mpi.World) error {
	s, ok := ds.Train.(interleaver)
	if !ok {
		return fmt.Errorf("the training data (%T) cannot be split among %d ranks", ds.Train, w.Size())
	}
	return s.Interleave(w.Rank(), w.Size())
}

// share copies rank 0's weights (frozen ones too) and optimizer state to every rank.
func (r *runner) share(w *mpi.World) error {
	sig := sha256.New()
	for _, p := range r.model.Params() {
		fmt.Fprintf(sig, "%s %d\n", p.Name, len(p.Value))
	}
	want, err := bcastBytes(w, sig.Sum(nil), 0)
	if err != nil {
		return err
	}
	var mismatch error
	if !bytes.Equal(want, sig.Sum(nil)) {
		mismatch = &InputError{errors.New("its model's parameters differ from rank 0's")}
	}
	if _, err := agree(w, mismatch, nil); err != nil {
		return err
	}
	for _, p := range r.model.Params() {
		if err := mpi.Bcast(w, p.Value, 0); err != nil {
			return err
		}
	}
	st := r.opt.State()
	for i := range st.Names {
		if err := mpi.Bcast(w, st.M[i], 0); err != nil {
			return err
		}
		if err := mpi.Bcast(w, st.V[i], 0); err != nil {
			return err
		}
	}
	var t [8]byte
	binary.LittleEndian.PutUint64(t[:], uint64(st.Updates))
	if err := mpi.Bcast(w, t[:], 0); err != nil {
		return err
	}
	st.Updates = int64(binary.LittleEndian.Uint64(t[:]))
	return r.opt.Restore(st)
}

// newDist lays the flat gradient vector of params out in chunks and pieces for g
// micro-batches per step and starts the exchange goroutine; it reports into s.
func newDist(w *mpi.World, params []optim.Param, g int, s *Summary) *dist {
	d := &dist{w: w, rank: w.Rank(), size: w.Size(), summary: s, params: params, g: g}
	total := 0
	for _, p := range d.params {
		total += len(p.Grad)
	}
	chunk := (total + d.size - 1) / d.size
	d.c = max(1, min(chunk, pieceBytes/floatBytes/d.size))
	d.pieces = (chunk + d.c - 1) / d.c
	d.c = (chunk + d.pieces - 1) / d.pieces // even pieces
	at := func(i int) int {
		block, off := i/d.c, i%d.c
		return (block%d.pieces*d.size+block/d.pieces)*d.c + off
	}
	i := 0
	for pi, p := range d.params {
		for lo := 0; lo < len(p.Grad); {
			hi := min(len(p.Grad), lo+d.c-(i+lo)%d.c)
			d.segs = append(d.segs, segment{pi, lo, hi, at(i + lo)})
			lo = hi
		}
		i += len(p.Grad)
	}
	d.stage = make([]float32, d.size*d.pieces*d.c)
	d.recv = make([]float32, d.size*d.c)
	d.sum = make([]float32, d.pieces*d.c)
	d.losses = make([]float64, d.g+1)
	d.all = make([]float64, d.size*(d.g+1))
	d.start, d.done = make(chan int), make(chan error, 1)
	go d.exchange()
	s.Ranks = d.size
	return d
}

// close stops the exchange goroutine (after the exchange in flight, if any).
func (d *dist) close() { close(d.start) }

// bytesPerStep is what one rank sends in a step: g reduce-scatters and one
// allgather, each (size−1)/size of the padded gradient.
func (d *dist) bytesPerStep() int {
	return (d.g + 1) * (d.size - 1) * d.pieces * d.c * floatBytes
}

func (d *dist) note(cfg Config) string {
	return fmt.Sprintf("data parallel: %d ranks × grad_accum %d × %d sequences = global batch %d (bitwise the run of one process with grad_accum %d); %.3g MB sent per rank per step in calls of ≤ %.3g MB",
		d.size, d.g, cfg.Data.BatchSize, d.summary.GlobalBatch, d.g*d.size, float64(d.bytesPerStep())/1e6, float64(floatBytes*d.size*d.c)/1e6)
}

// Item copies segment i between Param.Grad and stage (parallel.Body).
func (d *dist) Item(_, i int) {
	s := d.segs[i]
	g, st := d.params[s.p].Grad[s.lo:s.hi], d.stage[s.at:s.at+s.hi-s.lo]
	if d.unpack {
		copy(g, st)
	} else {
		copy(st, g)
	}
}

// exchange runs on its own goroutine: for local micro-batch j it reduce-scatters the
// staged gradient piece by piece, adding the contributions of ranks 0..size−1 to this
// rank's running sum in rank order (global micro-batch order, as one process does).
func (d *dist) exchange() {
	n := d.size * d.c
	for j := range d.start {
		var err error
		for b := 0; b < d.pieces && err == nil; b++ {
			if err = mpi.Alltoall(d.w, d.stage[b*n:(b+1)*n], d.recv); err != nil {
				break
			}
			s := d.sum[b*d.c : (b+1)*d.c]
			for q := range d.size {
				optim.AddGrad(s, d.recv[q*d.c:(q+1)*d.c], j == 0 && q == 0)
			}
		}
		d.done <- err
	}
}

// wait waits for the running exchange, if any.
func (d *dist) wait() {
	if !d.busy {
		return
	}
	if err := <-d.done; err != nil && d.err == nil {
		d.err = err
	}
	d.busy = false
}

// add hands the gradient of the micro-batch just computed (loss) to the exchange
// goroutine, which sums it while the next micro-batch is computed. A nil d does nothing.
func (d *dist) add(loss float64) {
	if d == nil {
		return
	}
	t := time.Now()
	d.wait() // the previous exchange has finished reading stage
	d.waited += time.Since(t)
	d.losses[d.j] = loss
	d.unpack = false
	d.copyJ.Run(d, len(d.segs), 0)
	d.j++
	d.busy = true
	d.start <- d.j - 1
}

// reduce ends a step: it waits for the last exchange, gathers the mean gradient into
// every rank's Param.Grad and returns the mean loss over the micro-batches of all
// ranks, summed in global order; when any rank has been signalled, it stops every
// rank's loop after this step. A nil d returns loss.
func (d *dist) reduce(loss float64) (float64, error) {
	if d == nil {
		return loss, nil
	}
	t := time.Now()
	d.wait()
	if d.err != nil {
		return 0, d.err
	}
	k := d.j * d.size
	d.j = 0
	optim.MeanGrad(d.sum, d.sum, k)
	n := d.size * d.c
	for b := range d.pieces {
		copy(d.stage[b*n+d.rank*d.c:], d.sum[b*d.c:(b+1)*d.c])
		if err := mpi.Allgather(d.w, nil, d.stage[b*n:(b+1)*n]); err != nil {
			return 0, err
		}
	}
	d.unpack = true
	d.copyJ.Run(d, len(d.segs), 0)
	d.losses[d.g] = 0
	if d.signals.Err() != nil {
		d.losses[d.g] = 1
	}
	if err := mpi.Allgather(d.w, d.losses, d.all); err != nil {
		return 0, err
	}
	loss = globalLoss(d.all, d.g, d.size)
	stop := false
	for q := range d.size {
		stop = stop || d.all[q*(d.g+1)+d.g] != 0
	}
	if stop {
		d.stop()
	}
	dt := d.waited + time.Since(t)
	d.waited = 0
	d.blocked += dt
	d.allBlocked += dt
	d.steps++
	d.allSteps++
	d.summary.CommS = d.allBlocked.Seconds() / float64(d.allSteps)
	return loss / float64(k), nil
}

// globalLoss returns the sum of the micro-batch losses of a step in the order one
// process adds them: global micro-batch m = j·size + q is local micro-batch j of rank
// q, found at all[q·(g+1)+j].
func globalLoss(all []float64, g, size int) float64 {
	var loss float64
	for j := range g {
		for q := range size {
			loss += all[q*(g+1)+j]
		}
	}
	return loss
}

// log puts the mean communication time per step since the last logged line into m.
func (d *dist) log(m *Metric, logged bool) {
	if d == nil || !logged {
		return
	}
	m.CommS = finite(d.blocked.Seconds() / float64(max(d.steps, 1)))
	d.blocked, d.steps = 0, 0
}

// ranks returns the number of ranks the global batch is spread over (1 for a nil d).
func (d *dist) ranks() int {
	if d == nil {
		return 1
	}
	return d.size
}

// onRank0 is the checkpoint barrier: rank 0 writes (save), the others wait, and all
// return the outcome. A nil d just saves.
func (d *dist) onRank0(save func() error) error {
	if d == nil {
		return save()
	}
	var err error
	if d.rank == 0 {
		err = save()
	}
	_, err = agree(d.w, err, nil)
	return err
}
