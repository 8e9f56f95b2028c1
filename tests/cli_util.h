// Helpers for the end-to-end tests of the `unroll` program: run it as a child
// process with captured output, make texts, inspect run folders.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace clitest {

// ---------------------------------------------------------------------------
// Running the program

struct Proc {
  std::vector<std::string> args;
  int code = -1;          // exit status, or 128 + signal if killed by a signal
  bool signaled = false;  // the child died from a signal (crash, abort, timeout)
  bool timed_out = false;
  std::string out, err;
};

inline std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

inline void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << bytes;
  ASSERT_TRUE(f.good()) << "cannot write " << p;
}

// For failure messages: the command and what it printed.
inline std::string describe(const Proc& r) {
  std::string s = "command: unroll";
  for (auto& a : r.args) s += " '" + a + "'";
  s += "\nexit code: " + std::to_string(r.code);
  if (r.signaled) s += r.timed_out ? " (killed after timeout)" : " (killed by a signal: crash?)";
  auto clip = [](const std::string& t) {
    return t.size() > 3000 ? t.substr(0, 1500) + "\n[...]\n" + t.substr(t.size() - 1500) : t;
  };
  s += "\n--- stdout ---\n" + clip(r.out) + "\n--- stderr ---\n" + clip(r.err) + "\n--------------";
  return s;
}

// A child process started by spawn(): its output goes to files in io_dir.
struct Child {
  pid_t pid = -1;
  Proc proc;  // args; the rest is filled in by finish()
  fs::path out_path, err_path;
};

// Starts program (a path) with args in folder cwd, with `env` ("NAME=value")
// added to its environment; stdin is /dev/null, stdout and stderr go to files
// in io_dir.
inline Child spawn(const std::string& program, const std::vector<std::string>& args,
                   const fs::path& cwd, const fs::path& io_dir,
                   const std::vector<std::string>& env = {}) {
  static int counter = 0;
  const int n = ++counter;
  Child c;
  c.out_path = io_dir / ("cmd" + std::to_string(n) + ".out");
  c.err_path = io_dir / ("cmd" + std::to_string(n) + ".err");
  c.proc.args = args;
  std::vector<std::string> argv_s;
  argv_s.push_back(program);
  for (auto& a : args) argv_s.push_back(a);
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = env;  // copies the child may keep (putenv)

  c.pid = ::fork();
  if (c.pid < 0) {
    c.proc.err = std::string("fork failed: ") + std::strerror(errno);
    return c;
  }
  if (c.pid == 0) {
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    int in = ::open("/dev/null", O_RDONLY);
    int o = ::open(c.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(c.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || o < 0 || e < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    for (auto& v : env_s) ::putenv(v.data());
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return c;
}

// Waits for the child (killing it after timeout_s) and reads its output.
inline Proc finish(Child& c, int timeout_s = 120) {
  Proc r = c.proc;
  if (c.pid < 0) return r;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    pid_t w = ::waitpid(c.pid, &status, WNOHANG);
    if (w == c.pid) break;
    if (w < 0 && errno != EINTR) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(c.pid, SIGKILL);
      ::waitpid(c.pid, &status, 0);
      r.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  c.pid = -1;
  if (WIFEXITED(status)) {
    r.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signaled = true;
    r.code = 128 + WTERMSIG(status);
  }
  r.out = read_file(c.out_path);
  r.err = read_file(c.err_path);
  return r;
}

// Runs program (a path) with args in folder cwd and waits for it (see spawn).
inline Proc run_program(const std::string& program, const std::vector<std::string>& args,
                        const fs::path& cwd, const fs::path& io_dir, int timeout_s = 120,
                        const std::vector<std::string>& env = {}) {
  Child c = spawn(program, args, cwd, io_dir, env);
  return finish(c, timeout_s);
}

inline Proc run_unroll(const std::vector<std::string>& args, const fs::path& cwd,
                       const fs::path& io_dir, int timeout_s = 120) {
  return run_program(UNROLL_BIN, args, cwd, io_dir, timeout_s);
}

// ---------------------------------------------------------------------------
// Text helpers

// Strict UTF-8 check (no overlongs, no surrogates, nothing above U+10FFFF);
// on success the code points go to *cps.
inline bool decode_utf8(const std::string& s, std::vector<char32_t>* cps = nullptr,
                        size_t* bad_offset = nullptr) {
  size_t i = 0;
  auto fail = [&]() {
    if (bad_offset) *bad_offset = i;
    return false;
  };
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    char32_t cp;
    int len;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      cp = c & 0x1F;
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      cp = c & 0x0F;
      len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      cp = c & 0x07;
      len = 4;
    } else {
      return fail();
    }
    if (i + len > s.size()) return fail();
    for (int k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return fail();
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return fail();
    if (cps) cps->push_back(cp);
    i += len;
  }
  return true;
}

inline size_t count_code_points(const std::string& s) {
  std::vector<char32_t> cps;
  decode_utf8(s, &cps);
  return cps.size();
}

inline bool is_hangul_syllable(char32_t c) { return c >= 0xAC00 && c <= 0xD7A3; }

inline std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::string cur;
  for (char c : s) {
    if (c == '\n') {
      lines.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  return lines;
}

inline std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

inline bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// English-like sentences from a small word list, deterministic for a seed.
inline std::string english_text(int lines, unsigned seed = 1) {
  static const std::vector<std::string> words = {
      "the",   "quick", "brown", "fox", "jumps", "over",  "lazy",  "dog",   "and",
      "a",     "cat",   "sat",   "on",  "mat",   "while", "birds", "sing",  "in",
      "trees", "river", "runs",  "to",  "sea",   "under", "old",   "stone", "bridge"};
  std::mt19937 rng(seed);
  std::string text;
  for (int l = 0; l < lines; ++l) {
    const int n = 5 + int(rng() % 6);
    std::string line;
    for (int w = 0; w < n; ++w) {
      std::string word = words[rng() % words.size()];
      if (w == 0) word[0] = char(std::toupper(static_cast<unsigned char>(word[0])));
      line += (w ? " " : "") + word;
    }
    text += line + ".\n";
  }
  return text;
}

// Sentences of Hangul words, deterministic for a seed.
inline std::string korean_text(int lines, unsigned seed = 2) {
  static const std::vector<std::string> words = {
      "안녕하세요", "감사합니다", "사랑",   "학교", "친구", "가족", "음식", "오늘",
      "내일",       "날씨",       "좋아요", "공부", "책",   "바다", "하늘", "우리"};
  std::mt19937 rng(seed);
  std::string text;
  for (int l = 0; l < lines; ++l) {
    const int n = 3 + int(rng() % 4);
    std::string line;
    for (int w = 0; w < n; ++w) line += (w ? " " : "") + words[rng() % words.size()];
    text += line + ".\n";
  }
  return text;
}

// The safetensors data section: everything after the 8-byte little-endian
// header length N and the N-byte JSON header.
inline std::string data_section(const fs::path& p) {
  const std::string b = read_file(p);
  if (b.size() < 8) return {};
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(b[i])) << (8 * i);
  if (8 + n > b.size()) return {};
  return b.substr(8 + n);
}

inline bool empty_or_absent(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return true;
  return fs::is_directory(dir, ec) && fs::is_empty(dir, ec);
}

inline std::string listing(const fs::path& dir) {
  std::string s;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return "(no folder)";
  for (auto& e : fs::directory_iterator(dir, ec)) s += e.path().filename().string() + " ";
  return s.empty() ? "(empty)" : s;
}

// Tiny model and schedule: fast, and enough to move off the uniform distribution.
const std::vector<std::string> kTiny = {
    "--hidden", "16", "--layers",     "1",  "--batch",        "4", "--seq",     "8",
    "--steps",  "30", "--eval-every", "10", "--sample-every", "0", "--threads", "1"};

inline std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Parameters of a one-layer one-hot LSTM with softmax head over V characters,
// counted as PyTorch does (two bias vectors per layer).
inline size_t lstm1_param_count(size_t V, size_t H) {
  return 4 * H * V + 4 * H * H + 2 * 4 * H + H * V + V;
}

// ---------------------------------------------------------------------------
// Fixture: a fresh temporary folder per test.

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "unroll_cli_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    io_ = dir_ / "_io";
    fs::create_directories(io_);
    ASSERT_TRUE(fs::exists(UNROLL_BIN)) << "the unroll program is not built: " << UNROLL_BIN;
  }
  void TearDown() override {
    if (HasFailure() && std::getenv("UNROLL_KEEP_TEST_DIRS")) {
      std::cerr << "keeping " << dir_ << "\n";
      return;
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  Proc unroll(const std::vector<std::string>& args) { return run_unroll(args, dir_, io_); }

  std::string file(const std::string& name, const std::string& bytes) {
    write_file(dir_ / name, bytes);
    return (dir_ / name).string();
  }

  // Trains the tiny model on text into folder `out`; asserts success.
  void train_ok(const std::string& text_file, const fs::path& out,
                const std::vector<std::string>& extra = {}) {
    Proc r = unroll(cat(cat({"train", text_file, "--out", out.string()}, kTiny), extra));
    ASSERT_EQ(r.code, 0) << describe(r);
    ASSERT_TRUE(fs::exists(out / "latest.safetensors")) << listing(out) << "\n" << describe(r);
    last_train_ = r;
  }

  // A bad-input failure: non-zero exit, exactly one stderr line starting with
  // "unroll: error:" that contains every needle (case-insensitive), and
  // nothing written to out_dir (if given).
  void expect_clean_error(const Proc& r, const std::vector<std::string>& needles,
                          const fs::path& out_dir = {}) {
    EXPECT_FALSE(r.signaled) << describe(r);
    EXPECT_NE(r.code, 0) << describe(r);
    const auto lines = split_lines(r.err);
    EXPECT_EQ(lines.size(), 1u) << "expected exactly one line on stderr\n" << describe(r);
    EXPECT_TRUE(!r.err.empty() && r.err.back() == '\n') << "stderr line not ended\n" << describe(r);
    EXPECT_EQ(r.err.rfind("unroll: error:", 0), 0u) << describe(r);
    for (auto& n : needles)
      EXPECT_TRUE(contains(lower(r.err), lower(n))) << "the message should mention '" << n << "'\n"
                                                    << describe(r);
    if (!out_dir.empty()) {
      EXPECT_TRUE(empty_or_absent(out_dir))
          << "files written to the --out folder on bad input: " << listing(out_dir) << "\n"
          << describe(r);
    }
  }

  fs::path dir_, io_;
  Proc last_train_;
};

// Parses "key   value" lines of `unroll eval`.
inline bool eval_value(const std::string& out, const std::string& key, double* v) {
  std::smatch m;
  std::regex re("(^|\\n)" + key + "\\s+([-+0-9.eE]+|nan|inf)");
  if (!std::regex_search(out, m, re)) return false;
  *v = std::strtod(m[2].str().c_str(), nullptr);
  return true;
}

}  // namespace clitest
