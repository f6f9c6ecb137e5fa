#include "scalevec/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "scalevec/config_io.h"

namespace scalevec {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kFormatVersion = 1;

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

at::Tensor scalar(int64_t v) {
  return at::tensor(std::vector<int64_t>{v}, at::kLong);
}

int64_t read_scalar(torch::serialize::InputArchive& a, const std::string& key) {
  at::Tensor t;
  a.read(key, t);
  return t.item<int64_t>();
}

}  // namespace

std::string checkpoint_path(const std::string& out_dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "ckpt_%08lld.pt", static_cast<long long>(step));
  return (fs::path(out_dir) / name).string();
}

std::vector<std::string> list_checkpoints(const std::string& out_dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(out_dir)) return out;
  for (const auto& e : fs::directory_iterator(out_dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("ckpt_", 0) == 0 && e.path().extension() == ".pt")
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());  // zero-padded step numbers sort by step
  return out;
}

void save_checkpoint(const std::string& path, TransformerImpl& model, const Optimizer& optimizer,
                     const TrainState& state, const Config& config,
                     const std::string& data_fingerprint) {
  torch::serialize::OutputArchive root;
  root.write("format_version", scalar(kFormatVersion));
  torch::serialize::OutputArchive weights;
  for (const auto& p : model.named_parameters()) weights.write(p.key(), p.value().detach().cpu());
  for (const auto& b : model.named_buffers())
    weights.write(b.key(), b.value().cpu(), /*is_buffer=*/true);
  root.write("model", weights);
  torch::serialize::OutputArchive opt;
  optimizer.save(opt);
  root.write("optimizer", opt);
  root.write("step", scalar(state.step));
  root.write("tokens", scalar(state.tokens));
  root.write("nan_skips", scalar(state.nan_skips));
  root.write("config_yaml", c10::IValue(config_to_yaml(config)));
  if (!data_fingerprint.empty()) root.write("data_fingerprint", c10::IValue(data_fingerprint));
  const std::string tmp = path + ".tmp";
  try {
    root.save_to(tmp);
  } catch (const std::exception& e) {
    std::remove(tmp.c_str());
    throw CheckpointError("cannot write checkpoint " + tmp + ": " + e.what());
  }
  fsync_path(tmp);
  fs::rename(tmp, path);  // atomic: a crash leaves the old checkpoint or the new, never half of one
  fsync_path(fs::path(path).parent_path().string());
}

LoadedCheckpoint load_checkpoint(const std::string& path, TransformerImpl& model,
                                 Optimizer* optimizer) {
  if (!fs::exists(path)) throw CheckpointError("checkpoint not found: " + path);
  torch::serialize::InputArchive root;
  try {
    root.load_from(path, at::kCPU);
  } catch (const std::exception& e) {
    throw CheckpointError("checkpoint " + path + " is corrupt or not a scalevec checkpoint: " +
                          std::string(e.what()).substr(0, 300));
  }
  try {
    const int64_t version = read_scalar(root, "format_version");
    if (version != kFormatVersion)
      throw CheckpointError("checkpoint " + path + " has format version " +
                            std::to_string(version) + ", this build reads " +
                            std::to_string(kFormatVersion));
    torch::serialize::InputArchive weights;
    root.read("model", weights);
    at::NoGradGuard no_grad;
    auto restore = [&](const std::string& name, at::Tensor& dst, bool is_buffer) {
      at::Tensor src;
      if (!weights.try_read(name, src, is_buffer))
        throw CheckpointError("checkpoint " + path + " has no tensor '" + name +
                              "': it was written by a different model config");
      if (src.sizes() != dst.sizes())
        throw CheckpointError("checkpoint " + path + ": tensor '" + name + "' has shape " +
                              c10::str(src.sizes()) + " but the model expects " +
                              c10::str(dst.sizes()));
      dst.copy_(src);
    };
    for (auto& p : model.named_parameters()) restore(p.key(), p.value(), false);
    for (auto& b : model.named_buffers()) restore(b.key(), b.value(), true);
    if (optimizer) {
      torch::serialize::InputArchive opt;
      root.read("optimizer", opt);
      optimizer->load(opt);
    }
    LoadedCheckpoint out;
    out.state.step = read_scalar(root, "step");
    out.state.tokens = read_scalar(root, "tokens");
    out.state.nan_skips = read_scalar(root, "nan_skips");
    c10::IValue yaml;
    root.read("config_yaml", yaml);
    out.config_yaml = yaml.toStringRef();
    c10::IValue fingerprint;
    if (root.try_read("data_fingerprint", fingerprint))
      out.data_fingerprint = fingerprint.toStringRef();
    return out;
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError("cannot restore checkpoint " + path + ": " +
                          std::string(e.what()).substr(0, 400));
  }
}

void prune_checkpoints(const std::string& out_dir, int64_t keep_last) {
  auto all = list_checkpoints(out_dir);
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep_last, 1)) < all.size(); ++i)
    fs::remove(all[i]);
}

}  // namespace scalevec
