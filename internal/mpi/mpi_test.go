package mpi

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mambago/mamba/internal/mpi/mpitest"
)

// TestMain doubles as a rank of TestCollectivesUnderMPIRun: with MPI_TEST_RANK set,
// the test binary runs rankChecks and exits 0 when every check passed.
func TestMain(m *testing.M) {
	if os.Getenv("MPI_TEST_RANK") != "" {
		if err := rankChecks(); err != nil {
			fmt.Fprintln(os.Stderr, "rank check:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		want Launch
		ok   bool
		err  string
	}{
		{"alone", nil, Launch{}, false, ""},
		{"mpirun", map[string]string{"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3", "PMIX_RANK": "3"}, Launch{3, 4, "mpirun"}, true, ""},
		{"mpirun -np 1", map[string]string{"OMPI_COMM_WORLD_SIZE": "1", "OMPI_COMM_WORLD_RANK": "0"}, Launch{0, 1, "mpirun"}, false, ""},
		{"srun pmix", map[string]string{"PMIX_RANK": "1", "SLURM_STEP_NUM_TASKS": "8", "SLURM_NTASKS": "16"}, Launch{1, 8, "srun"}, true, ""},
		{"srun pmix, no size", map[string]string{"PMIX_RANK": "0"}, Launch{0, 0, "srun"}, true, ""},
		{"srun without pmix", map[string]string{"SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_ID": "0", "SLURM_PROCID": "2"}, Launch{}, false, "--mpi=pmix"},
		{"batch script", map[string]string{"SLURM_NTASKS": "4", "SLURM_PROCID": "0"}, Launch{}, false, ""},
		{"bad size", map[string]string{"OMPI_COMM_WORLD_SIZE": "four"}, Launch{}, false, "OMPI_COMM_WORLD_SIZE"},
		{"rank past size", map[string]string{"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "2"}, Launch{}, false, "rank 2 of 2"},
	} {
		l, ok, err := Detect(env(c.env))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one naming %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || ok != c.ok || l != c.want {
			t.Errorf("%s: got %+v %v %v, want %+v %v", c.name, l, ok, err, c.want, c.ok)
		}
	}
}

func TestMissingLibraryNamesTheFix(t *testing.T) {
	for lib, want := range map[string]string{"/nonexistent/libmpi.so.40": "/nonexistent/libmpi.so.40", "libm.so.6": "libm.so.6 is not Open MPI's library"} {
		t.Setenv(LibEnv, lib)
		_, err := Init(Launch{Rank: 1, Size: 4, By: "mpirun"})
		if err == nil || !strings.Contains(err.Error(), LibEnv) || !strings.Contains(err.Error(), "4 ranks") || !strings.Contains(err.Error(), want) {
			t.Errorf("Init with %s: %v; want an error naming %q, %s and the launch", lib, err, want, LibEnv)
		}
	}
}

// Every collective, on 2 and 3 ranks (3 does not divide the test sizes evenly), with
// Bcast larger than MaxCall so that it goes in pieces.
func TestCollectivesUnderMPIRun(t *testing.T) {
	for _, n := range []int{2, 3} {
		cmd := mpitest.Command(t, n, os.Args[0], "-test.run", "^$")
		cmd.Env = append(os.Environ(), "MPI_TEST_RANK=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%d ranks: %v\n%s", n, err, out)
		}
	}
}

// rankChecks runs on every rank of TestCollectivesUnderMPIRun.
func rankChecks() error {
	l, ok, err := Detect(os.Getenv)
	if err != nil || !ok {
		return fmt.Errorf("Detect under mpirun: %+v %v %v", l, ok, err)
	}
	w, err := Init(l)
	if err != nil {
		return err
	}
	defer w.Finalize()
	if err := nilPanics(); err != nil {
		return err
	}
	r, n := w.Rank(), w.Size()
	if r != l.Rank || n != l.Size {
		return fmt.Errorf("MPI says rank %d of %d, the environment %d of %d", r, n, l.Rank, l.Size)
	}

	big := make([]float32, MaxCall/4*2+123) // three pieces
	if r == n-1 {
		for i := range big {
			big[i] = float32(i)
		}
	}
	if err := Bcast(w, big, n-1); err != nil {
		return err
	}
	for i, v := range big {
		if v != float32(i) {
			return fmt.Errorf("Bcast: element %d is %v", i, v)
		}
	}

	got := make([]float64, 3*n)
	if err := Allgather(w, []float64{float64(r), -float64(r), 0.5}, got); err != nil {
		return err
	}
	inPlace := make([]float64, 3*n)
	copy(inPlace[3*r:], []float64{float64(r), -float64(r), 0.5})
	if err := Allgather(w, nil, inPlace); err != nil {
		return err
	}
	for q := range n {
		want := []float64{float64(q), -float64(q), 0.5}
		if !slices.Equal(got[3*q:3*q+3], want) || !slices.Equal(inPlace[3*q:3*q+3], want) {
			return fmt.Errorf("Allgather: block %d is %v / %v (in place), want %v", q, got[3*q:3*q+3], inPlace[3*q:3*q+3], want)
		}
	}

	send, recv := make([]byte, 2*n), make([]byte, 2*n)
	for q := range n {
		send[2*q], send[2*q+1] = byte(r), byte(q) // (from, to)
	}
	if err := Alltoall(w, send, recv); err != nil {
		return err
	}
	for q := range n {
		if recv[2*q] != byte(q) || recv[2*q+1] != byte(r) {
			return fmt.Errorf("Alltoall: block from %d is %v", q, recv[2*q:2*q+2])
		}
	}
	return w.Barrier()
}

// nilPanics checks that Go's own SIGSEGV handling survived MPI_Init (Open MPI installs
// handlers of its own unless told not to): a nil dereference must be a recoverable panic.
func nilPanics() (err error) {
	defer func() {
		if recover() == nil {
			err = fmt.Errorf("a nil dereference did not panic")
		}
	}()
	var p *int
	return fmt.Errorf("read %d through nil", *p)
}
