#include "unroll/core/comm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#ifdef UNROLL_HAVE_MPI
#include <mpi.h>
#endif

#include "unroll/core/error.h"

namespace unroll {

void Comm::gather(const float* send, size_t n, float* recv) {
  std::memcpy(recv, send, n * sizeof(float));
}

void Comm::abort(int code) { std::_Exit(code); }

Comm& single_process() {
  static Comm one;
  return one;
}

#ifdef UNROLL_HAVE_MPI
namespace {

// MPI counts are int: large buffers go in pieces.
constexpr size_t kPiece = size_t(1) << 30;

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error(std::string("MPI ") + what + " failed: " + std::string(msg, size_t(len)));
  }
}

class MpiComm final : public Comm {
 public:
  MpiComm(int* argc, char*** argv) {
    // Only the main thread calls MPI; OpenMP's threads run the GEMMs.
    int provided = 0;
    check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "initialisation");
    // Errors come back as return codes (and become Errors), not MPI's own abort.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiComm() override { MPI_Finalize(); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(float* x, size_t n) override {
    for (size_t at = 0; at < n; at += kPiece)
      check(MPI_Allreduce(MPI_IN_PLACE, x + at, int(std::min(kPiece, n - at)), MPI_FLOAT, MPI_SUM,
                          MPI_COMM_WORLD),
            "all-reduce");
  }
  void allreduce_sum(double* x, size_t n) override {
    for (size_t at = 0; at < n; at += kPiece)
      check(MPI_Allreduce(MPI_IN_PLACE, x + at, int(std::min(kPiece, n - at)), MPI_DOUBLE, MPI_SUM,
                          MPI_COMM_WORLD),
            "all-reduce");
  }
  int allreduce_max(int v) override {
    check(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "all-reduce");
    return v;
  }
  void broadcast(float* x, size_t n) override {
    for (size_t at = 0; at < n; at += kPiece)
      check(MPI_Bcast(x + at, int(std::min(kPiece, n - at)), MPI_FLOAT, 0, MPI_COMM_WORLD),
            "broadcast");
  }
  void gather(const float* send, size_t n, float* recv) override {
    require(n < kPiece, "MPI gather of more than 2^30 floats");
    check(MPI_Gather(send, int(n), MPI_FLOAT, recv, int(n), MPI_FLOAT, 0, MPI_COMM_WORLD),
          "gather");
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm(int* argc, char*** argv) {
  if (!std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("PMIX_RANK")) return nullptr;
  return std::make_unique<MpiComm>(argc, argv);
}

bool built_with_mpi() { return true; }
#else
std::unique_ptr<Comm> make_mpi_comm(int*, char***) { return nullptr; }
bool built_with_mpi() { return false; }
#endif

}  // namespace unroll
