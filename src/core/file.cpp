#include "unroll/core/file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "unroll/core/error.h"

namespace unroll {

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts,
                       const std::string& what) {
  auto write_fail = [&](const std::string& why) {
    throw Error("cannot write " + what + " '" + path + "': " + why);
  };
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) write_fail(std::strerror(errno));
  auto fail = [&](int err) {
    if (f) std::fclose(f);
    std::remove(tmp.c_str());
    write_fail(std::strerror(err));
  };
  errno = 0;
  for (std::string_view p : parts)
    if (!p.empty() && std::fwrite(p.data(), 1, p.size(), f) != p.size()) fail(errno ? errno : EIO);
  if (std::fflush(f) != 0) fail(errno);
  if (::fsync(fileno(f)) != 0) fail(errno);
  int rc = std::fclose(f);
  f = nullptr;
  if (rc != 0) fail(errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(errno);

  // Make the rename itself durable. File systems that cannot sync a folder say EINVAL.
  int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int src = ::fsync(dfd), err = errno;
    ::close(dfd);
    if (src != 0 && err != EINVAL)
      write_fail(std::string(std::strerror(err)) +
                 " (while syncing its folder; the new file is in place but may not survive a "
                 "crash)");
  }
}

}  // namespace unroll
