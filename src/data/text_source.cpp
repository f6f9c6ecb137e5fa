#include "scalevec/text_source.h"

#ifdef SCALEVEC_WITH_SIMDJSON
#include <simdjson.h>
#endif
#ifdef SCALEVEC_WITH_ZLIB
#include <zlib.h>
#endif
#ifdef SCALEVEC_WITH_ZSTD
#include <zstd.h>
#endif

#include <cstdio>
#include <cstring>
#include <sstream>

namespace scalevec {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string without_compression_suffix(const std::string& path) {
  for (const char* ext : {".gz", ".zst"})
    if (ends_with(path, ext)) return path.substr(0, path.size() - std::strlen(ext));
  return path;
}

}  // namespace

uint64_t TextSourceStats::skipped_total() const {
  uint64_t n = 0;
  for (const auto& [reason, count] : skipped) n += count;
  return n;
}

std::string TextSourceStats::summary() const {
  std::ostringstream os;
  os << lines << " lines from " << files << " files (" << bytes / 1e6 << " MB of text)";
  if (!skipped.empty()) {
    os << "; skipped:";
    const char* sep = " ";
    for (const auto& [reason, count] : skipped) {
      os << sep << count << " " << reason;
      sep = ", ";
    }
  }
  return os.str();
}

bool is_compressed_path(const std::string& path) {
  return without_compression_suffix(path) != path;
}

bool is_jsonl_path(const std::string& path) {
  const std::string base = without_compression_suffix(path);
  return ends_with(base, ".jsonl") || ends_with(base, ".json");
}

// Decompressed bytes of one file.
class TextLineSource::Decoder {
 public:
  virtual ~Decoder() = default;
  // Up to n bytes; 0 at the end. Throws TextSourceError naming the file on a damaged stream.
  virtual size_t read(char* out, size_t n) = 0;
};

namespace {

class PlainDecoder : public TextLineSource::Decoder {
 public:
  explicit PlainDecoder(const std::string& path)
      : path_(path), file_(std::fopen(path.c_str(), "rb")) {
    if (!file_) throw TextSourceError("cannot open input file: " + path);
  }
  ~PlainDecoder() override { std::fclose(file_); }
  size_t read(char* out, size_t n) override {
    const size_t got = std::fread(out, 1, n, file_);
    if (got == 0 && std::ferror(file_)) throw TextSourceError("read error in input file " + path_);
    return got;
  }

 private:
  std::string path_;
  std::FILE* file_;
};

[[noreturn]] void unsupported(const std::string& path, const std::string& what,
                              const std::string& package) {
  throw TextSourceError("input file " + path + " is " + what + ", which this build cannot read: " +
                        "install " + package + " and rebuild scalevec");
}

#ifdef SCALEVEC_WITH_ZLIB
class GzipDecoder : public TextLineSource::Decoder {
 public:
  explicit GzipDecoder(const std::string& path) : path_(path), file_(gzopen(path.c_str(), "rb")) {
    if (!file_) throw TextSourceError("cannot open input file: " + path);
    gzbuffer(file_, 1 << 18);
  }
  ~GzipDecoder() override { gzclose(file_); }
  size_t read(char* out, size_t n) override {
    const int got = gzread(file_, out, static_cast<unsigned>(n));
    int code = Z_OK;
    const char* why = gzerror(file_, &code);
    // At the end, Z_BUF_ERROR means the gzip stream stopped in the middle (a truncated file).
    if (got < 0 || (got == 0 && code != Z_OK))
      throw TextSourceError("input file " + path_ + " is damaged: " +
                            (code == Z_BUF_ERROR ? std::string("truncated gzip stream") : why));
    return static_cast<size_t>(got);
  }

 private:
  std::string path_;
  gzFile file_;
};

#endif

#ifdef SCALEVEC_WITH_ZSTD
class ZstdDecoder : public TextLineSource::Decoder {
 public:
  explicit ZstdDecoder(const std::string& path)
      : path_(path), file_(std::fopen(path.c_str(), "rb")), stream_(ZSTD_createDStream()) {
    if (!file_) throw TextSourceError("cannot open input file: " + path);
    in_buffer_.resize(ZSTD_DStreamInSize());
  }
  ~ZstdDecoder() override {
    ZSTD_freeDStream(stream_);
    std::fclose(file_);
  }
  size_t read(char* out, size_t n) override {
    ZSTD_outBuffer output{out, n, 0};
    while (output.pos == 0) {
      if (input_.pos == input_.size) {
        const size_t got = std::fread(in_buffer_.data(), 1, in_buffer_.size(), file_);
        if (got == 0) {
          if (std::ferror(file_)) throw TextSourceError("read error in input file " + path_);
          if (last_ != 0)
            throw TextSourceError("input file " + path_ + " is damaged: truncated zstd frame");
          return 0;
        }
        input_ = {in_buffer_.data(), got, 0};
      }
      last_ = ZSTD_decompressStream(stream_, &output, &input_);
      if (ZSTD_isError(last_))
        throw TextSourceError("input file " + path_ + " is damaged: " + ZSTD_getErrorName(last_));
    }
    return output.pos;
  }

 private:
  std::string path_;
  std::FILE* file_;
  ZSTD_DStream* stream_;
  std::vector<char> in_buffer_;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  size_t last_ = 0;  // 0 once a frame is complete
};
#endif

}  // namespace

TextLineSource::TextLineSource(std::vector<std::string> files, std::string text_key)
    : files_(std::move(files)), text_key_(std::move(text_key)) {}

TextLineSource::~TextLineSource() = default;

bool TextLineSource::open_next() {
  if (index_ >= files_.size()) return false;
  const std::string& path = files_[index_++];
  if (std::FILE* probe = std::fopen(path.c_str(), "rb"))
    std::fclose(probe);
  else
    throw TextSourceError("input file not found or unreadable: " + path);
  if (ends_with(path, ".zst")) {
#ifdef SCALEVEC_WITH_ZSTD
    decoder_ = std::make_unique<ZstdDecoder>(path);
#else
    unsupported(path, "zstd-compressed", "libzstd-dev");
#endif
  } else if (ends_with(path, ".gz")) {
#ifdef SCALEVEC_WITH_ZLIB
    decoder_ = std::make_unique<GzipDecoder>(path);
#else
    unsupported(path, "gzip-compressed", "zlib1g-dev");
#endif
  } else {
    decoder_ = std::make_unique<PlainDecoder>(path);
  }
  jsonl_ = is_jsonl_path(path);
#ifndef SCALEVEC_WITH_SIMDJSON
  if (jsonl_) unsupported(path, "JSON Lines", "libsimdjson-dev");
#endif
  buffer_.clear();
  buffer_pos_ = 0;
  ++stats_.files;
  return true;
}

bool TextLineSource::next_raw_line(std::string& line) {
  for (;;) {
    if (!decoder_ && !open_next()) return false;
    const size_t eol = buffer_.find('\n', buffer_pos_);
    if (eol != std::string::npos) {
      line.assign(buffer_, buffer_pos_, eol - buffer_pos_);
      buffer_pos_ = eol + 1;
      break;
    }
    buffer_.erase(0, buffer_pos_);
    buffer_pos_ = 0;
    const size_t old = buffer_.size();
    buffer_.resize(old + (1 << 16));
    const size_t got = decoder_->read(&buffer_[old], 1 << 16);
    buffer_.resize(old + got);
    stats_.bytes += got;
    if (got == 0) {
      decoder_.reset();
      if (!buffer_.empty()) {  // a last line without a newline
        line.swap(buffer_);
        buffer_.clear();
        break;
      }
    }
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

bool TextLineSource::next(std::string& line) {
  for (;;) {
    if (pending_pos_ < pending_.size()) {
      line = std::move(pending_[pending_pos_++]);
      ++stats_.lines;
      return true;
    }
    if (!next_raw_line(line)) return false;
    if (!jsonl_) {
      if (!valid_utf8(line)) {
        ++stats_.skipped["invalid UTF-8"];
        continue;
      }
      ++stats_.lines;
      return true;
    }
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    split_document(line);
  }
}

#ifdef SCALEVEC_WITH_SIMDJSON
bool TextLineSource::valid_utf8(const std::string& s) {
  return simdjson::validate_utf8(s.data(), s.size());
}

void TextLineSource::split_document(const std::string& json) {
  if (!parser_) parser_ = std::make_shared<simdjson::dom::parser>();
  auto& parser = *std::static_pointer_cast<simdjson::dom::parser>(parser_);
  simdjson::dom::element doc;
  const auto error = parser.parse(json).get(doc);
  if (error) {
    ++stats_.skipped[error == simdjson::UTF8_ERROR ? "invalid UTF-8" : "not JSON"];
    return;
  }
  std::string_view text;
  if (doc[text_key_].get_string().get(text)) {
    ++stats_.skipped["no string field '" + text_key_ + "'"];
    return;
  }
  // A document's text may hold newlines: its lines, in order.
  pending_.clear();
  pending_pos_ = 0;
  size_t start = 0;
  for (;;) {
    const size_t eol = text.find('\n', start);
    std::string piece(text.substr(start, eol == std::string_view::npos ? eol : eol - start));
    if (!piece.empty() && piece.back() == '\r') piece.pop_back();
    pending_.push_back(std::move(piece));
    if (eol == std::string_view::npos) break;
    start = eol + 1;
  }
}
#else
// UTF-8 well-formedness (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
bool TextLineSource::valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = p[i];
    size_t len = c < 0x80 ? 1
                 : (c >> 5) == 0x6 ? 2
                 : (c >> 4) == 0xE ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (len == 0 || i + len > n) return false;
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

void TextLineSource::split_document(const std::string&) {}  // open_next refused JSONL
#endif

}  // namespace scalevec
