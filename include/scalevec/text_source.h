// Text lines from corpus files: plain text, gzip (.gz), zstd (.zst), and JSON Lines (.jsonl,
// .jsonl.gz, .jsonl.zst: one object per line, its text in a named string field), decompressed
// and parsed in process (zlib, libzstd, simdjson). Bad lines are counted by reason and skipped,
// never fatal. Torch-free: used by the tokenizer tool.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace scalevec {

class TextSourceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TextSourceStats {
  uint64_t files = 0;
  uint64_t bytes = 0;  // decompressed bytes read
  uint64_t lines = 0;  // lines returned
  // Skipped lines by reason: "not JSON", "no string field '<key>'", "invalid UTF-8".
  std::map<std::string, uint64_t> skipped;
  uint64_t skipped_total() const;
  std::string summary() const;  // "N lines from F files (B MB); skipped: 3 not JSON, ..."
};

// True when `path` names JSON Lines (.jsonl or .json before an optional .gz/.zst).
bool is_jsonl_path(const std::string& path);
// True when `path` ends in .gz or .zst.
bool is_compressed_path(const std::string& path);

class TextLineSource {
 public:
  // `text_key`: the JSONL field holding the text (its newlines split it into lines).
  explicit TextLineSource(std::vector<std::string> files, std::string text_key = "text");
  ~TextLineSource();
  TextLineSource(const TextLineSource&) = delete;
  TextLineSource& operator=(const TextLineSource&) = delete;

  // Next line (no newline, no trailing '\r'); false after the last file. Throws TextSourceError
  // on a missing file or a damaged compressed stream, naming the file.
  bool next(std::string& line);
  const TextSourceStats& stats() const { return stats_; }

  class Decoder;  // decompressed bytes of one file (text_source.cpp)

 private:
  bool next_raw_line(std::string& line);
  bool open_next();
  static bool valid_utf8(const std::string& s);
  void split_document(const std::string& json);  // JSONL: its text's lines into pending_

  std::vector<std::string> files_;
  std::string text_key_;
  size_t index_ = 0;
  std::unique_ptr<Decoder> decoder_;
  bool jsonl_ = false;
  std::string buffer_;
  size_t buffer_pos_ = 0;
  std::vector<std::string> pending_;  // the rest of a JSONL document's lines
  size_t pending_pos_ = 0;
  TextSourceStats stats_;
  std::shared_ptr<void> parser_;  // simdjson's parser, reused across lines (opaque here)
};

}  // namespace scalevec
