// scalevec-tokenizer: trains a sentencepiece tokenizer, encodes text into token shards, decodes
// ids. A separate executable because Debian's libsentencepiece (protobuf-lite) and LibTorch (full
// protobuf) crash at load time in one process; the trainer calls this tool as a subprocess.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "scalevec/data_fingerprint.h"
#include "scalevec/encode_pipeline.h"
#include "scalevec/log.h"
#include "scalevec/manifest.h"
#include "scalevec/shard_format.h"
#include "scalevec/text_source.h"

namespace {

using scalevec::log::cat;

// Lines of validation text are taken in contiguous blocks of this many lines (see docs/data.md).
constexpr int64_t kDefaultBlockLines = 64;
// Fixed sampling seed so that training on a huge corpus (input_sentence_size) is reproducible.
constexpr unsigned int kTrainSeed = 1234;

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

const char* kUsage = R"(scalevec-tokenizer: sentencepiece tokenizer and token shards

usage:
  scalevec-tokenizer train --input F [--input F2 ...] --model-prefix P --vocab-size N
                           [--type bpe|unigram] [--max-sentences N] [--text-key K]
      trains P.model and P.vocab (byte fallback on, identity normalization, deterministic)
  scalevec-tokenizer encode --model M --input F [F2 ...] --train-out T --val-out V
                            [--val-fraction f] [--block-lines L] [--text-key K] [--workers N]
      encodes every non-empty line followed by EOS; blocks of L (default 64) consecutive lines
      go to validation so that a fraction f (default 0.01) of all blocks, evenly spread, is held
      out: block j is held out iff floor((j+1)*f) > floor(j*f); N workers (default: all cores)
      encode in parallel, the output byte-identical whatever N is; a progress line every 2 s
  scalevec-tokenizer encode --model M --input F|DIR [...] --out DATASET [--workers N]
                            [--shard-index i --num-shards n] [--max-shard-tokens T]
                            [--val-fraction f] [--text-key K]
      a dataset folder, streamed (bounded memory): per input train shards of at most T tokens
      (default 2^29) and a val shard (DATASET/shards/), a record per
      finished input (DATASET/parts/: a rerun skips inputs already done), and the manifest
      written last (DATASET/manifest.json, or manifest-i-of-n.json for task i of an array job
      taking inputs i, i+n, i+2n, ... of the sorted list)
  scalevec-tokenizer merge --input DATASET/manifest-*-of-n.json --out DATASET/manifest.json
      joins an array job's manifests (checks: one tokenizer, every input once)
  scalevec-tokenizer decode --model M --ids "1 2 3"
      prints the text of the ids
  scalevec-tokenizer --help

inputs, in any mix: plain text, gzip (.gz), zstd (.zst), and JSON Lines (.jsonl, .json,
.jsonl.gz, .jsonl.zst: one object per line; --text-key K names its text field, default text;
the text's own newlines split it into lines). Lines that are not JSON, lack the field or are
not valid UTF-8 are skipped and counted in the report.
)";

// "--key v1 v2 --flag" -> {key: [v1, v2], flag: []}.
std::map<std::string, std::vector<std::string>> parse_flags(int argc, char** argv, int first) {
  std::map<std::string, std::vector<std::string>> flags;
  std::string key;
  for (int i = first; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      key = a.substr(2);
      flags[key];
    } else if (key.empty()) {
      throw UsageError("unexpected argument '" + a + "'");
    } else {
      flags[key].push_back(a);
    }
  }
  return flags;
}

class Flags {
 public:
  Flags(std::map<std::string, std::vector<std::string>> flags, const std::string& command)
      : flags_(std::move(flags)), command_(command) {}

  std::vector<std::string> list(const std::string& key) {
    used_[key] = true;
    auto it = flags_.find(key);
    if (it == flags_.end() || it->second.empty()) throw UsageError(command_ + ": missing --" + key);
    return it->second;
  }
  std::string get(const std::string& key) {
    auto v = list(key);
    if (v.size() != 1) throw UsageError(command_ + ": --" + key + " takes one value");
    return v[0];
  }
  std::string get(const std::string& key, const std::string& fallback) {
    used_[key] = true;
    return flags_.count(key) ? get(key) : fallback;
  }
  bool has(const std::string& key) const { return flags_.count(key) > 0; }
  void finish() const {
    for (const auto& kv : flags_)
      if (!used_.count(kv.first)) throw UsageError(command_ + ": unknown option --" + kv.first);
  }

 private:
  std::map<std::string, std::vector<std::string>> flags_;
  std::map<std::string, bool> used_;
  std::string command_;
};

int64_t parse_int(const std::string& s, const std::string& what) {
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0') throw UsageError(what + ": expected an integer, got '" + s + "'");
  return v;
}

double parse_double(const std::string& s, const std::string& what) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0') throw UsageError(what + ": expected a number, got '" + s + "'");
  return v;
}

// Feeds the non-empty lines of the inputs to the sentencepiece trainer without a temp file.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  LineIterator(std::vector<std::string> files, std::string text_key)
      : reader_(std::move(files), std::move(text_key)) {
    Next();
  }
  bool done() const override { return done_; }
  void Next() override {
    try {
      do {
        if (!reader_.next(value_)) {
          done_ = true;
          return;
        }
      } while (value_.empty());
      if (++count_ % 4096 == 0) report_progress();
    } catch (const std::exception& e) {
      status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kNotFound, e.what());
      done_ = true;
    }
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return status_; }
  const scalevec::TextSourceStats& stats() const { return reader_.stats(); }

 private:
  // sentencepiece reads (and samples) every sentence before it trains: the slow part on a large
  // corpus, so it gets a progress line every 2 s.
  void report_progress() {
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_report_).count() < 2.0) return;
    last_report_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    std::ostringstream line;
    line << std::fixed << std::setprecision(1) << "tokenizer training: read " << count_
         << " lines, " << reader_.stats().bytes / 1e6 << " MB, "
         << reader_.stats().bytes / 1e6 / std::max(secs, 1e-9) << " MB/s";
    scalevec::log::info(line.str());
  }

  scalevec::TextLineSource reader_;
  std::string value_;
  bool done_ = false;
  sentencepiece::util::Status status_;
  uint64_t count_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(),
                                        last_report_ = start_;
};

int cmd_train(Flags flags) {
  const auto inputs = flags.list("input");
  const std::string prefix = flags.get("model-prefix");
  const int64_t vocab = parse_int(flags.get("vocab-size"), "--vocab-size");
  const std::string type = flags.get("type", "bpe");
  const std::string max_sentences = flags.get("max-sentences", "2000000");
  const std::string text_key = flags.get("text-key", "text");
  flags.finish();
  if (type != "bpe" && type != "unigram")
    throw UsageError("train: --type must be bpe or unigram, got '" + type + "'");
  if (vocab < 260)
    throw UsageError("train: --vocab-size must be >= 260 (256 byte pieces + specials)");

  const std::unordered_map<std::string, std::string> kwargs = {
      {"model_prefix", prefix},
      {"vocab_size", std::to_string(vocab)},
      {"model_type", type},
      {"byte_fallback", "true"},                // every byte is encodable: no <unk> ids in shards
      {"character_coverage", "0.9995"},         // rare characters fall back to bytes
      {"normalization_rule_name", "identity"},  // decode(encode(text)) == text
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "true"},
      {"hard_vocab_limit", "false"},  // small corpora may yield fewer pieces
      {"input_sentence_size", max_sentences},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", "16384"},
      {"num_threads", "2"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"minloglevel", "1"},
  };
  sentencepiece::SetRandomGeneratorSeed(kTrainSeed);
  LineIterator lines(inputs, text_key);
  const auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, &lines);
  if (!status.ok()) throw std::runtime_error("tokenizer training failed: " + status.ToString());
  scalevec::log::info("tokenizer training read " + lines.stats().summary());
  scalevec::log::info(cat("trained ", type, " tokenizer ", prefix, ".model (vocab ", vocab, ")"));
  return 0;
}

void load_model(const std::string& path, sentencepiece::SentencePieceProcessor& sp) {
  const auto status = sp.Load(path);
  if (!status.ok())
    throw std::runtime_error("cannot load tokenizer model " + path + ": " + status.ToString());
}

// Inputs as given, with folders expanded to their regular files (recursively), sorted so that
// every machine of an array job sees the same list.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    if (std::filesystem::is_directory(in)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(in))
        if (e.is_regular_file()) out.push_back(e.path().string());
    } else {
      out.push_back(in);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

int64_t mtime_ns(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("cannot stat input file " + path);
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// A finished input whose record, source and shards all still match: a rerun skips it.
bool already_done(const std::string& dir, const std::string& record_path, const std::string& input,
                  const std::string& tokenizer_hash, scalevec::InputRecord& record) {
  if (!std::filesystem::exists(record_path)) return false;
  try {
    record = scalevec::record_from_json(scalevec::read_text_file(record_path), record_path);
    if (record.input != input || record.tokenizer_hash != tokenizer_hash ||
        record.input_bytes != std::filesystem::file_size(input) ||
        record.input_mtime_ns != mtime_ns(input))
      return false;
    std::vector<const scalevec::ManifestShard*> shards = {&record.val};
    for (const auto& t : record.train) shards.push_back(&t);
    for (const auto* s : shards) {
      const scalevec::ShardReader shard(dir + "/" + s->file, /*verify_checksum=*/false);
      if (shard.checksum() != s->checksum || shard.count() != s->tokens) return false;
    }
    return true;
  } catch (const std::exception&) {
    return false;  // unreadable record or shard: encode again
  }
}

// The options both encode modes share, read from the flags and checked.
struct EncodeSettings {
  std::string model, text_key;
  scalevec::EncodeOptions options;  // eos is set once the model is loaded
};

EncodeSettings read_encode_settings(Flags& flags) {
  EncodeSettings e;
  e.model = flags.get("model");
  e.options.val_fraction = parse_double(flags.get("val-fraction", "0.01"), "--val-fraction");
  e.options.block_lines =
      parse_int(flags.get("block-lines", std::to_string(kDefaultBlockLines)), "--block-lines");
  e.text_key = flags.get("text-key", "text");
  const int64_t workers = parse_int(
      flags.get("workers", std::to_string(std::max(1u, std::thread::hardware_concurrency()))),
      "--workers");
  if (workers < 1) throw UsageError("encode: --workers must be >= 1");
  e.options.workers = static_cast<int>(workers);
  const double f = e.options.val_fraction;
  if (!(f >= 0.0 && f < 1.0))
    throw UsageError("encode: --val-fraction must be in [0, 1), got " + std::to_string(f));
  if (e.options.block_lines < 1) throw UsageError("encode: --block-lines must be >= 1");
  return e;
}

// sentencepiece's Encode as the pipeline's LineEncoder (const: safe from several workers).
scalevec::LineEncoder sentencepiece_encoder(const sentencepiece::SentencePieceProcessor& sp) {
  return [&sp](const std::string& text, std::vector<int>& ids) {
    const auto status = sp.Encode(text, &ids);
    if (!status.ok()) throw std::runtime_error("encode failed: " + status.ToString());
  };
}

// encode --out DIR: a dataset folder with a manifest (include/scalevec/manifest.h).
int cmd_encode_dataset(Flags flags) {
  EncodeSettings settings = read_encode_settings(flags);
  const std::string& model = settings.model;
  scalevec::EncodeOptions& opts = settings.options;
  const auto inputs = expand_inputs(flags.list("input"));
  const std::string dir = flags.get("out");
  const int64_t shard_index = parse_int(flags.get("shard-index", "-1"), "--shard-index");
  const int64_t num_shards = parse_int(flags.get("num-shards", "1"), "--num-shards");
  // 2^29 tokens: 1 GiB per shard with a vocabulary below 65536 (2 bytes a token).
  const int64_t max_shard_tokens =
      parse_int(flags.get("max-shard-tokens", "536870912"), "--max-shard-tokens");
  flags.finish();
  if (max_shard_tokens < 1) throw UsageError("encode: --max-shard-tokens must be >= 1");
  if (num_shards < 1 || shard_index >= num_shards || (shard_index < 0 && num_shards != 1))
    throw UsageError("encode: --shard-index i needs --num-shards n with 0 <= i < n");
  sentencepiece::SentencePieceProcessor sp;
  load_model(model, sp);
  std::filesystem::create_directories(dir + "/shards");
  std::filesystem::create_directories(dir + "/parts");

  scalevec::Manifest manifest;
  manifest.tokenizer = model;
  manifest.tokenizer_hash = scalevec::file_hash(model);
  manifest.vocab_size = static_cast<uint64_t>(sp.GetPieceSize());
  manifest.total_inputs = static_cast<int64_t>(inputs.size());
  manifest.shard_index = shard_index;
  manifest.num_shards = num_shards;
  opts.eos = static_cast<uint32_t>(sp.eos_id());
  const scalevec::LineEncoder encode = sentencepiece_encoder(sp);
  int64_t skipped_inputs = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    // A deterministic 1/n of the inputs: an array job's task i takes inputs i, i+n, i+2n, ...
    if (shard_index >= 0 && static_cast<int64_t>(k) % num_shards != shard_index) continue;
    const std::string& input = inputs[k];
    const std::string id = scalevec::hex64(scalevec::fnv1a64(input.data(), input.size()));
    const std::string record_path = dir + "/parts/" + id + ".json";
    scalevec::InputRecord record;
    if (already_done(dir, record_path, input, manifest.tokenizer_hash, record)) {
      record.index = static_cast<int64_t>(k);
      manifest.inputs.push_back(record);
      ++skipped_inputs;
      continue;
    }
    record = scalevec::InputRecord();
    record.index = static_cast<int64_t>(k);
    record.input = input;
    record.tokenizer_hash = manifest.tokenizer_hash;
    record.input_bytes = std::filesystem::file_size(input);
    record.input_mtime_ns = mtime_ns(input);
    // Streamed: train shards roll over every max_shard_tokens; the current validation-less block
    // is held back (at most block_lines lines) so that an input too short for a validation block
    // can give its last one, as the in-memory encoder does.
    std::unique_ptr<scalevec::ShardWriter> train_out;
    const auto finish_train = [&] {
      if (!train_out) return;
      train_out->close();
      record.train.back().tokens = train_out->count();
      record.train.back().checksum = train_out->checksum();
      train_out.reset();
    };
    const auto write_train = [&](const std::vector<uint32_t>& tokens) {
      for (size_t at = 0; at < tokens.size();) {
        if (!train_out) {
          record.train.push_back(
              {cat("shards/", id, ".train.", record.train.size(), ".bin"), 0, 0});
          train_out = std::make_unique<scalevec::ShardWriter>(dir + "/" + record.train.back().file,
                                                              manifest.vocab_size);
        }
        const size_t room =
            static_cast<size_t>(max_shard_tokens - static_cast<int64_t>(train_out->count()));
        const size_t n = std::min(room, tokens.size() - at);
        train_out->append(tokens.data() + at, n);
        at += n;
        if (static_cast<int64_t>(train_out->count()) >= max_shard_tokens) finish_train();
      }
    };
    record.val.file = "shards/" + id + ".val.bin";
    scalevec::ShardWriter val_out(dir + "/" + record.val.file, manifest.vocab_size);
    std::vector<uint32_t> held;  // the current train block
    bool held_is_block = false;
    const auto sink = [&](bool to_val, bool block_start, const std::vector<int>& ids) {
      if (block_start && held_is_block) {
        write_train(held);
        held.clear();
      }
      if (block_start) held_is_block = !to_val;
      std::vector<uint32_t> line(ids.begin(), ids.end());
      line.push_back(opts.eos);
      if (to_val)
        val_out.append(line.data(), line.size());
      else
        held.insert(held.end(), line.begin(), line.end());
    };
    scalevec::TextLineSource reader({input}, settings.text_key);
    const scalevec::EncodeCounts r = scalevec::encode_lines_to(reader, encode, opts, sink);
    if (opts.val_fraction > 0.0 && r.val_blocks == 0 && r.blocks >= 2 && held_is_block)
      val_out.append(held.data(), held.size());  // the last block becomes the validation data
    else
      write_train(held);
    if (record.train.empty()) {  // an input without train tokens still has its (empty) shard
      record.train.push_back({cat("shards/", id, ".train.0.bin"), 0, 0});
      train_out = std::make_unique<scalevec::ShardWriter>(dir + "/" + record.train.back().file,
                                                          manifest.vocab_size);
    }
    finish_train();
    val_out.close();
    record.val.tokens = val_out.count();
    record.val.checksum = val_out.checksum();
    record.lines = static_cast<uint64_t>(r.lines);
    record.skipped = reader.stats().skipped;
    scalevec::write_text_atomically(record_path,
                                    scalevec::to_json(record) + "\n");  // after the shards
    manifest.inputs.push_back(record);
    scalevec::log::info(cat("encoded input ", k + 1, "/", inputs.size(), " ", input, ": ",
                            record.train_tokens(), " train tokens in ", record.train.size(),
                            " shards + ", record.val.tokens, " val; ", reader.stats().summary()));
  }
  const std::string name = shard_index < 0
                               ? "manifest.json"
                               : cat("manifest-", shard_index, "-of-", num_shards, ".json");
  scalevec::write_text_atomically(dir + "/" + name, scalevec::to_json(manifest));  // last
  std::cout << "inputs=" << manifest.inputs.size() << " skipped_done=" << skipped_inputs
            << " train_tokens=" << manifest.train_tokens()
            << " val_tokens=" << manifest.val_tokens() << " manifest=" << dir << "/" << name
            << "\n";
  return 0;
}

// merge --out DIR/manifest.json M1 M2 ...: the partial manifests of an array job as one.
int cmd_merge(Flags flags) {
  const auto parts = flags.list("input");
  const std::string out = flags.get("out");
  flags.finish();
  std::vector<scalevec::Manifest> manifests;
  for (const auto& p : parts)
    manifests.push_back(scalevec::manifest_from_json(scalevec::read_text_file(p), p));
  const scalevec::Manifest merged = scalevec::merge_manifests(manifests);
  scalevec::write_text_atomically(out, scalevec::to_json(merged));
  std::cout << "inputs=" << merged.inputs.size() << " train_tokens=" << merged.train_tokens()
            << " val_tokens=" << merged.val_tokens() << " manifest=" << out << "\n";
  return 0;
}

int cmd_encode(Flags flags) {
  if (flags.has("out")) return cmd_encode_dataset(std::move(flags));
  EncodeSettings settings = read_encode_settings(flags);
  scalevec::EncodeOptions& opts = settings.options;
  const auto inputs = flags.list("input");
  const std::string train_out = flags.get("train-out");
  const std::string val_out = flags.get("val-out");
  flags.finish();

  sentencepiece::SentencePieceProcessor sp;
  load_model(settings.model, sp);
  opts.eos = static_cast<uint32_t>(sp.eos_id());
  scalevec::TextLineSource reader(inputs, settings.text_key);
  uint64_t input_bytes = 0;  // on disk; the ETA is exact for uncompressed inputs
  bool compressed = false;
  for (const auto& f : inputs) {
    std::ifstream in(f, std::ios::binary | std::ios::ate);
    input_bytes += in ? static_cast<uint64_t>(in.tellg()) : 0;
    compressed = compressed || scalevec::is_compressed_path(f);
  }
  const auto show = [&](const scalevec::EncodeProgress& p) {
    std::ostringstream line;
    line << std::fixed << std::setprecision(1) << "encode: " << p.bytes / 1e6 << " MB, "
         << p.bytes / 1e6 / std::max(p.seconds, 1e-9) << " MB/s, "
         << p.tokens / 1e6 / std::max(p.seconds, 1e-9) << "M tokens/s";
    if (!compressed && p.bytes > 0 && p.bytes < input_bytes)
      line << ", ETA " << std::setprecision(0)
           << p.seconds * static_cast<double>(input_bytes - p.bytes) / static_cast<double>(p.bytes)
           << " s";
    scalevec::log::info(line.str());
  };
  const scalevec::EncodeResult r =
      scalevec::encode_lines(reader, sentencepiece_encoder(sp), opts, show);
  const auto& train = r.train;
  const auto& val = r.val;
  const int64_t line_index = r.lines, blocks = r.blocks, val_blocks = r.val_blocks;
  const auto vocab = static_cast<uint64_t>(sp.GetPieceSize());
  scalevec::write_shard(train_out, train, vocab);
  scalevec::write_shard(val_out, val, vocab);
  scalevec::log::info("encode read " + reader.stats().summary());
  std::cout << "lines=" << line_index << " skipped_lines=" << reader.stats().skipped_total()
            << " blocks=" << blocks << " val_blocks=" << val_blocks
            << " train_tokens=" << train.size() << " val_tokens=" << val.size()
            << " vocab_size=" << vocab << "\n";
  return 0;
}

int cmd_decode(Flags flags) {
  const std::string model = flags.get("model");
  const auto id_words = flags.list("ids");
  flags.finish();
  sentencepiece::SentencePieceProcessor sp;
  load_model(model, sp);
  std::vector<int> ids;
  for (const auto& words : id_words) {
    std::istringstream in(words);
    for (std::string w; in >> w;) {
      const int64_t id = parse_int(w, "--ids");
      if (id < 0 || id >= sp.GetPieceSize())
        throw UsageError("decode: id " + w + " is outside the vocabulary [0, " +
                         std::to_string(sp.GetPieceSize()) + ")");
      ids.push_back(static_cast<int>(id));
    }
  }
  std::cout << sp.DecodeIds(ids) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  try {
    Flags flags(parse_flags(argc, argv, 2), command);
    if (command == "train") return cmd_train(std::move(flags));
    if (command == "encode") return cmd_encode(std::move(flags));
    if (command == "decode") return cmd_decode(std::move(flags));
    if (command == "merge") return cmd_merge(std::move(flags));
    throw UsageError("unknown command '" + command + "'");
  } catch (const UsageError& e) {
    std::cerr << "scalevec-tokenizer: " << e.what() << "\n\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "scalevec-tokenizer " << command << ": " << e.what() << "\n";
    return 1;
  }
}
