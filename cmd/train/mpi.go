package main

import (
	"errors"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/mambago/mamba/internal/mpi"
	"github.com/mambago/mamba/train"
)

// The MPI job this process is a rank of: nil when it runs alone. A rank that failed
// on its own (failedAlone) aborts the whole job as it exits, since the other ranks
// would wait for it forever; outcomes the ranks agreed on end every rank normally.
var (
	world       *mpi.World
	failedAlone bool
)

// quietError is an outcome that rank 0 reports for the whole job: other ranks exit
// with its status without printing it.
type quietError struct{ error }

func (e quietError) Unwrap() error { return e.error }

// runTrainRank runs the train command, as one rank of a data-parallel run when the
// environment says that mpirun or srun started it (see train.Options.Comm).
func runTrainRank(args []string, stdout, stderr io.Writer) error {
	l, ok, err := mpi.Detect(os.Getenv)
	if err != nil {
		return usageError{err}
	}
	if !ok {
		return runTrain(args, stdout, stderr)
	}
	if world, err = mpi.Init(l); err != nil {
		if l.Rank != 0 {
			return quietError{usageError{err}}
		}
		return usageError{err}
	}
	err = runTrain(args, stdout, stderr)
	var ue usageError
	if errors.As(err, &ue) {
		// Rejected before training started: answer the other ranks' start-up check.
		err = train.StartFailed(world, err)
	}
	switch {
	case err == nil || errors.Is(err, pflag.ErrHelp):
	case train.Agreed(err):
		if world.Rank() != 0 {
			err = quietError{err}
		}
	default:
		failedAlone = true
	}
	return err
}

// endJob ends this process's part in its MPI job, if any, and returns the exit
// status code.
func endJob(code int) int {
	switch {
	case world == nil:
	case failedAlone:
		world.Abort(code)
	default:
		world.Finalize()
	}
	return code
}
