// Package data feeds token batches to training: a Source yields
// (Batch, Len) inputs and next-token targets, deterministically by seed, and
// its Cursor resumes the stream exactly.
//
// For a corpus of tokens x_0 … x_{N-1} (one memory-mapped shard, or the
// shards of a directory concatenated in name order) and a window starting at s,
//
//	Inputs[r, t] = x_{s+t},  Targets[r, t] = x_{s+t+1},  t = 0 … Len-1
//
// Random order draws s uniformly from [0, N-Len-1] with a counter-based
// generator keyed by (seed, step, row); Sequential order takes window
// k = step·Batch + row at s = (k mod W)·Len, W = ⌊(N-1)/Len⌋. Either way
// batch k is a pure function of k, so:
//
//   - a background goroutine can prefetch batches without changing them;
//   - the Cursor is just {source identity, k}: save it with the model, and
//     Restore(cursor) replays exactly the batches the uninterrupted run sees;
//   - a cursor from other data, seed, shape or order is refused.
//
// Documents are packed back to back. With LoaderOptions.Resets the batch
// carries Resets[r, t] = 1 where x_{s+t} starts a document, so the model can
// zero the scan state there (h_{t-1} := 0) instead of carrying it across
// unrelated documents, and Targets[r, t] = -1 where x_{s+t+1} starts one: a
// document's first token is not predicted from the one before.
//
// Windows of 2^20 tokens and more are read straight from the mapping into
// the batch (one copy, uint8 → int32); the corpus is never loaded twice.
//
// Sub-packages:
//
//	shard     the token-shard file format: atomic writer, mmap reader, spec
//	tokenize  bytes, GPT-2 BPE, DNA characters, μ-law audio; units per token
//	synth     selective copying and induction heads (paper §4.1) as Sources
//	corpus    prepare: fetch (npm, apt), split, tokenize, manifest, summary
//	fasta     FASTA records (plain or gzip)
//	wav       WAV decoding to 16-bit mono, resampling
package data
