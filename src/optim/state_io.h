// Checked reads and writes of per-parameter optimizer state (shared by AdamW and Muon).
#pragma once

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdint>
#include <string>

#include "scalevec/params.h"

namespace scalevec::state_io {

// "exp_avg_3": archive keys carry no dots (parameter names do, and keys are attribute names).
std::string key(const std::string& what, size_t index);

void write_string(torch::serialize::OutputArchive& ar, const std::string& key,
                  const std::string& v);
void write_int(torch::serialize::OutputArchive& ar, const std::string& key, int64_t v);

// Readers throw std::runtime_error with `who` (e.g. "AdamW") and the key when a key is missing.
std::string read_string(torch::serialize::InputArchive& ar, const std::string& key,
                        const char* who);
int64_t read_int(torch::serialize::InputArchive& ar, const std::string& key, const char* who);

// Checks the saved kind ("adamw"/"muon") and parameter count against this optimizer.
void check_header(torch::serialize::InputArchive& ar, const char* kind, size_t count);

// Checks the saved name of parameter `index`, then copies the saved state tensor `what` into
// dst (same device and dtype), throwing with the parameter's name on a shape mismatch.
void check_name(torch::serialize::InputArchive& ar, size_t index, const NamedParam& p,
                const char* who);
void read_into(torch::serialize::InputArchive& ar, const std::string& what, size_t index,
               const NamedParam& p, at::Tensor& dst, const char* who);

}  // namespace scalevec::state_io
