#include "unroll/text/labelled.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "unroll/core/error.h"
#include "unroll/text/utf8.h"

namespace unroll {

namespace {

// Calls f(line, number) for every line of the text (text_lines).
template <class Fn>
void for_lines_of(const std::string& bytes, const std::string& source, Fn f) {
  const std::vector<std::string> lines = text_lines(bytes, source);
  for (size_t i = 0; i < lines.size(); ++i) f(lines[i], i + 1);
}

template <class Fn>
void for_lines(const std::string& path, Fn f) {
  for_lines_of(read_text_file(path), path, f);
}

std::string sep_name(char sep) {
  return sep == '\t' ? "tab" : sep == ' ' ? "space" : std::string(1, sep);
}

bool is_number(const std::string& s) {
  return !s.empty() && s.size() < 10 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::vector<std::string> text_lines(const std::string& bytes, const std::string& source) {
  decode_utf8(bytes, source);
  std::vector<std::string> lines;
  size_t start = bytes.size() - without_bom(bytes).size();  // standard input may start with one too
  while (start < bytes.size()) {
    size_t end = bytes.find('\n', start);
    if (end == std::string::npos) end = bytes.size();
    lines.push_back(bytes.substr(start, end - start));
    if (!lines.back().empty() && lines.back().back() == '\r') lines.back().pop_back();
    start = end + 1;
  }
  return lines;
}

bool blank(const std::string& line) { return line.find_first_not_of(" \t") == std::string::npos; }

LabelledExamples read_labelled(const std::string& path, char sep) {
  namespace fs = std::filesystem;
  LabelledExamples out;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(path))
      if (e.path().extension() == ".txt" && !e.is_directory()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    require(!files.empty(),
            "'" + path +
                "' holds no .txt files: a folder of examples has one file per class, "
                "named by the class (Korean.txt), one example per line");
    for (auto& f : files) {
      const std::string label = f.stem().string();
      for_lines(f.string(), [&](const std::string& line, size_t n) {
        if (blank(line)) return;
        out.texts.push_back(line);
        out.labels.push_back(label);
        out.where.push_back(f.string() + ":" + std::to_string(n));
      });
    }
  } else {
    for_lines(path, [&](const std::string& line, size_t n) {
      if (blank(line)) return;
      const std::string at = path + ":" + std::to_string(n);
      const size_t cut = line.find(sep);
      require(cut != std::string::npos,
              at + ": no " + sep_name(sep) + " between label and text (expected 'label" +
                  (sep == '\t'  ? "<TAB>"
                   : sep == ' ' ? " "
                                : std::string(1, sep)) +
                  "text')" +
                  (sep == '\t' && line.find(' ') != std::string::npos
                       ? "; if the label ends at the first space, use --separator space"
                       : ""));
      // Spaces around a label are not part of it; a tab inside one means the
      // file is tab-separated but read with --separator space.
      std::string label = line.substr(0, cut);
      label.erase(0, label.find_first_not_of(' '));
      label.erase(label.find_last_not_of(' ') + 1);
      require(!label.empty(), at + ": empty label");
      require(label.find('\t') == std::string::npos,
              at + ": the label '" + label.substr(0, label.find('\t')) +
                  "' is followed by a tab: the file looks tab-separated (use --separator tab)");
      require(cut + 1 < line.size() && line.find_first_not_of(" \t", cut + 1) != std::string::npos,
              at + ": empty text after the label");
      out.labels.push_back(label);
      out.texts.push_back(line.substr(cut + 1));
      out.where.push_back(at);
    });
  }
  require(out.size() > 0, "'" + path + "' holds no examples");
  return out;
}

TaggedSequences read_tagged_text(const std::string& bytes, const std::string& source,
                                 bool labelled) {
  TaggedSequences out;
  bool open = false;
  for_lines_of(bytes, source, [&](const std::string& line, size_t n) {
    if (blank(line)) {
      open = false;
      return;
    }
    const std::string at = source + ":" + std::to_string(n);
    size_t cut = line.find('\t');
    if (!labelled && cut == std::string::npos) cut = line.size();
    require(cut != std::string::npos,
            at + ": no tab between token and label (expected 'token<TAB>label')");
    require(!labelled || line.find('\t', cut + 1) == std::string::npos,
            at + ": more than one tab (expected 'token<TAB>label')");
    require(cut > 0, at + ": empty token");
    require(!labelled || cut + 1 < line.size(), at + ": empty label");
    if (!open) {
      out.tokens.emplace_back();
      out.labels.emplace_back();
      out.where.push_back(at);
      open = true;
    }
    out.tokens.back().push_back(line.substr(0, cut));
    out.labels.back().push_back(labelled ? line.substr(cut + 1) : std::string());
  });
  require(out.size() > 0, source + " holds no tagged sequences");
  return out;
}

TaggedSequences read_tagged(const std::string& path, bool labelled) {
  return read_tagged_text(read_text_file(path), path, labelled);
}

std::vector<std::string> label_set(const std::vector<std::string>& labels) {
  std::vector<std::string> s = labels;
  std::sort(s.begin(), s.end(), [](const std::string& a, const std::string& b) {
    if (is_number(a) && is_number(b)) return std::stol(a) < std::stol(b);
    return a < b;
  });
  s.erase(std::unique(s.begin(), s.end()), s.end());
  return s;
}

std::vector<int> label_ids(const std::vector<std::string>& labels,
                           const std::vector<std::string>& where,
                           const std::vector<std::string>& classes) {
  std::map<std::string, int> index;
  for (size_t i = 0; i < classes.size(); ++i) index[classes[i]] = int(i);
  std::vector<int> ids(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    auto it = index.find(labels[i]);
    if (it == index.end()) {
      std::string known;
      for (size_t k = 0; k < classes.size() && k < 20; ++k) known += (k ? ", " : "") + classes[k];
      if (classes.size() > 20) known += ", ...";
      throw Error(where[i] + ": unknown label '" + labels[i] + "' (the model knows " + known + ")");
    }
    ids[i] = it->second;
  }
  return ids;
}

}  // namespace unroll
