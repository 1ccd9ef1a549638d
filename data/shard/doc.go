// Package shard reads and writes token shards: one self-describing binary file
// per corpus split, memory-mapped when read.
//
// # Format (version 1, all integers little-endian)
//
//	offset  size          field
//	0       8             magic "MAMBATOK"
//	8       4             version = 1
//	12      1             token width in bytes: 1 (uint8), 2 (uint16) or 4 (uint32)
//	13      1             modality: 1 text, 2 dna, 3 audio
//	14      2             reserved, 0
//	16      4             vocabulary size V (every token < V)
//	20      4             reserved, 0
//	24      8             token count T
//	32      8             document count D
//	40      8             units U: bytes (text), bases (dna) or samples (audio) the tokens stand for
//	48      16            tokenizer name, NUL-padded ASCII ("bytes", "gpt2", "dna", "mulaw")
//	64      32            SHA-256 of everything after the header (the body)
//	96      32            reserved, 0
//	128     T·width       tokens
//	        0..7          zero padding to a multiple of 8 bytes
//	        8·D           start index of each document (uint64), strictly increasing, the first 0
//
// The file size is exactly 128 + ⌈T·width/8⌉·8 + 8·D. The width is the
// smallest of 1, 2, 4 bytes that holds V-1. Evaluation reports bits per unit
// as (Σ NLL / ln 2) / units of the target tokens; U/T is the split's average.
//
// Create writes a shard atomically (temporary file, fsync, rename). Open
// memory-maps one and checks magic, version, width, modality, vocabulary and
// size against the header and the caller's Expect; every refusal is a one-line
// error that names the command that recreates the file. Verify recomputes the
// checksum.
package shard
