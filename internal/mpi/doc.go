// Package mpi calls Open MPI (libmpi.so.40) without cgo, through purego, for
// data-parallel training. For ranks q = 0, …, N−1 of MPI_COMM_WORLD, each holding its
// own buffers, the collectives are
//
//	Bcast(x, root)       x_q ← x_root                                    for every q
//	Allgather(s, r)      r_q ← s_0 ‖ s_1 ‖ … ‖ s_{N−1}                     (blocks in rank order)
//	Alltoall(s, r)       block p of r_q ← block q of s_p                  for every p, q
//	Barrier()            returns once every rank has called it
//
// and nothing else: no reduction is offered, because MPI_Allreduce adds in an order
// that depends on its algorithm and on N. Callers sum what Alltoall delivers in their
// own fixed order (train's data-parallel runs sum in rank order, bitwise as one
// process sums its micro-batches).
//
// Detect reads the launch from the environment (mpirun's OMPI_COMM_WORLD_SIZE and
// OMPI_COMM_WORLD_RANK; Slurm's PMIX_RANK with SLURM_STEP_NUM_TASKS or SLURM_NTASKS
// under srun --mpi=pmix). A process started alone needs no library. Init loads
// libmpi.so.40 (or the file MAMBA_MPI_LIB names) with purego, so `CGO_ENABLED=0 go
// build` works, and initialises it with MPI_THREAD_FUNNELED on a goroutine locked to
// its OS thread; every later MPI call runs on that goroutine, whichever goroutine asks.
// Waiting calls yield their core instead of spinning (OMPI_MCA_mpi_yield_when_idle=1
// unless set otherwise), since training overlaps them with computation on every core.
// Open MPI's handles are the addresses of its exported globals (ompi_mpi_comm_world,
// ompi_mpi_float, ompi_mpi_double, ompi_mpi_byte) and MPI_IN_PLACE is (void*)1.
//
// Large buffers go in calls of at most MaxCall = 4 MB: on one host a single 67 MB
// allreduce ran at 0.2–1.2 GB/s against 4.2 GB/s in 1 MB pieces
// (../shared/notes/go-ecosystem.md §6). Bcast cuts its buffer itself; Allgather and
// Alltoall take one call's blocks, laid out by the caller.
package mpi
