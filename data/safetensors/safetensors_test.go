package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/testutil"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	f32 := []float32{1, -2.5, 3e-3, 65504, 0}
	f64 := []float64{math.Pi, -1e-300, 7}
	ids := []int64{0, -1, 1 << 40}
	err := WriteFile(path, []Tensor{
		{Name: "b.f32", Shape: []int{5}, F32: f32},
		{Name: "a.f64", Shape: []int{3, 1}, F64: f64},
		{Name: "c.bf16", Shape: []int{5}, F32: f32, DType: BF16},
		{Name: "d.f16", Shape: []int{5}, F32: f32, DType: F16},
		{Name: "e.ids", Shape: []int{3}, I64: ids},
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Names(), ","); got != "a.f64,b.f32,c.bf16,d.f16,e.ids" {
		t.Fatalf("names %s", got)
	}
	if f.Metadata["format"] != "pt" {
		t.Fatalf("metadata %v", f.Metadata)
	}
	g64, shape, err := f.Float64("a.f64")
	if err != nil || shape[0] != 3 || shape[1] != 1 {
		t.Fatal(err, shape)
	}
	for i := range f64 {
		if g64[i] != f64[i] {
			t.Fatalf("f64[%d] = %v want %v", i, g64[i], f64[i])
		}
	}
	g32, _, _ := f.Float32("b.f32")
	for i := range f32 {
		if g32[i] != f32[i] {
			t.Fatalf("f32[%d] = %v want %v", i, g32[i], f32[i])
		}
	}
	for _, name := range []string{"c.bf16", "d.f16"} {
		got, _, err := f.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range f32 {
			testutil.CheckErr(t, fmt.Sprintf("%s[%d] = %v, want %v", name, i, got[i], want),
				math.Abs(float64(got[i]-want)), 4e-3*math.Abs(float64(want))+1e-6)
		}
	}
	gi, _, err := f.Int64("e.ids")
	if err != nil || gi[2] != 1<<40 || gi[1] != -1 {
		t.Fatal(err, gi)
	}
	if _, _, err := f.Int64("a.f64"); err == nil {
		t.Fatal("Int64 of a float tensor should fail")
	}
	if _, _, err := f.Float32("missing"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing tensor error: %v", err)
	}
}

func TestHalfRounding(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {1e6, 0x7c00},
		{5.960464477539063e-08, 0x0001}, {1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02},
	}
	for _, c := range cases {
		if got := floatToHalf(c.in); got != c.want {
			t.Errorf("floatToHalf(%v) = %#x want %#x", c.in, got, c.want)
		}
		if c.want != 0x7c00 && halfToFloat(c.want) != c.in && c.in != 1+1.0/2048 && c.in != 1+3.0/2048 {
			t.Errorf("halfToFloat(%#x) = %v want %v", c.want, halfToFloat(c.want), c.in)
		}
	}
	if got := floatToBF16(1 + 1.0/256); got != 0x3f80 { // tie rounds to even
		t.Errorf("bf16 tie: %#x", got)
	}
}

func TestBadFiles(t *testing.T) {
	good, err := Encode([]Tensor{{Name: "w", Shape: []int{2, 2}, F32: []float32{1, 2, 3, 4}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hugeHeader := append([]byte(nil), good...)
	binary.LittleEndian.PutUint64(hugeHeader, 1<<40)
	badJSON := append([]byte(nil), good...)
	badJSON[8] = '['
	cases := map[string][]byte{
		"empty":      {},
		"truncated":  good[:len(good)-3],
		"header":     hugeHeader,
		"json":       badJSON,
		"shape-size": []byte("\x2c\x00\x00\x00\x00\x00\x00\x00" + `{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}` + "12345678"),
	}
	for name, raw := range cases {
		if _, err := Parse(raw); err == nil {
			t.Errorf("%s: parse succeeded", name)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("absent file read")
	}
	if _, err := Encode([]Tensor{{Name: "x", Shape: []int{3}, F32: []float32{1}}}, nil); err == nil {
		t.Error("short data encoded")
	}
}

// raw builds a safetensors file from a header and data bytes.
func raw(header, data string) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

// Parse refuses every header the reference implementation refuses, with one
// line naming the tensor; none of them may reach an allocation.
func TestParseRefusesBadHeaders(t *testing.T) {
	const ok4 = `"dtype":"F32","shape":[1]`
	for _, tc := range []struct {
		name, header, data, want string
	}{
		{"size overflows to 0", `{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}}`, "", "overflows"},
		{"product overflows", `{"w":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, "", "overflows"},
		{"dimension beyond int64", `{"w":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,0]}}`, "", "fits in 64 bits"},
		{"negative dimension", `{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`, "", "non-negative"},
		{"fractional dimension", `{"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}`, "x", "non-negative integer"},
		{"null shape", `{"w":{"dtype":"U8","shape":null,"data_offsets":[0,1]}}`, "x", "shape must be a list"},
		{"null dtype", `{"w":{"dtype":null,"shape":[1],"data_offsets":[0,1]}}`, "x", "unsupported dtype"},
		{"offsets reversed", `{"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, "xxxx", "begin <= end"},
		{"three offsets", `{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, "x", "[begin, end]"},
		{"overlap", `{"a":{` + ok4 + `,"data_offsets":[0,4]},"b":{` + ok4 + `,"data_offsets":[2,6]}}`, "123456", `tensor "b": byte range [2, 6) overlaps`},
		{"same range twice", `{"a":{` + ok4 + `,"data_offsets":[0,4]},"b":{` + ok4 + `,"data_offsets":[0,4]}}`, "1234", "overlaps"},
		{"gap", `{"a":{` + ok4 + `,"data_offsets":[0,4]},"b":{` + ok4 + `,"data_offsets":[6,10]}}`, "1234561234", "leaves a gap"},
		{"not from 0", `{"a":{` + ok4 + `,"data_offsets":[2,6]}}`, "123456", "leaves a gap after byte 0"},
		{"beyond the data", `{"a":{` + ok4 + `,"data_offsets":[0,4]}}`, "12", "truncated"},
		{"trailing bytes", `{"a":{` + ok4 + `,"data_offsets":[0,4]}}`, "123456", "2 data bytes after the last tensor"},
		{"duplicate tensor", `{"a":{` + ok4 + `,"data_offsets":[0,4]},"a":{` + ok4 + `,"data_offsets":[0,4]}}`, "1234", `duplicate key "a"`},
		{"garbage after header", `{"a":{` + ok4 + `,"data_offsets":[0,4]}} x`, "1234", "data after the top-level value"},
		{"header not an object", `[1]`, "", "not a JSON object"},
		{"null metadata", `{"__metadata__":null}`, "", "__metadata__"},
		{"number in metadata", `{"__metadata__":{"updates":3}}`, "", `"updates"`},
	} {
		_, err := Parse(raw(tc.header, tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: Parse = %v, want one line containing %q", tc.name, err, tc.want)
		}
	}
	// Zero-size tensors may share an offset; the order in the header is free.
	f, err := Parse(raw(`{"z":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]},"b":{`+ok4+`,"data_offsets":[4,8]},"a":{`+ok4+`,"data_offsets":[0,4]}}`, "12345678"))
	if err != nil {
		t.Fatal(err)
	}
	if v, shape, err := f.Float32("z"); err != nil || len(v) != 0 || shape[1] != 5 {
		t.Errorf("zero-size tensor: %v %v %v", v, shape, err)
	}
}

// fixturesDir is $SCAN_FIXTURES_DIR, or ../shared/fixtures beside the
// repository (a relative path is taken from the repository root).
func fixturesDir() string {
	d := os.Getenv("SCAN_FIXTURES_DIR")
	if d == "" {
		d = filepath.Join("..", "shared", "fixtures")
	}
	if !filepath.IsAbs(d) {
		d = filepath.Join("..", "..", d) // the tests run in <repo>/data/safetensors
	}
	return d
}

func TestReadsFixtures(t *testing.T) {
	dir := fixturesDir()
	paths, _ := filepath.Glob(filepath.Join(dir, "scan_*.safetensors"))
	if len(paths) == 0 {
		t.Fatalf("no scan_*.safetensors fixtures in %s (SCAN_FIXTURES_DIR=%q; they come with ../shared/fixtures)", dir, os.Getenv("SCAN_FIXTURES_DIR"))
	}
	for _, p := range paths {
		f, err := ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.Float64("out"); err != nil {
			t.Fatal(err)
		}
	}
}
