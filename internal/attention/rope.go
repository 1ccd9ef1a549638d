package attention

import (
	"fmt"
	"math"

	"github.com/mambago/mamba/internal/parallel"
)

// Rope is the rotary position embedding of transformers' Llama (rope_type "default"): each head
// of HeadDim channels is rotated pairwise, channel i with channel i + HeadDim/2 (rotate_half), by
// the angle p·f_i of its token's position p,
//
//	y_i = x_i cos(p f_i) − x_{i+h} sin(p f_i),  y_{i+h} = x_{i+h} cos(p f_i) + x_i sin(p f_i),  i < h = HeadDim/2
//	f_i = θ^(−2i/HeadDim)
//
// and the backward is the rotation by −p·f_i. The tables are computed as transformers computes
// them, in float32: f_i = 1/θ^(float32(2i)/HeadDim), the angle float32(p·f_i), its cosine and
// sine rounded to float32; the float64 path widens the same values, as a float64 transformers
// model does. A Rope is not safe for concurrent use (it holds its parallel loop).
type Rope struct {
	headDim, positions int
	cos, sin           []float32 // (positions, HeadDim/2)

	job  parallel.Job
	call rotation
}

// ropeBlock is the number of rows of one parallel item of Forward and Backward.
const ropeBlock = 64

// NewRope returns the tables for heads of headDim channels (even) at positions [0, positions),
// with base θ = theta.
func NewRope(headDim, positions int, theta float64) (*Rope, error) {
	if err := checkRope(headDim, positions, theta); err != nil {
		return nil, err
	}
	h := headDim / 2
	r := &Rope{headDim: headDim, positions: positions, cos: make([]float32, positions*h), sin: make([]float32, positions*h)}
	for i := range h {
		e := float32(2*i) / float32(headDim)
		f := 1 / float32(math.Pow(theta, float64(e)))
		for p := range positions {
			a := float64(float32(p) * f)
			r.cos[p*h+i], r.sin[p*h+i] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	return r, nil
}

// checkRope validates the arguments of NewRope.
func checkRope(headDim, positions int, theta float64) error {
	switch {
	case headDim < 2 || headDim%2 != 0:
		return fmt.Errorf("attention: rope head dimension %d must be even and positive", headDim)
	case positions < 1 || !fits(positions, headDim) || positions > 1<<24:
		return fmt.Errorf("attention: rope positions %d must be in [1, 2^24]", positions)
	case !(theta > 1) || math.IsInf(theta, 0):
		return fmt.Errorf("attention: rope theta %g must be a finite number above 1", theta)
	}
	return nil
}

// HeadDim is the size of the heads the tables rotate.
func (r *Rope) HeadDim() int { return r.headDim }

// Positions is the number of positions of the tables.
func (r *Rope) Positions() int { return r.positions }

// Positions fills pos (Batch·Len) with each token's position in its document: t, or t minus the
// position of its document's first token when resets (Batch·Len, see Inputs.Resets) is not nil.
func Positions(pos []int32, batch, L int, resets []uint8) {
	for b := range batch {
		s := 0
		for t := range L {
			if resets != nil && t > 0 && resets[b*L+t] != 0 {
				s = t
			}
			pos[b*L+t] = int32(t - s)
		}
	}
}

// check validates a rotation of rows·heads heads.
func checkRotate[T float32 | float64](r *Rope, dst, src []T, pos []int32, heads int) error {
	if heads < 1 {
		return fmt.Errorf("attention: rope over %d heads", heads)
	}
	n := len(pos) * heads * r.headDim
	if len(src) != n || len(dst) != n {
		return fmt.Errorf("attention: rope of %d rows × %d heads × %d needs %d values, got src %d, dst %d", len(pos), heads, r.headDim, n, len(src), len(dst))
	}
	for i, p := range pos {
		if p < 0 || int(p) >= r.positions {
			return fmt.Errorf("attention: rope position %d of row %d is outside the table [0, %d)", p, i, r.positions)
		}
	}
	return nil
}

// Forward sets dst (rows, heads·HeadDim) to src rotated head by head, row r at position pos[r].
// dst may be src.
func (r *Rope) Forward(dst, src []float32, pos []int32, heads int) error {
	return r.rotate(dst, src, pos, heads, 1)
}

// Backward sets dsrc to ddst rotated back (by −angle): the gradient of Forward. dsrc may be ddst.
func (r *Rope) Backward(dsrc, ddst []float32, pos []int32, heads int) error {
	return r.rotate(dsrc, ddst, pos, heads, -1)
}

// Rotate rotates x (heads·HeadDim values, one token) in place to position pos, as Forward does
// a row, on the calling goroutine: safe to call concurrently. pos must be in [0, Positions()).
func (r *Rope) Rotate(x []float32, pos, heads int) {
	rotateRow(x, x, r.cos[pos*r.headDim/2:][:r.headDim/2], r.sin[pos*r.headDim/2:][:r.headDim/2], heads, r.headDim, 1)
}

func (r *Rope) rotate(dst, src []float32, pos []int32, heads int, sign float32) error {
	if err := checkRotate(r, dst, src, pos, heads); err != nil {
		return err
	}
	r.call = rotation{r, dst, src, pos, heads, sign}
	r.job.Run(&r.call, (len(pos)+ropeBlock-1)/ropeBlock, 0)
	r.call = rotation{}
	return nil
}

// rotation is one Forward or Backward call; item i rotates rows [i·ropeBlock, (i+1)·ropeBlock).
type rotation struct {
	r        *Rope
	dst, src []float32
	pos      []int32
	heads    int
	sign     float32
}

func (c *rotation) Item(_, i int) {
	hd := c.r.headDim
	h := hd / 2
	n := c.heads * hd
	for row := i * ropeBlock; row < min(len(c.pos), (i+1)*ropeBlock); row++ {
		p := int(c.pos[row])
		rotateRow(c.dst[row*n:][:n], c.src[row*n:][:n], c.r.cos[p*h:][:h], c.r.sin[p*h:][:h], c.heads, hd, c.sign)
	}
}

// rotateRow rotates the heads of one token, src into dst (which may be src), by the angles of
// the tables cs, sn of its position, backwards when sign is −1.
func rotateRow(dst, src, cs, sn []float32, heads, hd int, sign float32) {
	h := hd / 2
	for k := range heads {
		x, y := src[k*hd:][:hd], dst[k*hd:][:hd]
		for j := range h {
			a, b, s := x[j], x[j+h], sign*sn[j]
			y[j], y[j+h] = a*cs[j]-b*s, b*cs[j]+a*s
		}
	}
}

// RotateReference is Forward (inverse: Backward) in float64 with the same table values, one
// row after the other.
func RotateReference(r *Rope, dst, src []float64, pos []int32, heads int, inverse bool) error {
	if err := checkRotate(r, dst, src, pos, heads); err != nil {
		return err
	}
	hd := r.headDim
	h := hd / 2
	for row, p := range pos {
		for k := range heads {
			x, y := src[(row*heads+k)*hd:][:hd], dst[(row*heads+k)*hd:][:hd]
			for j := range h {
				c, s := float64(r.cos[int(p)*h+j]), float64(r.sin[int(p)*h+j])
				if inverse {
					s = -s
				}
				a, b := x[j], x[j+h]
				y[j], y[j+h] = a*c-b*s, b*c+a*s
			}
		}
	}
	return nil
}
