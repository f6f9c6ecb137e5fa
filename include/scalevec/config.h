// Typed run configuration: plain structs with defaults. YAML binding lives in config_io.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace scalevec {

// ---- Norms (see docs/norms.md and ../shared/design/scale-vectors.md) ----
enum class NormVariant { None, Standard, Branch, Relocated, MagDir, Unified };
enum class NormRole { Input, Output };
enum class NormPosition { PreAttn, PreFfn, Qk, Final, BranchOut };
// Every position, for code that walks them all (config keys, export, tests).
inline constexpr NormPosition kNormPositions[] = {NormPosition::PreAttn, NormPosition::PreFfn,
                                                  NormPosition::Qk, NormPosition::Final,
                                                  NormPosition::BranchOut};
enum class Placement { Input, Output, Both };
enum class MagnitudeShape { Scalar, PerHead };
enum class MagDirDecay { Magnitude, Direction, Both, Neither };
enum class ScaleApply { Weight, Activation };
// Placement around W (relocated/unified). DP: u * (W (v * x)). DNP: u * Norm(W (v * x)).
// auto: relocated -> dp everywhere; unified -> dnp at the pre-FFN norm, dp elsewhere (the paper's).
enum class PlacementForm { Auto, Dp, Dnp };
// Magnitude of magdir vectors: OR keeps beta = m, ER learns s with beta = exp(s).
enum class MagnitudeSpace { Original, Exp };

struct NormOptions {
  NormVariant variant = NormVariant::Standard;
  double eps = 1e-6;
  double gamma_init = 1.0;
  Placement placement = Placement::Both;               // relocated/unified: sides of W scaled
  PlacementForm placement_form = PlacementForm::Auto;  // relocated/unified: dp or dnp
  MagnitudeShape magnitude = MagnitudeShape::Scalar;   // magdir/unified: m per vector or per head
  MagDirDecay magdir_decay = MagDirDecay::Magnitude;   // which magdir part takes weight decay
  MagnitudeSpace magnitude_space = MagnitudeSpace::Original;  // magdir/unified: OR or ER
  ScaleApply apply = ScaleApply::Weight;  // Input-Norm scales folded into W or applied to n(x)
};

struct NormConfig {
  NormOptions pre_attn, pre_ffn, qk, final, branch_out;
  const NormOptions& at(NormPosition p) const;
  NormOptions& at(NormPosition p);
};

// ---- Model ----
struct MoeConfig {
  bool enabled = false;
  int64_t num_experts = 8;
  int64_t top_k = 2;
  bool shared_expert = false;
  int64_t expert_hidden = 0;     // 0: same as model.ffn_hidden
  double aux_loss_coef = 0.01;   // Switch-style load balancing
  double z_loss_coef = 0.001;    // router z-loss
  double capacity_factor = 0.0;  // 0: no token dropping
};

enum class AttentionKernel { Auto, Math, Fused };

struct ModelConfig {
  int64_t vocab_size = 4096;
  int64_t d_model = 256;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 0;  // 0: same as n_heads (no grouped-query attention)
  int64_t ffn_hidden = 0;  // 0: 8/3 * d_model rounded up to a multiple of 64
  int64_t max_seq_len = 256;
  double rope_theta = 10000.0;
  bool tie_embeddings = true;
  bool qk_norm = false;
  bool branch_out_norm = false;  // x + Norm(Attn(...)): Output-Norms on each branch
  double init_std = 0.02;
  bool scaled_residual_init = true;  // output projections std / sqrt(2 * n_layers)
  AttentionKernel attention = AttentionKernel::Auto;
  MoeConfig moe;
  NormConfig norm;

  int64_t kv_heads() const { return n_kv_heads > 0 ? n_kv_heads : n_heads; }
  int64_t head_dim() const { return d_model / n_heads; }
  int64_t ffn_dim() const;
  int64_t expert_dim() const { return moe.expert_hidden > 0 ? moe.expert_hidden : ffn_dim(); }
};

// ---- Optimization ----
enum class OptimizerKind { AdamW, Muon };
enum class ScheduleKind { Cosine, Wsd, Constant };

// One number per parameter group; groups come from norm roles, never from names.
struct PerGroup {
  double matrix = 0.0;
  double embedding = 0.0;
  double input_norm = 0.0;
  double output_norm = 0.0;
};

struct OptimConfig {
  OptimizerKind name = OptimizerKind::AdamW;
  double lr = 3e-3;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  PerGroup weight_decay{0.1, 0.0, 0.1, 0.0};
  PerGroup lr_mult{1.0, 1.0, 1.0, 1.0};
  double grad_clip = 1.0;  // 0: off
  double muon_lr = 0.02;
  double muon_momentum = 0.95;
  int64_t muon_ns_steps = 5;
  bool fused = true;  // fused/foreach kernels where LibTorch has them
};

struct ScheduleConfig {
  ScheduleKind name = ScheduleKind::Cosine;
  int64_t warmup_steps = 100;
  double min_lr_ratio = 0.1;
  double decay_fraction = 0.2;  // WSD: last fraction of steps decays to min_lr
};

// ---- Data ----
struct DataConfig {
  std::string train_shard = "data/kjv/train.bin";
  std::string val_shard = "data/kjv/val.bin";
  // A weighted mixture instead of train_shard (docs/data.md): each sequence comes from shard i
  // with probability train_weights[i] / sum (equal when empty); val_shards (optional, else
  // val_shard) are each evaluated and reported as val_loss.<name>.
  std::vector<std::string> train_shards;
  std::vector<double> train_weights;
  std::vector<std::string> val_shards;
  std::string tokenizer = "data/kjv/tokenizer.model";
  std::vector<std::string> corpus = {
      "/usr/share/doc/bible-kjv-text/kjv.txt.gz"};  // prepare-data input
  std::string out_dir = "data/kjv";
  double val_fraction = 0.01;
  std::string tokenizer_type = "bpe";  // sentencepiece model type: bpe | unigram
};

// ---- Training ----
enum class NanPolicy { Skip, Stop };
enum class Precision { Fp32, Bf16 };

struct TrainConfig {
  int64_t steps = 1000;
  int64_t batch_size = 16;  // sequences per micro-batch per rank
  int64_t grad_accum = 1;
  int64_t seq_len = 128;
  uint64_t seed = 1234;
  std::string device = "auto";  // auto | cpu | cuda
  Precision precision = Precision::Fp32;
  int64_t log_every = 10;
  int64_t eval_every = 100;
  int64_t eval_batches = 10;
  int64_t ckpt_every = 200;
  int64_t keep_last = 3;
  std::string out_dir = "runs/default";
  NanPolicy nan_policy = NanPolicy::Skip;
  int64_t max_nan_skips = 20;
  bool cuda_graph = false;     // reserved: validate_config rejects true (not implemented yet)
  int64_t threads = 0;         // 0: LibTorch default
  double peak_tflops = 989.0;  // for MFU: dense bf16 peak of the GPU (H100 SXM: 989)
  // Mechanism probes (docs/probes.md): Hessian sharpness, Adam-preconditioned sharpness,
  // optional Hutchinson trace, gamma-W balance per norm position. Off when probe_every = 0.
  int64_t probe_every = 0;          // steps between probes (and after the last step)
  int64_t probe_batches = 1;        // validation batches in the fixed probe batch
  int64_t probe_batch_size = 2;     // sequences kept of each (0: train.batch_size)
  int64_t probe_iters = 16;         // Lanczos iterations (Hessian-vector products), at most
  double probe_tol = 1e-2;          // stop when the top Ritz residual is <= tol |lambda|
  int64_t probe_trace_samples = 0;  // Hutchinson samples for the Hessian trace (0: none)
  // A Hugging Face folder (scalevec export, docs/export.md) whose weights start a fresh run; a
  // resumed run takes its checkpoint instead.
  std::string init_from;
};

struct DistConfig {
  std::string backend = "auto";  // auto | nccl | gloo
  double bucket_mb = 25.0;
  int64_t timeout_s = 300;
};

struct BenchConfig {
  int64_t warmup_steps = 5;
  int64_t steps = 20;
};

struct Config {
  ModelConfig model;
  OptimConfig optim;
  ScheduleConfig schedule;
  DataConfig data;
  TrainConfig train;
  DistConfig dist;
  BenchConfig bench;
};

// Enum <-> string, used by the YAML binding, logs and inspect output.
const char* to_string(NormVariant v);
const char* to_string(NormRole r);
const char* to_string(NormPosition p);
const char* to_string(Placement p);
const char* to_string(MagnitudeShape m);
const char* to_string(MagDirDecay d);
const char* to_string(ScaleApply a);
const char* to_string(PlacementForm f);
const char* to_string(MagnitudeSpace s);
const char* to_string(AttentionKernel a);
const char* to_string(OptimizerKind o);
const char* to_string(ScheduleKind s);
const char* to_string(NanPolicy n);
const char* to_string(Precision p);

}  // namespace scalevec
