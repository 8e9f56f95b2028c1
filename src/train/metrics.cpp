#include "unroll/train/metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/core/json.h"

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
        if (j.is_object() && json_field<int64_t>(j, "step") <= resume_step) kept += line + "\n";
      } catch (const std::exception&) {
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
  const std::string line =
      record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  const ssize_t n = ::write(fd_, line.data(), line.size());
  require(n == ssize_t(line.size()), "cannot write metrics log '" + path_ +
                                         "': " + (n < 0 ? std::strerror(errno) : "short write"));
}

nlohmann::json load_run_record(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path metrics = fs::path(dir) / "metrics.jsonl";
  const PathKind kind = path_kind(dir, "run folder");
  require(kind != PathKind::None, "the run folder '" + dir + "' does not exist");
  require(kind == PathKind::Folder, "'" + dir +
                                        "' is a file, not a run folder: give the folder that "
                                        "unroll train --out (or classify, tag, conditional) wrote");
  require(
      path_kind(metrics.string(), "run record") == PathKind::Other,
      "'" + dir + "' is not a run folder: it has no metrics.jsonl (unroll train --out writes one)");
  nlohmann::json records = nlohmann::json::array();
  std::ifstream in(metrics, std::ios::binary);
  std::string line;
  int64_t unreadable =
      0;  // lines that are not JSON objects (a torn last line is expected, not counted)
  while (std::getline(in, line)) {
    if (in.eof()) break;  // a torn last line
    try {
      auto j = nlohmann::json::parse(line);
      if (j.is_object())
        records.push_back(std::move(j));
      else
        ++unreadable;
    } catch (const nlohmann::json::exception&) {
      ++unreadable;
    }
  }
  nlohmann::json config = nlohmann::json::object();
  std::ifstream cf(fs::path(dir) / "config.json");
  if (cf) {
    try {
      config = nlohmann::json::parse(cf);
    } catch (const nlohmann::json::exception&) {
    }
  }
  std::string name = fs::path(dir).lexically_normal().filename().string();
  if (name.empty() || name == ".")
    name = fs::absolute(dir).lexically_normal().parent_path().filename().string();
  return {{"name", name},
          {"dir", dir},
          {"config", config},
          {"records", records},
          {"unreadable_lines", unreadable}};
}

namespace {
ReportWriter& report_writer() {
  static ReportWriter w;
  return w;
}
}  // namespace

void set_run_report_writer(ReportWriter w) { report_writer() = std::move(w); }

void write_run_report(const std::string& dir, const std::string& command) {
  if (report_writer()) report_writer()(dir, command);
}

}  // namespace unroll
