// Package train runs training: the loop, evaluation, metrics, checkpoints with exact
// resume, and fine-tuning. One update t = 1, 2, ..., run.max_steps is
//
//	for j in 1..k:  batch_j ← data.Train.Next();  ℓ_j, g_j ← Model.Step(batch_j)   (k = optim.grad_accum)
//	ℓ = (1/k)·Σ ℓ_j,  g = (1/k)·Σ g_j
//	if ℓ or ‖g‖ is not finite: skip the update (stop after run.max_nonfinite in a row)
//	else: AdamW step with lr(t−1) on g·min(1, clip/(‖g‖+1e-6))
//
// Evaluation on data.eval_batches validation batches reports
//
//	val_loss = mean cross-entropy (nats/token)   val_ppl = e^val_loss
//	bits/token = val_loss / ln 2                 bits/byte = bits/token / (bytes per token)
//	accuracy = fraction of target positions whose arg-max prediction is the target
//
// bits/byte is reported for text shards (the shard records the bytes its tokens stand
// for); accuracy for synthetic tasks, whose only targets are the answer positions.
//
// Every logged step appends one JSON object to OUT/metrics.jsonl and one row to
// OUT/metrics.csv. Checkpoints go to OUT/checkpoints/step-N (layout in checkpoint.go):
// atomic, checksummed, the newest run.keep_checkpoints kept. A resumed run restores the
// weights, the AdamW moments and update count, the step and skip counters and the data
// cursor, and drops metric lines written after that checkpoint; because every step is
// a pure function of that state, a run killed at any moment and resumed reproduces the
// uninterrupted run bit for bit.
//
// Data-parallel training (distributed.go, Options.Comm) runs one process per MPI rank
// q = 0, …, N−1, each doing G = optim.grad_accum micro-batches of data.batch_size
// sequences per step, so the global batch is batch_size·G·N. The training stream is
// one global stream: global micro-batch m = j·N + q of a step is local micro-batch j of
// rank q (data.Stream.Interleave), and the cursor counts global micro-batches, so a run
// resumes on any N. The flat gradient g (P floats, parameters in order, zero-padded to
// N·C) is cut into N chunks of C floats, rank q owning chunk q, and each chunk into
// pieces sized so that one call moves at most 4 MB. After its local micro-batch j every
// rank sends each owner its chunk (Alltoall, piece by piece, while the next micro-batch
// is computed), and owner q adds what arrives in rank order:
//
//	S_q = g_0[q];  S_q ← S_q + g_m[q]  for m = 1, …, G·N − 1   (m = j·N + p from rank p)
//
// the same float32 additions in the same order as one process's accumulator
// (optim.AddGrad). After the last micro-batch, ḡ_q = S_q·(1/(G·N)) (optim.MeanGrad), an
// Allgather gives every rank all of ḡ, and the norm, clipping and AdamW step run alike
// on every rank, whose weights therefore stay identical. The step's loss
// Σ_m ℓ_m/(G·N) is summed in float64 in m order after an Allgather of the losses. An
// N-rank run with grad_accum G is thus bitwise the one-process run with grad_accum G·N:
// same losses, same weights. Bytes each rank sends per step (4-byte floats):
//
//	G reduce-scatters   G·(N−1)/N · 4P    (all but the last hidden behind compute)
//	one allgather         (N−1)/N · 4P
//
// against 2·(N−1)/N · 4P for one ring allreduce of the summed gradient: equal for G = 1,
// (G−1)·(N−1)/N · 4P more for G > 1, the price of the fixed order, paid while the
// next micro-batch computes.
//
// Rank 0 sets the run up (output directory, checkpoint, weights), sends the resolved
// config, trainer state, weights and AdamW moments to the others, and alone writes
// checkpoints, metrics and the summary; the others train in a scratch directory and
// wait at each checkpoint. The ranks agree on every outcome they can share: different
// configs (hashes compared at start-up), a rank's bad input, a failed checkpoint, a
// signal (any rank's SIGINT/SIGTERM/SIGUSR1 stops all after the same step) end every
// rank alike, reported once by rank 0. A failure of one rank alone aborts the job.
//
// The loop depends on the small interfaces Model, Stepper and Backend; Layers is the
// Backend of the layers package, for both architectures (model.arch "mamba" or
// "transformer").
package train
