// Package sweep runs scaling-law sweeps: a grid of ordinary training runs made from
// one base run config, each trained by the train binary in a child process, then
// gathered into runs.csv, fitted (package scaling) and plotted.
//
// A grid point is (arch, size, budget, seq_len, seed). Its training tokens D follow
// the budget: D = r·N for a tokens-per-parameter ratio r (N = non-embedding
// parameters), D = C / F for an IsoFLOP compute C, with F the FLOPs per token of
// layers.Config.FLOPsPerToken, or D fixed. The steps are round(D / T), T the tokens
// per step (batch × seq_len × grad_accum; for context studies batch = T / seq_len at
// a fixed T). The peak learning rate follows PaperLR (the GPT-3 table × 5, the
// Mamba paper's recipe) or the base config's, times lr.scale; with lr.search, each
// (arch, size, seq_len) first trains its first grid point once per multiplier of
// that rate, and its other points take the multiplier of the lowest final loss.
//
// Each point is a run directory named arch-size-budget[-Lseq_len]-sSEED holding
// run-config.json (the resolved run config), the run's own files and summary.json.
// A run is finished when summary.json says so and hashes run-config.json; the
// sweep never runs it again. A run with a checkpoint is resumed (`train --resume`),
// bit for bit as if it had not stopped; any other is started afresh. A lock on the
// sweep directory, inherited by the runs, keeps a second sweep out until every run
// of the first has ended; on Linux a run dies with the sweep that started it.
package sweep
