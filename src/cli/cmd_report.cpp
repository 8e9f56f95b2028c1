// unroll report RUN_DIR... — a training run's curves, samples and settings
// as one self-contained HTML page; several runs overlaid.
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/inspect/page.h"
#include "unroll/train/metrics.h"

namespace unroll::cli {

void add_report(CLI::App& app) {
  struct Args {
    std::vector<std::string> runs;
    std::string out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* s = app.add_subcommand(
      "report",
      "Draw a training run (or several, overlaid) as one HTML page: loss, accuracy, gradient norm, "
      "learning rate, speed, samples over time, settings");
  s->add_option("runs", a->runs,
                "Run folders (each with metrics.jsonl, as unroll train --out writes)")
      ->required();
  s->add_option(
      "-o,--out", a->out,
      "The page to write (default: RUN_DIR/report.html for one run, report.html for several)");
  s->callback([a]() {
    std::string out = a->out;
    if (out.empty())
      out = a->runs.size() == 1 ? (std::filesystem::path(a->runs[0]) / "report.html").string()
                                : "report.html";
    require(!out.empty(), "-o needs a file name");
    nlohmann::json runs =
        nlohmann::json::array();  // the runs first: their errors say what is wrong
    for (const std::string& r : a->runs) {
      runs.push_back(load_run_record(r));
      const int64_t bad = runs.back().value("unreadable_lines", int64_t(0));
      if (bad > 0)
        std::cerr << "unroll: note: " << bad << " line(s) of '" << r
                  << "/metrics.jsonl' are not JSON records and are left out of the page\n";
    }
    std::vector<std::string> taken;  // every run's record and checkpoints
    for (const std::string& r : a->runs)
      for (const char* f :
           {"metrics.jsonl", "config.json", "latest.safetensors", "best.safetensors"})
        taken.push_back((std::filesystem::path(r) / f).string());
    check_output_path(out, "report page", taken);
    std::string title = "Training run " + runs[0]["name"].get<std::string>();
    if (runs.size() > 1) {
      title = "Training runs";
      for (size_t i = 0; i < runs.size(); ++i)
        title += std::string(i ? ", " : " ") + runs[i]["name"].get<std::string>();
    }
    nlohmann::json d = {{"format", "unroll-report-1"},
                        {"title", title},
                        {"command", command_line()},
                        {"runs", runs}};
    const std::string html = report_page_html(d);
    write_file_atomic(out, {html}, "report page");
    std::cout << "page: " << out << "\n";
  });
}

}  // namespace unroll::cli
