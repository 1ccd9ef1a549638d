package scaling

import (
	"bytes"
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/mambago/mamba/internal/atomicfile"
)

// Chart is a PNG figure of lines and points, on logarithmic axes where asked.
type Chart struct {
	Title, XLabel, YLabel string
	LogX, LogY            bool
	Lines, Points         []Series
}

// Series is one set of points. Series of the same Group share a colour (and glyph);
// only those with a Label appear in the legend.
type Series struct {
	Label  string
	Group  int
	Dashed bool
	X, Y   []float64
}

// WritePNG draws the chart, 16 × 11 cm, and writes it to path atomically. Points
// that a logarithmic axis cannot show (≤ 0) and non-finite ones are left out.
func (c Chart) WritePNG(path string) error {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = c.Title, c.XLabel, c.YLabel
	if c.LogX {
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	if c.LogY {
		// Losses span less than a decade: linear ticks placed on the log scale.
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.DefaultTicks{}
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	for _, s := range c.Lines {
		xy := c.points(s)
		if len(xy) == 0 {
			continue
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		l.Color = plotutil.Color(s.Group)
		if s.Dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		if s.Label != "" {
			p.Legend.Add(s.Label, l)
		}
	}
	for _, s := range c.Points {
		xy := c.points(s)
		if len(xy) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: plotutil.Color(s.Group), Radius: vg.Points(3), Shape: plotutil.Shape(s.Group)}
		p.Add(sc)
		if s.Label != "" {
			p.Legend.Add(s.Label, sc)
		}
	}
	w, err := p.WriterTo(16*vg.Centimeter, 11*vg.Centimeter, "png")
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

func (c Chart) points(s Series) plotter.XYs {
	var xy plotter.XYs
	for i := range min(len(s.X), len(s.Y)) {
		x, y := s.X[i], s.Y[i]
		if math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(y) || math.IsInf(y, 0) || (c.LogX && x <= 0) || (c.LogY && y <= 0) {
			continue
		}
		xy = append(xy, plotter.XY{X: x, Y: y})
	}
	return xy
}

// Frontier is the fitted law's compute-optimal loss L(N_opt(C), D_opt(C)) at 50
// log-spaced computes from cLo to cHi, for k FLOPs per parameter per token.
func (f Fit) Frontier(cLo, cHi, k float64) (c, loss []float64) {
	const n = 50
	for i := range n {
		ci := cLo * math.Pow(cHi/cLo, float64(i)/(n-1))
		_, l := f.Optimal(ci, k)
		c, loss = append(c, ci), append(loss, l)
	}
	return c, loss
}
