#include "unroll/train/metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "unroll/core/error.h"
#include "unroll/core/file.h"

namespace unroll {

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step) : path_(path) {
  std::string kept;
  if (resume_step >= 0) {
    std::ifstream in(path, std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // no newline: a torn last line
      try {
        const auto j = nlohmann::json::parse(line);
        if (j.is_object() && j.contains("step") && j["step"].is_number() && j["step"].get<int64_t>() <= resume_step)
          kept += line + "\n";
      } catch (const nlohmann::json::exception&) {
        // a torn or foreign line: dropped
      }
    }
  }
  write_file_atomic(path, {kept}, "metrics log");
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  require(fd_ >= 0, "cannot open metrics log '" + path + "': " + std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::append(const nlohmann::json& record) {
  const std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  const ssize_t n = ::write(fd_, line.data(), line.size());
  require(n == ssize_t(line.size()),
          "cannot write metrics log '" + path_ + "': " + (n < 0 ? std::strerror(errno) : "short write"));
}

}  // namespace unroll
