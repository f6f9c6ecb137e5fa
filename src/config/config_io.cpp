#include "scalevec/config_io.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>

namespace scalevec {
namespace {

namespace fs = std::filesystem;

// A leaf of the YAML tree, flattened to its dotted key, with where it was written.
struct RawValue {
  std::vector<std::string> items;  // one item for a scalar
  bool is_list = false;
  std::string where;  // "file:line" or "--set"
};
using RawMap = std::map<std::string, RawValue>;

std::string where_of(const std::string& file, const YAML::Node& node) {
  return file + ":" + std::to_string(node.Mark().line + 1);
}

// Later files and overrides win: a key replaced by a value drops the children it had.
void erase_subtree(RawMap& out, const std::string& key) {
  for (auto it = out.lower_bound(key + "."); it != out.end() && it->first.rfind(key + ".", 0) == 0;)
    it = out.erase(it);
}

void flatten(const YAML::Node& node, const std::string& prefix, const std::string& file,
             RawMap& out) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      if (!kv.first.IsScalar())  // YAML allows `? [a, b]` keys; a config key is a plain name
        throw ConfigError((prefix.empty() ? std::string("top level") : prefix) +
                          ": a key must be a plain name, not a list or a mapping (" +
                          where_of(file, kv.first) + ")");
      const std::string key = kv.first.as<std::string>();
      if (prefix.empty() && key == "defaults") continue;  // handled by the loader
      flatten(kv.second, prefix.empty() ? key : prefix + "." + key, file, out);
    }
    return;
  }
  RawValue value;
  value.where = where_of(file, node);
  if (node.IsSequence()) {
    value.is_list = true;
    for (const auto& item : node) {
      if (!item.IsScalar())
        throw ConfigError(prefix + ": list items must be plain values (" + value.where + ")");
      value.items.push_back(item.as<std::string>());
    }
  } else if (node.IsScalar()) {
    value.items.push_back(node.as<std::string>());
  } else if (node.IsNull()) {
    value.items.push_back("");
  }
  erase_subtree(out, prefix);
  out[prefix] = value;
}

YAML::Node parse_yaml(const std::string& text, const std::string& name) {
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError("YAML syntax error in " + name + ":" + std::to_string(e.mark.line + 1) +
                      ": " + e.msg);
  }
}

void load_document(const YAML::Node& root, const std::string& name, const fs::path& base_dir,
                   std::vector<std::string>& stack, RawMap& out);

void load_file(const std::string& path, std::vector<std::string>& stack, RawMap& out) {
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(path, ec);
  if (!fs::exists(path)) throw ConfigError("config file not found: " + path);
  if (std::find(stack.begin(), stack.end(), canonical.string()) != stack.end())
    throw ConfigError("config include cycle: " + path + " includes itself");
  std::ifstream in(path);
  if (!in) throw ConfigError("cannot read config file: " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  stack.push_back(canonical.string());
  load_document(parse_yaml(ss.str(), path), path, fs::path(path).parent_path(), stack, out);
  stack.pop_back();
}

void load_document(const YAML::Node& root, const std::string& name, const fs::path& base_dir,
                   std::vector<std::string>& stack, RawMap& out) {
  if (!root || root.IsNull()) return;
  if (!root.IsMap()) throw ConfigError(name + ": the top level of a config must be a mapping");
  if (const YAML::Node defaults = root["defaults"]) {
    std::vector<std::string> bases;
    if (defaults.IsScalar())
      bases.push_back(defaults.as<std::string>());
    else if (defaults.IsSequence())
      for (const auto& d : defaults) {
        if (!d.IsScalar())
          throw ConfigError("defaults: list items must be file names (" + where_of(name, d) + ")");
        bases.push_back(d.as<std::string>());
      }
    else
      throw ConfigError("defaults: expected a file name or a list of them (" +
                        where_of(name, defaults) + ")");
    for (const auto& b : bases) {
      const fs::path p = fs::path(b).is_absolute() ? fs::path(b) : base_dir / b;
      if (!fs::exists(p))
        throw ConfigError("defaults: included file not found: " + p.string() + " (" +
                          where_of(name, defaults) + ")");
      load_file(p.string(), stack, out);
    }
  }
  flatten(root, "", name, out);
}

void apply_override(const std::string& text, RawMap& out) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("bad override '" + text + "': expected key=value, e.g. optim.lr=3e-4");
  const std::string key = text.substr(0, eq);
  if (key.find_first_of(" \t") != std::string::npos || key.front() == '.' || key.back() == '.' ||
      key.find("..") != std::string::npos)
    throw ConfigError("bad override '" + text + "': malformed key '" + key + "'");
  const YAML::Node value = parse_yaml(text.substr(eq + 1), "--set " + key);
  RawMap one;
  flatten(value, key, "--set", one);
  for (auto& kv : one) {
    kv.second.where = "--set " + text;
    erase_subtree(out, kv.first);
    out[kv.first] = kv.second;
  }
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

template <typename E>
struct EnumValues;
#define SCALEVEC_ENUM_VALUES(E, ...)          \
  template <>                                 \
  struct EnumValues<E> {                      \
    static constexpr E all[] = {__VA_ARGS__}; \
  };
SCALEVEC_ENUM_VALUES(NormVariant, NormVariant::None, NormVariant::Standard, NormVariant::Branch,
                     NormVariant::Relocated, NormVariant::MagDir, NormVariant::Unified)
SCALEVEC_ENUM_VALUES(Placement, Placement::Input, Placement::Output, Placement::Both)
SCALEVEC_ENUM_VALUES(MagnitudeShape, MagnitudeShape::Scalar, MagnitudeShape::PerHead)
SCALEVEC_ENUM_VALUES(MagDirDecay, MagDirDecay::Magnitude, MagDirDecay::Direction, MagDirDecay::Both,
                     MagDirDecay::Neither)
SCALEVEC_ENUM_VALUES(ScaleApply, ScaleApply::Weight, ScaleApply::Activation)
SCALEVEC_ENUM_VALUES(PlacementForm, PlacementForm::Auto, PlacementForm::Dp, PlacementForm::Dnp)
SCALEVEC_ENUM_VALUES(MagnitudeSpace, MagnitudeSpace::Original, MagnitudeSpace::Exp)
SCALEVEC_ENUM_VALUES(AttentionKernel, AttentionKernel::Auto, AttentionKernel::Math,
                     AttentionKernel::Fused)
SCALEVEC_ENUM_VALUES(OptimizerKind, OptimizerKind::AdamW, OptimizerKind::Muon)
SCALEVEC_ENUM_VALUES(ScheduleKind, ScheduleKind::Cosine, ScheduleKind::Wsd, ScheduleKind::Constant)
SCALEVEC_ENUM_VALUES(NanPolicy, NanPolicy::Skip, NanPolicy::Stop)
SCALEVEC_ENUM_VALUES(Precision, Precision::Fp32, Precision::Bf16)
#undef SCALEVEC_ENUM_VALUES

// Reads typed fields out of a RawMap, recording every problem with its key and location.
class Reader {
 public:
  static constexpr bool kReading = true;
  explicit Reader(RawMap& raw) : raw_(raw) {}

  template <typename T>
  void operator()(const std::string& key, T& field) {
    auto it = raw_.find(key);
    if (it == raw_.end()) return;
    used_.insert(key);
    const RawValue& v = it->second;
    if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      field = v.items;
      return;
    } else if constexpr (std::is_same_v<T, std::vector<double>>) {
      field.clear();
      for (const auto& item : v.items) {
        double d = 0;
        parse(key, v, item, d);
        field.push_back(d);
      }
      return;
    } else {
      if (v.is_list) return fail(key, v, "expected a single value, got a list");
      parse(key, v, v.items.empty() ? std::string() : v.items[0], field);
    }
  }

  void finish() {
    for (const auto& kv : raw_) {
      if (used_.count(kv.first)) continue;
      std::string best;
      size_t best_d = 1000;
      for (const auto& k : config_keys()) {
        const size_t d = edit_distance(kv.first, k);
        if (d < best_d) best_d = d, best = k;
      }
      std::string msg = "unknown key '" + kv.first + "' (" + kv.second.where + ")";
      if (best_d <= 3) msg += "; did you mean '" + best + "'?";
      errors_.push_back(msg);
    }
    if (!errors_.empty()) {
      std::string all = "invalid config:";
      for (const auto& e : errors_) all += "\n  " + e;
      throw ConfigError(all);
    }
  }

 private:
  void fail(const std::string& key, const RawValue& v, const std::string& what) {
    errors_.push_back(key + ": " + what + " (" + v.where + ")");
  }
  void parse(const std::string& key, const RawValue& v, const std::string& s, std::string& out) {
    out = s;
  }
  void parse(const std::string& key, const RawValue& v, const std::string& s, bool& out) {
    if (s == "true" || s == "True" || s == "yes" || s == "on")
      out = true;
    else if (s == "false" || s == "False" || s == "no" || s == "off")
      out = false;
    else
      fail(key, v, "expected true or false, got '" + s + "'");
  }
  void parse(const std::string& key, const RawValue& v, const std::string& s, double& out) {
    char* end = nullptr;
    errno = 0;
    const double d = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || errno == ERANGE)
      return fail(key, v, "expected a number, got '" + s + "'");
    out = d;
  }
  void parse(const std::string& key, const RawValue& v, const std::string& s, int64_t& out) {
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE)
      return fail(key, v, "expected an integer, got '" + s + "'");
    out = x;
  }
  void parse(const std::string& key, const RawValue& v, const std::string& s, uint64_t& out) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || s[0] == '-' || *end != '\0' || errno == ERANGE)
      return fail(key, v, "expected a non-negative integer, got '" + s + "'");
    out = x;
  }
  template <typename E, typename = decltype(EnumValues<E>::all)>
  void parse(const std::string& key, const RawValue& v, const std::string& s, E& out) {
    std::string choices;
    for (E e : EnumValues<E>::all) {
      if (s == to_string(e)) {
        out = e;
        return;
      }
      choices += std::string(choices.empty() ? "" : " | ") + to_string(e);
    }
    fail(key, v, "expected one of " + choices + ", got '" + s + "'");
  }

  RawMap& raw_;
  std::set<std::string> used_;
  std::vector<std::string> errors_;
};

// Builds the resolved YAML tree.
class Writer {
 public:
  static constexpr bool kReading = false;
  YAML::Node root{YAML::NodeType::Map};  // a Null root would not keep the children added below

  template <typename T>
  void operator()(const std::string& key, const T& field) {
    YAML::Node value;
    if constexpr (std::is_same_v<T, std::vector<std::string>> ||
                  std::is_same_v<T, std::vector<double>>) {
      value = YAML::Node(YAML::NodeType::Sequence);
      value.SetStyle(YAML::EmitterStyle::Flow);
      for (const auto& s : field) value.push_back(s);
    } else if constexpr (std::is_enum_v<T>) {
      value = std::string(to_string(field));
    } else {
      value = field;
    }
    std::vector<std::string> parts;
    std::stringstream ss(key);
    for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
    // reset() re-points `cur` at the child; plain assignment would overwrite the parent's value.
    YAML::Node cur = root;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      if (!cur[parts[i]]) cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
      YAML::Node child = cur[parts[i]];
      cur.reset(child);
    }
    cur[parts.back()] = value;
  }
};

// Collects key names only.
class KeyLister {
 public:
  static constexpr bool kReading = false;
  std::vector<std::string> keys;
  template <typename T>
  void operator()(const std::string& key, const T&) {
    keys.push_back(key);
  }
};

template <typename V, typename N>
void visit_norm(V& v, const std::string& p, N& o) {
  v(p + ".variant", o.variant);
  v(p + ".eps", o.eps);
  v(p + ".gamma_init", o.gamma_init);
  v(p + ".placement", o.placement);
  v(p + ".placement_form", o.placement_form);
  v(p + ".magnitude", o.magnitude);
  v(p + ".magdir_decay", o.magdir_decay);
  v(p + ".magnitude_space", o.magnitude_space);
  v(p + ".apply", o.apply);
}

template <typename V, typename P>
void visit_per_group(V& v, const std::string& p, P& g) {
  v(p + ".matrix", g.matrix);
  v(p + ".embedding", g.embedding);
  v(p + ".input_norm", g.input_norm);
  v(p + ".output_norm", g.output_norm);
}

// The single list of config keys: reading, writing and key listing all walk it.
template <typename V, typename C>
void visit_config(V& v, C& c) {
  auto& m = c.model;
  v("model.vocab_size", m.vocab_size);
  v("model.d_model", m.d_model);
  v("model.n_layers", m.n_layers);
  v("model.n_heads", m.n_heads);
  v("model.n_kv_heads", m.n_kv_heads);
  v("model.ffn_hidden", m.ffn_hidden);
  v("model.max_seq_len", m.max_seq_len);
  v("model.rope_theta", m.rope_theta);
  v("model.tie_embeddings", m.tie_embeddings);
  v("model.qk_norm", m.qk_norm);
  v("model.branch_out_norm", m.branch_out_norm);
  v("model.init_std", m.init_std);
  v("model.scaled_residual_init", m.scaled_residual_init);
  v("model.attention", m.attention);
  v("model.moe.enabled", m.moe.enabled);
  v("model.moe.num_experts", m.moe.num_experts);
  v("model.moe.top_k", m.moe.top_k);
  v("model.moe.shared_expert", m.moe.shared_expert);
  v("model.moe.expert_hidden", m.moe.expert_hidden);
  v("model.moe.aux_loss_coef", m.moe.aux_loss_coef);
  v("model.moe.z_loss_coef", m.moe.z_loss_coef);
  v("model.moe.capacity_factor", m.moe.capacity_factor);
  // model.norm.* sets every position; model.norm.<position>.* then overrides one.
  if constexpr (V::kReading) {
    NormOptions global = m.norm.pre_attn;
    visit_norm(v, "model.norm", global);
    for (NormPosition p : kNormPositions) m.norm.at(p) = global;
  } else {
    NormOptions global = m.norm.pre_attn;
    if constexpr (std::is_same_v<V, KeyLister>) visit_norm(v, "model.norm", global);
  }
  for (NormPosition p : kNormPositions)
    visit_norm(v, std::string("model.norm.") + to_string(p), m.norm.at(p));

  auto& o = c.optim;
  v("optim.name", o.name);
  v("optim.lr", o.lr);
  v("optim.beta1", o.beta1);
  v("optim.beta2", o.beta2);
  v("optim.eps", o.eps);
  visit_per_group(v, "optim.weight_decay", o.weight_decay);
  visit_per_group(v, "optim.lr_mult", o.lr_mult);
  v("optim.grad_clip", o.grad_clip);
  v("optim.muon_lr", o.muon_lr);
  v("optim.muon_momentum", o.muon_momentum);
  v("optim.muon_ns_steps", o.muon_ns_steps);
  v("optim.fused", o.fused);

  v("schedule.name", c.schedule.name);
  v("schedule.warmup_steps", c.schedule.warmup_steps);
  v("schedule.min_lr_ratio", c.schedule.min_lr_ratio);
  v("schedule.decay_fraction", c.schedule.decay_fraction);

  auto& d = c.data;
  v("data.train_shard", d.train_shard);
  v("data.val_shard", d.val_shard);
  v("data.train_shards", d.train_shards);
  v("data.train_weights", d.train_weights);
  v("data.val_shards", d.val_shards);
  v("data.tokenizer", d.tokenizer);
  v("data.corpus", d.corpus);
  v("data.out_dir", d.out_dir);
  v("data.val_fraction", d.val_fraction);
  v("data.tokenizer_type", d.tokenizer_type);

  auto& t = c.train;
  v("train.steps", t.steps);
  v("train.batch_size", t.batch_size);
  v("train.grad_accum", t.grad_accum);
  v("train.seq_len", t.seq_len);
  v("train.seed", t.seed);
  v("train.device", t.device);
  v("train.precision", t.precision);
  v("train.log_every", t.log_every);
  v("train.eval_every", t.eval_every);
  v("train.eval_batches", t.eval_batches);
  v("train.ckpt_every", t.ckpt_every);
  v("train.keep_last", t.keep_last);
  v("train.out_dir", t.out_dir);
  v("train.nan_policy", t.nan_policy);
  v("train.max_nan_skips", t.max_nan_skips);
  v("train.cuda_graph", t.cuda_graph);
  v("train.threads", t.threads);
  v("train.peak_tflops", t.peak_tflops);
  v("train.probe_every", t.probe_every);
  v("train.probe_batches", t.probe_batches);
  v("train.probe_batch_size", t.probe_batch_size);
  v("train.probe_iters", t.probe_iters);
  v("train.probe_tol", t.probe_tol);
  v("train.probe_trace_samples", t.probe_trace_samples);
  v("train.init_from", t.init_from);

  v("dist.backend", c.dist.backend);
  v("dist.bucket_mb", c.dist.bucket_mb);
  v("dist.timeout_s", c.dist.timeout_s);

  v("bench.warmup_steps", c.bench.warmup_steps);
  v("bench.steps", c.bench.steps);
}

Config resolve(RawMap& raw) {
  Config config;
  Reader reader(raw);
  visit_config(reader, config);
  reader.finish();
  validate_config(config);
  return config;
}

}  // namespace

namespace {
// Any yaml-cpp error the checks above did not turn into a clear one still ends as a ConfigError.
template <typename F>
Config as_config_error(const std::string& name, F&& load) {
  try {
    return load();
  } catch (const YAML::Exception& e) {
    throw ConfigError("bad YAML in " + name + ": " + e.what());
  }
}
}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  return as_config_error(path, [&] {
    RawMap raw;
    std::vector<std::string> stack;
    load_file(path, stack, raw);
    for (const auto& o : overrides) apply_override(o, raw);
    return resolve(raw);
  });
}

Config load_config_string(const std::string& yaml, const std::vector<std::string>& overrides,
                          const std::string& name) {
  return as_config_error(name, [&] {
    RawMap raw;
    std::vector<std::string> stack;
    load_document(parse_yaml(yaml, name), name, fs::current_path(), stack, raw);
    for (const auto& o : overrides) apply_override(o, raw);
    return resolve(raw);
  });
}

std::vector<std::string> config_keys() {
  static const std::vector<std::string> keys = [] {
    KeyLister lister;
    Config c;
    visit_config(lister, c);
    return lister.keys;
  }();
  return keys;
}

std::string config_to_yaml(const Config& config) {
  Writer writer;
  visit_config(writer, config);
  YAML::Emitter out;
  out << writer.root;
  return std::string(out.c_str()) + "\n";
}

void save_config(const Config& config, const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    if (!f) throw ConfigError("cannot write " + tmp);
    f << config_to_yaml(config);
    if (!f) throw ConfigError("failed writing " + tmp);
  }
  fs::rename(tmp, path);
}

void validate_config(const Config& c) {
  std::vector<std::string> errors;
  auto check = [&](bool ok, const std::string& msg) {
    if (!ok) errors.push_back(msg);
  };
  const auto& m = c.model;
  // Reserved key: refusing it beats silently training without the capture the user asked for.
  check(!c.train.cuda_graph,
        "train.cuda_graph: CUDA graph capture of the step is not implemented yet");
  check(m.vocab_size > 0, "model.vocab_size must be > 0");
  check(m.d_model > 0 && m.n_layers > 0 && m.n_heads > 0,
        "model.d_model, n_layers, n_heads must be > 0");
  check(m.n_heads > 0 && m.d_model % m.n_heads == 0, "model.d_model (" + std::to_string(m.d_model) +
                                                         ") must be divisible by model.n_heads (" +
                                                         std::to_string(m.n_heads) + ")");
  check(m.n_kv_heads >= 0 && m.kv_heads() > 0 && m.n_heads % m.kv_heads() == 0,
        "model.n_heads must be divisible by model.n_kv_heads");
  check(m.n_heads > 0 && (m.d_model / m.n_heads) % 2 == 0,
        "head dim (model.d_model / model.n_heads) must be even for RoPE");
  check(m.max_seq_len > 0, "model.max_seq_len must be > 0");
  check(m.init_std > 0, "model.init_std must be > 0");
  if (m.moe.enabled) {
    check(m.moe.num_experts >= 1, "model.moe.num_experts must be >= 1");
    check(m.moe.top_k >= 1 && m.moe.top_k <= m.moe.num_experts,
          "model.moe.top_k must be in [1, model.moe.num_experts]");
    check(m.moe.capacity_factor >= 0, "model.moe.capacity_factor must be >= 0");
  }
  for (NormPosition p : kNormPositions) {
    const auto& n = m.norm.at(p);
    check(n.eps > 0, std::string("model.norm.") + to_string(p) + ".eps must be > 0");
    check(n.gamma_init > 0 || n.variant == NormVariant::Standard ||
              n.variant == NormVariant::Branch || n.variant == NormVariant::Relocated ||
              n.variant == NormVariant::None,
          std::string("model.norm.") + to_string(p) + ".gamma_init must be > 0 for magdir/unified");
    if (n.magnitude == MagnitudeShape::PerHead && p != NormPosition::Qk)
      check(m.d_model % m.n_heads == 0, "per_head magnitude needs d_model divisible by n_heads");
  }
  const auto& o = c.optim;
  check(o.lr > 0, "optim.lr must be > 0");
  check(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1,
        "optim.beta1/beta2 must be in [0, 1)");
  check(o.eps > 0, "optim.eps must be > 0");
  check(o.grad_clip >= 0, "optim.grad_clip must be >= 0 (0 disables)");
  check(o.weight_decay.matrix >= 0 && o.weight_decay.embedding >= 0 &&
            o.weight_decay.input_norm >= 0 && o.weight_decay.output_norm >= 0,
        "optim.weight_decay.* must be >= 0");
  check(o.muon_ns_steps >= 1, "optim.muon_ns_steps must be >= 1");
  const auto& s = c.schedule;
  check(s.warmup_steps >= 0, "schedule.warmup_steps must be >= 0");
  check(s.min_lr_ratio >= 0 && s.min_lr_ratio <= 1, "schedule.min_lr_ratio must be in [0, 1]");
  check(s.decay_fraction >= 0 && s.decay_fraction <= 1,
        "schedule.decay_fraction must be in [0, 1]");
  const auto& t = c.train;
  check(t.steps > 0, "train.steps must be > 0");
  check(t.batch_size > 0, "train.batch_size must be > 0");
  check(t.grad_accum >= 1, "train.grad_accum must be >= 1");
  check(t.seq_len > 0 && t.seq_len <= m.max_seq_len,
        "train.seq_len (" + std::to_string(t.seq_len) +
            ") must be in [1, model.max_seq_len = " + std::to_string(m.max_seq_len) + "]");
  check(t.device == "auto" || t.device == "cpu" || t.device.rfind("cuda", 0) == 0,
        "train.device must be auto, cpu or cuda[:N], got '" + t.device + "'");
  check(t.log_every >= 1 && t.eval_every >= 0 && t.ckpt_every >= 0 && t.keep_last >= 1,
        "train.log_every >= 1, eval_every >= 0, ckpt_every >= 0, keep_last >= 1");
  check(t.probe_every >= 0, "train.probe_every must be >= 0 (0: probes off)");
  check(t.probe_batches >= 1 && t.probe_batch_size >= 0 && t.probe_iters >= 2 &&
            t.probe_trace_samples >= 0,
        "train.probe_batches >= 1, probe_batch_size >= 0, probe_iters >= 2, "
        "probe_trace_samples >= 0");
  check(t.probe_tol >= 0, "train.probe_tol must be >= 0");
  check(c.data.val_fraction > 0 && c.data.val_fraction < 1, "data.val_fraction must be in (0, 1)");
  {
    const auto& d = c.data;
    check(d.train_weights.empty() || d.train_weights.size() == d.train_shards.size(),
          "data.train_weights has " + std::to_string(d.train_weights.size()) + " weights for " +
              std::to_string(d.train_shards.size()) +
              " data.train_shards (one per shard, or none for equal weights)");
    bool positive = true;
    for (double w : d.train_weights) positive = positive && w > 0 && std::isfinite(w);
    check(positive, "data.train_weights must all be finite and > 0");
    check(d.val_shards.empty() || !d.train_shards.empty(),
          "data.val_shards needs data.train_shards (the mixture it validates)");
  }
  check(c.data.tokenizer_type == "bpe" || c.data.tokenizer_type == "unigram",
        "data.tokenizer_type must be bpe or unigram");
  check(c.dist.backend == "auto" || c.dist.backend == "nccl" || c.dist.backend == "gloo",
        "dist.backend must be auto, nccl or gloo");
  check(c.dist.bucket_mb > 0, "dist.bucket_mb must be > 0");
  check(c.dist.timeout_s > 0, "dist.timeout_s must be > 0");
  if (!errors.empty()) {
    std::string all = "invalid config:";
    for (const auto& e : errors) all += "\n  " + e;
    throw ConfigError(all);
  }
}

}  // namespace scalevec
