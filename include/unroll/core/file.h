// unroll/core/file.h — writing output files so that a failure never leaves a
// half-written file behind.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace unroll {

// Writes the concatenation of parts to path atomically: to PATH.tmp.<pid> in
// the same folder, then fsync, rename over path, and fsync the folder. On
// failure removes the temp file, leaves any previous file at path untouched and
// throws Error("cannot write WHAT 'PATH': <reason>").
// A symbolic link is followed (its target is replaced, the link stays); a path
// that is not a regular file (/dev/stdout, a named pipe) is written through,
// not replaced.
void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts,
                       const std::string& what);

// Checks before long work that path can be written: not a folder, in a folder
// that exists and is writable, and not the same file (through links, or by
// the same name) as any of `taken`: the files the command reads and the other
// files it writes. Throws Error("cannot write WHAT 'PATH': ...").
void check_output_path(const std::string& path, const std::string& what,
                       const std::vector<std::string>& taken = {});

// Removes what write_file_atomic leaves in `dir` when its process is killed
// mid-write: files NAME.tmp.<pid>, for NAME one of `names`, whose process no
// longer runs (on this machine). Never throws.
void remove_stale_temp_files(const std::string& dir, const std::vector<std::string>& names);
// The same for every NAME that `ours` accepts.
void remove_stale_temp_files(const std::string& dir,
                             const std::function<bool(const std::string&)>& ours);

// What is at a path, following symbolic links: nothing, a folder, or
// something else (a file, a device). Throws Error("cannot use WHAT 'PATH':
// REASON") when the filesystem cannot tell (a loop of symbolic links, a
// folder we may not enter).
enum class PathKind { None, Folder, Other };
PathKind path_kind(const std::string& path, const std::string& what);

// One writer per run folder: an advisory lock (flock) on DIR/.lock, held for the
// object's life and released by the kernel when the process ends, however it ends
// (SIGKILL included). The file holds the holder's process id and command line. Taking a
// lock that another process holds throws Error naming that process; `what` says what the
// holder is doing ("training"). The folder must exist.
class FolderLock {
 public:
  FolderLock(const std::string& dir, const std::string& what, const std::string& command);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

// The folder part of a path ("." when there is none).
std::string parent_dir(const std::string& path);

}  // namespace unroll
