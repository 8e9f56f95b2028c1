// The page of `unroll report` (inspect/page.h): a training run's curves as
// inline SVG drawn here, its samples over time, its settings; several runs
// overlaid on shared axes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <tuple>

#include "page_parts.h"
#include "svg.h"
#include "unroll/core/error.h"
#include "unroll/core/file.h"
#include "unroll/inspect/page.h"
#include "unroll/train/metrics.h"
#include "unroll_assets.h"  // src/inspect/assets/, embedded at build time

namespace unroll {

namespace {

using json = nlohmann::json;

const std::string kStyle =
    std::string(assets::chart_css) + assets::report_css;  // src/inspect/assets/

using svg::kColours;
using svg::Line;

double num(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_number() ? it->get<double>() : NAN;
}

std::string figure(const std::string& caption, const std::vector<Line>& lines,
                   const std::string& xlabel, const std::string& ylabel, bool log_option) {
  std::string h =
      "<figure><figcaption>" + html_escape(caption) + "</figcaption>" + svg::legend(lines);
  if (log_option)
    h += "<div class=\"lin\">" + svg::chart(lines, {xlabel, ylabel}) + "</div><div class=\"log\">" +
         svg::chart(lines, {xlabel, ylabel, true}) + "</div>";
  else
    h += svg::chart(lines, {xlabel, ylabel});
  return h + "</figure>\n";
}

}  // namespace

void write_run_report_page(const std::string& dir, const std::string& command) {
  const json d = {{"format", "unroll-report-1"},
                  {"title", "Training run " +
                                std::filesystem::path(dir).lexically_normal().filename().string()},
                  {"command", command},
                  {"runs", json::array({load_run_record(dir)})}};
  write_file_atomic((std::filesystem::path(dir) / "report.html").string(), {report_page_html(d)},
                    "report page");
}

std::string report_page_html(const json& d) {
  page::require_format(d, "unroll-report-1", "report page");
  const json& runs = page::array_or_empty(page::field(d, "runs"));
  require(!runs.empty(), "report page: no runs");
  const bool many = runs.size() > 1;
  std::vector<Line> loss_step, loss_time, lr, grad, speed, acc, acc_time;
  for (size_t r = 0; r < runs.size(); ++r) {
    const json& run = runs[r];
    const std::string name = page::text_of(page::field(run, "name"));
    const std::string c = kColours[r % 7];
    auto label = [&](const char* what) { return many ? name + ": " + what : std::string(what); };
    auto line = [&](const std::string& n,
                    bool evaluation) {  // evaluations: dashed, a dot per point
      Line x;
      x.name = n, x.colour = c, x.dashed = x.dots = evaluation;
      return x;
    };
    Line va = line(label("validation"), true), vat = line(label("validation"), true),
         s = line(many ? name : "tokens/s", false), vacc = line(label("validation"), true),
         vacct = vacc;
    // The training curves from the step records (every --print-every) and from
    // the eval records (the mean since the last evaluation): each chart draws
    // whichever has more points, so that a short run, or a supervised run that
    // evaluates once an epoch, still shows its training side.
    struct Training {
      Line loss, loss_t, lr, grad, acc, acc_t;
    };
    auto training = [&]() {
      return Training{line(label("training"), false),
                      line(label("training"), false),
                      line(many ? name : "learning rate", false),
                      line(many ? name : "gradient norm", false),
                      line(label("training"), false),
                      line(label("training"), false)};
    };
    Training by_step = training(), by_eval = training();
    for (const json& rec : page::array_or_empty(page::field(run, "records"))) {
      const std::string kind = page::text_of(page::field(rec, "kind"));
      const double step = num(rec, "step"), t = num(rec, "elapsed");
      if (kind != "step" && kind != "eval") continue;
      const bool is_step = kind == "step";
      Training& w = is_step ? by_step : by_eval;
      if (rec.contains("train_loss")) {
        w.loss.xy.push_back({step, num(rec, "train_loss")});
        w.loss_t.xy.push_back({t, num(rec, "train_loss")});
        w.lr.xy.push_back({step, num(rec, "lr")});
        w.grad.xy.push_back({step, num(rec, is_step ? "grad_norm" : "grad_norm_mean")});
        w.grad.marked.push_back(is_step ? rec.value("clipped", false)
                                        : num(rec, "clip_fraction") > 0);
      }
      if (rec.contains("train_accuracy")) {
        w.acc.xy.push_back({step, 100 * num(rec, "train_accuracy")});
        w.acc_t.xy.push_back({t, 100 * num(rec, "train_accuracy")});
      }
      if (is_step && rec.contains("tokens_per_s")) s.xy.push_back({step, num(rec, "tokens_per_s")});
      if (!is_step && rec.contains("val_loss")) {
        va.xy.push_back({step, num(rec, "val_loss")});
        vat.xy.push_back({t, num(rec, "val_loss")});
        if (rec.contains("val_accuracy")) {
          vacc.xy.push_back({step, 100 * num(rec, "val_accuracy")});
          vacct.xy.push_back({t, 100 * num(rec, "val_accuracy")});
        }
      }
    }
    auto more = [](const Line& a, const Line& b) { return a.xy.size() >= b.xy.size() ? a : b; };
    const Line tr = more(by_step.loss, by_eval.loss), trt = more(by_step.loss_t, by_eval.loss_t),
               l = more(by_step.lr, by_eval.lr), g = more(by_step.grad, by_eval.grad),
               ta = more(by_step.acc, by_eval.acc), tat = more(by_step.acc_t, by_eval.acc_t);
    loss_step.push_back(tr), loss_step.push_back(va), loss_time.push_back(trt),
        loss_time.push_back(vat);
    lr.push_back(l), grad.push_back(g);
    if (!s.xy.empty()) speed.push_back(s);
    if (!ta.xy.empty()) acc.push_back(ta), acc_time.push_back(tat);
    if (!vacc.xy.empty()) acc.push_back(vacc), acc_time.push_back(vacct);
  }

  // What one nat of loss is per: a classifier's loss is per example, every
  // other task's per token (a tagger's: per tagged token).
  std::string unit;
  for (const json& run : runs) {
    const json* config = page::field(run, "config");
    const json* train = config ? page::field(*config, "train") : nullptr;
    const std::string task =
        train && train->is_object() ? page::text_of(page::field(*train, "task")) : "";
    const std::string u = task == "classify" ? "example" : "token";
    unit = unit.empty() || unit == u ? u : "token or example";
  }
  const std::string title = page::text_of(page::field(d, "title"));
  std::string h = page::document_start(title, kStyle.c_str());
  std::vector<page::Item> paths;
  for (const json& run : runs)
    paths.push_back(
        {page::text_of(page::field(run, "name")), page::text_of(page::field(run, "dir"))});
  h += page::header_html(title, {{"runs", std::to_string(runs.size())}}, paths,
                         page::text_of(page::field(d, "command")));

  h += "<section id=\"curves\">\n<h2>Curves</h2>\n<input type=\"checkbox\" id=\"logscale\"><label "
       "class=\"scale\" "
       "for=\"logscale\"> logarithmic loss axes</label>\n<div class=\"charts\">\n";
  h += figure("Loss against steps (nats per " + unit + "; dashed with dots: validation)", loss_step,
              "step", "loss", true);
  h += figure("Loss against wall time", loss_time, "seconds of training", "loss", true);
  if (!acc.empty()) {
    h += figure("Accuracy (%)", acc, "step", "accuracy %", false);
    h += figure("Accuracy against wall time", acc_time, "seconds of training", "accuracy %", false);
  }
  h += figure("Gradient norm before clipping (rings: clipping fired)", grad, "step", "global norm",
              false);
  h += figure("Learning rate", lr, "step", "learning rate", false);
  if (!speed.empty()) h += figure("Speed", speed, "step", "tokens per second", false);
  h += "</div>\n</section>\n";

  for (const json& run : runs) {
    const std::string name = page::text_of(page::field(run, "name"));
    std::string samples;
    int n = 0;
    for (const json& rec : page::array_or_empty(page::field(run, "records")))
      if (page::text_of(page::field(rec, "kind")) == "sample") {
        samples += "<div class=\"s\"><b>step " + page::text_of(page::field(rec, "step")) +
                   "</b><pre>" + html_escape(page::text_of(page::field(rec, "text"))) +
                   "</pre></div>\n";
        ++n;
      }
    if (n)
      h += "<section class=\"samples\">\n<h2>Samples over time" +
           (many ? ": " + html_escape(name) : std::string()) +
           "</h2>\n<p class=\"note\">The text generated at each sampling step, in order: from "
           "noise to words to "
           "style.</p>\n" +
           samples + "</section>\n";
  }

  h += "<section id=\"settings\">\n<h2>Runs</h2>\n<table "
       "class=\"tbl\"><tr><th>run</th><th>model</th><th>data</th>"
       "<th class=\"num\">best validation loss</th><th class=\"num\">at step</th><th "
       "class=\"num\">last step</th></tr>\n";
  for (const json& run : runs) {
    const json& cfg = page::object_or_empty(page::field(run, "config"));
    const json& m = page::object_or_empty(page::field(cfg, "model"));
    const json& data = page::object_or_empty(page::field(cfg, "data"));
    double best = INFINITY, best_step = NAN, last = NAN;
    for (const json& rec : page::array_or_empty(page::field(run, "records"))) {
      last = num(rec, "step");
      const double v = num(rec, "val_loss");
      if (v < best) best = v, best_step = num(rec, "step");
    }
    std::string model = page::text_of(page::field(m, "cell")) + " " +
                        page::text_of(page::field(m, "layers")) + "×" +
                        page::text_of(page::field(m, "hidden"));
    std::string files;
    for (const json& f : page::array_or_empty(page::field(data, "files")))
      files += (files.empty() ? "" : ", ") + page::text_of(&f);
    if (files.empty()) files = page::text_of(page::field(data, "train_path"));
    const std::string tokens = page::text_of(page::field(data, "tokens"));
    if (!tokens.empty())
      files += " (" + tokens + " tokens, vocabulary " +
               page::text_of(page::field(cfg, "vocab_size")) + ")";
    h += "<tr><td>" + html_escape(page::text_of(page::field(run, "name"))) + "</td><td>" +
         html_escape(model) + "</td><td>" + html_escape(files) + "</td><td class=\"num\">" +
         page::number_html(best, 4) + "</td><td class=\"num\">" + page::number_html(best_step, 6) +
         "</td><td class=\"num\">" + page::number_html(last, 6) + "</td></tr>\n";
  }
  h += "</table>\n";
  for (const json& run : runs)
    h += "<details><summary>settings of " + html_escape(page::text_of(page::field(run, "name"))) +
         " (config.json)</summary><pre class=\"mono\">" +
         html_escape(page::object_or_empty(page::field(run, "config")).dump(2)) +
         "</pre></details>\n";
  h += "</section>\n";
  h += page::document_end("unroll report", "", "");
  return h;
}

}  // namespace unroll
