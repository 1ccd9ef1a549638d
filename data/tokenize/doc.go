// Package tokenize turns raw bytes, DNA letters and 16-bit audio into tokens
// and back, behind one interface.
//
//	name   vocab   unit     token                                    end of document
//	bytes  256     byte     one byte                                 none (the shard index keeps boundaries)
//	gpt2   50257   byte     GPT-2 BPE (r50k_base), embedded vocab    <|endoftext|> = 50256
//	dna    8       base     A C G T N = 0..4; pad 5, eos 6, sep 7    eos
//	mulaw  256     sample   8-bit μ-law level of one 16 kHz sample   none
//
// Units(tokens) counts the bytes, bases or samples the tokens stand for
// (special tokens count 0), so evaluation reports
//
//	bits per unit = Σ_t NLL_t / ln 2 / Units(targets)
//
// and seconds of audio = samples / SampleRate.
//
// μ-law is the continuous companding used by WaveNet and SaShiMi (μ = 255),
// not the G.711 segment tables: with x = s/32768 for a 16-bit sample s,
//
//	y = sign(x)·ln(1 + μ|x|)/ln(1 + μ),  q = ⌊(y + 1)/2·μ + ½⌋ ∈ [0, 255]
//	x̂ = sign(ŷ)·((1 + μ)^|ŷ| − 1)/μ,     ŷ = 2q/μ − 1
//
// DNA: lower-case letters are upper-cased, the IUPAC ambiguity codes
// (R Y K M S W B D H V) become N, whitespace is skipped, anything else is an
// error. GPT-2 replaces invalid UTF-8 by U+FFFD before encoding (as tiktoken
// does with errors="replace"), so only valid UTF-8 round-trips exactly.
package tokenize
