package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/mambago/mamba/data/shard"
	"github.com/mambago/mamba/data/tokenize"
	"github.com/mambago/mamba/internal/strictjson"
	"github.com/mambago/mamba/internal/sysmem"
	"github.com/mambago/mamba/layers"
	"github.com/mambago/mamba/optim"
)

// Config is the whole description of a run: one typed struct, decoded strictly from
// JSON. Every key has a default (DefaultConfig); a config file only names what it changes.
type Config struct {
	Model layers.Config `json:"model"`
	Data  DataConfig    `json:"data"`
	Optim optim.Config  `json:"optim"`
	Run   RunConfig     `json:"run"`
}

// DataConfig chooses the training and validation streams.
type DataConfig struct {
	// Task is "selective_copying" or "induction_heads" (synthetic, generated on the
	// fly) or "shards" (token shards written by `train prepare`).
	Task  string `json:"task"`
	Train string `json:"train"` // shards: training shard file, or a directory of the shards of one split (read in name order)
	Valid string `json:"valid"` // shards: validation shard file or directory
	Test  string `json:"test"`  // shards: test split, for `eval --split test`; "" = test.tok beside a data.valid named valid.tok
	// Shards: what the shards must hold, "" = anything: a modality (text, dna,
	// audio) and a tokenizer (bytes, gpt2, dna, mulaw). A run records what it
	// trained on in its checkpoints, and refuses other data when resumed,
	// fine-tuned or evaluated.
	Modality    string `json:"modality"`
	Tokenizer   string `json:"tokenizer"`
	Verify      bool   `json:"verify"`       // shards: read every shard once at open (checksum, tokens < vocabulary); false skips it
	BatchSize   int    `json:"batch_size"`   // sequences per micro-batch
	SeqLen      int    `json:"seq_len"`      // tokens per sequence (L)
	EvalBatches int    `json:"eval_batches"` // validation batches per evaluation
	// ResetAtDocBoundary (shards) zeroes the model's state where a packed
	// document starts, and takes no loss on predicting a document's first
	// token from the document before. Synthetic tasks have no documents.
	ResetAtDocBoundary bool `json:"reset_at_doc_boundary"`

	// Synthetic tasks: vocabulary (including the noise/marker tokens the task needs)
	// and the number of tokens to memorise.
	Vocab  int `json:"vocab"`
	Tokens int `json:"tokens"`
}

// RunConfig controls the length, logging, evaluation and checkpointing of a run.
type RunConfig struct {
	MaxSteps        int      `json:"max_steps"`        // optimizer updates
	CheckpointEvery int      `json:"checkpoint_every"` // steps between checkpoints (and one at the end); 0 = end only
	EvalEvery       int      `json:"eval_every"`       // steps between evaluations (and one at the end); 0 = end only
	LogEvery        int      `json:"log_every"`        // steps between metric lines
	Seed            uint64   `json:"seed"`             // model initialisation and data order
	KeepCheckpoints int      `json:"keep_checkpoints"` // newest checkpoints kept; older ones are deleted
	MaxNonFinite    int      `json:"max_nonfinite"`    // consecutive skipped (NaN/Inf) steps before the run stops
	Freeze          []string `json:"freeze"`           // glob patterns (path.Match) of parameter names not trained
	// MaxMemory bounds the memory the run may need (model, optimizer,
	// activations: estimated before anything is allocated), e.g. "16GB";
	// "" = the memory available (MemAvailable, or the cgroup's limit).
	MaxMemory string `json:"max_memory"`
	Device    string `json:"device"`    // "cpu" or "cuda" (the first NVIDIA GPU), see device.go
	Precision string `json:"precision"` // products in "fp32", "tf32" or "bf16" (tf32 and bf16: cuda only)
}

// DefaultConfig returns the documented defaults: the model package's default Mamba,
// the selective-copying task, the paper's optimizer recipe and a 1000-step run.
func DefaultConfig() Config {
	return Config{
		Model: layers.DefaultConfig(),
		Data: DataConfig{
			Task: TaskSelectiveCopying, BatchSize: 16, SeqLen: 256, EvalBatches: 8,
			Vocab: 16, Tokens: 16, Verify: true, ResetAtDocBoundary: true,
		},
		Optim: optim.Defaults(),
		Run: RunConfig{
			MaxSteps: 1000, CheckpointEvery: 500, EvalEvery: 100, LogEvery: 10,
			Seed: 1, KeepCheckpoints: 3, MaxNonFinite: 8, Device: DeviceCPU, Precision: "fp32",
		},
	}
}

// Data tasks.
const (
	TaskSelectiveCopying = "selective_copying"
	TaskInductionHeads   = "induction_heads"
	TaskShards           = "shards"
)

// LoadConfig reads a config file and resolves it with ParseConfig.
func LoadConfig(path string, sets []string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Config{}, fmt.Errorf("config %s: file does not exist", path)
		}
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	c, err := ParseConfig(raw, sets)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig resolves a run config: the JSON object raw is read into a tree, each
// override "dotted.key=value" is set in the tree (value is JSON if it parses as JSON,
// else a string), and the tree is decoded strictly on top of DefaultConfig, so an
// unknown key, a wrong type or an invalid value is an error that names the key.
// Decoding is stricter than encoding/json: a repeated key (or section), a null
// value and anything after the object are errors too.
func ParseConfig(raw []byte, sets []string) (Config, error) {
	tree, err := decodeTree(raw)
	if err != nil {
		return Config{}, err
	}
	for _, s := range sets {
		if err := setKey(tree, s); err != nil {
			return Config{}, err
		}
	}
	c := DefaultConfig()
	if err := checkKeys(tree, reflect.TypeOf(c), ""); err != nil {
		return Config{}, err
	}
	b, err := json.Marshal(tree)
	if err != nil {
		return Config{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Config{}, fmt.Errorf("key %q: want %s, got %s", te.Field, kindName(te.Type), te.Value)
		}
		return Config{}, err
	}
	return c, c.Validate()
}

// decodeTree reads one JSON object (strictjson: no repeated key, nothing after
// it) and refuses a null anywhere in it, naming the key.
func decodeTree(raw []byte) (map[string]any, error) {
	v, err := strictjson.Decode(raw)
	if err != nil {
		return nil, err
	}
	tree, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("invalid JSON: the config must be an object")
	}
	if key, ok := strictjson.FindNull(tree); ok {
		return nil, fmt.Errorf("key %q is null: leave it out for its default, or give a value", key)
	}
	return tree, nil
}

// setKey applies one "a.b.c=value" override to tree.
func setKey(tree map[string]any, kv string) error {
	key, val, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return fmt.Errorf("override %q: want key=value, e.g. optim.lr=1e-3", kv)
	}
	v, err := strictjson.Decode([]byte(val))
	switch trimmed := strings.TrimSpace(val); {
	case err == nil:
		if p, null := strictjson.FindNull(v); null {
			where := ""
			if p != "" {
				where = " (at " + p + ")"
			}
			return fmt.Errorf("override %q: null is not a value%s: leave the key out for its default, or give a value", kv, where)
		}
	case strings.HasPrefix(trimmed, "{") || strings.HasPrefix(trimmed, "["):
		return fmt.Errorf("override %q: the value is not valid JSON (%v); quote strings, e.g. run.freeze='[\"backbone.*\"]'", kv, err)
	default:
		v = val // not JSON: a bare string
	}
	parts := strings.Split(key, ".")
	node := tree
	for i, p := range parts[:len(parts)-1] {
		next, ok := node[p]
		if !ok {
			next = map[string]any{}
			node[p] = next
		}
		m, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("override %q: %q is not a section", kv, strings.Join(parts[:i+1], "."))
		}
		node = m
	}
	node[parts[len(parts)-1]] = v
	return nil
}

// checkKeys reports the first key of tree that t (a struct type) does not have.
func checkKeys(tree map[string]any, t reflect.Type, prefix string) error {
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
		names = append(names, name)
	}
	keys := make([]string, 0, len(tree))
	for k := range tree {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ft, ok := fields[k]
		if !ok {
			where := "top-level keys"
			if prefix != "" {
				where = strings.TrimSuffix(prefix, ".") + " keys"
			}
			return fmt.Errorf("unknown key %q (%s: %s)", prefix+k, where, strings.Join(names, ", "))
		}
		if sub, ok := tree[k].(map[string]any); ok && ft.Kind() == reflect.Struct {
			if err := checkKeys(sub, ft, prefix+k+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "a non-negative integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(kindName(t.Elem()), "a ") + "s"
	case reflect.Struct:
		return "an object"
	}
	return t.String()
}

// Validate checks the whole config; errors name the offending key.
func (c Config) Validate() error {
	if err := c.Model.Validate(); err != nil {
		return err
	}
	if err := c.Optim.Validate(); err != nil {
		return err
	}
	d, r := c.Data, c.Run
	for _, f := range []struct {
		key    string
		v, min int
	}{
		{"data.batch_size", d.BatchSize, 1}, {"data.seq_len", d.SeqLen, 2}, {"data.eval_batches", d.EvalBatches, 1},
		{"run.max_steps", r.MaxSteps, 1}, {"run.checkpoint_every", r.CheckpointEvery, 0}, {"run.eval_every", r.EvalEvery, 0},
		{"run.log_every", r.LogEvery, 1}, {"run.keep_checkpoints", r.KeepCheckpoints, 1}, {"run.max_nonfinite", r.MaxNonFinite, 1},
	} {
		if f.v < f.min {
			return fmt.Errorf("%s must be >= %d, got %d", f.key, f.min, f.v)
		}
	}
	switch {
	case d.Task != TaskSelectiveCopying && d.Task != TaskInductionHeads && d.Task != TaskShards:
		return fmt.Errorf("data.task must be %q, %q or %q, got %q", TaskSelectiveCopying, TaskInductionHeads, TaskShards, d.Task)
	case d.Task == TaskShards && (d.Train == "" || d.Valid == ""):
		return errors.New("data.train and data.valid must name shard files for data.task \"shards\" (make them with `train prepare`)")
	case d.Task != TaskShards && d.Vocab > c.Model.VocabSize:
		return fmt.Errorf("data.vocab %d exceeds model.vocab_size %d", d.Vocab, c.Model.VocabSize)
	case c.Optim.WarmupSteps > r.MaxSteps:
		return fmt.Errorf("optim.warmup_steps %d exceeds run.max_steps %d: shorten it too, e.g. --set optim.warmup_steps=%d", c.Optim.WarmupSteps, r.MaxSteps, r.MaxSteps/10)
	case c.Optim.Schedule == optim.WSD && c.Optim.WarmupSteps+c.Optim.DecaySteps > r.MaxSteps:
		return fmt.Errorf("optim.warmup_steps %d + optim.decay_steps %d exceed run.max_steps %d: shorten them too, e.g. --set optim.warmup_steps=%d --set optim.decay_steps=%d",
			c.Optim.WarmupSteps, c.Optim.DecaySteps, r.MaxSteps, r.MaxSteps/10, max(r.MaxSteps/5, 1))
	}
	if _, err := r.memoryLimit(); err != nil {
		return err
	}
	if d.Modality != "" {
		if _, err := shard.ParseModality(d.Modality); err != nil {
			return fmt.Errorf("data.modality: %v", err)
		}
	}
	if d.Tokenizer != "" {
		m, err := tokenize.ModalityOf(d.Tokenizer)
		switch {
		case err != nil:
			return fmt.Errorf("data.tokenizer: %v", err)
		case d.Modality != "" && m.String() != d.Modality:
			return fmt.Errorf("data.tokenizer %s makes %s tokens, but data.modality is %s", d.Tokenizer, m, d.Modality)
		}
	}
	if err := checkDevice(r); err != nil {
		return err
	}
	for _, p := range r.Freeze {
		if _, err := matchName(p, ""); err != nil {
			return fmt.Errorf("run.freeze pattern %q: %v", p, err)
		}
	}
	return nil
}

// memoryLimit is run.max_memory in bytes, 0 when unset.
func (r RunConfig) memoryLimit() (int64, error) {
	if r.MaxMemory == "" {
		return 0, nil
	}
	b, err := sysmem.ParseSize(r.MaxMemory)
	if err != nil {
		return 0, fmt.Errorf("run.max_memory: %v", err)
	}
	return b, nil
}

// JSON returns the config as one line of JSON (the first log line, and the form
// stored in checkpoints).
func (c Config) JSON() []byte {
	if c.Run.Freeze == nil {
		c.Run.Freeze = []string{} // [], not null: a null is refused when read back
	}
	b, _ := json.Marshal(c) // plain data: cannot fail
	return b
}

// ResumeConfig returns the config stored in the newest valid checkpoint of out, with
// the overrides sets applied (for example a larger run.max_steps).
func ResumeConfig(out string, sets []string) (Config, error) {
	if err := checkFree(out); err != nil {
		return Config{}, err
	}
	dir, _, err := LatestCheckpoint(out)
	if err != nil {
		return Config{}, err
	}
	return CheckpointConfig(dir, sets)
}

// CheckpointConfig returns the run config stored in checkpoint dir, with the
// overrides sets applied. The checkpoint is verified first.
func CheckpointConfig(dir string, sets []string) (Config, error) {
	if err := VerifyCheckpoint(dir); err != nil {
		return Config{}, err
	}
	st, err := readState(dir)
	if err != nil {
		return Config{}, err
	}
	c, err := ParseConfig(st.Config, sets)
	if err != nil {
		return Config{}, fmt.Errorf("checkpoint %s: config: %w", dir, err)
	}
	return c, nil
}
