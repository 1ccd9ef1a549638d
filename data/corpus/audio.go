package corpus

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mambago/mamba/data/tokenize"
	"github.com/mambago/mamba/data/wav"
	"github.com/mambago/mamba/internal/rng"
)

// AudioOptions configures the audio corpus.
type AudioOptions struct {
	Clips      int    // synthetic training clips
	ValidClips int    // synthetic validation clips
	Seed       uint64 // draws each clip's voice, speed, pitch, lead-in and gain
	// Resample converts WAVs at other rates to 16 kHz (wav.Resample); when
	// false such files are refused.
	Resample bool
	Workers  int // synthesis processes at once (0 = GOMAXPROCS)
}

var (
	digits  = []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
	accents = []string{"en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"}
	flites  = []string{"kal16", "awb", "rms", "slt"}
	// The real spoken digits 0-9 of five Asterisk voices (4 speakers, 8 kHz).
	asterisk     = []string{"asterisk-core-sounds-en-wav", "asterisk-core-sounds-es-wav", "asterisk-core-sounds-fr-wav", "asterisk-core-sounds-it-wav", "asterisk-core-sounds-ru-wav"}
	asteriskFile = regexp.MustCompile(`^usr/share/asterisk/sounds/[^/]+/digits/[0-9]\.wav$`)
)

// AudioPackages returns SC09-style splits of one-second spoken digits at
// 16 kHz:
//
//	train      o.Clips clips by espeak-ng (7 English accents × its voice
//	           variants, speed 110-229 wpm, pitch 15-89, lead-in 0-0.24 s,
//	           peak -1..-15 dB), shaped by sox; digit i%10
//	valid      o.ValidClips more, drawn from another seed stream
//	test       the 4 flite voices × 10 digits (held-out voices)
//	test_real  the Asterisk recordings of 0-9 in en, es, fr, it, ru (real speech)
//
// Clip i of a split depends only on (seed, split, i) and the installed
// espeak-ng and sox versions.
func AudioPackages(f *Fetch, o AudioOptions) ([]Split, error) {
	if o.Clips < 1 || o.ValidClips < 1 {
		return nil, fmt.Errorf("clip counts train %d and valid %d must be positive", o.Clips, o.ValidClips)
	}
	for _, c := range []string{"espeak-ng", "sox", "flite"} {
		if _, err := exec.LookPath(c); err != nil {
			return nil, fmt.Errorf("%s not found on PATH: install it (apt-get install espeak-ng sox flite), or pass --input DIR of WAV files", c)
		}
	}
	variants, err := espeakVariants()
	if err != nil {
		return nil, err
	}
	debs := make([]string, len(asterisk))
	for i, p := range asterisk {
		if debs[i], err = f.Deb(p); err != nil {
			return nil, err
		}
	}
	workers := o.Workers
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	synth := func(split string, stream uint64, n int) Docs {
		return parallelDocs(n, workers, progress(f, "synthesising "+split+" clips"), func(i int) (Doc, error) {
			r := rng.New(o.Seed, stream, uint64(i))
			c := espeakClip{
				word:  digits[i%10],
				voice: accents[r.Intn(len(accents))] + "+" + variants[r.Intn(len(variants))],
				speed: 110 + r.Intn(120), pitch: 15 + r.Intn(75), lead: r.Intn(25), gain: 1 + r.Intn(15),
			}
			s, err := c.render()
			if err != nil {
				return Doc{}, err
			}
			return Doc{Name: fmt.Sprintf("%s_%05d", c.word, i), Data: pcm(s)}, nil
		})
	}
	flite := parallelDocs(len(flites)*len(digits), workers, progress(f, "speaking test clips with flite"), func(i int) (Doc, error) {
		v, w := flites[i/len(digits)], digits[i%len(digits)]
		s, err := fliteClip(v, w)
		return Doc{Name: w + "_" + v, Data: pcm(s)}, err
	})
	real := func(yield func(Doc) error) error {
		for _, deb := range debs {
			m, err := debFiles(deb, asteriskFile.MatchString)
			if err != nil {
				return err
			}
			if len(m) != 10 {
				return fmt.Errorf("%s: %d digit recordings, want 10 (package layout changed?)", deb, len(m))
			}
			for _, n := range sortedKeys(m) {
				a, err := decodeWAV(n, m[n], true)
				if err != nil {
					return err
				}
				if err := yield(Doc{Name: n, Data: pcm(oneSecond(a, 0))}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return []Split{{"train", synth("train", 0, o.Clips)}, {"valid", synth("valid", 1, o.ValidClips)}, {"test", flite}, {"test_real", real}}, nil
}

// espeakVariants lists espeak-ng's voice variants (voices/!v), sorted.
func espeakVariants() ([]string, error) {
	out, err := exec.Command("espeak-ng", "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("espeak-ng --version: %v", err)
	}
	_, dir, ok := strings.Cut(string(out), "Data at: ")
	if !ok {
		return nil, fmt.Errorf("espeak-ng --version does not name its data directory: %q", out)
	}
	entries, err := os.ReadDir(filepath.Join(strings.TrimSpace(dir), "voices", "!v"))
	if err != nil || len(entries) == 0 {
		return nil, fmt.Errorf("espeak-ng voice variants: %v", err)
	}
	var v []string
	for _, e := range entries {
		if !e.IsDir() {
			v = append(v, e.Name())
		}
	}
	sort.Strings(v)
	return v, nil
}

// espeakClip is one synthetic utterance; lead is in hundredths of a second
// and gain the peak level in dB below full scale.
type espeakClip struct {
	word, voice              string
	speed, pitch, lead, gain int
}

// render runs espeak-ng | sox (trim leading silence, normalise the peak,
// resample to 16 kHz mono) and fits the result into one second. sox runs
// with -D -R: its default dither on the 16-bit output is random, which made
// every run differ.
func (c espeakClip) render() ([]int16, error) {
	es := exec.Command("espeak-ng", "-v", c.voice, "-s", strconv.Itoa(c.speed), "-p", strconv.Itoa(c.pitch), "--stdout", c.word)
	sx := exec.Command("sox", "-q", "-D", "-R", "-t", "wav", "-", "-r", "16000", "-c", "1", "-b", "16", "-t", "wav", "-",
		"silence", "1", "0.01", "0.5%", "gain", "-n", "-"+strconv.Itoa(c.gain))
	pipe, err := es.StdoutPipe()
	if err != nil {
		return nil, err
	}
	sx.Stdin = pipe
	var out, errb bytes.Buffer
	sx.Stdout, sx.Stderr, es.Stderr = &out, &errb, &errb
	if err := es.Start(); err != nil {
		return nil, fmt.Errorf("espeak-ng: %v", err)
	}
	serr := sx.Run()
	eerr := es.Wait()
	if serr != nil || eerr != nil {
		return nil, fmt.Errorf("espeak-ng -v %s %q | sox: %v %v %s", c.voice, c.word, eerr, serr, lastLine(errb.String()))
	}
	a, err := decodeWAV("sox output", out.Bytes(), false)
	if err != nil {
		return nil, err
	}
	return oneSecond(a, c.lead*tokenize.SampleRate/100), nil
}

// fliteClip speaks word with a flite voice, 0.1 s lead-in, one second.
func fliteClip(voice, word string) ([]int16, error) {
	tmp, err := os.CreateTemp("", "flite*.wav")
	if err != nil {
		return nil, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if out, err := exec.Command("flite", "-voice", voice, "-t", word, "-o", tmp.Name()).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("flite -voice %s: %v %s", voice, err, lastLine(string(out)))
	}
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		return nil, err
	}
	a, err := decodeWAV("flite "+voice, b, true)
	if err != nil {
		return nil, err
	}
	return oneSecond(a, tokenize.SampleRate/10), nil
}

// decodeWAV reads a WAV held in memory and brings it to 16 kHz.
func decodeWAV(name string, b []byte, resample bool) ([]int16, error) {
	a, err := wav.Read(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if a.Rate == tokenize.SampleRate {
		return a.Samples, nil
	}
	if !resample {
		return nil, fmt.Errorf("%s: %d Hz, want %d Hz (resampling is off: --resample=false)", name, a.Rate, tokenize.SampleRate)
	}
	return wav.Resample(a.Samples, a.Rate, tokenize.SampleRate)
}

// oneSecond places s after lead zero samples in a clip of exactly one
// second, cutting what does not fit.
func oneSecond(s []int16, lead int) []int16 {
	out := make([]int16, tokenize.SampleRate)
	copy(out[min(lead, len(out)):], s)
	return out
}

// pcm encodes samples as 16-bit little-endian PCM.
func pcm(s []int16) []byte {
	b := make([]byte, 0, 2*len(s))
	for _, x := range s {
		b = binary.LittleEndian.AppendUint16(b, uint16(x))
	}
	return b
}

// progress returns a reporter that logs "what: done/total (elapsed)" to f's log.
func progress(f *Fetch, what string) func(done, total int) {
	start := time.Now()
	return func(done, total int) {
		f.logf("%s: %d/%d (%s)", what, done, total, time.Since(start).Round(time.Second))
	}
}

// parallelDocs makes n documents with up to workers calls of gen at once,
// yielding them in index order (a block of 64·workers at a time bounds the
// memory held) and reporting after each block.
func parallelDocs(n, workers int, report func(done, total int), gen func(i int) (Doc, error)) Docs {
	return func(yield func(Doc) error) error {
		block := 64 * workers
		docs, errs := make([]Doc, block), make([]error, block)
		for lo := 0; lo < n; lo += block {
			hi := min(lo+block, n)
			var wg sync.WaitGroup
			next := make(chan int)
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						docs[i-lo], errs[i-lo] = gen(i)
					}
				}()
			}
			for i := lo; i < hi; i++ {
				next <- i
			}
			close(next)
			wg.Wait()
			for i := range hi - lo {
				if errs[i] != nil {
					return errs[i]
				}
				if err := yield(docs[i]); err != nil {
					return err
				}
			}
			report(hi, n)
		}
		return nil
	}
}

// LocalWAV returns splits of the user's WAV files, one document per file,
// brought to 16 kHz mono 16-bit (other rates resampled when resample is
// set, refused otherwise).
func LocalWAV(in Inputs, resample bool) ([]Split, error) {
	return local(in, []string{".wav"}, false, func(path string, yield func(Doc) error) error {
		b, err := readFile(path)
		if err != nil {
			return err
		}
		s, err := decodeWAV(path, b, resample)
		if err != nil {
			return err
		}
		if len(s) == 0 {
			return fmt.Errorf("%s: no samples", path)
		}
		return yield(Doc{Name: path, Data: pcm(s)})
	})
}
