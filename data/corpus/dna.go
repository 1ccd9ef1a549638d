package corpus

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/mambago/mamba/data/fasta"
)

// debSource is a set of FASTA files inside one Debian package.
type debSource struct {
	pkg   string
	files *regexp.Regexp // paths inside the package's data archive
}

// The genomes of datasets.md §2 (Debian bookworm main).
var (
	dnaTrain = []debSource{
		{"ragout-examples", regexp.MustCompile(`^usr/share/doc/ragout/examples/[^/]+/references/[^/]+\.fasta\.gz$`)},
		{"kleborate-examples", regexp.MustCompile(`^usr/share/doc/kleborate/examples/data/[^/]+\.fna\.xz$`)},
		{"r-bioc-bsgenome", regexp.MustCompile(`^usr/lib/R/site-library/BSgenome/extdata/ce2chrX\.fa\.gz$`)},
		{"maffilter-examples", regexp.MustCompile(`^usr/share/doc/maffilter/examples/Umaydis/Umaydis\.fasta\.gz$`)},
		{"abacas-examples", regexp.MustCompile(`^usr/share/doc/abacas-examples/SS_SC84\.dna\.gz$`)},
	}
	dnaValid = []debSource{
		{"bowtie-examples", regexp.MustCompile(`^usr/share/doc/bowtie/examples/genomes/NC_008253\.fna\.gz$`)},
	}
	dnaTest = []debSource{
		{"hisat2", regexp.MustCompile(`^usr/share/doc/hisat2/examples/reference/22_20-21M\.fa$`)},
		{"bowtie2-examples", regexp.MustCompile(`^usr/share/doc/bowtie2/examples/reference/lambda_virus\.fa\.gz$`)},
	}
)

// DNAPackages returns the splits of the packaged genomes, one document per
// FASTA record, upper-cased:
//
//	train  16 bacterial genomes (ragout), 4 K. pneumoniae (kleborate),
//	       C. elegans chrX (17.7 Mbp in one record), U. maydis, S. suis
//	valid  E. coli 536 (a held-out strain)
//	test   human chr22:20-21 Mbp and phage lambda (held-out kingdoms)
//
// The packages are fetched first, so a missing one fails before any output.
func DNAPackages(f *Fetch) ([]Split, error) {
	debs := map[string]string{}
	for _, set := range [][]debSource{dnaTrain, dnaValid, dnaTest} {
		for _, s := range set {
			p, err := f.Deb(s.pkg)
			if err != nil {
				return nil, err
			}
			debs[s.pkg] = p
		}
	}
	docs := func(set []debSource) Docs {
		return func(yield func(Doc) error) error {
			for _, s := range set {
				m, err := debFiles(debs[s.pkg], s.files.MatchString)
				if err != nil {
					return err
				}
				if len(m) == 0 {
					return fmt.Errorf("%s: no file matches %s (package layout changed?)", debs[s.pkg], s.files)
				}
				for _, n := range sortedKeys(m) {
					b, err := decompress(n, m[n])
					if err != nil {
						return err
					}
					if err := fastaDocs(bytes.NewReader(b), s.pkg+":"+n, yield); err != nil {
						return err
					}
				}
			}
			return nil
		}
	}
	return []Split{{"train", docs(dnaTrain)}, {"valid", docs(dnaValid)}, {"test", docs(dnaTest)}}, nil
}

// fastaDocs yields each record of a FASTA stream as a document.
func fastaDocs(r io.Reader, name string, yield func(Doc) error) error {
	fr := fasta.NewReader(r, name)
	for {
		rec, err := fr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := yield(Doc{Name: name + ":" + rec.Name, Data: rec.Seq}); err != nil {
			return err
		}
	}
}

// LocalFASTA returns splits of the user's FASTA files (plain or gzip), one
// document per record.
func LocalFASTA(in Inputs) ([]Split, error) {
	exts := []string{".fa", ".fasta", ".fna", ".fas", ".fa.gz", ".fasta.gz", ".fna.gz", ".fas.gz"}
	return local(in, exts, false, func(path string, yield func(Doc) error) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return fastaDocs(f, path, yield)
	})
}
