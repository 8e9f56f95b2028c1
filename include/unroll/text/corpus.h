// unroll/text/corpus.h — turning a token-id sequence into training data: the
// contiguous train/validation/test split, and the batch stream that cuts a
// split into B parallel streams read T steps at a time (truncated BPTT).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace unroll {

struct Split {
  std::vector<int32_t> train, val, test;
};

// The first floor(n * train_frac) ids are train, the next floor(n * val_frac)
// are validation, the rest test. Throws Error unless each fraction is in [0, 1],
// train_frac > 0 and train_frac + val_frac <= 1.
Split split_contiguous(const std::vector<int32_t>& ids, double train_frac, double val_frac);

// Truncated-BPTT batches. The n ids are cut into B equally long contiguous
// streams: stream b holds inputs ids[b*len .. (b+1)*len) with len = (n-1)/B
// (the tail is dropped) and targets shifted by one. Chunk k covers columns
// [k*T, (k+1)*T) of every stream, so the hidden state of stream b carries from
// chunk k to chunk k+1.
class BatchStream {
 public:
  // `what` names the data in errors ("training text"). Throws Error if B or T
  // is not positive, or if the data is shorter than one chunk needs (B*T + 1
  // ids); the message suggests a --batch and a --seq that fit.
  BatchStream(const std::vector<int32_t>& ids, int B, int T, const std::string& what);

  int batch() const { return B_; }
  int seq() const { return T_; }
  int64_t stream_length() const { return len_; }  // input columns per stream
  int chunks() const { return chunks_; }          // floor(len / T) per epoch

  // Fills inputs[T*B] and targets[T*B] time-major: index t*B + b holds stream b,
  // column k*T + t; the target is the id that follows the input. Throws Error if
  // k is outside [0, chunks()).
  void get(int k, int32_t* inputs, int32_t* targets) const;

 private:
  std::vector<int32_t> ids_;
  int B_, T_;
  int64_t len_;
  int chunks_;
};

}  // namespace unroll
