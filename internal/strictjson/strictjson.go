// Package strictjson decodes one JSON value into a generic tree, refusing what
// encoding/json lets through silently:
//
//   - a key repeated in one object (encoding/json keeps the last one, so a
//     repeated section replaces the whole section);
//   - anything but white space after the value (`{…} x`, `{…}}`);
//   - nesting deeper than MaxDepth.
//
// The tree is made of map[string]any, []any, json.Number, string, bool and nil
// (JSON null); callers decide what a null means. Errors are one line and name
// the dotted path of the key (`run.max_steps`, `run.freeze[2]`).
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
)

// MaxDepth bounds the nesting of objects and arrays.
const MaxDepth = 100

// Decode parses raw as exactly one JSON value.
func Decode(raw []byte) (any, error) {
	d := &decoder{raw: raw, dec: json.NewDecoder(bytes.NewReader(raw))}
	d.dec.UseNumber()
	v, err := d.value("", 0)
	if err != nil {
		return nil, err
	}
	off := d.dec.InputOffset()
	if rest := bytes.TrimLeft(raw[off:], " \t\r\n"); len(rest) > 0 {
		return nil, fmt.Errorf("invalid JSON at line %d: data after the top-level value (%q)", d.line(int64(len(raw)-len(rest))), head(rest))
	}
	return v, nil
}

type decoder struct {
	raw []byte
	dec *json.Decoder
}

// line is the 1-based line of byte offset off.
func (d *decoder) line(off int64) int {
	off = min(max(off, 0), int64(len(d.raw)))
	return 1 + bytes.Count(d.raw[:off], []byte("\n"))
}

func head(b []byte) []byte {
	if len(b) > 20 {
		return b[:20]
	}
	return b
}

// token reads the next token, turning every failure into a located error.
func (d *decoder) token() (json.Token, error) {
	t, err := d.dec.Token()
	if err == nil {
		return t, nil
	}
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("invalid JSON at line %d: unexpected end of input", d.line(int64(len(d.raw))))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return nil, fmt.Errorf("invalid JSON at line %d: %v", d.line(se.Offset), se)
	}
	return nil, fmt.Errorf("invalid JSON at line %d: %v", d.line(d.dec.InputOffset()), err)
}

// value reads one value whose dotted path is path.
func (d *decoder) value(path string, depth int) (any, error) {
	t, err := d.token()
	if err != nil {
		return nil, err
	}
	delim, ok := t.(json.Delim)
	if !ok {
		return t, nil // json.Number, string, bool or nil
	}
	if depth >= MaxDepth {
		return nil, fmt.Errorf("invalid JSON at line %d: nested deeper than %d levels", d.line(d.dec.InputOffset()), MaxDepth)
	}
	switch delim {
	case '{':
		m := map[string]any{}
		for d.dec.More() {
			t, err := d.token()
			if err != nil {
				return nil, err
			}
			k, ok := t.(string)
			if !ok { // unreachable: Token only returns strings as keys
				return nil, fmt.Errorf("invalid JSON at line %d: object key is not a string", d.line(d.dec.InputOffset()))
			}
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("duplicate key %q at line %d", sub, d.line(d.dec.InputOffset()))
			}
			if m[k], err = d.value(sub, depth+1); err != nil {
				return nil, err
			}
		}
		if _, err := d.token(); err != nil { // '}'
			return nil, err
		}
		return m, nil
	case '[':
		a := []any{}
		for d.dec.More() {
			v, err := d.value(path+"["+strconv.Itoa(len(a))+"]", depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		if _, err := d.token(); err != nil { // ']'
			return nil, err
		}
		return a, nil
	}
	return nil, fmt.Errorf("invalid JSON at line %d: unexpected %q", d.line(d.dec.InputOffset()), delim)
}

// FindNull returns the dotted path of the first null in tree (keys in sorted
// order), and whether there is one.
func FindNull(tree any) (string, bool) { return findNull(tree, "") }

func findNull(v any, path string) (string, bool) {
	switch v := v.(type) {
	case nil:
		return path, true
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			if p, ok := findNull(v[k], sub); ok {
				return p, true
			}
		}
	case []any:
		for i, e := range v {
			if p, ok := findNull(e, path+"["+strconv.Itoa(i)+"]"); ok {
				return p, true
			}
		}
	}
	return "", false
}
