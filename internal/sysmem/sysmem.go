// Package sysmem says how much memory this process may still allocate, and
// reads and writes sizes, so that a program can refuse work that would not
// fit before it allocates:
//
//	available = min(MemAvailable,  limit − usage of the process's cgroup)
//
// MemAvailable is the kernel's estimate in /proc/meminfo of the memory that
// can be given out without swapping; the cgroup's limit and usage are
// memory.max and memory.current (cgroup v2) or memory.limit_in_bytes and
// memory.usage_in_bytes (v1). Sizes are bytes with an optional decimal (kB,
// MB, GB, TB) or binary (KiB, MiB, GiB, TiB) unit.
package sysmem

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Available returns the bytes this process can still allocate and where the
// bound comes from ("MemAvailable" or "cgroup limit"); ok is false when
// neither is known (not Linux).
func Available() (bytes int64, from string, ok bool) {
	if kb, found := memAvailable("/proc/meminfo"); found {
		bytes, from, ok = kb*1024, "MemAvailable", true
	}
	if left, found := cgroupLeft(); found && (!ok || left < bytes) {
		bytes, from, ok = left, "cgroup limit", true
	}
	return max(bytes, 0), from, ok
}

// memAvailable reads the MemAvailable line (kB) of a meminfo file.
func memAvailable(path string) (int64, bool) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb, true
				}
			}
		}
	}
	return 0, false
}

// cgroupLeft returns the limit less the usage of this process's memory
// cgroup, when it has a limit.
func cgroupLeft() (int64, bool) {
	v2, v1 := "/", "/"
	if raw, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for line := range strings.SplitSeq(strings.TrimSpace(string(raw)), "\n") {
			parts := strings.SplitN(line, ":", 3)
			switch {
			case len(parts) != 3:
			case parts[0] == "0" && parts[1] == "":
				v2 = parts[2]
			case strings.Contains(","+parts[1]+",", ",memory,"):
				v1 = parts[2]
			}
		}
	}
	for _, c := range []struct {
		dirs         []string
		limit, usage string
	}{
		{[]string{filepath.Join("/sys/fs/cgroup", v2), "/sys/fs/cgroup"}, "memory.max", "memory.current"},
		{[]string{filepath.Join("/sys/fs/cgroup/memory", v1), "/sys/fs/cgroup/memory"}, "memory.limit_in_bytes", "memory.usage_in_bytes"},
	} {
		for _, d := range c.dirs {
			limit, ok1 := readInt(filepath.Join(d, c.limit))
			usage, ok2 := readInt(filepath.Join(d, c.usage))
			if ok1 && ok2 && limit < 1<<60 { // "max", or v1's page-rounded MaxInt64: no limit
				return limit - usage, true
			}
		}
	}
	return 0, false
}

func readInt(path string) (int64, bool) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	return n, err == nil
}

var units = []struct {
	name string
	size float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1},
}

// ParseSize reads a size in bytes: a number with an optional unit, e.g.
// "16GB", "512 MiB", "1e9".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	scale := 1.0
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.name); ok {
			t, scale = strings.TrimSpace(num), u.size
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || v < 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit, e.g. 16GB or 512MiB", s)
	}
	if b := v * scale; b < 1<<63 {
		return int64(b), nil
	}
	return 0, fmt.Errorf("size %q is too large", s)
}

// Format writes bytes in the largest decimal unit that keeps the number at
// least 1, e.g. "4.0 TB".
func Format(b float64) string {
	for _, u := range []struct {
		name string
		size float64
	}{{"EB", 1e18}, {"PB", 1e15}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}} {
		if b >= u.size {
			return fmt.Sprintf("%.1f %s", b/u.size, u.name)
		}
	}
	return fmt.Sprintf("%.0f B", b)
}

// Check refuses need bytes (a finite estimate, or +Inf) above limit, or
// above the available memory when limit is 0, with an error that says both
// sizes, e.g. "need about 4.0 TB, more than the 21.0 GB of memory available
// (MemAvailable)".
func Check(need float64, limit int64) error {
	if limit > 0 {
		if !(need <= float64(limit)) {
			return fmt.Errorf("need about %s, more than the limit of %s", Format(need), Format(float64(limit)))
		}
		return nil
	}
	avail, from, ok := Available()
	if ok && !(need <= float64(avail)) {
		return fmt.Errorf("need about %s, more than the %s of memory available (%s)", Format(need), Format(float64(avail)), from)
	}
	return nil
}
