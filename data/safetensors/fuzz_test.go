package safetensors

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary files to Parse. Whatever it accepts must decode
// without a panic into exactly Elems values, and errors are one line.
func FuzzParse(f *testing.F) {
	good, err := Encode([]Tensor{
		{Name: "a", Shape: []int{2, 3}, F32: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "b", Shape: []int{2}, F64: []float64{-1, 1e300}},
		{Name: "c", Shape: []int{3}, F32: []float32{1, 2, 3}, DType: BF16},
		{Name: "d", Shape: []int{}, I64: []int64{7}},
	}, map[string]string{"updates": "3"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	for _, h := range []string{
		`{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}}`,
		`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}`,
		`{"z":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"i":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}`,
		`{"__metadata__":{"format":"pt"},"h":{"dtype":"F16","shape":[2,1],"data_offsets":[0,4]}} `,
	} {
		f.Add(raw(h, "12345678"))
	}
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\xff{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		for _, name := range file.Names() {
			info, _ := file.Info(name)
			var n int
			switch info.DType {
			case I64, I32, U8:
				v, _, err := file.Int64(name)
				if err != nil {
					t.Fatal(err)
				}
				n = len(v)
			default:
				v, _, err := file.Float32(name)
				if err != nil {
					t.Fatal(err)
				}
				n = len(v)
			}
			if n != info.Elems() {
				t.Fatalf("%s: %d values, shape %v", name, n, info.Shape)
			}
		}
	})
}
