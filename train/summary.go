package train

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/mambago/mamba/internal/atomicfile"
)

// SummaryFile is the name of a run directory's summary (RunSummary).
const SummaryFile = "summary.json"

// RunSummary is OUT/summary.json: what a scaling sweep, or a person, needs to know
// about a run without opening its checkpoints. The run rewrites it atomically after
// every checkpoint (so it always describes the newest one) and at the end.
//
// FLOPs counts the training work done so far: Tokens × FLOPsPerToken, where
// FLOPsPerToken is layers.Config.FLOPsPerToken(data.seq_len), the documented count
// of 6·N per token on the multiplied parameters plus the scan and conv terms (Mamba)
// or the attention term (Transformer++), forward and backward; evaluation is not
// counted.
type RunSummary struct {
	Arch string `json:"arch"` // model.arch; "mamba" when the config has no such key

	// Params counts every learned scalar; NonEmbeddingParams leaves out the token
	// embedding (which is also the tied LM head) and any other parameter that
	// IsEmbedding names. Scaling laws use NonEmbeddingParams (Kaplan et al.'s N).
	Params             int `json:"params"`
	NonEmbeddingParams int `json:"non_embedding_params"`

	Step     int  `json:"step"`      // optimizer updates done
	MaxSteps int  `json:"max_steps"` // run.max_steps
	Finished bool `json:"finished"`  // Step == MaxSteps: the final checkpoint and evaluation are written

	SeqLen        int     `json:"seq_len"`
	TokensPerStep int     `json:"tokens_per_step"` // batch_size × seq_len × grad_accum
	Tokens        int64   `json:"tokens"`          // training tokens seen
	FLOPsPerToken float64 `json:"flops_per_token"`
	FLOPs         float64 `json:"flops"`
	WallS         float64 `json:"wall_s"` // training wall time, summed over resumed attempts
	TokensPerS    float64 `json:"tokens_per_s"`

	// Validation loss in nats per token: the last evaluation (at Step when Finished)
	// and the lowest one, with their steps and, for text shards, bits per byte.
	FinalValLoss        *float64 `json:"final_val_loss"`
	FinalValStep        int      `json:"final_val_step"`
	FinalValBitsPerByte *float64 `json:"final_val_bits_per_byte,omitempty"`
	BestValLoss         *float64 `json:"best_val_loss"`
	BestValStep         int      `json:"best_val_step"`
	BestValBitsPerByte  *float64 `json:"best_val_bits_per_byte,omitempty"`

	Skipped      int    `json:"skipped"`       // non-finite steps skipped
	ConfigSHA256 string `json:"config_sha256"` // SHA-256 of the resolved config JSON (Config.JSON)
	Build        Build  `json:"build"`
}

// Build identifies the binary that trained a run.
type Build struct {
	// Describe is the VCS revision in the style of `git describe --always --dirty`
	// (12 hex digits, "-dirty" when the tree had changes), or the module version of
	// a `go install pkg@version` build; "unknown" when the build recorded neither
	// (go test binaries, -buildvcs=false).
	Describe    string `json:"describe"`
	VCSRevision string `json:"vcs_revision,omitempty"`
	VCSModified bool   `json:"vcs_modified,omitempty"`
	VCSTime     string `json:"vcs_time,omitempty"`
	GoVersion   string `json:"go_version"`
}

// BuildInfo reads the running binary's Build from runtime/debug.ReadBuildInfo.
func BuildInfo() Build {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Build{Describe: "unknown"}
	}
	b := Build{GoVersion: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.VCSRevision = s.Value
		case "vcs.modified":
			b.VCSModified = s.Value == "true"
		case "vcs.time":
			b.VCSTime = s.Value
		}
	}
	switch v := bi.Main.Version; {
	case b.VCSRevision != "":
		b.Describe = b.VCSRevision[:min(12, len(b.VCSRevision))]
		if b.VCSModified {
			b.Describe += "-dirty"
		}
	case v != "" && v != "(devel)":
		b.Describe = v
	default:
		b.Describe = "unknown"
	}
	return b
}

// IsEmbedding reports whether a parameter is a vocabulary embedding: its name has a
// component that starts with "embed" (backbone.embeddings.weight, model.embed_tokens.weight)
// or it is an untied LM head (lm_head.weight). These are left out of
// RunSummary.NonEmbeddingParams.
func IsEmbedding(name string) bool {
	if strings.HasPrefix(name, "lm_head.") {
		return true
	}
	for part := range strings.SplitSeq(name, ".") {
		if strings.HasPrefix(part, "embed") {
			return true
		}
	}
	return false
}

// ConfigArch returns the model.arch of a resolved config's JSON, "mamba" when the
// key is absent (configs from before the key existed, and every Mamba run).
func ConfigArch(resolved []byte) string {
	var c struct {
		Model struct {
			Arch string `json:"arch"`
		} `json:"model"`
	}
	if json.Unmarshal(resolved, &c) != nil || c.Model.Arch == "" {
		return "mamba"
	}
	return c.Model.Arch
}

// ReadSummary reads the summary.json of run directory dir.
func ReadSummary(dir string) (RunSummary, error) {
	var s RunSummary
	raw, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("%s: corrupt %s: %v", dir, SummaryFile, err)
	}
	return s, nil
}

// evalRecord tracks the last and the best evaluation of a run.
type evalRecord struct {
	last, best         Eval
	lastStep, bestStep int
}

func (e *evalRecord) add(step int, v Eval) {
	if v.ValLoss == nil {
		return
	}
	e.last, e.lastStep = v, step
	if e.best.ValLoss == nil || *v.ValLoss < *e.best.ValLoss {
		e.best, e.bestStep = v, step
	}
}

// readEvals rebuilds the evaluation record of a resumed run from the metrics log
// (which openMetrics has cut back to the checkpoint's step).
func readEvals(out string) (evalRecord, error) {
	var e evalRecord
	raw, err := os.ReadFile(filepath.Join(out, metricsJSONL))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return e, err
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m Metric
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			e.add(m.Step, m.Eval)
		}
	}
	return e, nil
}

// runSummary assembles the RunSummary of the run's current state.
func (r *runner) runSummary() RunSummary {
	sum := sha256.Sum256(r.st.Config)
	s := RunSummary{
		Arch: ConfigArch(r.st.Config), Params: r.summary.Params,
		Step: r.st.Step, MaxSteps: r.cfg.Run.MaxSteps, Finished: r.st.Step == r.cfg.Run.MaxSteps && r.st.Pending == nil,
		SeqLen: r.cfg.Data.SeqLen, TokensPerStep: r.tokensPerStep(), Tokens: r.st.Tokens,
		FLOPsPerToken: r.model.Config().FLOPsPerToken(r.cfg.Data.SeqLen),
		WallS:         r.st.ElapsedS, Skipped: r.st.Skipped,
		FinalValLoss: r.evals.last.ValLoss, FinalValStep: r.evals.lastStep, FinalValBitsPerByte: r.evals.last.ValBitsPerByte,
		BestValLoss: r.evals.best.ValLoss, BestValStep: r.evals.bestStep, BestValBitsPerByte: r.evals.best.ValBitsPerByte,
		ConfigSHA256: hex.EncodeToString(sum[:]), Build: BuildInfo(),
	}
	for _, p := range r.model.Params() {
		if !IsEmbedding(p.Name) {
			s.NonEmbeddingParams += len(p.Value)
		}
	}
	s.FLOPs = float64(s.Tokens) * s.FLOPsPerToken
	if s.WallS > 0 {
		s.TokensPerS = float64(s.Tokens) / s.WallS
	}
	return s
}

// writeSummary writes OUT/summary.json atomically.
func (r *runner) writeSummary() error {
	b, err := json.MarshalIndent(r.runSummary(), "", "  ")
	if err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(r.out, SummaryFile), append(b, '\n')); err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	return nil
}
