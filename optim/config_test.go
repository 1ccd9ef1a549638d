package optim

import (
	"math"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

func TestScheduleShapes(t *testing.T) {
	const total = 100
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }
	cos := Defaults()
	cos.LR, cos.MinLR, cos.WarmupSteps = 1, 0.1, 10
	for _, tc := range []struct {
		name string
		cfg  Config
		t    int
		want float64
	}{
		{"cosine warmup first", cos, 0, 0.1},
		{"cosine warmup last", cos, 9, 1},
		{"cosine peak", cos, 10, 1},
		{"cosine middle", cos, 55, 0.55},
		{"cosine end", cos, total, 0.1},
		{"cosine past end", cos, total + 5, 0.1},
		{"constant warmup", func() Config { c := cos; c.Schedule = Constant; return c }(), 4, 0.5},
		{"constant after", func() Config { c := cos; c.Schedule = Constant; return c }(), 99, 1},
		{"wsd stable", func() Config { c := cos; c.Schedule, c.DecaySteps = WSD, 20; return c }(), 79, 1},
		{"wsd decay middle", func() Config { c := cos; c.Schedule, c.DecaySteps = WSD, 20; return c }(), 90, 0.55},
		{"wsd end", func() Config { c := cos; c.Schedule, c.DecaySteps = WSD, 20; return c }(), total, 0.1},
	} {
		if got := tc.cfg.LRAt(tc.t, total); !close(got, tc.want) {
			t.Errorf("%s: LRAt(%d) = %v, want %v", tc.name, tc.t, got, tc.want)
		}
	}
	prev := math.Inf(1)
	for s := cos.WarmupSteps; s <= total; s++ {
		lr := cos.LRAt(s, total)
		if lr > prev {
			t.Fatalf("cosine not monotone after warmup: LRAt(%d) = %v > %v", s, lr, prev)
		}
		prev = lr
	}
}

func TestClipScale(t *testing.T) {
	if s := ClipScale(0.5, 1); s != 1 {
		t.Errorf("ClipScale(0.5, 1) = %v, want 1", s)
	}
	if s := ClipScale(4, 1); !testutil.Within(math.Abs(float64(s)-1/(4+1e-6)), 1e-7) {
		t.Errorf("ClipScale(4, 1) = %v, want 0.25", s)
	}
	if s := ClipScale(1e9, 0); s != 1 {
		t.Errorf("ClipScale with clipping off = %v, want 1", s)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.LR = 0 }, "optim.lr"},
		{func(c *Config) { c.LR = math.NaN() }, "optim.lr"},
		{func(c *Config) { c.MinLR = 1 }, "optim.min_lr"},
		{func(c *Config) { c.Schedule = "linear" }, "optim.schedule"},
		{func(c *Config) { c.WarmupSteps = -1 }, "optim.warmup_steps"},
		{func(c *Config) { c.Schedule = WSD }, "optim.decay_steps"},
		{func(c *Config) { c.Beta1 = 1 }, "optim.beta1"},
		{func(c *Config) { c.Beta2 = -0.1 }, "optim.beta2"},
		{func(c *Config) { c.Eps = 0 }, "optim.eps"},
		{func(c *Config) { c.WeightDecay = -1 }, "optim.weight_decay"},
		{func(c *Config) { c.GradClip = -1 }, "optim.grad_clip"},
		{func(c *Config) { c.GradAccum = 0 }, "optim.grad_accum"},
	} {
		c := Defaults()
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error naming %s", err, tc.want)
		}
	}
	if err := Defaults().Validate(); err != nil {
		t.Errorf("Defaults().Validate() = %v", err)
	}
}
