package layers_test

import (
	"fmt"

	"github.com/mambago/mamba/layers"
)

// A Transformer++ with grouped-query attention: 4 query heads share 2 key/value heads, so k_proj
// and v_proj have half the rows of q_proj.
func ExampleNewLlama() {
	c := layers.DefaultConfig()
	c.Arch = layers.ArchTransformer
	c.VocabSize, c.DModel, c.NLayer, c.NHead, c.NKVHead = 50, 32, 2, 4, 2
	m, err := layers.NewLlama(c, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("vocab", c.PaddedVocab(), "head", c.HeadSize(), "d_ff", c.FF(), "params", c.NumParams())
	for _, p := range m.Params()[:5] {
		fmt.Println(p.Name, p.Shape, p.NoDecay)
	}
	// Output:
	// vocab 56 head 8 d_ff 128 params 32672
	// model.embed_tokens.weight [56 32] false
	// model.layers.0.input_layernorm.weight [32] true
	// model.layers.0.self_attn.q_proj.weight [32 32] false
	// model.layers.0.self_attn.k_proj.weight [16 32] false
	// model.layers.0.self_attn.v_proj.weight [16 32] false
}
