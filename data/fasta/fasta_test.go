package fasta

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"testing"
)

func readAll(t *testing.T, src []byte) ([]Record, error) {
	t.Helper()
	r := NewReader(bytes.NewReader(src), "test.fa")
	var out []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
}

func TestRecords(t *testing.T) {
	src := "; comment\n>chr1 description\nACGTn\r\nacg t\n\n>empty\n>chr2\n" + strings.Repeat("ACGT", 100000) + "\nNN"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(src))
	zw.Close()
	for name, in := range map[string][]byte{"plain": []byte(src), "gzip": gz.Bytes()} {
		recs, err := readAll(t, in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(recs) != 3 || recs[0].Name != "chr1 description" || string(recs[0].Seq) != "ACGTNACGT" ||
			recs[1].Name != "empty" || len(recs[1].Seq) != 0 || len(recs[2].Seq) != 400002 || !bytes.HasSuffix(recs[2].Seq, []byte("TNN")) {
			t.Fatalf("%s: records %d: %q %q / %q %d / %d", name, len(recs), recs[0].Name, recs[0].Seq, recs[1].Name, len(recs[1].Seq), len(recs[2].Seq))
		}
	}
}

func TestRefuses(t *testing.T) {
	for src, msg := range map[string]string{
		"":                    "no records",
		"\n\n":                "no records",
		">a\n>b\n\n":          "no sequence",
		"ACGT\n>a\nACGT\n":    "before the first '>'",
		"\x1f\x8b not gzip\n": "bad gzip",
	} {
		_, err := readAll(t, []byte(src))
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "test.fa") {
			t.Errorf("%q: err = %v, want one naming the file and %q", src, err, msg)
		}
	}
}

func ExampleReader() {
	r := NewReader(strings.NewReader(">seq1\nacgt\nNNAC\n>seq2\nTTTT\n"), "example.fa")
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		fmt.Println(rec.Name, string(rec.Seq))
	}
	// Output:
	// seq1 ACGTNNAC
	// seq2 TTTT
}

// FuzzReader feeds arbitrary files (plain, or gzip when they start with its
// magic) to the reader. Nothing may panic; errors are one line and sticky;
// records hold no white space, no lower case, and (plain input) never more
// bases than the input has bytes.
func FuzzReader(f *testing.F) {
	f.Add([]byte("; comment\n>chr1 desc\nACGTn\r\nacg t\n\n>empty\n>chr2\nNN"))
	f.Add([]byte("ACGT\n>late header\nA"))
	f.Add([]byte(">only headers\n>x\n"))
	f.Add([]byte{})
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(">z\nACGT\n"))
	w.Close()
	f.Add(gz.Bytes())
	f.Add(gz.Bytes()[:gz.Len()-4])
	f.Fuzz(func(t *testing.T, src []byte) {
		r := NewReader(bytes.NewReader(src), "fuzz.fa")
		bases := 0
		for {
			rec, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error is not one line: %q", err)
				}
				if _, again := r.Next(); again == nil || again.Error() != err.Error() {
					t.Fatalf("error %v not sticky: then %v", err, again)
				}
				return
			}
			if bytes.ContainsAny(rec.Seq, " \t\r\nabcdefghijklmnopqrstuvwxyz") {
				t.Fatalf("record %q holds white space or lower case: %q", rec.Name, rec.Seq)
			}
			bases += len(rec.Seq)
			if !bytes.HasPrefix(src, []byte{0x1f, 0x8b}) && bases > len(src) {
				t.Fatalf("%d bases from %d bytes", bases, len(src))
			}
		}
	})
}
