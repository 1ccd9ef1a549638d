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
// The loop depends on the small interfaces Model, Stepper and Backend; Layers is the
// Backend of the layers package, for both architectures (model.arch "mamba" or
// "transformer").
package train
