package layers

import (
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfigBytes([]byte(`{"vocab_size": 50277, "d_model": 768, "n_layer": 24}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.PaddedVocab() != 50280 || c.Rank() != 48 || c.DInner() != 1536 || !c.Selective || c.DState != 16 {
		t.Errorf("derived sizes: vocab %d, rank %d, inner %d, selective %v, N %d", c.PaddedVocab(), c.Rank(), c.DInner(), c.Selective, c.DState)
	}
	c, err = ParseConfigBytes([]byte(`{"d_model": 33, "dt_rank": 5, "pad_vocab_multiple": 1, "vocab_size": 7, "selective": false}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Rank() != 5 || c.PaddedVocab() != 7 || c.Selective {
		t.Errorf("explicit values not kept: %+v", c)
	}
	if got := (Config{DModel: 17}).Rank(); got != 2 {
		t.Errorf("auto dt_rank of d_model 17 = %d, want ceil(17/16) = 2", got)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"d_modle": 3}`, `unknown field "d_modle"`},
		{`{"d_model": -1}`, "d_model must be positive"},
		{`{"d_model": "big"}`, "d_model"},
		{`{"dt_min": 0.5, "dt_max": 0.1}`, "dt_min 0.5 exceeds dt_max 0.1"},
		{`{"norm_eps": 0}`, "norm_eps must be a positive finite number"},
		{`{"d_state": 300}`, "d_state must be at most 256"},
		{`{"dt_rank": -2}`, "dt_rank must be positive or 0"},
		{`{} {}`, "trailing data"},
		{`{"dt_rank": 3000000000}`, "parameter backbone.layers.0.mixer.x_proj.weight of shape"},
		{`{`, "model config"},
	} {
		_, err := ParseConfigBytes([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

// TestFLOPsPerToken checks the formula on the benchmark model, whose matrix products
// multiply 1,769,472 parameters per token (4 layers of 425,984, plus the 256×256 head).
func TestFLOPsPerToken(t *testing.T) {
	c := DefaultConfig()
	c.VocabSize, c.DModel, c.NLayer = 256, 256, 4
	want := 6*1769472.0 + 3*4*(7*512*16+2*4*512)
	if got := c.FLOPsPerToken(512); got != want {
		t.Errorf("FLOPsPerToken = %v, want %v", got, want)
	}
	c.Selective = false // the LTI ablation has no x_proj and dt_proj
	want -= 6 * 4 * (48*512 + 512*16)
	if got := c.FLOPsPerToken(512); got != want {
		t.Errorf("LTI FLOPsPerToken = %v, want %v", got, want)
	}
}

// TestTransformerFLOPsPerToken checks the formula on the Transformer++ benchmark model (d_model
// 256, 2 layers of 4 heads, d_ff 682, vocabulary 256, L 512): its products multiply 1,637,376
// parameters per token (2 layers of 785,920, plus the 256×256 head) and its attention costs
// 4·256·(513/2) FLOPs per token and layer in the forward; with grouped heads k and v shrink.
func TestTransformerFLOPsPerToken(t *testing.T) {
	c := transformer(func(c *Config) { c.VocabSize, c.DModel, c.NLayer, c.NHead, c.DFF = 256, 256, 2, 4, 682 })
	want := 6*1637376.0 + 3*2*4*256*513.0/2
	if got := c.FLOPsPerToken(512); got != want {
		t.Errorf("FLOPsPerToken = %v, want %v", got, want)
	}
	c.NKVHead = 2
	want -= 6 * 2 * 2 * 128 * 256
	if got := c.FLOPsPerToken(512); got != want {
		t.Errorf("grouped heads: FLOPsPerToken = %v, want %v", got, want)
	}
}

// resolved spells out the sizes a Config may leave at 0 ("derived": the Mamba's Δ rank, the
// Transformer++'s key/value heads, head size and MLP width), so that two configs of one network
// compare equal.
func resolved(c Config) Config {
	c.DtRank, c.NKVHead, c.HeadDim, c.DFF = c.Rank(), c.KVHeads(), c.HeadSize(), c.FF()
	return c
}

// checkHFRoundTrip is the body of the config.json fuzz targets: parse must not panic and
// must fail with one line, or accept a config that validates and that write and parse turn
// back into the same network.
func checkHFRoundTrip(t *testing.T, raw []byte, parse func([]byte) (Config, error), write func(Config) ([]byte, error)) {
	t.Helper()
	c, err := parse(raw)
	if err != nil {
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("error is not one line: %q", err)
		}
		return
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("accepted config does not validate: %v", err)
	}
	out, err := write(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := parse(out)
	if err != nil || resolved(back) != resolved(c) {
		t.Fatalf("config does not survive a write and re-read: %v\n%+v\n%+v", err, c, back)
	}
}
