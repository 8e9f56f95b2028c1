// unroll/inspect/page.h — the self-contained HTML pages of `unroll cells` (a
// text coloured character by character by a hidden cell, one section per
// probe with its best cells drawn beside it, and gate-saturation scatter
// plots) and of `unroll gradients` (how the gradient reaching h_{T-k} shrinks
// or grows with k, drawn as SVG on log scales, with a table of fitted factors).
//
// The pages have no external resources (no URLs, fonts or image files): CSS and
// JavaScript are inline and the data travels inside the page as JSON, so a
// file can be mailed or opened offline. Everything taken from the data is
// treated as untrusted text: the JSON is embedded with `<`, `>` and `&`
// written as \u escapes, the script builds DOM nodes with textContent, and the
// few strings written into the HTML from C++ go through html_escape. The charts
// are SVG drawn in C++, so they read without JavaScript.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace unroll {

// Escapes & < > " ' as character references, for HTML text and attribute
// values (double- or single-quoted).
std::string html_escape(const std::string& s);

// The page for data of format "unroll-cells-1" (see docs of `unroll cells`):
//   title, command, model {cell, layers, hidden, vocab, params, checkpoint, text},
//   chars [N], loss [N] (null at 0), top [N][<=5][char, p],
//   series [{id, layer, kind, unit, label, range [lo, hi], values [N]}],
//   default_series, probes [{name, description, binary, values [N],
//   top [{id, corr, accuracy|null}]}], summary {threshold, found [...]},
//   saturation [{layer, gate, left [H], right [H]}].
// Missing optional fields are tolerated. Throws Error when data is not a JSON
// object or names another format.
std::string cells_page_html(const nlohmann::json& data);

// The page for data of format "unroll-cells-timeline-1" (`unroll cells` over
// many checkpoints; inspect/timeline.h builds it): title, command,
// model {cell, layers, hidden, vocab, params, text, characters}, chars [W],
// checkpoints [{name, step, tokens|null, mean_loss, loss [W], top [W][<=3][char, p]}],
// series [{id, layer, kind, unit, label, range, values [C][W]}], default_series,
// probes [{name, description, present, binary, best_id [C], best_corr [C],
// final_id, final_corr [C], first|null, same_since}], summary {threshold, cka_rows},
// drift [{layer, mean_abs [C], cka_first [C], cka_last [C]}].
// Drawn: a table of the step at which each probe's best cell first reaches the
// threshold, |corr| against step (and tokens), per probe the best cell against
// the final one, the states' drift and CKA, the text's loss, and the text
// coloured by one cell with a slider over the checkpoints (arrow keys move it;
// #checkpoint=K, from 1, or #step=S in the address opens there).
std::string cells_timeline_page_html(const nlohmann::json& data);

// The page for data of format "unroll-gradients-1" (see docs of `unroll gradients`):
//   title, command, text, K, samples,
//   models [{label, cell, layers, hidden, source,
//            per_layer [{layer, loss_grad [K+1], loss_grad_rel [K+1], jacobian [K+1] (or []),
//                        factor, jacobian_factor (numbers or null),
//                        w_hh [{block, spectral_radius, sigma_max}]}]}],
//   scalar (optional) {w, steps, linear [steps], tanh [{t, h, local, product}]}.
// Charts of loss_grad_rel, jacobian and loss_grad against k (log y axes; values
// ≤ 0 or below 1e-30 are drawn at the bottom and counted in a note), a table
// of the fitted per-step factors (vanishing below 0.98, exploding above 1.02)
// and the scalar example. Missing optional fields are tolerated; throws Error
// when data is not a JSON object or names another format.
std::string gradients_page_html(const nlohmann::json& data);

// The page for data of format "unroll-classify-1" (`unroll classify eval
// --html`): title, command, checkpoint, data, classes [C], examples, loss,
// accuracy, macro_f1, precision/recall/f1/support [C], confusion [C][C]
// (rows: true class). The confusion matrix is a table shaded by row share.
std::string classify_page_html(const nlohmann::json& data);

// The page for data of format "unroll-report-1" (`unroll report`): title,
// command, runs [{name, dir, config (config.json), records (metrics.jsonl
// lines)}]. Charts (SVG, several runs overlaid in Okabe–Ito colours): loss
// against steps and wall time (a checkbox switches to log axes), accuracy
// (classifiers), gradient norm with clipping events, learning rate, tokens/s;
// samples over time; a table of the runs and their settings. Every polyline
// has data-n, its number of points.
std::string report_page_html(const nlohmann::json& data);

// RUN_DIR/report.html for one run (load_run_record, train/metrics.h), written atomically:
// what training writes at every evaluation, through set_run_report_writer.
void write_run_report_page(const std::string& dir, const std::string& command);

}  // namespace unroll
