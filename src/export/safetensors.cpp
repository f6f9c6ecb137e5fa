#include "scalevec/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "scalevec/json.h"
#include "scalevec/manifest.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this writer copies host bytes");

namespace scalevec {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

struct DtypeName {
  at::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {
    {at::kDouble, "F64"}, {at::kFloat, "F32"}, {at::kHalf, "F16"},  {at::kBFloat16, "BF16"},
    {at::kLong, "I64"},   {at::kInt, "I32"},   {at::kShort, "I16"}, {at::kChar, "I8"},
    {at::kByte, "U8"},    {at::kBool, "BOOL"},
};

struct Entry {
  std::string name;
  at::ScalarType type;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

std::vector<Entry> parse_entries(const std::string& json, uint64_t data_bytes,
                                 const std::string& origin,
                                 std::map<std::string, std::string>& metadata) {
  const YAML::Node root = parse_json_object(json, origin + " header", 4);
  std::vector<Entry> entries;
  std::set<std::string> seen;
  for (const auto& item : root) {
    if (!item.first.IsScalar()) throw SafetensorsError(origin + ": header keys must be strings");
    const std::string name = item.first.Scalar();
    const std::string where = origin + ": tensor \"" + name + "\"";
    if (!seen.insert(name).second)
      throw SafetensorsError(origin + ": tensor \"" + name + "\" twice");
    const YAML::Node& v = item.second;
    if (name == "__metadata__") {
      if (!v.IsMap()) throw SafetensorsError(origin + ": __metadata__ must be an object");
      for (const auto& m : v) {
        if (!m.second.IsScalar())
          throw SafetensorsError(origin + ": __metadata__ values must be strings");
        if (!m.first.IsScalar())
          throw SafetensorsError(origin + ": __metadata__ keys must be strings");
        metadata[m.first.Scalar()] = m.second.Scalar();
      }
      continue;
    }
    if (!v.IsMap()) throw SafetensorsError(where + " must be an object");
    Entry e;
    e.name = name;
    const std::string dtype = json_string_at(v, "dtype", where);
    const auto* d = std::find_if(std::begin(kDtypes), std::end(kDtypes),
                                 [&](const DtypeName& x) { return dtype == x.name; });
    if (d == std::end(kDtypes)) throw SafetensorsError(where + ": unsupported dtype " + dtype);
    e.type = d->type;
    const YAML::Node shape = v["shape"], offsets = v["data_offsets"];
    if (!shape || !shape.IsSequence()) throw SafetensorsError(where + ": shape must be a list");
    if (!offsets || !offsets.IsSequence() || offsets.size() != 2)
      throw SafetensorsError(where + ": data_offsets must be [begin, end]");
    uint64_t numel = 1;
    for (const auto& dim : shape) {
      const uint64_t n = json_uint(dim, where + " shape entry");
      if (n > (1ull << 48) || (n > 0 && numel > (1ull << 48) / n))
        throw SafetensorsError(where + ": shape too large");
      numel *= n;
      e.shape.push_back(static_cast<int64_t>(n));
    }
    e.begin = json_uint(offsets[0], where + " data_offsets[0]");
    e.end = json_uint(offsets[1], where + " data_offsets[1]");
    const uint64_t bytes = numel * at::elementSize(e.type);
    if (e.end < e.begin || e.end - e.begin != bytes)
      throw SafetensorsError(where + ": data_offsets [" + std::to_string(e.begin) + ", " +
                             std::to_string(e.end) + "] hold " +
                             std::to_string(e.end - std::min(e.begin, e.end)) +
                             " bytes but dtype and shape need " + std::to_string(bytes));
    if (e.end > data_bytes)
      throw SafetensorsError(where + ": data_offsets end " + std::to_string(e.end) +
                             " past the data section (" + std::to_string(data_bytes) +
                             " bytes): the file is truncated");
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const auto& e : entries) {
    if (e.begin != cursor)
      throw SafetensorsError(origin + ": tensor \"" + e.name + "\" starts at byte " +
                             std::to_string(e.begin) + " but the previous one ends at " +
                             std::to_string(cursor) + " (overlap or gap)");
    cursor = e.end;
  }
  if (cursor != data_bytes)
    throw SafetensorsError(origin + ": the tensors cover " + std::to_string(cursor) +
                           " bytes of a " + std::to_string(data_bytes) + "-byte data section");
  return entries;
}

std::vector<Entry> parse_header(const std::string& json, uint64_t data_bytes,
                                const std::string& origin,
                                std::map<std::string, std::string>& metadata) {
  try {
    return parse_entries(json, data_bytes, origin, metadata);
  } catch (const JsonError& e) {
    throw SafetensorsError(e.what());
  } catch (const YAML::Exception& e) {  // a conversion yaml-cpp refuses
    throw SafetensorsError(origin + ": malformed header: " + e.what());
  }
}

// Reads the 8-byte length and the header; returns the data section's offset.
uint64_t split_header(const char* head8, uint64_t total, const std::string& origin) {
  if (total < 8)
    throw SafetensorsError(origin + ": " + std::to_string(total) +
                           " bytes is too short for a safetensors file");
  uint64_t n = 0;
  std::memcpy(&n, head8, 8);
  if (n > kMaxHeaderBytes || n > total - 8)
    throw SafetensorsError(origin + ": header length " + std::to_string(n) + " exceeds " +
                           (n > kMaxHeaderBytes ? "the 100 MB limit" : "the file size"));
  return 8 + n;
}

std::string header_json(const NamedTensors& tensors,
                        const std::map<std::string, std::string>& metadata,
                        std::vector<at::Tensor>& cpu) {
  std::string json = "{";
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      json += (first ? "" : ",") + json_quote(k) + ":" + json_quote(v);
      first = false;
    }
    json += "}";
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__" || !names.insert(name).second)
      throw SafetensorsError("safetensors: tensor name '" + name + "' is empty, reserved or twice");
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = t.numel() * t.element_size();
    json += (json.size() > 1 ? "," : "") + json_quote(name) + ":{\"dtype\":\"" +
            safetensors_dtype(t.scalar_type()) + "\",\"shape\":[";
    for (int64_t d = 0; d < t.dim(); ++d) json += (d ? "," : "") + std::to_string(t.size(d));
    json += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) +
            "]}";
    offset += bytes;
    cpu.push_back(std::move(t));
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');  // aligns the data section to 8 bytes
  return json;
}

bool write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

uint64_t tensor_bytes(const at::Tensor& t) {
  return static_cast<uint64_t>(t.numel()) * t.element_size();
}

}  // namespace

const char* safetensors_dtype(at::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.type == type) return d.name;
  throw SafetensorsError(std::string("safetensors has no dtype for ") + at::toString(type));
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> cpu;
  const std::string json = header_json(tensors, metadata, cpu);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw SafetensorsError("cannot create " + tmp + ": " + std::strerror(errno));
  const uint64_t n = json.size();
  bool ok = write_all(fd, &n, 8) && write_all(fd, json.data(), json.size());
  uint64_t total = 8 + n;
  for (const auto& t : cpu) {
    ok = ok && write_all(fd, t.data_ptr(), tensor_bytes(t));
    total += tensor_bytes(t);
  }
  int error = ok ? 0 : (errno ? errno : EIO);
  if (!error && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && !error) error = errno;
  if (error) {
    std::remove(tmp.c_str());
    throw SafetensorsError("cannot write " + path + " (" + std::to_string(total >> 20) +
                           " MiB): " + std::strerror(error));
  }
  fs::rename(tmp, path);
}

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& origin) {
  const uint64_t data_at = split_header(bytes.data(), bytes.size(), origin);
  SafetensorsFile out;
  const auto entries =
      parse_header(bytes.substr(8, data_at - 8), bytes.size() - data_at, origin, out.metadata);
  for (const auto& e : entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.type));
    std::memcpy(t.data_ptr(), bytes.data() + data_at + e.begin, e.end - e.begin);
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SafetensorsError("cannot open " + path);
  std::error_code ec;
  const uint64_t total = fs::file_size(path, ec);
  if (ec) throw SafetensorsError("cannot stat " + path + ": " + ec.message());
  char head[8] = {};
  in.read(head, std::min<uint64_t>(8, total));
  const uint64_t data_at = split_header(head, total, path);
  std::string json(data_at - 8, '\0');
  in.read(json.data(), static_cast<std::streamsize>(json.size()));
  if (!in) throw SafetensorsError("cannot read the header of " + path);
  SafetensorsFile out;
  const auto entries = parse_header(json, total - data_at, path, out.metadata);
  for (const auto& e : entries) {  // sorted by offset: one sequential pass over the file
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.type));
    in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(e.end - e.begin));
    if (!in) throw SafetensorsError("cannot read tensor \"" + e.name + "\" of " + path);
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

std::vector<std::string> write_safetensors_folder(
    const std::string& dir, const NamedTensors& tensors, uint64_t max_shard_bytes,
    const std::map<std::string, std::string>& metadata) {
  fs::create_directories(dir);
  std::vector<NamedTensors> shards(1);
  uint64_t current = 0, total = 0;
  for (const auto& nt : tensors) {
    const uint64_t b = tensor_bytes(nt.second);
    if (current > 0 && current + b > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(nt);
    current += b;
    total += b;
  }
  if (shards.size() == 1) {
    write_safetensors((fs::path(dir) / kSingleName).string(), tensors, metadata);
    return {kSingleName};
  }
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;  // sorted by name, as transformers writes it
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    write_safetensors((fs::path(dir) / name).string(), shards[i], metadata);
    for (const auto& nt : shards[i]) weight_map[nt.first] = name;
    files.push_back(name);
  }
  std::string index = "{\n  \"metadata\": {\n    \"total_size\": " + std::to_string(total) +
                      "\n  },\n  \"weight_map\": {";
  bool first = true;
  for (const auto& [name, file] : weight_map) {
    index += std::string(first ? "" : ",") + "\n    " + json_quote(name) + ": " + json_quote(file);
    first = false;
  }
  index += "\n  }\n}\n";
  write_text_atomically((fs::path(dir) / kIndexName).string(), index);
  files.push_back(kIndexName);
  return files;
}

NamedTensors read_safetensors_folder(const std::string& dir) {
  const fs::path index_path = fs::path(dir) / kIndexName;
  if (!fs::exists(index_path)) {
    const fs::path single = fs::path(dir) / kSingleName;
    if (!fs::exists(single))
      throw SafetensorsError(dir + " holds neither " + kSingleName + " nor " + kIndexName);
    return read_safetensors(single.string()).tensors;
  }
  const std::string origin = index_path.string();
  const YAML::Node index = parse_json_object(read_text_file(origin), origin, 4);
  const YAML::Node map = index["weight_map"];
  if (!map || !map.IsMap()) throw SafetensorsError(origin + ": no \"weight_map\" object");
  std::map<std::string, std::set<std::string>> by_file;
  for (const auto& item : map) {
    if (!item.second.IsScalar())
      throw SafetensorsError(origin + ": weight_map values must be file names");
    const std::string file = item.second.Scalar();
    if (file.find('/') != std::string::npos || file.find("..") != std::string::npos)
      throw SafetensorsError(origin + ": shard name '" + file + "' leaves the folder");
    if (!item.first.IsScalar()) throw SafetensorsError(origin + ": weight_map keys must be names");
    by_file[file].insert(item.first.Scalar());
  }
  NamedTensors out;
  for (const auto& [file, names] : by_file) {
    const std::string path = (fs::path(dir) / file).string();
    if (!fs::exists(path))
      throw SafetensorsError(origin + " names shard " + file + ", which is missing");
    std::set<std::string> found;
    for (auto& nt : read_safetensors(path).tensors) {
      if (!names.count(nt.first))
        throw SafetensorsError(path + " holds tensor \"" + nt.first + "\", which " + origin +
                               " does not list there");
      found.insert(nt.first);
      out.push_back(std::move(nt));
    }
    for (const auto& n : names)
      if (!found.count(n))
        throw SafetensorsError(origin + " lists tensor \"" + n + "\" in " + file +
                               ", which does not hold it");
  }
  return out;
}

uint64_t parse_byte_size(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit = text.substr(i);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::map<std::string, uint64_t> kUnits = {{"", 1},
                                                         {"B", 1},
                                                         {"KB", 1000},
                                                         {"MB", 1000'000},
                                                         {"GB", 1000'000'000},
                                                         {"TB", 1000'000'000'000},
                                                         {"KIB", 1ull << 10},
                                                         {"MIB", 1ull << 20},
                                                         {"GIB", 1ull << 30},
                                                         {"TIB", 1ull << 40}};
  const auto u = kUnits.find(unit);
  if (i == 0 || i > 15 || u == kUnits.end())
    throw SafetensorsError("size '" + text + "' is not a byte count like 5GB, 500MiB or 1000000");
  const uint64_t value = std::stoull(text.substr(0, i)) * u->second;
  if (value == 0) throw SafetensorsError("size '" + text + "' must be > 0");
  return value;
}

}  // namespace scalevec
