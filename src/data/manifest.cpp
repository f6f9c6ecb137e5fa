#include "scalevec/manifest.h"

#ifdef SCALEVEC_WITH_SIMDJSON
#include <simdjson.h>
#endif

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "scalevec/data_fingerprint.h"

namespace scalevec {
namespace fs = std::filesystem;

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof(esc), "\\u%04x", c);
      out += esc;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string shard_json(const ManifestShard& s) {
  return "{\"file\": " + quoted(s.file) + ", \"tokens\": " + std::to_string(s.tokens) +
         ", \"checksum\": " + quoted(hex64(s.checksum)) + "}";
}

}  // namespace

uint64_t InputRecord::train_tokens() const {
  uint64_t n = 0;
  for (const auto& s : train) n += s.tokens;
  return n;
}

uint64_t Manifest::train_tokens() const {
  uint64_t n = 0;
  for (const auto& r : inputs) n += r.train_tokens();
  return n;
}

uint64_t Manifest::val_tokens() const {
  uint64_t n = 0;
  for (const auto& r : inputs) n += r.val.tokens;
  return n;
}

std::string to_json(const InputRecord& r) {
  std::ostringstream os;
  os << "{\"index\": " << r.index << ", \"input\": " << quoted(r.input)
     << ", \"tokenizer_hash\": " << quoted(r.tokenizer_hash)
     << ", \"input_bytes\": " << r.input_bytes << ", \"input_mtime_ns\": " << r.input_mtime_ns
     << ", \"lines\": " << r.lines << ", \"skipped\": {";
  const char* sep = "";
  for (const auto& [reason, n] : r.skipped) {
    os << sep << quoted(reason) << ": " << n;
    sep = ", ";
  }
  os << "}, \"train\": [";
  for (size_t i = 0; i < r.train.size(); ++i) os << (i ? ", " : "") << shard_json(r.train[i]);
  os << "], \"val\": " << shard_json(r.val) << "}";
  return os.str();
}

std::string to_json(const Manifest& m) {
  std::ostringstream os;
  os << "{\n  \"format\": \"scalevec-dataset-1\",\n  \"tokenizer\": " << quoted(m.tokenizer)
     << ",\n  \"tokenizer_hash\": " << quoted(m.tokenizer_hash)
     << ",\n  \"vocab_size\": " << m.vocab_size << ",\n  \"total_inputs\": " << m.total_inputs;
  if (m.shard_index >= 0)
    os << ",\n  \"shard_index\": " << m.shard_index << ",\n  \"num_shards\": " << m.num_shards;
  os << ",\n  \"train_tokens\": " << m.train_tokens() << ",\n  \"val_tokens\": " << m.val_tokens()
     << ",\n  \"inputs\": [";
  for (size_t i = 0; i < m.inputs.size(); ++i)
    os << (i ? ",\n    " : "\n    ") << to_json(m.inputs[i]);
  os << "\n  ]\n}\n";
  return os.str();
}

#ifdef SCALEVEC_WITH_SIMDJSON
namespace {

using simdjson::dom::element;

ManifestShard shard_from(const element& e) {
  ManifestShard s;
  s.file = std::string(std::string_view(e["file"]));
  s.tokens = uint64_t(e["tokens"]);
  s.checksum = std::stoull(std::string(std::string_view(e["checksum"])), nullptr, 16);
  return s;
}

InputRecord record_from(const element& e) {
  InputRecord r;
  r.index = int64_t(e["index"]);
  r.input = std::string(std::string_view(e["input"]));
  r.tokenizer_hash = std::string(std::string_view(e["tokenizer_hash"]));
  r.input_bytes = uint64_t(e["input_bytes"]);
  r.input_mtime_ns = int64_t(e["input_mtime_ns"]);
  r.lines = uint64_t(e["lines"]);
  for (auto [key, value] : simdjson::dom::object(e["skipped"]))
    r.skipped[std::string(key)] = uint64_t(value);
  for (const element& t : simdjson::dom::array(e["train"])) r.train.push_back(shard_from(t));
  r.val = shard_from(e["val"]);
  return r;
}

}  // namespace

InputRecord record_from_json(const std::string& json, const std::string& origin) {
  try {
    simdjson::dom::parser parser;
    return record_from(parser.parse(json));
  } catch (const simdjson::simdjson_error& e) {
    throw ManifestError(origin + ": not a scalevec input record: " + e.what());
  }
}

Manifest manifest_from_json(const std::string& json, const std::string& origin) {
  try {
    simdjson::dom::parser parser;
    const element root = parser.parse(json);
    if (std::string_view(root["format"]) != "scalevec-dataset-1")
      throw ManifestError(origin + ": unknown manifest format");
    Manifest m;
    m.tokenizer = std::string(std::string_view(root["tokenizer"]));
    m.tokenizer_hash = std::string(std::string_view(root["tokenizer_hash"]));
    m.vocab_size = uint64_t(root["vocab_size"]);
    m.total_inputs = int64_t(root["total_inputs"]);
    int64_t index = -1;
    if (!root["shard_index"].get(index)) {
      m.shard_index = index;
      m.num_shards = int64_t(root["num_shards"]);
    }
    for (const element& e : simdjson::dom::array(root["inputs"]))
      m.inputs.push_back(record_from(e));
    return m;
  } catch (const simdjson::simdjson_error& e) {
    throw ManifestError(origin + ": not a scalevec manifest: " + e.what());
  }
}
#else
InputRecord record_from_json(const std::string&, const std::string& origin) {
  throw ManifestError(origin + ": reading manifests needs simdjson (libsimdjson-dev); rebuild");
}
Manifest manifest_from_json(const std::string&, const std::string& origin) {
  throw ManifestError(origin + ": reading manifests needs simdjson (libsimdjson-dev); rebuild");
}
#endif

Manifest merge_manifests(const std::vector<Manifest>& parts) {
  if (parts.empty()) throw ManifestError("merge: no manifests given");
  Manifest out = parts[0];
  out.shard_index = -1;
  out.num_shards = 1;
  out.inputs.clear();
  for (const auto& p : parts) {
    if (p.tokenizer_hash != out.tokenizer_hash || p.vocab_size != out.vocab_size)
      throw ManifestError("merge: the manifests come from different tokenizers (" +
                          out.tokenizer_hash + " vs " + p.tokenizer_hash + ")");
    if (p.total_inputs != out.total_inputs)
      throw ManifestError("merge: the manifests describe different input lists (" +
                          std::to_string(out.total_inputs) + " vs " +
                          std::to_string(p.total_inputs) + " inputs)");
    out.inputs.insert(out.inputs.end(), p.inputs.begin(), p.inputs.end());
  }
  std::sort(out.inputs.begin(), out.inputs.end(),
            [](const InputRecord& a, const InputRecord& b) { return a.index < b.index; });
  for (size_t i = 0; i < out.inputs.size(); ++i)
    if (out.inputs[i].index != static_cast<int64_t>(i))
      throw ManifestError("merge: input " + std::to_string(i) + " of " +
                          std::to_string(out.total_inputs) +
                          (i > 0 && out.inputs[i].index == out.inputs[i - 1].index
                               ? " appears twice (" + out.inputs[i].input + ")"
                               : " is missing: a partition is not there yet"));
  if (static_cast<int64_t>(out.inputs.size()) != out.total_inputs)
    throw ManifestError("merge: " + std::to_string(out.inputs.size()) + " of " +
                        std::to_string(out.total_inputs) +
                        " inputs are there: a partition is missing");
  return out;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ManifestError("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      throw ManifestError("cannot write " + path + " (disk full?)");
    }
  }
  fs::rename(tmp, path);
}

}  // namespace scalevec
