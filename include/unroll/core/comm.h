// unroll/core/comm.h — the processes of a data-parallel run. One process is
// the default (every operation a no-op); under `mpirun -np N` the program
// creates an MPI communicator (make_mpi_comm) and the trainer sums gradients
// over it. Everything here is collective: every rank calls it, in the same
// order, with the same sizes.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

namespace unroll {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  // In place: each element becomes its sum over the ranks.
  virtual void allreduce_sum(float* x, size_t n) { (void)x, (void)n; }
  virtual void allreduce_sum(double* x, size_t n) { (void)x, (void)n; }
  // The largest v of all ranks (flags: stop, interrupted).
  virtual int allreduce_max(int v) { return v; }
  // Rank 0's n floats into every rank's x.
  virtual void broadcast(float* x, size_t n) { (void)x, (void)n; }
  // Every rank's n floats, rank after rank, into rank 0's recv (size() * n).
  virtual void gather(const float* send, size_t n, float* recv);
  // Ends every rank of the job at once (an error on one rank must not leave
  // the others waiting in a collective): prints nothing itself.
  [[noreturn]] virtual void abort(int code);
  bool root() const { return rank() == 0; }
};

// The single process of an ordinary run.
Comm& single_process();

// The MPI communicator when this process was started by mpirun (Open MPI's
// OMPI_COMM_WORLD_SIZE or PMIx's PMIX_RANK is set) and unroll was built with
// MPI; otherwise nullptr, and MPI is never initialised. Initialises MPI on
// the first call; MPI is finalised when the returned object goes away.
std::unique_ptr<Comm> make_mpi_comm(int* argc, char*** argv);

// True when unroll was built with MPI (configure found it).
bool built_with_mpi();

}  // namespace unroll
