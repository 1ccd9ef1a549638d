// Package safetensors reads and writes the safetensors format used by
// transformers checkpoints and by the project's reference fixtures.
//
// A file is
//
//	u64 little-endian n | n bytes of JSON header | tensor bytes
//
// where the header maps each tensor name to {"dtype", "shape",
// "data_offsets": [begin, end]} (offsets relative to the first byte after
// the header) and the optional key "__metadata__" holds string pairs.
// Tensors are little-endian and row-major. Reading converts any of F64, F32,
// F16, BF16 to the float type asked for and I64, I32, U8 to integers; writing
// stores float32 as F32 (or BF16/F16 when asked) and float64 as F64.
package safetensors

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/mambago/mamba/internal/atomicfile"
	"github.com/mambago/mamba/internal/regfile"
	"github.com/mambago/mamba/internal/strictjson"
)

// DType names a tensor element type as spelled in the header.
type DType string

// The element types this package understands.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	U8   DType = "U8"
)

// Size is the number of bytes of one element, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case U8:
		return 1
	}
	return 0
}

// maxHeader bounds the JSON header so a corrupt length cannot make us
// allocate gigabytes.
const maxHeader = 100 << 20

// Info describes one stored tensor.
type Info struct {
	DType DType
	Shape []int
	begin int
	end   int
}

// Elems is the number of elements of the tensor (Parse has checked that it
// does not overflow).
func (i Info) Elems() int {
	n := 1
	for _, s := range i.Shape {
		n *= s
	}
	return n
}

// File is a parsed safetensors file held in memory.
type File struct {
	Path     string
	Metadata map[string]string
	infos    map[string]Info
	data     []byte
}

// ReadFile reads and validates a safetensors file (a regular file: a named
// pipe or device is refused rather than waited on).
func ReadFile(path string) (*File, error) {
	raw, err := regfile.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	f.Path = path
	return f, nil
}

type headerEntry struct {
	DType       DType `json:"dtype"`
	Shape       []int `json:"shape"`
	DataOffsets []int `json:"data_offsets"`
}

// Parse validates raw as a safetensors file, as the reference implementation
// does: the header length lies within the file; the header is one JSON object
// without repeated keys; every tensor has a known dtype, a shape of
// non-negative dimensions whose byte size fits in an int, and data_offsets
// [begin, end] of exactly that size; and the byte ranges, in order, tile the
// data exactly (no overlap, gap or trailing bytes).
func Parse(raw []byte) (*File, error) {
	if len(raw) < 8 {
		return nil, fmt.Errorf("truncated: %d bytes, need at least 8", len(raw))
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	if n > maxHeader || n > uint64(len(raw)-8) {
		return nil, fmt.Errorf("header length %d exceeds file size %d (truncated or not a safetensors file)", n, len(raw))
	}
	tree, err := strictjson.Decode(raw[8 : 8+n])
	if err != nil {
		return nil, fmt.Errorf("header: %v", err)
	}
	header, ok := tree.(map[string]any)
	if !ok {
		return nil, errors.New("header is not a JSON object")
	}
	f := &File{Metadata: map[string]string{}, infos: map[string]Info{}, data: raw[8+n:]}
	for _, name := range slices.Sorted(maps.Keys(header)) {
		if name == "__metadata__" {
			meta, ok := header[name].(map[string]any)
			if !ok {
				return nil, errors.New("__metadata__ must map strings to strings")
			}
			for k, v := range meta {
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("__metadata__ must map strings to strings (%q does not)", k)
				}
				f.Metadata[k] = s
			}
			continue
		}
		info, err := parseEntry(header[name])
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %v", name, err)
		}
		f.infos[name] = info
	}
	return f, f.checkTiling()
}

// parseEntry checks one tensor's header entry on its own.
func parseEntry(v any) (Info, error) {
	e, ok := v.(map[string]any)
	if !ok {
		return Info{}, errors.New("header entry is not an object")
	}
	d, ok := e["dtype"].(string)
	if !ok || DType(d).Size() == 0 {
		return Info{}, fmt.Errorf("unsupported dtype %v (want F64, F32, F16, BF16, I64, I32 or U8)", e["dtype"])
	}
	shape, err := ints(e["shape"], "shape")
	if err != nil {
		return Info{}, err
	}
	offs, err := ints(e["data_offsets"], "data_offsets")
	if err != nil {
		return Info{}, err
	}
	if len(offs) != 2 || offs[0] > offs[1] {
		return Info{}, fmt.Errorf("data_offsets %v must be [begin, end] with begin <= end", offs)
	}
	info := Info{DType: DType(d), Shape: shape, begin: offs[0], end: offs[1]}
	size, ok := byteSize(shape, info.DType.Size())
	if !ok {
		return Info{}, fmt.Errorf("shape %v of %s is too large (its byte size overflows)", shape, d)
	}
	if got := info.end - info.begin; got != size {
		return Info{}, fmt.Errorf("%d bytes stored, shape %v of %s needs %d", got, shape, d, size)
	}
	return info, nil
}

// ints reads a JSON list of non-negative integers that fit in an int.
func ints(v any, what string) ([]int, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s must be a list of non-negative integers", what)
	}
	out := make([]int, len(list))
	for i, x := range list {
		num, ok := x.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s must be a list of non-negative integers", what)
		}
		n, err := strconv.ParseInt(string(num), 10, 0)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s entry %s is not a non-negative integer that fits in 64 bits", what, num)
		}
		out[i] = int(n)
	}
	return out, nil
}

// byteSize returns elemSize·∏shape, or false when it overflows an int.
func byteSize(shape []int, elemSize int) (int, bool) {
	n := elemSize
	for _, s := range shape {
		if s != 0 && n > math.MaxInt/s {
			return 0, false
		}
		n *= s
	}
	return n, true
}

// checkTiling checks that the tensors' byte ranges, sorted, cover the data
// exactly: each begins where the previous one ends, the last ends at the end.
func (f *File) checkTiling() error {
	type span struct {
		name       string
		begin, end int
	}
	spans := make([]span, 0, len(f.infos))
	for name, i := range f.infos {
		spans = append(spans, span{name, i.begin, i.end})
	}
	slices.SortFunc(spans, func(a, b span) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.end, b.end), cmp.Compare(a.name, b.name))
	})
	at := 0
	for _, s := range spans {
		switch {
		case s.begin < at:
			return fmt.Errorf("tensor %q: byte range [%d, %d) overlaps the previous tensor (ends at %d)", s.name, s.begin, s.end, at)
		case s.begin > at:
			return fmt.Errorf("tensor %q: byte range [%d, %d) leaves a gap after byte %d", s.name, s.begin, s.end, at)
		}
		at = s.end
	}
	if at != len(f.data) {
		if at > len(f.data) {
			return fmt.Errorf("tensors need %d data bytes, the file holds %d (truncated file?)", at, len(f.data))
		}
		return fmt.Errorf("%d data bytes after the last tensor (the data must hold the tensors exactly)", len(f.data)-at)
	}
	return nil
}

// Names lists the tensor names in sorted order.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.infos))
	for k := range f.infos {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Info returns the dtype and shape of a tensor.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.infos[name]
	return i, ok
}

func (f *File) lookup(name string) (Info, []byte, error) {
	i, ok := f.infos[name]
	if !ok {
		return Info{}, nil, fmt.Errorf("safetensors: %s: no tensor %q", f.Path, name)
	}
	return i, f.data[i.begin:i.end], nil
}

// Float64 decodes a floating-point tensor as float64.
func (f *File) Float64(name string) ([]float64, []int, error) {
	i, b, err := f.lookup(name)
	if err != nil {
		return nil, nil, err
	}
	out := make([]float64, i.Elems())
	if err := decodeFloat(i.DType, b, func(k int, v float64) { out[k] = v }); err != nil {
		return nil, nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
	}
	return out, i.Shape, nil
}

// Float32 decodes a floating-point tensor as float32 (rounding F64 values).
func (f *File) Float32(name string) ([]float32, []int, error) {
	i, b, err := f.lookup(name)
	if err != nil {
		return nil, nil, err
	}
	out := make([]float32, i.Elems())
	if err := decodeFloat(i.DType, b, func(k int, v float64) { out[k] = float32(v) }); err != nil {
		return nil, nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
	}
	return out, i.Shape, nil
}

// Int64 decodes an integer tensor.
func (f *File) Int64(name string) ([]int64, []int, error) {
	i, b, err := f.lookup(name)
	if err != nil {
		return nil, nil, err
	}
	out := make([]int64, i.Elems())
	for k := range out {
		switch i.DType {
		case I64:
			out[k] = int64(binary.LittleEndian.Uint64(b[8*k:]))
		case I32:
			out[k] = int64(int32(binary.LittleEndian.Uint32(b[4*k:])))
		case U8:
			out[k] = int64(b[k])
		default:
			return nil, nil, fmt.Errorf("safetensors: tensor %q: dtype %s is not an integer type", name, i.DType)
		}
	}
	return out, i.Shape, nil
}

func decodeFloat(d DType, b []byte, set func(int, float64)) error {
	switch d {
	case F64:
		for k := 0; k < len(b)/8; k++ {
			set(k, math.Float64frombits(binary.LittleEndian.Uint64(b[8*k:])))
		}
	case F32:
		for k := 0; k < len(b)/4; k++ {
			set(k, float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:]))))
		}
	case BF16:
		for k := 0; k < len(b)/2; k++ {
			set(k, float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*k:]))<<16)))
		}
	case F16:
		for k := 0; k < len(b)/2; k++ {
			set(k, float64(halfToFloat(binary.LittleEndian.Uint16(b[2*k:]))))
		}
	default:
		return fmt.Errorf("dtype %s is not a floating-point type", d)
	}
	return nil
}

// Tensor is one tensor to write. Exactly one of F32 and F64 is set; DType
// chooses the stored type (F32, BF16 or F16 for F32 data; F64 or F32 for F64
// data; empty means the natural type).
type Tensor struct {
	Name  string
	Shape []int
	DType DType
	F32   []float32
	F64   []float64
	I64   []int64
}

func (t Tensor) encode() (DType, []byte, error) {
	n := 1
	for _, s := range t.Shape {
		n *= s
	}
	d := t.DType
	var src func(int) float64
	switch {
	case t.F32 != nil:
		if len(t.F32) != n {
			return "", nil, fmt.Errorf("tensor %q: %d values for shape %v", t.Name, len(t.F32), t.Shape)
		}
		src = func(k int) float64 { return float64(t.F32[k]) }
		if d == "" {
			d = F32
		}
	case t.F64 != nil:
		if len(t.F64) != n {
			return "", nil, fmt.Errorf("tensor %q: %d values for shape %v", t.Name, len(t.F64), t.Shape)
		}
		src = func(k int) float64 { return t.F64[k] }
		if d == "" {
			d = F64
		}
	case t.I64 != nil:
		if len(t.I64) != n {
			return "", nil, fmt.Errorf("tensor %q: %d values for shape %v", t.Name, len(t.I64), t.Shape)
		}
		b := make([]byte, 8*n)
		for k, v := range t.I64 {
			binary.LittleEndian.PutUint64(b[8*k:], uint64(v))
		}
		return I64, b, nil
	default:
		return "", nil, fmt.Errorf("tensor %q: no data", t.Name)
	}
	b := make([]byte, n*d.Size())
	for k := 0; k < n; k++ {
		v := src(k)
		switch d {
		case F64:
			binary.LittleEndian.PutUint64(b[8*k:], math.Float64bits(v))
		case F32:
			binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(float32(v)))
		case BF16:
			binary.LittleEndian.PutUint16(b[2*k:], floatToBF16(float32(v)))
		case F16:
			binary.LittleEndian.PutUint16(b[2*k:], floatToHalf(float32(v)))
		default:
			return "", nil, fmt.Errorf("tensor %q: cannot store float data as %s", t.Name, d)
		}
	}
	return d, b, nil
}

// Encode serialises tensors (in name order) and metadata.
func Encode(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	sorted := append([]Tensor(nil), tensors...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a].Name < sorted[b].Name })
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var body []byte
	for _, t := range sorted {
		if _, dup := header[t.Name]; dup || t.Name == "" {
			return nil, fmt.Errorf("safetensors: duplicate or empty tensor name %q", t.Name)
		}
		d, b, err := t.encode()
		if err != nil {
			return nil, fmt.Errorf("safetensors: %w", err)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = headerEntry{DType: d, Shape: shape, DataOffsets: []int{len(body), len(body) + len(b)}}
		body = append(body, b...)
	}
	h, err := json.Marshal(header)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := make([]byte, 8, 8+len(h)+len(body))
	binary.LittleEndian.PutUint64(out, uint64(len(h)))
	out = append(out, h...)
	return append(out, body...), nil
}

// WriteFile writes tensors atomically: a temporary file in the same
// directory is written, synced and renamed over path.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	raw, err := Encode(tensors, metadata)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, raw)
}

func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: value = mant · 2^-24
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// floatToHalf rounds to nearest even.
func floatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case b&0x7fffffff > 0x7f800000: // NaN
		return sign | 0x7e00
	case exp >= 0x1f: // overflow or Inf
		return sign | 0x7c00
	case exp <= 0: // subnormal or zero
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - exp)
		h := mant >> shift
		rem := mant & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, which rounds up correctly
	}
	return sign | uint16(h)
}

// floatToBF16 rounds to nearest even.
func floatToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
