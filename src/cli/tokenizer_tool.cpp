// scalevec-tokenizer: trains a sentencepiece tokenizer, encodes text into token shards, decodes
// ids. A separate executable because Debian's libsentencepiece (protobuf-lite) and LibTorch (full
// protobuf) crash at load time in one process; the trainer calls this tool as a subprocess.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
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

#include "scalevec/encode_pipeline.h"
#include "scalevec/log.h"
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
    } catch (const std::exception& e) {
      status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kNotFound, e.what());
      done_ = true;
    }
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return status_; }
  const scalevec::TextSourceStats& stats() const { return reader_.stats(); }

 private:
  scalevec::TextLineSource reader_;
  std::string value_;
  bool done_ = false;
  sentencepiece::util::Status status_;
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

int cmd_encode(Flags flags) {
  const std::string model = flags.get("model");
  const auto inputs = flags.list("input");
  const std::string train_out = flags.get("train-out");
  const std::string val_out = flags.get("val-out");
  const double val_fraction = parse_double(flags.get("val-fraction", "0.01"), "--val-fraction");
  const int64_t block_lines =
      parse_int(flags.get("block-lines", std::to_string(kDefaultBlockLines)), "--block-lines");
  const std::string text_key = flags.get("text-key", "text");
  const int64_t workers = parse_int(
      flags.get("workers", std::to_string(std::max(1u, std::thread::hardware_concurrency()))),
      "--workers");
  flags.finish();
  if (workers < 1) throw UsageError("encode: --workers must be >= 1");
  if (!(val_fraction >= 0.0 && val_fraction < 1.0))
    throw UsageError("encode: --val-fraction must be in [0, 1), got " +
                     std::to_string(val_fraction));
  if (block_lines < 1) throw UsageError("encode: --block-lines must be >= 1");

  sentencepiece::SentencePieceProcessor sp;
  load_model(model, sp);
  scalevec::EncodeOptions opts;
  opts.workers = workers;
  opts.block_lines = block_lines;
  opts.val_fraction = val_fraction;
  opts.eos = static_cast<uint32_t>(sp.eos_id());
  scalevec::TextLineSource reader(inputs, text_key);
  uint64_t input_bytes = 0;  // on disk; the ETA is exact for uncompressed inputs
  bool compressed = false;
  for (const auto& f : inputs) {
    std::ifstream in(f, std::ios::binary | std::ios::ate);
    input_bytes += in ? static_cast<uint64_t>(in.tellg()) : 0;
    compressed = compressed || f.size() > 3 && (f.substr(f.size() - 3) == ".gz" ||
                                                f.substr(f.size() - 4) == ".zst");
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
  const scalevec::EncodeResult r = scalevec::encode_lines(
      reader,
      [&](const std::string& text, std::vector<int>& ids) {
        const auto status = sp.Encode(text, &ids);
        if (!status.ok()) throw std::runtime_error("encode failed: " + status.ToString());
      },
      opts, show);
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
    throw UsageError("unknown command '" + command + "'");
  } catch (const UsageError& e) {
    std::cerr << "scalevec-tokenizer: " << e.what() << "\n\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "scalevec-tokenizer " << command << ": " << e.what() << "\n";
    return 1;
  }
}
