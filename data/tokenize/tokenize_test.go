package tokenize

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func roundTrip(t *testing.T, tk Tokenizer, src []byte) []int32 {
	t.Helper()
	toks, err := tk.Encode(nil, src)
	if err != nil {
		t.Fatalf("%s: Encode: %v", tk.Name(), err)
	}
	for i, x := range toks {
		if x < 0 || int(x) >= tk.Vocab() {
			t.Fatalf("%s: token %d at %d outside vocabulary %d", tk.Name(), x, i, tk.Vocab())
		}
	}
	got, err := tk.Decode(nil, toks)
	if err != nil {
		t.Fatalf("%s: Decode: %v", tk.Name(), err)
	}
	if !bytes.Equal(got, src) {
		t.Fatalf("%s: round trip changed input:\n got %q\nwant %q", tk.Name(), got, src)
	}
	return toks
}

func TestBytesRoundTrip(t *testing.T) {
	src := make([]byte, 512)
	for i := range src {
		src[i] = byte(i * 7)
	}
	toks := roundTrip(t, Bytes{}, src)
	if got := (Bytes{}).Units(toks); got != int64(len(src)) {
		t.Errorf("Units = %d, want %d", got, len(src))
	}
}

func TestGPT2RoundTrip(t *testing.T) {
	g, err := NewGPT2()
	if err != nil {
		t.Fatal(err)
	}
	src := []byte("Hello world! The selective scan's state h_t = Ā h_{t-1} + B̄ x_t.\n\tÜber naïve café — 12345 ✓")
	toks := roundTrip(t, g, src)
	if got := g.Units(toks); got != int64(len(src)) {
		t.Errorf("Units = %d, want %d bytes", got, len(src))
	}
	want := []int32{15496, 995} // "Hello", " world" in GPT-2
	if toks[0] != want[0] || toks[1] != want[1] {
		t.Errorf("first tokens %v, want %v", toks[:2], want)
	}
	if g.Units([]int32{GPT2EOS}) != 0 {
		t.Errorf("<|endoftext|> should stand for 0 bytes")
	}
	if _, err := g.Decode(nil, []int32{gpt2Vocab}); err == nil {
		t.Error("Decode accepted a token outside the vocabulary")
	}
}

func TestDNARoundTrip(t *testing.T) {
	var d DNA
	toks := roundTrip(t, d, []byte("ACGTNNACGT"))
	if d.Units(append(toks, DNAEOS)) != 10 {
		t.Errorf("Units = %d, want 10 (eos counts 0)", d.Units(toks))
	}
	lower, err := d.Encode(nil, []byte("acgt\nrY"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := d.Decode(nil, lower)
	if string(got) != "ACGTNN" {
		t.Errorf("lower case and IUPAC decoded to %q, want ACGTNN", got)
	}
	if _, err := d.Encode(nil, []byte("ACGX")); err == nil || !strings.Contains(err.Error(), "'X'") {
		t.Errorf("invalid base: err = %v, want one naming 'X'", err)
	}
}

func TestMuLawRoundTrip(t *testing.T) {
	var m MuLaw
	// Every level survives decode then encode.
	for q := range 256 {
		if got := MuLawEncode(MuLawDecode(uint8(q))); got != uint8(q) {
			t.Errorf("level %d decodes to %d, which encodes to %d", q, MuLawDecode(uint8(q)), got)
		}
	}
	// Encode is monotone and spans 0..255.
	if MuLawEncode(-32768) != 0 || MuLawEncode(32767) != 255 {
		t.Errorf("extremes encode to %d, %d; want 0, 255", MuLawEncode(-32768), MuLawEncode(32767))
	}
	for s := -32768; s < 32767; s++ {
		if MuLawEncode(int16(s)) > MuLawEncode(int16(s+1)) {
			t.Fatalf("encode not monotone at %d", s)
		}
	}
	// Decoded PCM re-encodes to the same tokens (the lossy step is idempotent).
	pcm := make([]byte, 0, 2000)
	for i := range 1000 {
		pcm = binary.LittleEndian.AppendUint16(pcm, uint16(int16(i*65-32000)))
	}
	toks, err := m.Encode(nil, pcm)
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := m.Decode(nil, toks)
	toks2 := roundTrip(t, m, dec)
	if len(toks2) != len(toks) || m.Units(toks) != 1000 {
		t.Fatalf("units %d, tokens %d; want 1000 each", m.Units(toks), len(toks2))
	}
	for i := range toks {
		if toks[i] != toks2[i] {
			t.Fatalf("re-encoding changed token %d: %d → %d", i, toks[i], toks2[i])
		}
	}
	if _, err := m.Encode(nil, []byte{1, 2, 3}); err == nil {
		t.Error("odd-length PCM accepted")
	}
}

func TestNew(t *testing.T) {
	for _, name := range Names {
		tk, err := New(name)
		if err != nil || tk.Name() != name {
			t.Errorf("New(%q) = %v, %v", name, tk, err)
		}
	}
	if _, err := New("sentencepiece"); err == nil {
		t.Error("New accepted an unknown name")
	}
}

// ModalityOf agrees with the tokenizers New builds.
func TestModalityOf(t *testing.T) {
	for _, name := range Names {
		tk, err := New(name)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := ModalityOf(name); err != nil || m != tk.Modality() {
			t.Errorf("ModalityOf(%q) = %v, %v; the tokenizer's is %v", name, m, err, tk.Modality())
		}
	}
	if _, err := ModalityOf("utf8"); err == nil {
		t.Error("ModalityOf of an unknown name: no error")
	}
}
