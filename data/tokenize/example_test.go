package tokenize

import (
	"fmt"
	"strings"
	"testing"
)

func ExampleNew() {
	for _, name := range []string{"bytes", "dna"} {
		tok, _ := New(name)
		ids, _ := tok.Encode(nil, []byte("acgt"))
		fmt.Println(name, tok.Vocab(), ids, tok.Units(ids), tok.Unit()+"s")
	}
	// Output:
	// bytes 256 [97 99 103 116] 4 bytes
	// dna 8 [0 1 2 3] 4 bases
}

func BenchmarkEncode(b *testing.B) {
	text := []byte(strings.Repeat("It was the best of times, it was the worst of times; ACGT 1234.\n", 1<<10))
	dna := []byte(strings.Repeat("ACGTTGCAACGTNNAC", 1<<12))
	pcm := make([]byte, 1<<16)
	for i := range pcm {
		pcm[i] = byte(i * 31)
	}
	for _, c := range []struct {
		name string
		src  []byte
	}{{"bytes", text}, {"gpt2", text}, {"dna", dna}, {"mulaw", pcm}} {
		b.Run(c.name, func(b *testing.B) {
			tok, err := New(c.name)
			if err != nil {
				b.Fatal(err)
			}
			var dst []int32
			b.SetBytes(int64(len(c.src)))
			for b.Loop() {
				dst, _ = tok.Encode(dst[:0], c.src)
			}
			b.ReportMetric(float64(b.N*len(dst))/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
