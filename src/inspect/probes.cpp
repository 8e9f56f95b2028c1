// Built-in and user probes over a text (see inspect/probes.h).
#include "unroll/inspect/probes.h"

#include <re2/re2.h>

#include <chrono>

#include "unroll/core/error.h"
#include "unroll/text/utf8.h"

namespace unroll {

namespace {

bool is_letter(char32_t c) {
  return (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z') || c >= 0xC0;
}
bool is_ident(char32_t c) { return is_letter(c) || (c >= U'0' && c <= U'9') || c == U'_'; }
bool is_space(char32_t c) {
  return c == U' ' || c == U'\t' || c == U'\n' || c == U'\r' || c == U'\f' || c == U'\v';
}

// The body of an `if`: braced (ends when the brace depth falls below
// `brace`), or a single statement (ends at a ';' at depths brace/paren, or
// when a '}' takes the brace depth back to `brace`).
struct IfBody {
  bool braced;
  int brace, paren;
};

// A small C lexer; feed() consumes one character and updates every probe's state.
class Lexer {
 public:
  enum State { Code, Str, Chr, LineComment, BlockComment };
  State state = Code;
  int paren = 0, bracket = 0, brace = 0, column = 0, indent = 0;
  bool leading = true;  // still in the line's leading whitespace
  bool word_start = false;
  std::vector<IfBody> ifs;

  void feed(char32_t c) {
    lex(c);
    layout(c);
    prev2_ = prev_, prev_ = c;
  }

 private:
  enum IfStage { None, AwaitCond, InCond, AwaitBody };
  bool escape_ = false, slash_ = false, star_ = false;
  std::u32string ident_;
  IfStage if_ = None;
  int cond_paren_ = 0;
  char32_t prev_ = 0, prev2_ = 0;

  void lex(char32_t c) {
    switch (state) {
      case Str:
      case Chr:
        if (escape_)
          escape_ = false;
        else if (c == U'\\')
          escape_ = true;
        else if (c == (state == Str ? U'"' : U'\'') || c == U'\n')
          state = Code;
        return;
      case LineComment:
        if (c == U'\n') state = Code;
        return;
      case BlockComment:
        if (star_ && c == U'/') state = Code;
        star_ = c == U'*';
        return;
      case Code:
        break;
    }
    if (slash_ && (c == U'*' || c == U'/')) {
      state = c == U'*' ? BlockComment : LineComment;
      slash_ = star_ = false;
      ident_.clear();
      return;
    }
    slash_ = c == U'/';
    const bool ident = is_ident(c);
    if (!ident) {
      if (ident_ == U"if") if_ = AwaitCond;
      ident_.clear();
    }
    if_stage(c);
    if (ident) {
      ident_ += c;
      return;
    }
    if (c == U'"' || c == U'\'') {
      state = c == U'"' ? Str : Chr;
      escape_ = false;
      return;
    }
    switch (c) {
      case U'(':
        ++paren;
        break;
      case U')':
        paren = paren > 0 ? paren - 1 : 0;
        break;
      case U'[':
        ++bracket;
        break;
      case U']':
        bracket = bracket > 0 ? bracket - 1 : 0;
        break;
      case U'{':
        ++brace;
        break;
      case U'}':
        brace = brace > 0 ? brace - 1 : 0;
        // A braced body ends when its block closes; a single-statement body
        // when a block opened inside it closes (if (a) while (b) { ... }).
        while (!ifs.empty() &&
               (ifs.back().braced ? brace < ifs.back().brace : brace <= ifs.back().brace))
          ifs.pop_back();
        break;
      case U';':
        while (!ifs.empty() && !ifs.back().braced && ifs.back().brace == brace &&
               ifs.back().paren == paren)
          ifs.pop_back();
        break;
      default:
        break;
    }
  }

  // `if` ( condition ) body: called for every code character before the
  // depths change.
  void if_stage(char32_t c) {
    if (if_ == None || is_space(c) || (if_ == AwaitBody && c == U'/')) return;
    if (if_ == AwaitCond) {
      if (c == U'(')
        if_ = InCond, cond_paren_ = paren;
      else
        if_ = None;  // `#if X` or an identifier that merely ends in if
    } else if (if_ == InCond) {
      if (c == U')' && paren == cond_paren_ + 1) if_ = AwaitBody;
    } else if (if_ == AwaitBody) {
      if (c == U'{')
        ifs.push_back({true, brace + 1, paren});
      else
        ifs.push_back({false, brace, paren});
      if_ = None;
    }
  }

  void layout(char32_t c) {
    if (c == U'\n') {
      column = 0, indent = 0, leading = true;
    } else {
      ++column;
      if (leading && c == U' ')
        ++indent;
      else if (leading && c == U'\t')
        indent = (indent / 8 + 1) * 8;
      else
        leading = false;
    }
    // A letter after a non-letter starts a word, except the letter after an
    // apostrophe inside a word ("don't").
    word_start = is_letter(c) && !is_ident(prev_) && !(prev_ == U'\'' && is_letter(prev2_));
  }
};

}  // namespace

std::vector<Probe> builtin_probes(const std::u32string& text) {
  std::vector<Probe> p = {
      {"double_quote", "inside double quotes", true, {}},
      {"single_quote", "inside single quotes", true, {}},
      {"comment", "inside a comment (/* */ or //)", true, {}},
      {"paren_depth", "depth of ( ) nesting", false, {}},
      {"bracket_depth", "depth of [ ] nesting", false, {}},
      {"brace_depth", "depth of { } nesting", false, {}},
      {"if_block", "inside the body of an if", true, {}},
      {"line_position", "characters since the last newline", false, {}},
      {"indent", "indentation of the current line (columns, tab = 8)", false, {}},
      {"word_start", "first letter of a word", true, {}},
  };
  for (auto& q : p) q.values.reserve(text.size());
  Lexer lx;
  for (char32_t c : text) {
    lx.feed(c);
    const float v[] = {float(lx.state == Lexer::Str),
                       float(lx.state == Lexer::Chr),
                       float(lx.state == Lexer::LineComment || lx.state == Lexer::BlockComment),
                       float(lx.paren),
                       float(lx.bracket),
                       float(lx.brace),
                       float(!lx.ifs.empty()),
                       float(lx.column),
                       float(lx.indent),
                       float(lx.word_start)};
    for (size_t i = 0; i < p.size(); ++i) p[i].values.push_back(v[i]);
  }
  return p;
}

Probe regex_probe(const std::string& name, const std::string& pattern, const std::u32string& text,
                  double max_seconds) {
  // RE2 matches in time linear in the text whatever the pattern, with no
  // recursion per character: a user's pattern can neither overflow the stack
  // nor backtrack for ever (std::regex did both on long matches).
  RE2::Options opts;
  opts.set_log_errors(false);
  opts.set_max_mem(int64_t(64) << 20);   // the compiled program; a larger pattern is refused
  const RE2 re("(?m)" + pattern, opts);  // ^ and $ at line ends
  if (!re.ok()) {
    std::string why = re.error();  // it quotes the pattern with our (?m) in front
    const size_t at = why.find("(?m)");
    if (at != std::string::npos) why.erase(at, 4);
    throw Error("probe '" + name + "': invalid regular expression '" + pattern + "': " + why +
                " (RE2 syntax: no back-references or look-around)");
  }
  // The regex runs on UTF-8 bytes; at[b] is the character that byte b belongs to.
  std::string bytes;
  std::vector<size_t> at;
  for (size_t i = 0; i < text.size(); ++i) {
    const size_t before = bytes.size();
    append_utf8(bytes, text[i]);
    at.insert(at.end(), bytes.size() - before, i);
  }
  Probe p{name, "matches /" + pattern + "/", true, std::vector<float>(text.size(), 0.0f)};
  const re2::StringPiece all(bytes);
  re2::StringPiece m;
  // Each search is linear, but a pattern that looks far ahead of each of
  // many matches (a(.*z)? on a long line of a's) makes the whole scan
  // quadratic: bounded in time, with an error that says why.
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t pos = 0; pos <= bytes.size();) {
    require(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() <= max_seconds,
        "probe '" + name + "': the pattern /" + pattern + "/ took more than " +
            std::to_string(int(max_seconds)) +
            " s on this text (each match makes it read far ahead); make it more specific, or give "
            "a smaller --max-chars");
    if (!re.Match(all, pos, bytes.size(), RE2::UNANCHORED, &m, 1)) break;
    const size_t b0 = size_t(m.data() - bytes.data()), b1 = b0 + m.size();
    for (size_t b = b0; b < b1; ++b) p.values[at[b]] = 1.0f;
    if (b1 > b0) {
      pos = b1;
    } else {  // an empty match: go on after the character it stands before
      if (b0 >= bytes.size()) break;
      pos = b0 + 1;
      while (pos < bytes.size() && (static_cast<unsigned char>(bytes[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
  return p;
}

}  // namespace unroll
