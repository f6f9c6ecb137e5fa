#include "state_io.h"

#include <sstream>
#include <stdexcept>

namespace scalevec::state_io {

namespace {
std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}
}  // namespace

std::string key(const std::string& what, size_t index) {
  return what + "_" + std::to_string(index);
}

void write_string(torch::serialize::OutputArchive& ar, const std::string& key,
                  const std::string& v) {
  ar.write(key, c10::IValue(v));
}

void write_int(torch::serialize::OutputArchive& ar, const std::string& key, int64_t v) {
  ar.write(key, c10::IValue(v));
}

std::string read_string(torch::serialize::InputArchive& ar, const std::string& key,
                        const char* who) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isString())
    throw std::runtime_error(std::string(who) + " state: missing or invalid entry '" + key + "'");
  return v.toStringRef();
}

int64_t read_int(torch::serialize::InputArchive& ar, const std::string& key, const char* who) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isInt())
    throw std::runtime_error(std::string(who) + " state: missing or invalid entry '" + key + "'");
  return v.toInt();
}

void check_header(torch::serialize::InputArchive& ar, const char* kind, size_t count) {
  const auto saved_kind = read_string(ar, "kind", kind);
  if (saved_kind != kind)
    throw std::runtime_error(std::string("optimizer state was saved by '") + saved_kind +
                             "' but is being loaded into '" + kind + "'");
  const auto saved_count = read_int(ar, "count", kind);
  if (saved_count != static_cast<int64_t>(count))
    throw std::runtime_error(std::string(kind) + " state holds " + std::to_string(saved_count) +
                             " parameters but the optimizer has " + std::to_string(count));
}

void check_name(torch::serialize::InputArchive& ar, size_t index, const NamedParam& p,
                const char* who) {
  const auto saved = read_string(ar, key("name", index), who);
  if (saved != p.name)
    throw std::runtime_error(std::string(who) + " state: parameter " + std::to_string(index) +
                             " was saved as '" + saved + "' but is '" + p.name + "' now");
}

void read_into(torch::serialize::InputArchive& ar, const std::string& what, size_t index,
               const NamedParam& p, at::Tensor& dst, const char* who) {
  at::Tensor saved;
  if (!ar.try_read(key(what, index), saved))
    throw std::runtime_error(std::string(who) + " state: no '" + what + "' for parameter '" +
                             p.name + "'");
  if (!saved.sizes().equals(dst.sizes()))
    throw std::runtime_error(std::string(who) + " state: '" + what + "' of parameter '" + p.name +
                             "' has shape " + shape_str(saved.sizes()) +
                             " but the parameter has shape " + shape_str(dst.sizes()));
  dst.copy_(saved);
}

}  // namespace scalevec::state_io
