#include "scalevec/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace scalevec {

std::string json_quote(const std::string& text) {
  std::string out = "\"";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += ch;  // UTF-8 passes through
    }
  }
  return out + "\"";
}

std::string json_number(double value) {
  if (!std::isfinite(value)) throw JsonError("JSON has no number for " + std::to_string(value));
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, res.ptr);
}

YAML::Node parse_json_object(const std::string& text, const std::string& origin, int max_depth) {
  // Depth outside strings, checked before yaml-cpp's recursive descent sees the text.
  int depth = 0;
  bool in_string = false, escaped = false;
  size_t first = std::string::npos;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (first == std::string::npos && c != ' ' && c != '\n' && c != '\r' && c != '\t') first = i;
    if (c == '"') in_string = true;
    if (c == '{' || c == '[') {
      if (++depth > max_depth)
        throw JsonError(origin + ": JSON nested deeper than " + std::to_string(max_depth));
    }
    if (c == '}' || c == ']') --depth;
  }
  if (first == std::string::npos || text[first] != '{')
    throw JsonError(origin + ": not a JSON object (it must start with '{')");
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw JsonError(origin + ": malformed JSON: " + e.what());
  }
  if (!node.IsMap()) throw JsonError(origin + ": not a JSON object");
  return node;
}

namespace {

YAML::Node member(const YAML::Node& obj, const std::string& key, const std::string& origin) {
  const YAML::Node n = obj[key];
  if (!n) throw JsonError(origin + ": missing key \"" + key + "\"");
  if (!n.IsScalar()) throw JsonError(origin + ": \"" + key + "\" must be a single value");
  return n;
}

}  // namespace

std::string json_string_at(const YAML::Node& obj, const std::string& key,
                           const std::string& origin) {
  return member(obj, key, origin).Scalar();
}

uint64_t json_uint(const YAML::Node& node, const std::string& what) {
  if (!node.IsScalar()) throw JsonError(what + " must be a non-negative integer");
  const std::string& s = node.Scalar();
  uint64_t value = 0;
  const auto res = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || res.ec != std::errc() || res.ptr != s.data() + s.size())
    throw JsonError(what + " must be a non-negative integer, got '" + s + "'");
  return value;
}

uint64_t json_uint_at(const YAML::Node& obj, const std::string& key, const std::string& origin) {
  return json_uint(member(obj, key, origin), origin + ": \"" + key + "\"");
}

double json_double_at(const YAML::Node& obj, const std::string& key, const std::string& origin) {
  const std::string s = member(obj, key, origin).Scalar();
  double value = 0;
  const auto res = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || res.ec != std::errc() || res.ptr != s.data() + s.size())
    throw JsonError(origin + ": \"" + key + "\" must be a number, got '" + s + "'");
  return value;
}

bool json_bool_at(const YAML::Node& obj, const std::string& key, const std::string& origin) {
  const std::string s = member(obj, key, origin).Scalar();
  if (s == "true") return true;
  if (s == "false") return false;
  throw JsonError(origin + ": \"" + key + "\" must be true or false, got '" + s + "'");
}

}  // namespace scalevec
