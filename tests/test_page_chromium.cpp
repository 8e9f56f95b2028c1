// The `unroll cells` page as a user sees it: opened in headless Chromium, it
// runs without console errors, builds one coloured span per character, shows
// a hostile string as text, and its screenshot holds the red and blue of a
// cell that flips sign at every double quote. Needs the chromium package
// (scripts/test.sh installs it); fails, never skips, when it is missing.
#include <gtest/gtest.h>

#include <map>
#include <regex>

#include "cli_util.h"
#include "page_util.h"
#include "planted.h"
#include "png_util.h"
#include "unroll/text/utf8.h"
#include "unroll/text/vocab.h"
#include "unroll/train/checkpoint.h"

using namespace unroll;
using namespace clitest;

namespace {

std::string find_chromium() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t at = 0; at <= dirs.size();) {
    size_t end = dirs.find(':', at);
    if (end == std::string::npos) end = dirs.size();
    const fs::path dir = dirs.substr(at, end - at);
    for (const char* name : {"chromium", "chromium-browser", "google-chrome"})
      if (!dir.empty() && ::access((dir / name).c_str(), X_OK) == 0) return (dir / name).string();
    at = end + 1;
  }
  return {};
}

class ChromiumPage : public CliTest {
 protected:
  // A checkpoint with the planted quote cell (unit 1 of layer 1), the text it
  // reads, and the page `unroll cells` writes for them.
  void make_page() {
    Rng rng(5);
    const std::u32string text =
        quoted_text(rng, 1500) + U"\n" + decode_utf8(pagetest::kHostile, "t") + U"\n";
    const Vocab vocab = Vocab::from_chars(text);
    LanguageModel<float> m(lstm_config(1, 6, vocab.size()));
    m.init(rng);
    plant_quote_cell(m, vocab.find(U'"'));
    ck_ = (dir_ / "planted.safetensors").string();
    save_checkpoint(ck_, m, vocab, nullptr, nullptr, nullptr, nullptr);
    text_ = file("quotes.txt", encode_utf8(text));
    page_ = dir_ / "page.html";
    Proc r = unroll({"cells", ck_, "--text", text_, "-o", page_.string(), "--threads", "1"});
    ASSERT_EQ(r.code, 0) << describe(r);
    ASSERT_TRUE(fs::exists(page_)) << describe(r);
  }

  Proc chromium(const std::vector<std::string>& extra) {
    const std::string exe = find_chromium();
    EXPECT_FALSE(exe.empty()) << "chromium is not installed: apt-get install chromium "
                                 "(bash scripts/test.sh installs it)";
    if (exe.empty()) return {};
    std::vector<std::string> args = {
        "--headless",    "--no-sandbox",
        "--disable-gpu", "--enable-logging=stderr",
        "--v=0",         "--user-data-dir=" + (dir_ / "profile").string()};
    for (auto& e : extra) args.push_back(e);
    args.push_back("file://" + page_.string() + hash_);
    return run_program(exe, args, dir_, io_, 180);
  }

  std::string ck_, text_, hash_;  // hash_: "#checkpoint=K" opens the timeline there (from 1)
  fs::path page_;
};

// Console messages that Chromium logs for the page (console.* calls and uncaught errors).
std::vector<std::string> console_lines(const std::string& err) {
  std::vector<std::string> out;
  for (auto& l : split_lines(err))
    if (contains(l, ":CONSOLE")) out.push_back(l);
  return out;
}

// Character spans strongly blue (positive) and strongly red (negative) in a rendered DOM.
std::pair<size_t, size_t> blue_and_red_spans(const std::string& dom) {
  std::regex span_colour("<span style=\"background-color: rgb\\((\\d+), (\\d+), (\\d+)\\);\"");
  size_t blue = 0, red = 0;
  for (auto it = std::sregex_iterator(dom.begin(), dom.end(), span_colour);
       it != std::sregex_iterator(); ++it) {
    const int R = std::stoi((*it)[1]), B = std::stoi((*it)[3]);
    blue += B > R + 60;
    red += R > B + 60;
  }
  return {blue, red};
}

}  // namespace

// The page across training: five checkpoints of one model, the quote cell
// planted from step 30 on. Opened at the first checkpoint the text is pale; at
// the last, blue inside quotes and red outside; the slider says where it is,
// the table says step 30, and nothing logs an error.
TEST_F(ChromiumPage, TimelineSliderColoursTheTextByCheckpoint) {
  Rng rng(5);
  const std::u32string text =
      quoted_text(rng, 1500) + U"\n" + decode_utf8(pagetest::kHostile, "t") + U"\n";
  const Vocab vocab = Vocab::from_chars(text);
  auto run = planted_run(lstm_config(1, 6, vocab.size()), 9, 5, 30, vocab.find(U'"'));
  std::vector<std::string> args = {"cells"};
  for (int i = 0; i < 5; ++i) {
    const std::string ck = (dir_ / ("ck" + std::to_string(i) + ".safetensors")).string();
    save_checkpoint(ck, *run[i], vocab, nullptr, {{"step", 10 * i}, {"tokens", 800 * i}}, nullptr,
                    nullptr);
    args.push_back(ck);
  }
  text_ = file("quotes.txt", encode_utf8(text));
  page_ = dir_ / "timeline.html";
  args.insert(args.end(), {"--text", text_, "-o", page_.string(), "--threads", "1"});
  Proc r = unroll(args);
  ASSERT_EQ(r.code, 0) << describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("double_quote +step 30 "))) << r.out;

  std::map<int, std::pair<size_t, size_t>> colours;
  for (int k : {0, 2, 3, 4}) {
    hash_ = "#checkpoint=" + std::to_string(k + 1);  // the page counts from 1
    Proc c = chromium({"--dump-dom"});
    ASSERT_EQ(c.code, 0) << describe(c);
    for (auto& l : console_lines(c.err)) ADD_FAILURE() << "console: " << l;
    EXPECT_TRUE(contains(c.out, "data-index=\"" + std::to_string(k) + "\""))
        << "the slider is not at checkpoint " << k;
    EXPECT_TRUE(contains(c.out, "step " + std::to_string(10 * k) + "  \u00B7  " +
                                    std::to_string(800 * k) + " tokens"))  // under 10k: whole
        << "the slider's label does not name step " << 10 * k;
    EXPECT_TRUE(contains(c.out, "data-first=\"3\"")) << "the table does not say step 30";
    EXPECT_EQ(pagetest::count(c.out, "<script"), pagetest::count(read_file(page_), "<script"));
    colours[k] = blue_and_red_spans(c.out);
  }
  EXPECT_GT(colours[4].first, 300u) << "the last checkpoint's text is not blue inside quotes";
  EXPECT_GT(colours[4].second, 300u) << "the last checkpoint's text is not red outside quotes";
  EXPECT_EQ(colours[3], colours[4]) << "planted from step 30: the same cell at 30 and 40";
  for (int k : {0, 2})
    EXPECT_LT(colours[k].first + colours[k].second, (colours[4].first + colours[4].second) / 3)
        << "before step 30 the cell does not track quotes, yet checkpoint " << k
        << " colours the text as strongly";
}

TEST_F(ChromiumPage, CellsPageRunsWithoutErrorsAndColoursEveryCharacter) {
  ASSERT_NO_FATAL_FAILURE(make_page());
  Proc r = chromium({"--dump-dom"});
  ASSERT_EQ(r.code, 0) << describe(r);
  for (auto& l : console_lines(r.err)) ADD_FAILURE() << "console: " << l;

  // One span per character coloured by the planted cell: blue inside quotes
  // (+1), red outside (−1). Count the span colours of the rendered DOM.
  const std::string& dom = r.out;
  const auto [blue, red] = blue_and_red_spans(dom);
  EXPECT_GT(blue, 300u) << "few blue (positive) character spans in the rendered page";
  EXPECT_GT(red, 300u) << "few red (negative) character spans in the rendered page";

  // The hostile line of the text is shown, not run: the page holds no more
  // script elements after rendering than its source had.
  const std::string html = read_file(page_);
  EXPECT_EQ(pagetest::count(dom, "<script"), pagetest::count(html, "<script"));
  EXPECT_EQ(dom.find("alert(1)</script>"), std::string::npos);
}

TEST_F(ChromiumPage, ScreenshotShowsTheRedAndBlueText) {
  ASSERT_NO_FATAL_FAILURE(make_page());
  const fs::path shot = dir_ / "shot.png";
  Proc r =
      chromium({"--hide-scrollbars", "--window-size=1280,2400", "--screenshot=" + shot.string()});
  ASSERT_EQ(r.code, 0) << describe(r);
  for (auto& l : console_lines(r.err)) ADD_FAILURE() << "console: " << l;
  ASSERT_TRUE(fs::exists(shot)) << describe(r);

  pngtest::Image img;
  std::string err;
  ASSERT_TRUE(pngtest::decode_png(read_file(shot), &img, &err)) << err;
  ASSERT_EQ(img.width, 1280);
  ASSERT_EQ(img.height, 2400);
  // Strongly blue and strongly red pixels. The colour legend alone has under
  // 2,000 of each; the text coloured by the cell has tens of thousands.
  size_t blue = 0, red = 0, white = 0;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const uint8_t* p = img.at(x, y);
      blue += p[2] > p[0] + 80 && p[2] > p[1] + 40;
      red += p[0] > p[2] + 80 && p[0] > p[1] + 80;
      white += p[0] > 240 && p[1] > 240 && p[2] > 240;
    }
  EXPECT_GT(blue, 20000u) << "the screenshot shows little blue text";
  EXPECT_GT(red, 20000u) << "the screenshot shows little red text";
  EXPECT_GT(white, size_t(img.width) * img.height / 4) << "the page background is not there";
}

// The report page of a short real run (issue 8): written by training itself,
// it loads without console messages, and its loss chart has one point per
// logged step and one per evaluation. Two runs overlay on shared axes.
TEST_F(ChromiumPage, ReportPageOfARealRunDrawsEveryPoint) {
  const std::string text = file("t.txt", english_text(200));
  for (const char* run : {"a", "b"}) {
    Proc r = unroll({"train",         text, "--out",          (dir_ / run).string(),
                     "--print-every", "1",  "--sample-every", "10",
                     "--hidden",      "16", "--layers",       "1",
                     "--batch",       "4",  "--seq",          "8",
                     "--steps",       "30", "--eval-every",   "10",
                     "--threads",     "1"});  // 30 steps, an evaluation every 10
    ASSERT_EQ(r.code, 0) << describe(r);
  }
  page_ = dir_ / "a" / "report.html";
  ASSERT_TRUE(fs::exists(page_)) << "training writes RUN_DIR/report.html";
  Proc r = chromium({"--dump-dom"});
  ASSERT_EQ(r.code, 0) << describe(r);
  for (auto& l : console_lines(r.err)) ADD_FAILURE() << "console: " << l;
  const std::string& dom = r.out;
  EXPECT_NE(dom.find("data-series=\"training\" data-n=\"30\""), std::string::npos);
  EXPECT_NE(dom.find("data-series=\"validation\" data-n=\"3\""), std::string::npos);
  EXPECT_EQ(pagetest::count(dom, "<pre>"), 3u) << "three samples over time";
  EXPECT_NE(dom.find("Gradient norm"), std::string::npos);

  page_ = dir_ / "both.html";
  Proc rep = unroll({"report", (dir_ / "a").string(), (dir_ / "b").string(), "-o", page_.string()});
  ASSERT_EQ(rep.code, 0) << describe(rep);
  r = chromium({"--dump-dom"});
  ASSERT_EQ(r.code, 0) << describe(r);
  for (auto& l : console_lines(r.err)) ADD_FAILURE() << "console: " << l;
  EXPECT_NE(r.out.find("data-series=\"a: training\" data-n=\"30\""), std::string::npos);
  EXPECT_NE(r.out.find("data-series=\"b: validation\" data-n=\"3\""), std::string::npos);
  // A folder that is not a run is a clean error.
  rep = unroll({"report", dir_.string()});
  expect_clean_error(rep, {"not a run folder", "metrics.jsonl"});
}
