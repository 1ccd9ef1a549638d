package sysmem

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"0", 0}, {"123", 123}, {"16GB", 16e9}, {"512 MiB", 512 << 20}, {"1e9", 1e9}, {"1.5k", 1500}, {"2TiB", 2 << 40}, {"7B", 7}} {
		if got, err := ParseSize(c.in); err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "GB", "-1", "NaN", "1e30", "12 parsecs", "Inf"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): no error", in)
		}
	}
}

func TestFormat(t *testing.T) {
	for b, want := range map[float64]string{0: "0 B", 999: "999 B", 4e12: "4.0 TB", 21.5e9: "21.5 GB", 1536: "1.5 kB"} {
		if got := Format(b); got != want {
			t.Errorf("Format(%g) = %q, want %q", b, got, want)
		}
	}
}

func TestMemAvailable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "meminfo")
	os.WriteFile(p, []byte("MemTotal:       24683652 kB\nMemFree:        15784292 kB\nMemAvailable:   20988260 kB\n"), 0o644)
	if kb, ok := memAvailable(p); !ok || kb != 20988260 {
		t.Errorf("memAvailable = %d, %v", kb, ok)
	}
	if _, ok := memAvailable(filepath.Join(t.TempDir(), "none")); ok {
		t.Error("memAvailable of a missing file: ok")
	}
}

// Check refuses above a limit and above what is available, NaN and +Inf
// included, and says both sizes.
func TestCheck(t *testing.T) {
	if err := Check(1e9, 2e9); err != nil {
		t.Errorf("1 GB under a 2 GB limit: %v", err)
	}
	for _, need := range []float64{3e9, math.Inf(1), math.NaN()} {
		if err := Check(need, 2e9); err == nil || !strings.Contains(err.Error(), "more than the limit of 2.0 GB") {
			t.Errorf("Check(%g, 2 GB): %v", need, err)
		}
	}
	if avail, _, ok := Available(); ok {
		if err := Check(float64(avail)*2+1e12, 0); err == nil || !strings.Contains(err.Error(), "of memory available") {
			t.Errorf("twice the available memory: %v", err)
		}
		if err := Check(1, 0); err != nil {
			t.Errorf("one byte: %v", err)
		}
	}
}
