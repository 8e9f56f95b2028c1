// unroll/core/file.h — writing output files so that a failure never leaves a
// half-written file behind.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace unroll {

// Writes the concatenation of parts to path atomically: to PATH.tmp.<pid> in
// the same folder, then fsync, rename over path, and fsync the folder. On
// failure removes the temp file, leaves any previous file at path untouched and
// throws Error("cannot write WHAT 'PATH': <reason>").
void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts,
                       const std::string& what);

// The folder part of a path ("." when there is none).
std::string parent_dir(const std::string& path);

}  // namespace unroll
