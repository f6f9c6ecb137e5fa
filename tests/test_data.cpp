// Data pipeline: shard format, corruption errors, the stateless window loader, the tokenizer tool
// end to end (as a subprocess, like the trainer uses it) and prepare_data.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <unistd.h>
#ifdef SCALEVEC_WITH_ZLIB
#include <zlib.h>
#endif
#ifdef SCALEVEC_WITH_ZSTD
#include <zstd.h>
#endif

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "scalevec/config.h"
#include "scalevec/data.h"
#include "scalevec/data_fingerprint.h"
#include "scalevec/encode_pipeline.h"
#include "scalevec/manifest.h"
#include "scalevec/process.h"
#include "scalevec/shard_format.h"
#include "scalevec/text_source.h"

namespace scalevec {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / (std::string("scalevec_") + info->test_suite_name() + "_" +
                                         info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<uint32_t> random_tokens(size_t n, uint32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> out(n);
  for (auto& t : out) t = rng() % vocab;
  return out;
}

std::vector<uint32_t> iota_tokens(size_t n) {
  std::vector<uint32_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint32_t>(i);
  return out;
}

// Overwrites bytes of a file in place.
void patch_file(const std::string& path, std::streamoff offset, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(offset);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <typename F>
std::string shard_error_of(F&& f) {
  try {
    f();
  } catch (const ShardError& e) {
    return e.what();
  }
  return "<no ShardError>";
}

// ---------------------------------------------------------------- shard format

TEST(ShardFormat, DtypeFollowsVocabSize) {
  EXPECT_EQ(shard_dtype_for_vocab(300), 2u);
  EXPECT_EQ(shard_dtype_for_vocab(65536), 2u);
  EXPECT_EQ(shard_dtype_for_vocab(65537), 4u);
}

TEST(ShardFormat, RoundTripUint16) {
  TempDir dir;
  const auto tokens = random_tokens(5000, 1000, 1);
  write_shard(dir.file("a.bin"), tokens, 1000);
  EXPECT_EQ(fs::file_size(dir.file("a.bin")), kShardHeaderBytes + 2 * tokens.size());
  const ShardReader r(dir.file("a.bin"));
  EXPECT_EQ(r.count(), tokens.size());
  EXPECT_EQ(r.vocab_size(), 1000u);
  EXPECT_EQ(r.dtype_bytes(), 2u);
  for (size_t i = 0; i < tokens.size(); ++i) ASSERT_EQ(r.token(i), tokens[i]) << i;
  std::vector<int64_t> wide(100);
  r.copy_to(4900, 100, wide.data());
  for (size_t i = 0; i < 100; ++i) EXPECT_EQ(wide[i], static_cast<int64_t>(tokens[4900 + i]));
}

TEST(ShardFormat, RoundTripUint32) {
  TempDir dir;
  auto tokens = random_tokens(3000, 100000, 2);
  tokens[0] = 99999;  // needs more than 16 bits
  tokens[1] = 65536;
  write_shard(dir.file("b.bin"), tokens, 100000);
  EXPECT_EQ(fs::file_size(dir.file("b.bin")), kShardHeaderBytes + 4 * tokens.size());
  const ShardReader r(dir.file("b.bin"));
  EXPECT_EQ(r.dtype_bytes(), 4u);
  EXPECT_EQ(r.vocab_size(), 100000u);
  std::vector<uint32_t> back(tokens.size());
  r.copy_to(0, back.size(), back.data());
  EXPECT_EQ(back, tokens);
}

TEST(ShardFormat, EmptyShardRoundTrips) {
  TempDir dir;
  write_shard(dir.file("e.bin"), std::vector<uint32_t>{}, 50);
  const ShardReader r(dir.file("e.bin"));
  EXPECT_EQ(r.count(), 0u);
  EXPECT_THROW(r.token(0), ShardError);
}

TEST(ShardFormat, WriteIsAtomicAndLeavesNoTempFile) {
  TempDir dir;
  write_shard(dir.file("sub/c.bin"), random_tokens(10, 10, 3), 10);
  write_shard(dir.file("sub/c.bin"), random_tokens(20, 10, 4), 10);  // replaces
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path() / "sub"))
    names.push_back(e.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"c.bin"});
  EXPECT_EQ(ShardReader(dir.file("sub/c.bin")).count(), 20u);
}

TEST(ShardFormat, WriteRejectsTokenOutsideVocab) {
  TempDir dir;
  const std::string msg = shard_error_of([&] {
    write_shard(dir.file("x.bin"), std::vector<uint32_t>{1, 7}, 7);
  });
  EXPECT_NE(msg.find(">= vocab_size 7"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(dir.file("x.bin")));
}

TEST(ShardFormat, MissingFileNamesFile) {
  TempDir dir;
  const std::string path = dir.file("nope.bin");
  const std::string msg = shard_error_of([&] { ShardReader r(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;
}

TEST(ShardFormat, BadMagic) {
  TempDir dir;
  const std::string path = dir.file("m.bin");
  write_shard(path, random_tokens(100, 50, 5), 50);
  patch_file(path, 0, "XX");
  const std::string msg = shard_error_of([&] { ShardReader r(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("bad magic"), std::string::npos) << msg;
}

TEST(ShardFormat, UnknownVersionAndDtype) {
  TempDir dir;
  const std::string path = dir.file("v.bin");
  write_shard(path, random_tokens(100, 50, 6), 50);
  patch_file(path, 8, std::string("\x07\0\0\0", 4));
  EXPECT_NE(shard_error_of([&] { ShardReader r(path); }).find("unsupported version 7"),
            std::string::npos);
  write_shard(path, random_tokens(100, 50, 6), 50);
  patch_file(path, 12, std::string("\x03\0\0\0", 4));
  EXPECT_NE(shard_error_of([&] { ShardReader r(path); }).find("unknown dtype 3"),
            std::string::npos);
}

TEST(ShardFormat, TruncatedFile) {
  TempDir dir;
  const std::string path = dir.file("t.bin");
  write_shard(path, random_tokens(100, 50, 7), 50);
  fs::resize_file(path, fs::file_size(path) - 2);
  std::string msg = shard_error_of([&] { ShardReader r(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  fs::resize_file(path, 10);  // not even a header
  msg = shard_error_of([&] { ShardReader r(path); });
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST(ShardFormat, FlippedPayloadByteFailsChecksum) {
  TempDir dir;
  const std::string path = dir.file("c.bin");
  const auto tokens = random_tokens(100, 50, 8);
  write_shard(path, tokens, 50);
  // Token 10 becomes another valid id, so only the checksum can notice.
  const auto flipped = static_cast<char>(tokens[10] ^ 1);
  patch_file(path, kShardHeaderBytes + 2 * 10, std::string(1, flipped));
  const std::string msg = shard_error_of([&] { ShardReader r(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("checksum mismatch"), std::string::npos) << msg;
  const ShardReader unchecked(path, /*verify_checksum=*/false);
  EXPECT_EQ(unchecked.token(10), tokens[10] ^ 1);
}

TEST(ShardFormat, OutOfRangeAccessThrows) {
  TempDir dir;
  write_shard(dir.file("r.bin"), random_tokens(10, 50, 9), 50);
  const ShardReader r(dir.file("r.bin"));
  std::vector<uint32_t> buf(5);
  EXPECT_THROW(r.token(10), ShardError);
  EXPECT_THROW(r.copy_to(8, 5, buf.data()), ShardError);
  EXPECT_NO_THROW(r.copy_to(5, 5, buf.data()));
}

// ---------------------------------------------------------------- loader

// ---------------------------------------------------------------- corpus text sources

// Text that does not compress away: a truncated .gz of it is a damaged stream, not an empty one.
std::string random_text() {
  std::mt19937 rng(3);
  std::string s;
  for (int i = 0; i < 200000; ++i) s.push_back(static_cast<char>('a' + rng() % 26));
  return s + "\n";
}

// The compressed formats are optional (CMakeLists.txt): their tests need all three.
#if defined(SCALEVEC_WITH_ZLIB) && defined(SCALEVEC_WITH_ZSTD) && defined(SCALEVEC_WITH_SIMDJSON)
#define SKIP_WITHOUT_CORPUS_FORMATS()
void write_gzip(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
  gzclose(f);
}

void write_zstd(const std::string& path, const std::string& text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3));
  std::ofstream(path, std::ios::binary) << out;
}
#else
#define SKIP_WITHOUT_CORPUS_FORMATS() \
  GTEST_SKIP() << "built without zlib, libzstd or simdjson (corpus formats)"
void write_gzip(const std::string&, const std::string&) {}
void write_zstd(const std::string&, const std::string&) {}
#endif

std::vector<std::string> all_lines(TextLineSource& source) {
  std::vector<std::string> out;
  for (std::string line; source.next(line);) out.push_back(line);
  return out;
}

TEST(TextSource, PlainGzipAndZstdGiveTheSameLines) {
  SKIP_WITHOUT_CORPUS_FORMATS();
  TempDir dir;
  const std::string text = "In the beginning\r\nGod created\n\nthe heaven\nand the earth";
  std::ofstream(dir.file("a.txt"), std::ios::binary) << text;
  write_gzip(dir.file("a.txt.gz"), text);
  write_zstd(dir.file("a.txt.zst"), text);
  const std::vector<std::string> want = {"In the beginning", "God created", "", "the heaven",
                                         "and the earth"};
  for (const char* name : {"a.txt", "a.txt.gz", "a.txt.zst"}) {
    TextLineSource source({dir.file(name)});
    EXPECT_EQ(all_lines(source), want) << name;
    EXPECT_EQ(source.stats().bytes, text.size()) << name;
    EXPECT_EQ(source.stats().skipped_total(), 0u) << name;
  }
  // Several files in order, one of each kind.
  TextLineSource mixed({dir.file("a.txt.zst"), dir.file("a.txt"), dir.file("a.txt.gz")});
  EXPECT_EQ(all_lines(mixed).size(), 3 * want.size());
  EXPECT_EQ(mixed.stats().files, 3u);
}

TEST(TextSource, JsonLinesTakeTheTextKeyAndCountBadLines) {
  SKIP_WITHOUT_CORPUS_FORMATS();
  TempDir dir;
  const std::string jsonl =
      "{\"text\": \"first doc\\nsecond line\", \"id\": 1}\n"
      "not json at all\n"
      "{\"id\": 2}\n"
      "{\"text\": 42}\n"
      "\n"
      "{\"text\": \"caf\xc3\xa9 \\u00e9\"}\n"
      "{\"text\": \"bad \xff byte\"}\n"
      "{\"text\": \"trailing\"} garbage\n"
      "{\"body\": \"other key\"}";
  std::ofstream(dir.file("d.jsonl"), std::ios::binary) << jsonl;
  write_zstd(dir.file("d.jsonl.zst"), jsonl);
  write_gzip(dir.file("d.jsonl.gz"), jsonl);
  for (const char* name : {"d.jsonl", "d.jsonl.zst", "d.jsonl.gz"}) {
    TextLineSource source({dir.file(name)});
    EXPECT_EQ(all_lines(source),
              (std::vector<std::string>{"first doc", "second line", "caf\xc3\xa9 \xc3\xa9"}))
        << name;
    const auto& skipped = source.stats().skipped;
    EXPECT_EQ(skipped.at("not JSON"), 2u) << name;
    EXPECT_EQ(skipped.at("no string field 'text'"), 3u) << name;
    EXPECT_EQ(skipped.at("invalid UTF-8"), 1u) << name;
    EXPECT_NE(source.stats().summary().find("2 not JSON"), std::string::npos);
  }
  TextLineSource other_key({dir.file("d.jsonl")}, "body");
  EXPECT_EQ(all_lines(other_key), std::vector<std::string>{"other key"});
}

TEST(TextSource, InvalidUtf8PlainLinesAreSkippedAndDamagedFilesNamed) {
  SKIP_WITHOUT_CORPUS_FORMATS();
  TempDir dir;
  std::ofstream(dir.file("u.txt"), std::ios::binary) << "good\n\xc3\x28 bad\nalso good\n";
  TextLineSource source({dir.file("u.txt")});
  EXPECT_EQ(all_lines(source), (std::vector<std::string>{"good", "also good"}));
  EXPECT_EQ(source.stats().skipped.at("invalid UTF-8"), 1u);

  write_zstd(dir.file("t.zst"), std::string(100000, 'x'));
  fs::resize_file(dir.file("t.zst"), fs::file_size(dir.file("t.zst")) / 2);
  write_gzip(dir.file("t.gz"), random_text());
  fs::resize_file(dir.file("t.gz"), fs::file_size(dir.file("t.gz")) / 2);
  for (const char* name : {"t.zst", "t.gz", "missing.txt"}) {
    TextLineSource bad({dir.file(name)});
    try {
      all_lines(bad);
      FAIL() << name << ": expected an error";
    } catch (const TextSourceError& e) {
      EXPECT_NE(std::string(e.what()).find(dir.file(name)), std::string::npos) << e.what();
    }
  }
}

// ---------------------------------------------------------------- parallel encoding

// A stand-in tokenizer: one id per byte, plus a length marker (thread-safe, deterministic).
void byte_ids(const std::string& line, std::vector<int>& ids) {
  ids.assign(line.begin(), line.end());
  for (int& id : ids) id &= 0xFF;
  ids.push_back(256 + static_cast<int>(line.size() % 7));
}

TEST(EncodePipeline, OutputIsIdenticalWhateverTheNumberOfWorkers) {
  TempDir dir;
  std::mt19937 rng(9);
  std::ostringstream text;
  for (int i = 0; i < 5000; ++i) {
    const int len = 1 + static_cast<int>(rng() % 40);
    for (int k = 0; k < len; ++k) text << static_cast<char>('a' + rng() % 26);
    text << (i % 97 == 0 ? "\n\n" : "\n");  // some empty lines, skipped
  }
  std::ofstream(dir.file("c.txt")) << text.str();
  EncodeOptions opts;
  opts.block_lines = 16;
  opts.val_fraction = 0.05;
  opts.batch_lines = 37;  // many small batches: the in-order writer is exercised
  opts.eos = 999;
  EncodeResult reference;
  for (int workers : {1, 2, 3, 8}) {
    opts.workers = workers;
    TextLineSource source({dir.file("c.txt")});
    int reports = 0;
    const EncodeResult r = encode_lines(
        source, byte_ids, opts, [&](const EncodeProgress&) { ++reports; }, 0.0);
    EXPECT_GE(reports, 1);
    if (workers == 1) {
      reference = r;
      EXPECT_EQ(r.lines, 5000);
      EXPECT_EQ(r.blocks, (5000 + 15) / 16);
      EXPECT_GT(r.val.size(), 0u);
      // The token streams hold every line once, in order, each followed by EOS.
      EXPECT_EQ(std::count(r.train.begin(), r.train.end(), 999u) +
                    std::count(r.val.begin(), r.val.end(), 999u),
                5000);
      continue;
    }
    EXPECT_EQ(r.train, reference.train) << workers << " workers";
    EXPECT_EQ(r.val, reference.val) << workers << " workers";
    EXPECT_EQ(r.val_blocks, reference.val_blocks);
  }
}

TEST(EncodePipeline, AWorkerErrorStopsTheRunAndIsRethrown) {
  TempDir dir;
  std::ofstream out(dir.file("c.txt"));
  for (int i = 0; i < 20000; ++i) out << "line " << i << "\n";
  out.close();
  EncodeOptions opts;
  opts.workers = 3;
  opts.batch_lines = 50;
  TextLineSource source({dir.file("c.txt")});
  const auto failing = [](const std::string& line, std::vector<int>& ids) {
    if (line == "line 12345") throw std::runtime_error("cannot encode line 12345");
    byte_ids(line, ids);
  };
  try {
    encode_lines(source, failing, opts);
    FAIL() << "expected the worker's error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "cannot encode line 12345");
  }
}

// ---------------------------------------------------------------- data fingerprint

TEST(DataFingerprint, IdentifiesShardsByHeaderChecksumAndRoundTripsThroughYaml) {
  TempDir dir;
  write_shard(dir.file("train.bin"), random_tokens(500, 300, 1), 300);
  write_shard(dir.file("val.bin"), random_tokens(100, 300, 2), 300);
  std::ofstream(dir.file("tok.model")) << "pieces";
  const DataFingerprint f =
      fingerprint_data(ShardReader(dir.file("train.bin")), ShardReader(dir.file("val.bin")),
                       dir.file("tok.model"), 64);
  ASSERT_EQ(f.shards.size(), 2u);
  const auto payload = random_tokens(500, 300, 1);
  std::vector<uint16_t> narrow(payload.begin(), payload.end());
  EXPECT_EQ(f.shards[0].checksum, fnv1a64(narrow.data(), narrow.size() * 2));
  EXPECT_EQ(f.shards[0].tokens, 500u);
  EXPECT_EQ(f.shards[0].bytes, 64u + 1000u);
  EXPECT_EQ(f.shards[0].vocab_size, 300u);
  EXPECT_EQ(f.tokenizer_hash, hex64(fnv1a64("pieces", 6)));
  const DataFingerprint back = fingerprint_from_yaml(fingerprint_to_yaml(f), "test");
  EXPECT_EQ(fingerprint_to_yaml(back), fingerprint_to_yaml(f));
  const auto same = compare_fingerprints(f, back);
  EXPECT_TRUE(same.changes.empty());
  EXPECT_TRUE(same.notes.empty());
  EXPECT_THROW(fingerprint_from_yaml("shards: 3", "ckpt.pt"), std::runtime_error);
}

TEST(DataFingerprint, NamesWhatChangedAndTellsAMoveFromAChange) {
  DataFingerprint saved;
  saved.shards = {{"train", "a/train.bin", 1064, 500, 300, 0x1111},
                  {"val", "a/val.bin", 264, 100, 300, 0x2222}};
  saved.tokenizer_path = "a/tok.model";
  saved.tokenizer_hash = "00000000000000aa";
  saved.seq_len = 64;

  DataFingerprint moved = saved;  // same tokens at another path: a note, not a change
  moved.shards[0].path = "b/train.bin";
  auto cmp = compare_fingerprints(saved, moved);
  EXPECT_TRUE(cmp.changes.empty());
  ASSERT_EQ(cmp.notes.size(), 1u);
  EXPECT_NE(cmp.notes[0].find("b/train.bin"), std::string::npos) << cmp.notes[0];

  DataFingerprint other = saved;
  other.shards[0].checksum = 0x3333;
  other.shards[0].tokens = 400;
  other.tokenizer_hash = "00000000000000bb";
  other.seq_len = 32;
  cmp = compare_fingerprints(saved, other);
  ASSERT_EQ(cmp.changes.size(), 3u);
  EXPECT_NE(cmp.changes[0].find("train shard a/train.bin: checksum 0000000000001111 -> "
                                "0000000000003333, tokens 500 -> 400"),
            std::string::npos)
      << cmp.changes[0];
  EXPECT_NE(cmp.changes[1].find("tokenizer a/tok.model: hash 00000000000000aa -> 00000000000000bb"),
            std::string::npos)
      << cmp.changes[1];
  EXPECT_NE(cmp.changes[2].find("train.seq_len 64 -> 32"), std::string::npos) << cmp.changes[2];

  DataFingerprint no_tokenizer = saved;  // training does not read it: noted only
  no_tokenizer.tokenizer_hash = "";
  cmp = compare_fingerprints(saved, no_tokenizer);
  EXPECT_TRUE(cmp.changes.empty());
  EXPECT_EQ(cmp.notes.size(), 1u);
}

TEST(DataLoader, ShapesAndDtype) {
  TempDir dir;
  write_shard(dir.file("s.bin"), random_tokens(2000, 300, 10), 300);
  const TokenWindowLoader loader(dir.file("s.bin"), 16, 4, 42);
  const Batch b = loader.batch_at(0);
  EXPECT_EQ(b.inputs.sizes(), (at::IntArrayRef{4, 16}));
  EXPECT_EQ(b.targets.sizes(), (at::IntArrayRef{4, 16}));
  EXPECT_EQ(b.inputs.scalar_type(), at::kLong);
  EXPECT_EQ(b.targets.scalar_type(), at::kLong);
}

TEST(DataLoader, BatchesArePureFunctionsOfSeedStepMicroStep) {
  TempDir dir;
  write_shard(dir.file("s.bin"), random_tokens(5000, 300, 11), 300);
  const TokenWindowLoader a(dir.file("s.bin"), 32, 8, 42);
  const TokenWindowLoader b(dir.file("s.bin"), 32, 8, 42);  // a "resumed" loader
  const TokenWindowLoader other_seed(dir.file("s.bin"), 32, 8, 43);
  for (int64_t step : {0, 1, 7, 1000}) {
    EXPECT_TRUE(at::equal(a.batch_at(step).inputs, a.batch_at(step).inputs));
    EXPECT_TRUE(at::equal(a.batch_at(step, 1).inputs, b.batch_at(step, 1).inputs));
    EXPECT_FALSE(at::equal(a.batch_at(step).inputs, a.batch_at(step + 1).inputs));
    EXPECT_FALSE(at::equal(a.batch_at(step, 0).inputs, a.batch_at(step, 1).inputs));
    EXPECT_FALSE(at::equal(a.batch_at(step).inputs, other_seed.batch_at(step).inputs));
  }
}

TEST(DataLoader, TargetsAreInputsShiftedByOneInTheRawShard) {
  TempDir dir;
  const auto tokens = random_tokens(3000, 300, 12);
  write_shard(dir.file("s.bin"), tokens, 300);
  const int64_t T = 24;
  const TokenWindowLoader loader(dir.file("s.bin"), T, 6, 7);
  for (int64_t step = 0; step < 5; ++step) {
    const Batch batch = loader.batch_at(step);
    const auto offsets = loader.window_offsets(step);
    ASSERT_EQ(offsets.size(), 6u);
    for (int64_t b = 0; b < 6; ++b) {
      ASSERT_GE(offsets[b], 0);
      ASSERT_LE(offsets[b] + T + 1, static_cast<int64_t>(tokens.size()));
      for (int64_t t = 0; t < T; ++t) {
        ASSERT_EQ(batch.inputs[b][t].item<int64_t>(), tokens[offsets[b] + t]);
        ASSERT_EQ(batch.targets[b][t].item<int64_t>(), tokens[offsets[b] + t + 1]);
      }
    }
  }
}

TEST(DataMixture, OneShardGivesThePlainLoadersBatches) {
  TempDir dir;
  write_shard(dir.file("s.bin"), random_tokens(5000, 300, 4), 300);
  const TokenWindowLoader plain(dir.file("s.bin"), 16, 8, 77, 1, 3);
  const MixtureLoader mix({dir.file("s.bin")}, {}, 16, 8, 77, 1, 3);
  for (int64_t step = 0; step < 50; ++step)
    for (int64_t micro = 0; micro < 2; ++micro) {
      ASSERT_TRUE(plain.batch_at(step, micro).inputs.equal(mix.batch_at(step, micro).inputs));
      for (const auto& [k, offset] : mix.windows(step, micro)) EXPECT_EQ(k, 0u);
    }
}

TEST(DataMixture, DrawsShardsInProportionAsAPureFunctionWithinEachRanksSlice) {
  TempDir dir;
  // Shard i holds ids [1000 i, 1000 i + 1000): a row's tokens say where it came from.
  for (uint32_t i = 0; i < 3; ++i) {
    std::vector<uint32_t> t(1000);
    for (uint32_t k = 0; k < 1000; ++k) t[k] = 1000 * i + k;
    write_shard(dir.file("s" + std::to_string(i) + ".bin"), t, 3000);
  }
  const std::vector<std::string> paths = {dir.file("s0.bin"), dir.file("s1.bin"),
                                          dir.file("s2.bin")};
  const std::vector<double> weights = {7, 2, 1};  // normalized: 0.7, 0.2, 0.1
  for (int64_t rank : {0, 1}) {
    const MixtureLoader mix(paths, weights, 8, 16, 5, rank, 2);
    EXPECT_DOUBLE_EQ(mix.weight(0), 0.7);
    std::vector<int64_t> counts(3, 0);
    const int64_t steps = 1000;
    for (int64_t step = 0; step < steps; ++step) {
      const Batch b = mix.batch_at(step);
      const auto w = mix.windows(step);
      for (int64_t r = 0; r < 16; ++r) {
        const int64_t first = b.inputs[r][0].item<int64_t>(),
                      last = b.targets[r][7].item<int64_t>();
        const auto k = static_cast<size_t>(first / 1000);
        ASSERT_EQ(k, w[r].first);
        ASSERT_EQ(last / 1000, first / 1000) << "a window crossed shards";
        // Rank r reads only its half of each shard.
        ASSERT_GE(first % 1000, 500 * rank);
        ASSERT_LT(last % 1000, 500 * (rank + 1));
        ++counts[k];
      }
    }
    const double rows = 16.0 * steps;
    EXPECT_NEAR(counts[0] / rows, 0.7, 0.015) << "rank " << rank;  // 4 sigma at 16000 rows
    EXPECT_NEAR(counts[1] / rows, 0.2, 0.015) << "rank " << rank;
    EXPECT_NEAR(counts[2] / rows, 0.1, 0.015) << "rank " << rank;
    // A pure function of (seed, step, micro, rank): what a resume relies on.
    const MixtureLoader again(paths, weights, 8, 16, 5, rank, 2);
    EXPECT_TRUE(again.batch_at(123, 1).inputs.equal(mix.batch_at(123, 1).inputs));
  }
  EXPECT_THROW(MixtureLoader(paths, {1, 2}, 8, 16, 5), DataError);
  EXPECT_THROW(MixtureLoader(paths, {1, 0, 1}, 8, 16, 5), DataError);
  write_shard(dir.file("other.bin"), random_tokens(1000, 50, 1), 50);
  try {
    MixtureLoader({paths[0], dir.file("other.bin")}, {}, 8, 16, 5);
    FAIL() << "expected shards of two tokenizers to be refused";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("different tokenizers"), std::string::npos) << e.what();
  }
}

#ifdef SCALEVEC_WITH_SIMDJSON
TEST(DataMixture, AManifestEntryIsItsShardsWeightedByTokens) {
  TempDir dir;
  fs::create_directories(dir.path() / "ds" / "shards");
  Manifest m;
  m.vocab_size = 50;
  m.total_inputs = 3;
  const uint64_t sizes[] = {3000, 1000, 5};  // the last is too small for a window
  for (int i = 0; i < 3; ++i) {
    InputRecord r;
    r.index = i;
    r.input = "in" + std::to_string(i);
    r.train = {{"shards/t" + std::to_string(i) + ".bin", sizes[i], 0}};
    r.val = {"shards/v" + std::to_string(i) + ".bin", sizes[i] / 10, 0};
    write_shard(dir.file("ds/" + r.train[0].file), random_tokens(sizes[i], 50, i), 50);
    write_shard(dir.file("ds/" + r.val.file), random_tokens(sizes[i] / 10, 50, i), 50);
    m.inputs.push_back(r);
  }
  write_text_atomically(dir.file("ds/manifest.json"), to_json(m));
  const auto train = resolve_data_entry(dir.file("ds/manifest.json"), false, 16, 2);
  ASSERT_EQ(train.size(), 2u);
  EXPECT_EQ(train[0].path, dir.file("ds/shards/t0.bin"));
  EXPECT_DOUBLE_EQ(train[0].weight, 0.75);
  EXPECT_DOUBLE_EQ(train[1].weight, 0.25);
  const auto val = resolve_data_entry(dir.file("ds/manifest.json"), true, 16, 2);
  ASSERT_EQ(val.size(), 2u);  // 300 and 100 tokens; 0 left out
  EXPECT_EQ(resolve_data_entry(dir.file("ds/shards/t0.bin"), false, 16, 2).size(), 1u);
  EXPECT_THROW(resolve_data_entry(dir.file("ds/manifest.json"), true, 200, 2), DataError);
}
#endif

TEST(DataLoader, RankSlicesAreDisjoint) {
  TempDir dir;
  const int64_t n = 1000, T = 8;
  write_shard(dir.file("s.bin"), iota_tokens(n), n);  // token value == position
  const TokenWindowLoader r0(dir.file("s.bin"), T, 4, 5, 0, 2);
  const TokenWindowLoader r1(dir.file("s.bin"), T, 4, 5, 1, 2);
  EXPECT_EQ(r0.slice_begin(), 0);
  EXPECT_EQ(r0.slice_end(), 500);
  EXPECT_EQ(r1.slice_begin(), 500);
  EXPECT_EQ(r1.slice_end(), 1000);
  for (int64_t step = 0; step < 200; ++step) {
    const Batch a = r0.batch_at(step), b = r1.batch_at(step);
    ASSERT_LT(a.targets.max().item<int64_t>(), 500) << "rank 0 left its slice at step " << step;
    ASSERT_GE(b.inputs.min().item<int64_t>(), 500) << "rank 1 left its slice at step " << step;
  }
  for (int64_t i = 0; i < 10; ++i) {
    ASSERT_LT(r0.eval_batch(i).targets.max().item<int64_t>(), 500);
    ASSERT_GE(r1.eval_batch(i).inputs.min().item<int64_t>(), 500);
  }
}

TEST(DataLoader, TooShortShardOrSliceIsAnError) {
  TempDir dir;
  write_shard(dir.file("s.bin"), iota_tokens(16), 16);
  EXPECT_NO_THROW(TokenWindowLoader(dir.file("s.bin"), 15, 1, 0));  // exactly seq_len + 1
  try {
    TokenWindowLoader(dir.file("s.bin"), 16, 1, 0);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("seq_len + 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir.file("s.bin")), std::string::npos) << e.what();
  }
  EXPECT_THROW(TokenWindowLoader(dir.file("s.bin"), 8, 1, 0, 1, 2), DataError);  // 8-token slice
  EXPECT_THROW(TokenWindowLoader(dir.file("s.bin"), 4, 1, 0, 2, 2), DataError);  // bad rank
}

TEST(DataLoader, EvalBatchesAreFixedStrideWindows) {
  TempDir dir;
  const int64_t n = 1000, T = 10, B = 4;
  write_shard(dir.file("s.bin"), iota_tokens(n), n);
  const TokenWindowLoader loader(dir.file("s.bin"), T, B, 99);
  EXPECT_EQ(loader.eval_batches_available(), (n - 1) / T / B);
  const Batch first = loader.eval_batch(0);
  EXPECT_TRUE(at::equal(first.inputs, loader.eval_batch(0).inputs));
  EXPECT_FALSE(at::equal(first.inputs, loader.eval_batch(1).inputs));
  const Batch b = loader.eval_batch(2);
  for (int64_t r = 0; r < B; ++r) {
    const int64_t start = (2 * B + r) * T;
    EXPECT_EQ(b.inputs[r][0].item<int64_t>(), start);
    EXPECT_EQ(b.targets[r][T - 1].item<int64_t>(), start + T);
  }
}

// ---------------------------------------------------------------- entropy, processes

TEST(DataEntropy, MatchesClosedForm) {
  TempDir dir;
  write_shard(dir.file("two.bin"), std::vector<uint32_t>{0, 1, 0, 1, 1, 0}, 10);
  EXPECT_NEAR(unigram_entropy_nats(ShardReader(dir.file("two.bin"))), std::log(2.0), 1e-12);
  write_shard(dir.file("one.bin"), std::vector<uint32_t>{3, 3, 3}, 10);
  EXPECT_NEAR(unigram_entropy_nats(ShardReader(dir.file("one.bin"))), 0.0, 1e-12);
  write_shard(dir.file("skew.bin"), std::vector<uint32_t>{0, 0, 0, 1}, 10);
  const double p = 0.75, q = 0.25;
  EXPECT_NEAR(unigram_entropy_nats(ShardReader(dir.file("skew.bin"))),
              -(p * std::log(p) + q * std::log(q)), 1e-12);
}

TEST(DataProcess, ExitCodesOutputAndMissingPrograms) {
  EXPECT_EQ(run_process({"/bin/sh", "-c", "exit 3"}), 3);
  EXPECT_EQ(run_process({"true"}), 0);  // PATH lookup
  try {
    run_process_checked({"/bin/sh", "-c", "exit 4"});
    FAIL() << "expected ProcessError";
  } catch (const ProcessError& e) {
    EXPECT_NE(std::string(e.what()).find("exit code 4"), std::string::npos) << e.what();
  }
  try {
    run_process({"/nonexistent/scalevec-tool"});
    FAIL() << "expected ProcessError";
  } catch (const ProcessError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/scalevec-tool"), std::string::npos);
  }
  EXPECT_THROW(run_process_checked({"scalevec-no-such-program-xyz"}), ProcessError);
  const ProcessResult r = run_process_capture({"/bin/echo", "hello world"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "hello world\n");
}

// ---------------------------------------------------------------- tokenizer tool

const std::string kTool = SCALEVEC_TOKENIZER_BINARY;

// Deterministic toy corpus; every 7th line has non-ASCII text to exercise byte fallback.
std::vector<std::string> toy_lines(int n) {
  const std::vector<std::string> words = {"the",   "lord",   "said",  "unto",  "moses", "and",
                                          "aaron", "behold", "light", "upon",  "earth", "for",
                                          "ever",  "amen",   "thou",  "shalt", "not",   "42"};
  std::mt19937 rng(17);
  std::vector<std::string> lines;
  for (int i = 0; i < n; ++i) {
    std::string line = "L" + std::to_string(i) + ":";
    const int len = 4 + static_cast<int>(rng() % 10);
    for (int w = 0; w < len; ++w) line += " " + words[rng() % words.size()];
    line += i % 7 == 0 ? ", naïve café — ☃!" : ".";
    lines.push_back(line);
  }
  return lines;
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const auto& l : lines) out << l << "\n";
}

std::string decode_ids(const std::string& model, const std::vector<uint32_t>& ids) {
  std::string words;
  for (uint32_t id : ids) words += std::to_string(id) + " ";
  const ProcessResult r = run_process_capture({kTool, "decode", "--model", model, "--ids", words});
  EXPECT_EQ(r.exit_code, 0);
  std::string text = r.output;
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

// Splits a shard at EOS into the token ids of each line.
std::vector<std::vector<uint32_t>> split_lines(const ShardReader& shard, uint32_t eos) {
  std::vector<std::vector<uint32_t>> lines(1);
  for (uint64_t i = 0; i < shard.count(); ++i) {
    if (shard.token(i) == eos)
      lines.emplace_back();
    else
      lines.back().push_back(shard.token(i));
  }
  EXPECT_TRUE(lines.back().empty()) << "shard must end with EOS";
  lines.pop_back();
  return lines;
}

// encode --out: an array job's partitions merged equal one run byte for byte (manifest and
// shards), whatever the workers; a rerun skips finished inputs and redoes a changed one; a
// missing partition is refused by merge.
TEST(TokenizerDataset, PartitionsMergedEqualOneRunAndRerunsSkipDoneInputs) {
#ifndef SCALEVEC_WITH_SIMDJSON
  GTEST_SKIP() << "built without simdjson: manifests cannot be read back";
#endif
  TempDir dir;
  const auto lines = toy_lines(800);
  run_process_checked({kTool, "train", "--input",
                       [&] {
                         write_lines(dir.file("all.txt"), lines);
                         return dir.file("all.txt");
                       }(),
                       "--model-prefix", dir.file("tok"), "--vocab-size", "300"});
  fs::create_directories(dir.path() / "in" / "sub");
  for (int part = 0; part < 5; ++part) {
    const std::vector<std::string> chunk(lines.begin() + part * 160,
                                         lines.begin() + (part + 1) * 160);
    write_lines(
        (dir.path() / "in" / (part < 3 ? "" : "sub") / ("p" + std::to_string(part) + ".txt"))
            .string(),
        chunk);
  }
  const std::string model = dir.file("tok.model"), in = dir.file("in");
  auto encode = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> argv = {kTool,
                                     "encode",
                                     "--model",
                                     model,
                                     "--input",
                                     in,
                                     "--out",
                                     out,
                                     "--block-lines",
                                     "8",
                                     "--val-fraction",
                                     "0.1",
                                     "--max-shard-tokens",
                                     "700"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const ProcessResult r = run_process_capture(argv);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
  };
  encode(dir.file("one"), {"--workers", "2"});
  for (int i = 0; i < 3; ++i)
    encode(dir.file("three"),
           {"--workers", "1", "--shard-index", std::to_string(i), "--num-shards", "3"});
  // Two of three partitions are not a dataset.
  EXPECT_NE(
      run_process_capture({kTool, "merge", "--input", dir.file("three/manifest-0-of-3.json"),
                           dir.file("three/manifest-2-of-3.json"), "--out", dir.file("x.json")})
          .exit_code,
      0);
  ASSERT_EQ(run_process_capture({kTool, "merge", "--input", dir.file("three/manifest-0-of-3.json"),
                                 dir.file("three/manifest-1-of-3.json"),
                                 dir.file("three/manifest-2-of-3.json"), "--out",
                                 dir.file("three/manifest.json")})
                .exit_code,
            0);
  const Manifest one = manifest_from_json(read_text_file(dir.file("one/manifest.json")), "one");
  EXPECT_EQ(read_text_file(dir.file("one/manifest.json")),
            read_text_file(dir.file("three/manifest.json")));
  ASSERT_EQ(one.inputs.size(), 5u);
  EXPECT_EQ(one.total_inputs, 5);
  uint64_t tokens = 0;
  for (const auto& r : one.inputs) {
    std::vector<const ManifestShard*> shards = {&r.val};
    for (const auto& t : r.train) shards.push_back(&t);
    for (const auto* s : shards) {
      EXPECT_EQ(read_text_file(dir.file("one/" + s->file)),
                read_text_file(dir.file("three/" + s->file)));
      const ShardReader shard(dir.file("one/" + s->file));
      EXPECT_EQ(shard.checksum(), s->checksum);
      tokens += shard.count();
    }
  }
  EXPECT_EQ(tokens, one.train_tokens() + one.val_tokens());
  size_t most = 0;  // train shards roll over at --max-shard-tokens
  for (const auto& r : one.inputs) {
    most = std::max(most, r.train.size());
    for (const auto& t : r.train) EXPECT_LE(t.tokens, 700u);
  }
  EXPECT_GE(most, 2u);
  EXPECT_GT(one.val_tokens(), 0u);
  // Rerun: everything is done; then one input changes and only it is encoded again.
  EXPECT_NE(encode(dir.file("one"), {}).find("skipped_done=5"), std::string::npos);
  write_lines((dir.path() / "in" / "p1.txt").string(), {"a changed input"});
  EXPECT_NE(encode(dir.file("one"), {}).find("skipped_done=4"), std::string::npos);
  const Manifest again = manifest_from_json(read_text_file(dir.file("one/manifest.json")), "again");
  EXPECT_LT(again.train_tokens() + again.val_tokens(), one.train_tokens() + one.val_tokens());
  // Another tokenizer at the same path: nothing encoded by the old one is reused.
  run_process_checked({kTool, "train", "--input", dir.file("all.txt"), "--model-prefix",
                       dir.file("tok"), "--vocab-size", "400"});
  EXPECT_NE(encode(dir.file("one"), {}).find("skipped_done=0"), std::string::npos);
}

TEST(Tokenizer, TrainEncodeDecodeRoundTrip) {
  TempDir dir;
  const auto lines = toy_lines(300);
  write_lines(dir.file("toy.txt"), lines);
  run_process_checked({kTool, "train", "--input", dir.file("toy.txt"), "--model-prefix",
                       dir.file("tok"), "--vocab-size", "300", "--type", "bpe"});
  ASSERT_TRUE(fs::exists(dir.file("tok.model")));
  // Blocks of 10 lines, fraction 0.1: blocks 9, 19 and 29 (lines 90-99, 190-199, 290-299) are val.
  run_process_checked({kTool, "encode", "--model", dir.file("tok.model"), "--input",
                       dir.file("toy.txt"), "--train-out", dir.file("train.bin"), "--val-out",
                       dir.file("val.bin"), "--val-fraction", "0.1", "--block-lines", "10"});
  const ShardReader train(dir.file("train.bin"));
  const ShardReader val(dir.file("val.bin"));
  EXPECT_LE(train.vocab_size(), 300u);
  EXPECT_EQ(train.vocab_size(), val.vocab_size());
  const uint32_t eos = 2;  // fixed by the tool's training flags
  const auto train_lines = split_lines(train, eos);
  const auto val_lines = split_lines(val, eos);
  ASSERT_EQ(train_lines.size(), 270u);
  ASSERT_EQ(val_lines.size(), 30u);
  const std::string model = dir.file("tok.model");
  EXPECT_EQ(decode_ids(model, train_lines[0]), lines[0]);  // has non-ASCII text
  EXPECT_EQ(decode_ids(model, train_lines[1]), lines[1]);
  EXPECT_EQ(decode_ids(model, train_lines[90]), lines[100]);  // first line after a val block
  EXPECT_EQ(decode_ids(model, train_lines.back()), lines[289]);
  EXPECT_EQ(decode_ids(model, val_lines[0]), lines[90]);
  EXPECT_EQ(decode_ids(model, val_lines[10]), lines[190]);
  EXPECT_EQ(decode_ids(model, val_lines.back()), lines[299]);
}

TEST(Tokenizer, TrainingIsDeterministicAndReadsGzip) {
  TempDir dir;
  write_lines(dir.file("toy.txt"), toy_lines(200));
  ASSERT_EQ(run_process({"/bin/sh", "-c",
                         "gzip -c " + dir.file("toy.txt") + " > " + dir.file("toy.txt.gz")}),
            0);
  for (const std::string& name : {"toy.txt", "toy.txt.gz"})
    run_process_checked({kTool, "train", "--input", dir.file(name), "--model-prefix",
                         dir.file(name + ".tok"), "--vocab-size", "320", "--type", "unigram"});
  auto slurp = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  // The .model embeds its own path, so compare the pieces and scores (.vocab) instead.
  const std::string a = slurp(dir.file("toy.txt.tok.vocab"));
  EXPECT_NE(a.find("\xe2\x96\x81lord"), std::string::npos);
  EXPECT_TRUE(a == slurp(dir.file("toy.txt.gz.tok.vocab")))
      << "txt and gz inputs trained differently";
}

TEST(Tokenizer, HelpAndUsageErrors) {
  const ProcessResult help = run_process_capture({kTool, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("encode"), std::string::npos);
  EXPECT_EQ(run_process({kTool, "frobnicate"}), 2);
  EXPECT_EQ(run_process({kTool, "train", "--model-prefix", "x"}), 2);  // no --input
  EXPECT_EQ(run_process({kTool, "encode", "--model", "/nonexistent.model", "--input", "/x",
                         "--train-out", "/tmp/t", "--val-out", "/tmp/v"}),
            1);
}

// ---------------------------------------------------------------- prepare_data

TEST(DataPrepare, TrainsEncodesThenReusesTokenizer) {
  TempDir dir;
  write_lines(dir.file("corpus.txt"), toy_lines(400));
  Config config;
  config.model.vocab_size = 300;
  config.data.corpus = {dir.file("corpus.txt")};
  config.data.out_dir = dir.file("out");
  config.data.tokenizer = dir.file("out/tokenizer.model");
  config.data.train_shard = dir.file("out/train.bin");
  config.data.val_shard = dir.file("out/val.bin");
  config.data.val_fraction = 0.25;
  prepare_data(config);
  const ShardReader train(config.data.train_shard);
  const ShardReader val(config.data.val_shard);
  EXPECT_GT(train.count(), 0u);
  EXPECT_GT(val.count(), 0u);
  EXPECT_LE(train.vocab_size(), 300u);
  EXPECT_GT(unigram_entropy_nats(train), 1.0);
  EXPECT_NO_THROW(TokenWindowLoader(config.data.train_shard, 32, 2, 1).batch_at(0));

  const auto stamp = fs::last_write_time(config.data.tokenizer);
  prepare_data(config);  // reuses the tokenizer
  EXPECT_EQ(fs::last_write_time(config.data.tokenizer), stamp);

  config.model.vocab_size = 260;  // reused tokenizer is larger than the model's vocab
  EXPECT_THROW(prepare_data(config), DataError);
  config.data.corpus = {dir.file("missing.txt")};
  EXPECT_THROW(prepare_data(config), DataError);
}

}  // namespace
}  // namespace scalevec
