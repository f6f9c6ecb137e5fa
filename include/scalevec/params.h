// Parameters tagged with their optimizer group. Groups come from where a parameter lives (a
// matrix, an embedding, a scale vector of an Input-Norm or Output-Norm), never from its name.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace scalevec {

enum class ParamGroup { Matrix, Embedding, InputNorm, OutputNorm };
inline const char* to_string(ParamGroup g) {
  switch (g) {
    case ParamGroup::Matrix:
      return "matrix";
    case ParamGroup::Embedding:
      return "embedding";
    case ParamGroup::InputNorm:
      return "input_norm";
    case ParamGroup::OutputNorm:
      return "output_norm";
  }
  return "?";
}

struct NamedParam {
  std::string name;  // for logs and checkpoints only
  at::Tensor tensor;
  ParamGroup group = ParamGroup::Matrix;
  bool decay = true;  // false: this tensor takes no weight decay even if its group does
};

}  // namespace scalevec
