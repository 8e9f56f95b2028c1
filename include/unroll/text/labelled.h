// unroll/text/labelled.h — labelled text for classification and tagging.
//
// Sequence examples (classify): a file of lines "label<TAB>text" (or
// "label text" with separator ' ', as in SST-2's files), or a folder of
// files named by class ("Korean.txt": one example per line, as in
// ../shared/data/names/). Token examples (tag): one "token<TAB>label" per
// line, a blank line between sequences. Every error names the file and line.
#pragma once
#include <string>
#include <vector>

namespace unroll {

// The lines of UTF-8 text (checked; a leading byte-order mark and each line's
// trailing CR dropped); source names the text in errors.
std::vector<std::string> text_lines(const std::string& bytes, const std::string& source);
// True for a line of nothing but spaces and tabs.
bool blank(const std::string& line);

struct LabelledExamples {
  std::vector<std::string> texts;   // UTF-8, as written
  std::vector<std::string> labels;  // as written
  std::vector<std::string> where;   // "file:line" of each example, for messages
  size_t size() const { return texts.size(); }
};

// A file of "label<sep>text" lines (split at the first sep; blank lines
// skipped; a trailing CR and a leading byte-order mark dropped; spaces around
// a label trimmed) or a folder of CLASS.txt files. Throws Error naming file
// and line for a line without the separator, an empty label, a label
// followed by a tab (with sep ' ') or an empty text; and for a folder without
// .txt files or an empty data set.
LabelledExamples read_labelled(const std::string& path, char sep = '\t');

struct TaggedSequences {
  std::vector<std::vector<std::string>> tokens, labels;  // one entry per sequence
  std::vector<std::string> where;  // "file:line" of each sequence's first token
  size_t size() const { return tokens.size(); }
};

// "token<TAB>label" lines, a blank line between sequences. Throws Error naming
// file and line for a line without a tab or with an empty token or label.
// labelled false (text to tag): a line is a token, anything after a tab is
// ignored, and labels stay empty.
TaggedSequences read_tagged(const std::string& path, bool labelled = true);
// The same from text in memory (standard input, say); source names it in errors.
TaggedSequences read_tagged_text(const std::string& bytes, const std::string& source,
                                 bool labelled);

// The distinct labels, sorted (byte order); numeric labels ("0", "1", "10")
// sort by value.
std::vector<std::string> label_set(const std::vector<std::string>& labels);

// Index of each label in classes. Throws Error naming where[i] for a label
// that is not among classes (the known classes listed).
std::vector<int> label_ids(const std::vector<std::string>& labels,
                           const std::vector<std::string>& where,
                           const std::vector<std::string>& classes);

}  // namespace unroll
