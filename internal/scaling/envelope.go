package scaling

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat"
)

// Envelope is Chinchilla's approach 1 on final losses: the runs are grouped into
// compute buckets, the lowest loss of each bucket is its frontier point, and power
// laws N_opt = K_N·C^a and D_opt = K_D·C^b are fitted through the frontier points by
// least squares on logarithms.
type Envelope struct {
	Buckets []Bucket `json:"buckets"`
	A       float64  `json:"a"` // N_opt ∝ C^a
	KN      float64  `json:"k_n"`
	B       float64  `json:"b"` // D_opt ∝ C^b
	KD      float64  `json:"k_d"`
}

// Bucket is the best run among those of about the same compute.
type Bucket struct {
	C      float64 `json:"flops"`  // geometric mean compute of the bucket's runs
	Runs   int     `json:"runs"`   // runs in the bucket
	Params float64 `json:"params"` // N of the lowest-loss run
	Tokens float64 `json:"tokens"` // D of the lowest-loss run
	Loss   float64 `json:"loss"`
}

// BucketRatio groups runs: a bucket holds the runs whose compute is within this
// factor of its smallest.
const BucketRatio = 1.25

// envelope returns approach 1's fit, or nil and the reason it cannot be made: it
// needs at least three buckets of at least two runs each, with different optima.
func envelope(runs []Run) (*Envelope, string) {
	rs := slices.Clone(runs)
	slices.SortStableFunc(rs, func(x, y Run) int {
		switch cx, cy := x.Compute(), y.Compute(); {
		case cx < cy:
			return -1
		case cx > cy:
			return 1
		}
		return 0
	})
	e := &Envelope{}
	for i := 0; i < len(rs); {
		j, logC := i, 0.0
		best := rs[i]
		for ; j < len(rs) && rs[j].Compute() <= rs[i].Compute()*BucketRatio; j++ {
			logC += math.Log(rs[j].Compute())
			if rs[j].Loss < best.Loss {
				best = rs[j]
			}
		}
		if j-i >= 2 {
			e.Buckets = append(e.Buckets, Bucket{C: math.Exp(logC / float64(j-i)), Runs: j - i, Params: best.Params, Tokens: best.Tokens, Loss: best.Loss})
		}
		i = j
	}
	if len(e.Buckets) < 3 {
		return nil, fmt.Sprintf("approach 1 needs 3 compute buckets (runs within a factor %g of each other) of 2 runs or more; the grid has %d", BucketRatio, len(e.Buckets))
	}
	var lc, ln, ld []float64
	for _, b := range e.Buckets {
		lc, ln, ld = append(lc, math.Log(b.C)), append(ln, math.Log(b.Params)), append(ld, math.Log(b.Tokens))
	}
	var kn, kd float64
	kn, e.A = stat.LinearRegression(lc, ln, nil, false)
	kd, e.B = stat.LinearRegression(lc, ld, nil, false)
	e.KN, e.KD = math.Exp(kn), math.Exp(kd)
	return e, ""
}
