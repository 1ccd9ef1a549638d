package wav

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

// build makes a WAV with a raw fmt chunk (format, channels, rate, bits) and data.
func build(format, channels, rate, bits int, data []byte) []byte {
	le := binary.LittleEndian
	b := []byte("RIFF\x00\x00\x00\x00WAVE")
	b = append(b, "LIST"...)
	b = le.AppendUint32(b, 3)
	b = append(b, 'x', 'y', 'z', 0) // odd chunk + pad byte
	b = append(b, "fmt "...)
	b = le.AppendUint32(b, 16)
	b = le.AppendUint16(b, uint16(format))
	b = le.AppendUint16(b, uint16(channels))
	b = le.AppendUint32(b, uint32(rate))
	b = le.AppendUint32(b, uint32(rate*channels*bits/8))
	b = le.AppendUint16(b, uint16(channels*bits/8))
	b = le.AppendUint16(b, uint16(bits))
	b = append(b, "data"...)
	b = le.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

func TestRoundTrip(t *testing.T) {
	s := []int16{0, 1, -1, 32767, -32768, 1234}
	var buf bytes.Buffer
	if err := Write(&buf, 16000, s); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 44+2*len(s) {
		t.Errorf("file is %d bytes, want %d", buf.Len(), 44+2*len(s))
	}
	a, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if a.Rate != 16000 || a.Channels != 1 || a.Bits != 16 || !slices.Equal(a.Samples, s) {
		t.Errorf("read back %+v", a)
	}
}

func TestDepthsAndChannels(t *testing.T) {
	cases := []struct {
		name             string
		format, ch, bits int
		data             []byte
		want             []int16
	}{
		{"u8", 1, 1, 8, []byte{128, 255, 0}, []int16{0, 127 << 8, -32768}},
		{"s24", 1, 1, 24, []byte{0xff, 0x34, 0x12, 0, 0, 0x80}, []int16{0x1234, -32768}},
		{"s32", 1, 1, 32, []byte{0, 0, 0x34, 0x12}, []int16{0x1234}},
		{"float", 3, 1, 32, binary.LittleEndian.AppendUint32(nil, 0x3f000000), []int16{16384}}, // 0.5
		{"stereo", 1, 2, 16, []byte{0x10, 0, 0x30, 0}, []int16{0x20}},
	}
	for _, c := range cases {
		a, err := Read(bytes.NewReader(build(c.format, c.ch, 8000, c.bits, c.data)))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(a.Samples, c.want) {
			t.Errorf("%s: samples %v, want %v", c.name, a.Samples, c.want)
		}
	}
}

func TestRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		b   []byte
		msg string
	}{
		"empty":   {nil, "shorter than the 12-byte RIFF header"},
		"not wav": {[]byte("ID3\x04 some mp3 bytes"), "not a RIFF/WAVE file"},
		"12-bit":  {build(1, 1, 16000, 12, make([]byte, 4)), "unsupported bit depth 12"},
		"mu-law":  {build(7, 1, 8000, 8, make([]byte, 4)), "unsupported encoding (format code 7)"},
		"no data": {[]byte("RIFF\x00\x00\x00\x00WAVE"), "no data chunk"},
		"float64": {build(3, 1, 16000, 64, make([]byte, 8)), "unsupported float depth 64"},
		"data chunk claims more than the file": {claim(build(1, 1, 16000, 16, make([]byte, 8)), 1000),
			"data chunk claims 1000 bytes, the file holds 8 (truncated file)"},
		"data chunk claims 4 GiB": {claim(build(1, 1, 16000, 16, make([]byte, 8)), 0xfffffffe), "claims 4294967294 bytes"},
		"1 Hz":                    {build(1, 1, 1, 16, make([]byte, 8)), "1 channels at 1 Hz"},
	} {
		_, err := Read(bytes.NewReader(c.b))
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want %q", name, err, c.msg)
		}
	}
}

// claim rewrites the size of the data chunk of a WAV made by build.
func claim(b []byte, size uint32) []byte {
	binary.LittleEndian.PutUint32(b[bytes.LastIndex(b, []byte("data"))+4:], size)
	return b
}

// Writers to a pipe cannot seek back to fill in the data size; their markers
// mean "to the end of the stream".
func TestUnknownDataSize(t *testing.T) {
	for _, size := range []uint32{0xffffffff, 0x7ffff000} {
		a, err := Read(bytes.NewReader(claim(build(1, 1, 16000, 16, []byte{1, 0, 2, 0, 3}), size)))
		if err != nil || !slices.Equal(a.Samples, []int16{1, 2}) {
			t.Errorf("size %#x: %v, %v", size, a, err)
		}
	}
}

func TestResample(t *testing.T) {
	s := []int16{0, 100, 200, 300}
	up, err := Resample(s, 8000, 16000)
	if err != nil || !slices.Equal(up, []int16{0, 50, 100, 150, 200, 250, 300, 300}) {
		t.Errorf("8k→16k = %v, %v", up, err)
	}
	down, _ := Resample(up, 16000, 8000)
	if !slices.Equal(down, s) {
		t.Errorf("16k→8k = %v, want %v", down, s)
	}
	if one, err := Resample(make([]int16, 44100), 44100, 16000); err != nil || len(one) != 16000 {
		t.Errorf("one second at 44.1 kHz became %d samples (%v)", len(one), err)
	}
	if _, err := Resample(s, 0, 16000); err == nil {
		t.Error("rate 0 accepted")
	}
}

// FuzzRead feeds arbitrary files to Read and what it accepts to Resample
// (as prepare does). Nothing may panic or claim memory beyond a bounded
// multiple of the input; errors are one line.
func FuzzRead(f *testing.F) {
	var good bytes.Buffer
	Write(&good, 16000, []int16{0, 1, -1, 32767, -32768})
	f.Add(good.Bytes())
	f.Add(build(1, 2, 44100, 24, make([]byte, 12)))
	f.Add(build(3, 1, 8000, 32, make([]byte, 8)))
	f.Add(claim(build(1, 1, 16000, 16, make([]byte, 8)), 1000))
	f.Add(claim(build(1, 1, 16000, 16, make([]byte, 8)), 0x7ffff000))
	f.Add(build(1, 1, 1, 16, make([]byte, 8)))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Read(bytes.NewReader(b))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if len(a.Samples) > len(b) {
			t.Fatalf("%d samples from %d bytes", len(a.Samples), len(b))
		}
		s, err := Resample(a.Samples, a.Rate, 16000)
		if err != nil || len(s) > 16*len(a.Samples)+1 {
			t.Fatalf("Resample from %d Hz: %d samples from %d, %v", a.Rate, len(s), len(a.Samples), err)
		}
	})
}
