// Package wav reads and writes RIFF/WAVE audio as 16-bit mono samples.
//
// Read accepts integer PCM of 8, 16, 24 or 32 bits and 32-bit IEEE float
// (plain or WAVE_FORMAT_EXTENSIBLE), any rate and channel count. Channels
// are averaged to mono and samples scaled to 16 bits (8-bit is unsigned,
// offset 128; wider integers keep their top 16 bits; floats are clamped to
// [-1, 1] and scaled by 32767). Other encodings (ADPCM, A-law, μ-law, 12-bit
// ...) are refused with an error that names the encoding.
//
// Resample changes the rate by linear interpolation between neighbouring
// samples: x̂(j) = (1-f)·x[i] + f·x[i+1] with i + f = j·from/to. It does not
// low-pass first, so downsampling can alias; it is meant for bringing
// speech clips at 8-48 kHz to 16 kHz, not for audiophile conversion.
package wav

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Audio is a decoded clip.
type Audio struct {
	Rate     int     // samples per second
	Channels int     // channels in the file (Samples is always mono)
	Bits     int     // bits per sample in the file
	Samples  []int16 // mono, 16-bit
}

// The sample rates Read accepts: a wider range would let Resample to 16 kHz
// multiply a file's size without bound.
const (
	minRate = 1000
	maxRate = 768000
)

// Data sizes that writers to a pipe put in the header because they cannot
// seek back: the data then runs to the end of the stream.
const (
	unknownSize    = 0xffffffff
	soxUnknownSize = 0x7ffff000 // sox's MS_UNSPEC
)

const (
	formatPCM        = 1
	formatFloat      = 3
	formatExtensible = 0xfffe
)

// Read decodes a WAV stream. A data chunk must hold the bytes its header
// claims, unless the claim is one of the "unknown length" markers of writers
// to a pipe (0xffffffff, and sox's 0x7ffff000), when it runs to the end.
func Read(r io.Reader) (*Audio, error) {
	var riff [12]byte
	if _, err := io.ReadFull(r, riff[:]); err != nil {
		return nil, fmt.Errorf("wav: file shorter than the 12-byte RIFF header (empty or truncated)")
	}
	if string(riff[:4]) != "RIFF" || string(riff[8:]) != "WAVE" {
		return nil, fmt.Errorf("wav: not a RIFF/WAVE file (starts with %q)", riff[:4])
	}
	var (
		a             Audio
		format, align int
		haveFmt       bool
		chunk         [8]byte
		le            = binary.LittleEndian
	)
	for {
		if _, err := io.ReadFull(r, chunk[:]); err != nil {
			return nil, errors.New("wav: no data chunk")
		}
		id, size := string(chunk[:4]), int64(le.Uint32(chunk[4:]))
		switch id {
		case "fmt ":
			if size < 16 || size > 1<<16 {
				return nil, fmt.Errorf("wav: fmt chunk of %d bytes", size)
			}
			b := make([]byte, size+size%2)
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, errors.New("wav: truncated fmt chunk")
			}
			format = int(le.Uint16(b[0:]))
			a.Channels = int(le.Uint16(b[2:]))
			a.Rate = int(le.Uint32(b[4:]))
			align = int(le.Uint16(b[12:]))
			a.Bits = int(le.Uint16(b[14:]))
			if format == formatExtensible && size >= 40 {
				format = int(le.Uint16(b[24:])) // sub-format GUID starts with the format code
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, errors.New("wav: data chunk before fmt chunk")
			}
			if err := a.check(format, align); err != nil {
				return nil, err
			}
			unknown := size == unknownSize || size == soxUnknownSize
			var b []byte
			var err error
			if unknown {
				b, err = io.ReadAll(r) // a stream written to a pipe: its data runs to the end
			} else {
				b, err = io.ReadAll(io.LimitReader(r, size))
			}
			if err != nil {
				return nil, fmt.Errorf("wav: reading data: %v", err)
			}
			if !unknown && int64(len(b)) < size {
				return nil, fmt.Errorf("wav: data chunk claims %d bytes, the file holds %d (truncated file)", size, len(b))
			}
			b = b[:len(b)-len(b)%align] // whole frames only
			a.Samples = decode(b, format, a.Bits/8, a.Channels)
			return &a, nil
		default:
			if _, err := io.CopyN(io.Discard, r, size+size%2); err != nil {
				return nil, fmt.Errorf("wav: truncated %q chunk", id)
			}
		}
	}
}

func (a *Audio) check(format, align int) error {
	switch {
	case format != formatPCM && format != formatFloat:
		return fmt.Errorf("wav: unsupported encoding (format code %d); only PCM and float are read: convert with \"sox in.wav -b 16 out.wav\"", format)
	case format == formatPCM && a.Bits != 8 && a.Bits != 16 && a.Bits != 24 && a.Bits != 32:
		return fmt.Errorf("wav: unsupported bit depth %d (want 8, 16, 24 or 32)", a.Bits)
	case format == formatFloat && a.Bits != 32:
		return fmt.Errorf("wav: unsupported float depth %d bits (want 32)", a.Bits)
	case a.Channels < 1 || a.Rate < minRate || a.Rate > maxRate:
		return fmt.Errorf("wav: %d channels at %d Hz (want at least one channel at %d to %d Hz)", a.Channels, a.Rate, minRate, maxRate)
	case align != a.Channels*a.Bits/8:
		return fmt.Errorf("wav: block align %d does not match %d channels × %d bits", align, a.Channels, a.Bits)
	}
	return nil
}

// decode converts interleaved frames to mono 16-bit samples.
func decode(b []byte, format, width, channels int) []int16 {
	le := binary.LittleEndian
	frames := len(b) / (width * channels)
	out := make([]int16, frames)
	for i := range out {
		var sum int64
		for c := range channels {
			p := b[(i*channels+c)*width:]
			var v int64
			switch {
			case format == formatFloat:
				f := float64(math.Float32frombits(le.Uint32(p)))
				v = int64(math.Round(math.Max(-1, math.Min(1, f)) * 32767))
			case width == 1:
				v = (int64(p[0]) - 128) << 8
			case width == 2:
				v = int64(int16(le.Uint16(p)))
			case width == 3:
				v = int64(int16(uint16(p[1]) | uint16(p[2])<<8))
			default:
				v = int64(int16(le.Uint32(p) >> 16))
			}
			sum += v
		}
		out[i] = int16(sum / int64(channels))
	}
	return out
}

// Resample converts samples from one rate to another by linear
// interpolation (see the package doc); equal rates return a copy.
func Resample(s []int16, from, to int) ([]int16, error) {
	if from < 1 || to < 1 {
		return nil, fmt.Errorf("wav: resample from %d Hz to %d Hz", from, to)
	}
	if len(s) == 0 {
		return nil, nil
	}
	n := int(int64(len(s)) * int64(to) / int64(from))
	out := make([]int16, n)
	for j := range out {
		num := int64(j) * int64(from)
		i, f := num/int64(to), float64(num%int64(to))/float64(to)
		next := s[min(int(i)+1, len(s)-1)]
		out[j] = int16(math.Round((1-f)*float64(s[i]) + f*float64(next)))
	}
	return out, nil
}

// Write writes 16-bit mono PCM.
func Write(w io.Writer, rate int, s []int16) error {
	le := binary.LittleEndian
	n := 2 * len(s)
	b := make([]byte, 44, 44+n)
	copy(b, "RIFF")
	le.PutUint32(b[4:], uint32(36+n))
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16)
	le.PutUint16(b[20:], formatPCM)
	le.PutUint16(b[22:], 1)
	le.PutUint32(b[24:], uint32(rate))
	le.PutUint32(b[28:], uint32(2*rate))
	le.PutUint16(b[32:], 2)
	le.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	le.PutUint32(b[40:], uint32(n))
	for _, x := range s {
		b = le.AppendUint16(b, uint16(x))
	}
	_, err := w.Write(b)
	return err
}
