#include "unroll/core/file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>

#include "unroll/core/error.h"

namespace unroll {

namespace fs = std::filesystem;

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

PathKind path_kind(const std::string& path, const std::string& what) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) return PathKind::None;
  if (ec) throw Error("cannot use " + what + " '" + path + "': " + ec.message());
  return st.type() == fs::file_type::directory ? PathKind::Folder : PathKind::Other;
}

namespace {
// Writes straight into something that is not a regular file (a device such as
// /dev/stdout, a named pipe): it cannot be replaced, only written through.
void write_through(const std::string& path, const std::vector<std::string_view>& parts,
                   const std::function<void(const std::string&)>& write_fail) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) write_fail(std::strerror(errno));
  errno = 0;
  bool ok = true;
  int err = 0;
  for (std::string_view p : parts)
    if (ok && !p.empty() && std::fwrite(p.data(), 1, p.size(), f) != p.size())
      ok = false, err = errno ? errno : EIO;
  if (ok && std::fflush(f) != 0) ok = false, err = errno;
  if (std::fclose(f) != 0 && ok) ok = false, err = errno;
  if (!ok) write_fail(std::strerror(err));
}
}  // namespace

namespace {
// The same file: one inode (both exist), or one name once links and ".."
// are resolved (a file still to be written).
bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  // Devices and pipes (/dev/null, /dev/stdout) are written through, never
  // replaced: two outputs may share one.
  for (const std::string& p : {a, b}) {
    const fs::file_status st = fs::status(p, ec);
    if (!ec && st.type() != fs::file_type::regular && st.type() != fs::file_type::not_found)
      return false;
  }
  if (fs::equivalent(a, b, ec) && !ec) return true;
  const fs::path ca = fs::weakly_canonical(a, ec);
  if (ec) return false;
  const fs::path cb = fs::weakly_canonical(b, ec);
  return !ec && ca == cb;
}
}  // namespace

void check_output_path(const std::string& path, const std::string& what,
                       const std::vector<std::string>& taken) {
  require(!path.empty(), "no file name given for the " + what);
  for (const std::string& t : taken)
    require(t.empty() || !same_file(path, t),
            "cannot write " + what + " '" + path + "': that is '" + t +
                "', which this command also reads or writes; choose another name");
  std::error_code ec;
  const fs::file_status self = fs::status(path, ec);
  require(!ec || self.type() == fs::file_type::not_found,
          "cannot write " + what + " '" + path + "': " + ec.message());  // a loop of links, say
  require(self.type() != fs::file_type::directory,
          "cannot write " + what + " '" + path + "': it is a folder");
  const std::string dir = parent_dir(path);
  const fs::file_status st = fs::status(dir, ec);
  require(st.type() != fs::file_type::not_found,
          "cannot write " + what + " '" + path + "': the folder '" + dir + "' does not exist");
  require(!ec, "cannot write " + what + " '" + path + "': '" + dir + "': " + ec.message());
  require(st.type() == fs::file_type::directory,
          "cannot write " + what + " '" + path + "': '" + dir + "' is a file, not a folder");
  require(::access(dir.c_str(), W_OK) == 0 ||
              (fs::exists(path, ec) && ::access(path.c_str(), W_OK) == 0),
          "cannot write " + what + " '" + path + "': the folder '" + dir + "' is not writable");
}

void write_file_atomic(const std::string& path_in, const std::vector<std::string_view>& parts,
                       const std::string& what) {
  auto write_fail = [&](const std::string& why) {
    throw Error("cannot write " + what + " '" + path_in + "': " + why);
  };
  // A symbolic link is followed: the file it points to is replaced, the link stays.
  std::string path = path_in;
  std::error_code ec;
  for (int hops = 0; fs::is_symlink(path, ec); ++hops) {  // to the end of a chain of links
    if (hops == 40) write_fail(std::strerror(ELOOP));     // a loop: the kernel's own limit
    fs::path target = fs::read_symlink(path, ec);
    if (ec) write_fail(ec.message());
    path = (target.is_absolute() ? target : fs::path(parent_dir(path)) / target)
               .lexically_normal()
               .string();
  }
  const auto st = fs::status(path, ec);
  if (fs::exists(st) && fs::is_directory(st)) write_fail("it is a folder");
  if (fs::exists(st) && !fs::is_regular_file(st)) return write_through(path, parts, write_fail);
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

void remove_stale_temp_files(const std::string& dir, const std::vector<std::string>& names) {
  remove_stale_temp_files(dir, [&](const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  });
}

void remove_stale_temp_files(const std::string& dir,
                             const std::function<bool(const std::string&)>& ours) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const size_t at = name.rfind(".tmp.");
    if (at == std::string::npos || at + 5 == name.size()) continue;
    if (!ours(name.substr(0, at))) continue;  // not ours
    const std::string pid = name.substr(at + 5);
    if (pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
    if (::kill(pid_t(std::stol(pid)), 0) == 0 || errno != ESRCH)
      continue;  // its writer may still run
    std::error_code gone;
    fs::remove(it->path(), gone);
  }
}

FolderLock::FolderLock(const std::string& dir, const std::string& what,
                       const std::string& command) {
  const std::string path = (fs::path(dir) / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error("cannot write '" + path + "', the lock that keeps the folder to one writer, for " +
                what + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder(512, '\0');
    const ssize_t n = ::pread(fd_, holder.data(), holder.size(), 0);
    holder.resize(n > 0 ? size_t(n) : 0);
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK)
      throw Error("cannot lock '" + dir + "' for " + what + ": " + std::strerror(err));
    const size_t nl = holder.find('\n');
    const std::string pid = holder.substr(0, nl),
                      cmd = nl == std::string::npos ? "" : holder.substr(nl + 1);
    std::string said = pid.empty() ? "another process" : "process " + pid;
    if (!cmd.empty()) said += " (" + cmd.substr(0, cmd.find('\n')) + ")";
    throw Error("'" + dir + "' is in use: " + said +
                " is writing it. Wait for it to end or stop it" +
                (pid.empty() ? "" : " (kill " + pid + ")") + ", or choose another folder");
  }
  const std::string me = std::to_string(::getpid()) + "\n" + command + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != ssize_t(me.size())) {
    // The lock holds without the note; only the message to a second process is poorer.
  }
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace unroll
