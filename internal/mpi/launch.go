package mpi

import (
	"fmt"
	"strconv"
)

// Launch is what the environment of a process says about the job that started it.
type Launch struct {
	Rank, Size int    // this process's rank and the number of ranks; Size 0 = not announced (learnt at Init)
	By         string // "mpirun" (Open MPI) or "srun" (Slurm with PMIx)
}

// Detect reads the variables a launcher sets (getenv is os.Getenv outside tests).
// It returns ok = false for a process started alone, or as the only rank of a job,
// which then needs no MPI library. It recognises
//
//	mpirun (Open MPI)         OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_RANK
//	srun --mpi=pmix (Slurm)   PMIX_RANK, with SLURM_STEP_NUM_TASKS or SLURM_NTASKS
//
// A Slurm step of several tasks without PMIx (srun --mpi=none or pmi2) is an error:
// Open MPI's library could not join its tasks, and each would train alone.
func Detect(getenv func(string) string) (l Launch, ok bool, err error) {
	num := func(name string) (int, bool, error) {
		s := getenv(name)
		if s == "" {
			return 0, false, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, true, fmt.Errorf("environment variable %s=%q is not a rank or a count", name, s)
		}
		return n, true, nil
	}
	if size, set, err := num("OMPI_COMM_WORLD_SIZE"); set {
		if err != nil {
			return Launch{}, false, err
		}
		rank, _, err := num("OMPI_COMM_WORLD_RANK")
		if err != nil {
			return Launch{}, false, err
		}
		l = Launch{Rank: rank, Size: size, By: "mpirun"}
	} else if rank, set, err := num("PMIX_RANK"); set {
		if err != nil {
			return Launch{}, false, err
		}
		l = Launch{Rank: rank, By: "srun"}
		for _, v := range []string{"SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"} {
			if n, set, err := num(v); set && err == nil {
				l.Size = n
				break
			}
		}
	} else if tasks, _, _ := num("SLURM_STEP_NUM_TASKS"); tasks > 1 && getenv("SLURM_STEP_ID") != "" {
		return Launch{}, false, fmt.Errorf("srun started %d tasks without PMIx, so Open MPI cannot join them: launch with srun --mpi=pmix or mpirun", tasks)
	}
	switch {
	case l.By == "":
		return Launch{}, false, nil
	case l.Size == 1:
		return l, false, nil
	case l.Size > 0 && l.Rank >= l.Size:
		return Launch{}, false, fmt.Errorf("%s announced rank %d of %d ranks", l.By, l.Rank, l.Size)
	}
	return l, true, nil
}
