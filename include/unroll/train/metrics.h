// unroll/train/metrics.h — RUN_DIR/metrics.jsonl, the record of a training
// run: one JSON object per line ("kind": "step" for a logged step, "eval" for
// an evaluation, "sample" for a generated sample; every record has "step").
//
// Crash-safe appends: each record goes out in a single write() on a file
// opened with O_APPEND, so a killed process leaves whole lines. A resumed run
// keeps the lines up to the step of the checkpoint it resumes from and drops
// the rest (written after that checkpoint, or a line torn by a power loss),
// so the file never repeats a step.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace unroll {

class MetricsLog {
 public:
  // resume_step < 0: a fresh run, the file starts empty. Else the lines that
  // parse and have "step" <= resume_step are kept (rewritten atomically).
  MetricsLog(const std::string& path, int64_t resume_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Appends one line; throws Error naming the file if it cannot be written.
  void append(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// A run folder's record for `unroll report`: {name (the folder's name), dir,
// config (config.json, or {} if absent), records (every whole line of
// metrics.jsonl that parses), unreadable_lines (whole lines that do not)}.
// Throws Error when the folder does not exist, is a file, or has no
// metrics.jsonl.
nlohmann::json load_run_record(const std::string& dir);

// The run's report page, RUN_DIR/report.html, is drawn above this layer (inspect/page.h,
// write_run_report_page); training calls it through this hook at every evaluation and at the
// end. The program sets it (cli/main.cpp); unset, training writes no page.
using ReportWriter = std::function<void(const std::string& dir, const std::string& command)>;
void set_run_report_writer(ReportWriter w);
// Calls the hook, if any, for one run.
void write_run_report(const std::string& dir, const std::string& command = "");

}  // namespace unroll
