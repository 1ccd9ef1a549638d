package optim

import (
	"fmt"
	"math"
)

// Schedule kinds accepted by Config.Schedule.
const (
	Cosine   = "cosine"   // linear warmup, cosine decay to MinLR at the last update
	Constant = "constant" // linear warmup, then LR
	WSD      = "wsd"      // warmup-stable-decay: warmup, LR, then linear decay to MinLR over DecaySteps
)

// Config holds the optimizer hyper-parameters; JSON keys are the "optim" section of a run config.
type Config struct {
	LR          float64 `json:"lr"`           // peak learning rate
	MinLR       float64 `json:"min_lr"`       // floor of the cosine and wsd decays
	Schedule    string  `json:"schedule"`     // cosine | constant | wsd
	WarmupSteps int     `json:"warmup_steps"` // linear warmup length in updates; 0 = none
	DecaySteps  int     `json:"decay_steps"`  // wsd only: length of the final decay
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	WeightDecay float64 `json:"weight_decay"` // decoupled; not applied to NoDecay params
	GradClip    float64 `json:"grad_clip"`    // global-norm threshold; 0 = no clipping
	GradAccum   int     `json:"grad_accum"`   // micro-batches averaged per update
}

// Defaults returns the paper's recipe (§E.2.1): AdamW β = (0.9, 0.95), weight decay 0.1,
// clip 1.0, cosine decay to 1e-5; the peak LR is 5× GPT-3's 125M value.
func Defaults() Config {
	return Config{
		LR:          3e-3,
		MinLR:       1e-5,
		Schedule:    Cosine,
		Beta1:       0.9,
		Beta2:       0.95,
		Eps:         1e-8,
		WeightDecay: 0.1,
		GradClip:    1.0,
		GradAccum:   1,
	}
}

// Validate reports the first invalid field, named by its JSON key.
func (c Config) Validate() error {
	switch {
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("optim.lr must be a positive number, got %v", c.LR)
	case !(c.MinLR >= 0) || c.MinLR > c.LR:
		return fmt.Errorf("optim.min_lr must be in [0, optim.lr=%v], got %v", c.LR, c.MinLR)
	case c.Schedule != Cosine && c.Schedule != Constant && c.Schedule != WSD:
		return fmt.Errorf("optim.schedule must be %q, %q or %q, got %q", Cosine, Constant, WSD, c.Schedule)
	case c.WarmupSteps < 0:
		return fmt.Errorf("optim.warmup_steps must be >= 0, got %d", c.WarmupSteps)
	case c.DecaySteps < 0:
		return fmt.Errorf("optim.decay_steps must be >= 0, got %d", c.DecaySteps)
	case c.Schedule == WSD && c.DecaySteps == 0:
		return fmt.Errorf("optim.decay_steps must be > 0 for schedule %q", WSD)
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return fmt.Errorf("optim.beta1 must be in [0, 1), got %v", c.Beta1)
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return fmt.Errorf("optim.beta2 must be in [0, 1), got %v", c.Beta2)
	case !(c.Eps > 0):
		return fmt.Errorf("optim.eps must be > 0, got %v", c.Eps)
	case !(c.WeightDecay >= 0) || c.WeightDecay*c.LR >= 1:
		return fmt.Errorf("optim.weight_decay must be >= 0 with weight_decay·lr < 1, got %v", c.WeightDecay)
	case !(c.GradClip >= 0) || math.IsInf(c.GradClip, 0):
		return fmt.Errorf("optim.grad_clip must be >= 0 (0 = off), got %v", c.GradClip)
	case c.GradAccum < 1:
		return fmt.Errorf("optim.grad_accum must be >= 1, got %d", c.GradAccum)
	}
	return nil
}

// LRAt returns the learning rate of update t (0-based) in a run of total updates.
func (c Config) LRAt(t, total int) float64 {
	w := c.WarmupSteps
	if t < w {
		return c.LR * float64(t+1) / float64(w)
	}
	switch c.Schedule {
	case Cosine:
		if t >= total || total <= w {
			return c.MinLR
		}
		r := float64(t-w) / float64(total-w)
		return c.MinLR + 0.5*(c.LR-c.MinLR)*(1+math.Cos(math.Pi*r))
	case WSD:
		start := max(total-c.DecaySteps, w)
		if t < start {
			return c.LR
		}
		if t >= total {
			return c.MinLR
		}
		r := float64(t-start) / float64(total-start)
		return c.LR + r*(c.MinLR-c.LR)
	}
	return c.LR
}

// ClipScale returns the factor s = min(1, clip/(norm+1e-6)) that global-norm clipping
// multiplies every gradient by; clip = 0 disables clipping (s = 1).
func ClipScale(norm, clip float64) float32 {
	if clip <= 0 {
		return 1
	}
	s := clip / (norm + 1e-6)
	if s >= 1 {
		return 1
	}
	return float32(s)
}
