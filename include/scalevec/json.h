// The little JSON that the Hugging Face folder format needs: writing strings and numbers, and
// reading a document through yaml-cpp (JSON is YAML 1.2 flow syntax), which every platform has.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace scalevec {

class JsonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "text" with the escapes JSON requires.
std::string json_quote(const std::string& text);
// The shortest decimal form that reads back as the same double ("1e-06", "10000").
std::string json_number(double value);

// Parses a JSON object; `max_depth` bounds the nesting so that hostile input cannot exhaust the
// stack. Throws JsonError naming `origin`.
YAML::Node parse_json_object(const std::string& text, const std::string& origin,
                             int max_depth = 16);

// Typed reads of a parsed object's members; errors name `origin` and the key.
std::string json_string_at(const YAML::Node& obj, const std::string& key,
                           const std::string& origin);
// A non-negative integer written as digits only (no sign, no fraction).
uint64_t json_uint_at(const YAML::Node& obj, const std::string& key, const std::string& origin);
uint64_t json_uint(const YAML::Node& node, const std::string& what);
double json_double_at(const YAML::Node& obj, const std::string& key, const std::string& origin);
bool json_bool_at(const YAML::Node& obj, const std::string& key, const std::string& origin);

}  // namespace scalevec
