#include "scalevec/config.h"

namespace scalevec {

const char* to_string(NormVariant v) {
  switch (v) {
    case NormVariant::None:
      return "none";
    case NormVariant::Standard:
      return "standard";
    case NormVariant::Branch:
      return "branch";
    case NormVariant::Relocated:
      return "relocated";
    case NormVariant::MagDir:
      return "magdir";
    case NormVariant::Unified:
      return "unified";
  }
  return "?";
}
const char* to_string(NormRole r) {
  return r == NormRole::Input ? "input" : "output";
}
const char* to_string(NormPosition p) {
  switch (p) {
    case NormPosition::PreAttn:
      return "pre_attn";
    case NormPosition::PreFfn:
      return "pre_ffn";
    case NormPosition::Qk:
      return "qk";
    case NormPosition::Final:
      return "final";
    case NormPosition::BranchOut:
      return "branch_out";
  }
  return "?";
}
const char* to_string(Placement p) {
  switch (p) {
    case Placement::Input:
      return "input";
    case Placement::Output:
      return "output";
    case Placement::Both:
      return "both";
  }
  return "?";
}
const char* to_string(MagnitudeShape m) {
  return m == MagnitudeShape::Scalar ? "scalar" : "per_head";
}
const char* to_string(MagDirDecay d) {
  switch (d) {
    case MagDirDecay::Magnitude:
      return "magnitude";
    case MagDirDecay::Direction:
      return "direction";
    case MagDirDecay::Both:
      return "both";
    case MagDirDecay::Neither:
      return "neither";
  }
  return "?";
}
const char* to_string(ScaleApply a) {
  return a == ScaleApply::Weight ? "weight" : "activation";
}
const char* to_string(PlacementForm f) {
  switch (f) {
    case PlacementForm::Auto:
      return "auto";
    case PlacementForm::Dp:
      return "dp";
    case PlacementForm::Dnp:
      return "dnp";
  }
  return "?";
}
const char* to_string(MagnitudeSpace s) {
  return s == MagnitudeSpace::Original ? "original" : "exp";
}
const char* to_string(AttentionKernel a) {
  switch (a) {
    case AttentionKernel::Auto:
      return "auto";
    case AttentionKernel::Math:
      return "math";
    case AttentionKernel::Fused:
      return "fused";
  }
  return "?";
}
const char* to_string(OptimizerKind o) {
  return o == OptimizerKind::AdamW ? "adamw" : "muon";
}
const char* to_string(ScheduleKind s) {
  switch (s) {
    case ScheduleKind::Cosine:
      return "cosine";
    case ScheduleKind::Wsd:
      return "wsd";
    case ScheduleKind::Constant:
      return "constant";
  }
  return "?";
}
const char* to_string(NanPolicy n) {
  return n == NanPolicy::Skip ? "skip" : "stop";
}
const char* to_string(Precision p) {
  return p == Precision::Fp32 ? "fp32" : "bf16";
}

const NormOptions& NormConfig::at(NormPosition p) const {
  switch (p) {
    case NormPosition::PreAttn:
      return pre_attn;
    case NormPosition::PreFfn:
      return pre_ffn;
    case NormPosition::Qk:
      return qk;
    case NormPosition::Final:
      return final;
    case NormPosition::BranchOut:
      return branch_out;
  }
  return pre_attn;
}
NormOptions& NormConfig::at(NormPosition p) {
  return const_cast<NormOptions&>(static_cast<const NormConfig&>(*this).at(p));
}

int64_t ModelConfig::ffn_dim() const {
  if (ffn_hidden > 0) return ffn_hidden;
  const int64_t raw = (8 * d_model + 2) / 3;
  return (raw + 63) / 64 * 64;
}

}  // namespace scalevec
