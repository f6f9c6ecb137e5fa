#include "scalevec/data_fingerprint.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace scalevec {

std::string hex64(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(value));
  return text;
}

ShardIdentity identify_shard(const std::string& role, const ShardReader& shard, double weight) {
  ShardIdentity id;
  id.weight = weight;
  id.role = role;
  id.path = shard.path();
  id.bytes = shard.file_bytes();
  id.tokens = shard.count();
  id.vocab_size = shard.vocab_size();
  id.checksum = shard.checksum();
  return id;
}

std::string file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  uint64_t hash = fnv1a64(nullptr, 0);
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    hash = fnv1a64(buffer.data(), static_cast<size_t>(in.gcount()), hash);
  }
  return hex64(hash);
}

DataFingerprint fingerprint_data(const ShardReader& train, const ShardReader& val,
                                 const std::string& tokenizer_path, int64_t seq_len) {
  return fingerprint_data({identify_shard("train", train), identify_shard("val", val)},
                          tokenizer_path, seq_len);
}

DataFingerprint fingerprint_data(std::vector<ShardIdentity> shards,
                                 const std::string& tokenizer_path, int64_t seq_len) {
  DataFingerprint f;
  f.shards = std::move(shards);
  f.tokenizer_path = tokenizer_path;
  f.tokenizer_hash = file_hash(tokenizer_path);
  f.seq_len = seq_len;
  return f;
}

std::string fingerprint_to_yaml(const DataFingerprint& f) {
  YAML::Node root;
  for (const auto& s : f.shards) {
    YAML::Node n;
    n["role"] = s.role;
    n["path"] = s.path;
    n["bytes"] = s.bytes;
    n["tokens"] = s.tokens;
    n["vocab_size"] = s.vocab_size;
    n["checksum"] = hex64(s.checksum);
    if (s.weight != 1.0) n["weight"] = s.weight;  // single shards keep the pre-mixture form
    root["shards"].push_back(n);
  }
  root["tokenizer"]["path"] = f.tokenizer_path;
  root["tokenizer"]["hash"] = f.tokenizer_hash;
  root["seq_len"] = f.seq_len;
  YAML::Emitter out;
  out << root;
  return out.c_str();
}

DataFingerprint fingerprint_from_yaml(const std::string& yaml, const std::string& origin) {
  try {
    const YAML::Node root = YAML::Load(yaml);
    DataFingerprint f;
    for (const auto& n : root["shards"]) {
      ShardIdentity s;
      s.role = n["role"].as<std::string>();
      s.path = n["path"].as<std::string>();
      s.bytes = n["bytes"].as<uint64_t>();
      s.tokens = n["tokens"].as<uint64_t>();
      s.vocab_size = n["vocab_size"].as<uint64_t>();
      s.checksum = std::stoull(n["checksum"].as<std::string>(), nullptr, 16);
      s.weight = n["weight"] ? n["weight"].as<double>() : 1.0;
      f.shards.push_back(s);
    }
    f.tokenizer_path = root["tokenizer"]["path"].as<std::string>();
    f.tokenizer_hash = root["tokenizer"]["hash"].as<std::string>();
    f.seq_len = root["seq_len"].as<int64_t>();
    return f;
  } catch (const std::exception& e) {
    throw std::runtime_error(origin + ": unreadable data fingerprint: " + e.what());
  }
}

FingerprintComparison compare_fingerprints(const DataFingerprint& saved,
                                           const DataFingerprint& now) {
  FingerprintComparison out;
  for (const auto& old : saved.shards) {
    const ShardIdentity* cur = nullptr;
    for (const auto& s : now.shards)
      if (s.role == old.role) cur = &s;
    if (!cur) {
      out.changes.push_back(old.role + " shard " + old.path + " is no longer read");
      continue;
    }
    const std::string what = old.role + " shard " + cur->path;
    if (cur->checksum != old.checksum || cur->tokens != old.tokens)
      out.changes.push_back(what + ": checksum " + hex64(old.checksum) + " -> " +
                            hex64(cur->checksum) + ", tokens " + std::to_string(old.tokens) +
                            " -> " + std::to_string(cur->tokens) +
                            (cur->path != old.path ? " (was " + old.path + ")" : ""));
    else if (cur->path != old.path)
      out.notes.push_back(old.role + " shard moved from " + old.path + " to " + cur->path +
                          " (same tokens, checksum " + hex64(cur->checksum) + ")");
    if (std::abs(cur->weight - old.weight) > 1e-12)
      out.changes.push_back(what + ": mixture weight " + std::to_string(old.weight) + " -> " +
                            std::to_string(cur->weight));
    if (cur->vocab_size != old.vocab_size)
      out.changes.push_back(what + ": vocab size " + std::to_string(old.vocab_size) + " -> " +
                            std::to_string(cur->vocab_size));
  }
  for (const auto& s : now.shards) {
    bool known = false;
    for (const auto& old : saved.shards) known = known || old.role == s.role;
    if (!known) out.changes.push_back(s.role + " shard " + s.path + " is read now but was not");
  }
  // A tokenizer file is not read by training: a missing one is noted, another one refused.
  if (!saved.tokenizer_hash.empty() && now.tokenizer_hash.empty())
    out.notes.push_back("tokenizer " + saved.tokenizer_path + " (hash " + saved.tokenizer_hash +
                        ") is not at " + now.tokenizer_path + " any more");
  else if (!saved.tokenizer_hash.empty() && now.tokenizer_hash != saved.tokenizer_hash)
    out.changes.push_back("tokenizer " + now.tokenizer_path + ": hash " + saved.tokenizer_hash +
                          " -> " + now.tokenizer_hash);
  if (saved.seq_len != now.seq_len)
    out.changes.push_back("train.seq_len " + std::to_string(saved.seq_len) + " -> " +
                          std::to_string(now.seq_len) + " (the batches are other windows)");
  return out;
}

}  // namespace scalevec
