package tokenize

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/mambago/mamba/data/shard"
)

// SampleRate is the audio rate every audio shard uses, in samples per second.
const SampleRate = 16000

const mu = 255

// muEncode[uint16(s)] is the μ-law level of sample s; muDecode[q] inverts it.
var muEncode, muDecode = func() (enc [1 << 16]uint8, dec [256]int16) {
	lmu := math.Log1p(mu)
	for i := range enc {
		x := float64(int16(i)) / 32768
		y := math.Copysign(math.Log1p(mu*math.Abs(x))/lmu, x)
		enc[i] = uint8(math.Floor((y+1)/2*mu + 0.5))
	}
	for q := range dec {
		y := 2*float64(q)/mu - 1
		x := math.Copysign((math.Pow(1+mu, math.Abs(y))-1)/mu, y)
		dec[q] = int16(math.Max(-32768, math.Min(32767, math.Round(x*32768))))
	}
	return enc, dec
}()

// MuLawEncode returns the 8-bit μ-law level of a 16-bit sample.
func MuLawEncode(s int16) uint8 { return muEncode[uint16(s)] }

// MuLawDecode returns the 16-bit sample at μ-law level q.
func MuLawDecode(q uint8) int16 { return muDecode[q] }

// MuLaw is the 8-bit μ-law audio tokenizer: one token per 16 kHz sample.
type MuLaw struct{}

func (MuLaw) Name() string             { return "mulaw" }
func (MuLaw) Modality() shard.Modality { return shard.Audio }
func (MuLaw) Vocab() int               { return 256 }
func (MuLaw) Unit() string             { return "sample" }
func (MuLaw) EOS() int32               { return -1 }

// Units is len(tokens): one sample per token (seconds = Units/SampleRate).
func (MuLaw) Units(tokens []int32) int64 { return int64(len(tokens)) }

// Encode appends the levels of src, 16-bit little-endian PCM.
func (MuLaw) Encode(dst []int32, src []byte) ([]int32, error) {
	if len(src)%2 != 0 {
		return dst, fmt.Errorf("tokenize: mulaw input is %d bytes, not whole 16-bit samples", len(src))
	}
	dst = slices.Grow(dst, len(src)/2)
	for i := 0; i < len(src); i += 2 {
		dst = append(dst, int32(muEncode[binary.LittleEndian.Uint16(src[i:])]))
	}
	return dst, nil
}

// EncodeSamples appends the levels of the samples s.
func (MuLaw) EncodeSamples(dst []int32, s []int16) []int32 {
	for _, x := range s {
		dst = append(dst, int32(muEncode[uint16(x)]))
	}
	return dst
}

// Decode appends 16-bit little-endian PCM.
func (MuLaw) Decode(dst []byte, tokens []int32) ([]byte, error) {
	for i, t := range tokens {
		if t < 0 || t > 255 {
			return dst, badToken("mulaw", t, i, 256)
		}
		dst = binary.LittleEndian.AppendUint16(dst, uint16(muDecode[t]))
	}
	return dst, nil
}
