// train, eval, bench and prepare-data subcommands.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>

#include "commands.h"
#include "scalevec/compat.h"
#include "scalevec/data.h"
#include "scalevec/dist.h"
#include "scalevec/log.h"
#include "scalevec/safetensors.h"
#include "scalevec/trainer.h"

namespace scalevec::cli {

namespace {
void init_rank_logging(const Args& args) {
  log::init(dist_env_from_environment().rank, "", args.has("verbose"));
}
}  // namespace

int cmd_train(const Args& args) {
  init_rank_logging(args);
  TrainerOptions opts;
  opts.resume = args.has("resume");
  opts.resume_from = args.get("resume-from");
  opts.allow_data_change = args.has("allow-data-change");
  opts.strict_resume = args.has("resume-strict");
  opts.command_line = args.argv;
  if (args.has("stop-after")) opts.stop_after = std::stoll(args.get("stop-after"));
  install_stop_signal_handlers();
  Config cfg = args.load();
  if (args.has("init-from")) cfg.train.init_from = args.get("init-from");
  Trainer trainer(cfg, opts);
  const TrainResult r = trainer.run();
  if (r.steps_run == 0) {
    log::info(log::cat("nothing to do: the run is at step ", r.steps_done,
                       " of train.steps; raise train.steps to train further"));
    return 0;
  }
  std::ostringstream os;
  os << "done: " << r.steps_done << " steps, train loss " << r.last_train_loss;
  if (r.last_val_loss) os << ", val loss " << *r.last_val_loss;
  if (r.interrupted) os << " (interrupted; resume with --resume)";
  log::info(os.str());
  return 0;
}

int cmd_eval(const Args& args) {
  init_rank_logging(args);
  TrainerOptions opts;
  opts.write_outputs = false;
  opts.allow_data_change = true;  // evaluating on other data is a fair question, not a resume
  Config cfg = args.load();
  if (args.has("init-from")) {
    cfg.train.init_from = args.get("init-from");  // an HF folder, loaded on the fresh start
    if (args.has("checkpoint")) throw UsageError("eval: --checkpoint or --init-from, not both");
  } else {
    opts.resume_from = args.get("checkpoint");
    if (opts.resume_from.empty()) opts.resume = true;  // newest checkpoint in train.out_dir
  }
  Trainer trainer(cfg, opts);
  const double loss = trainer.evaluate();
  std::cout << "val_loss " << loss << " ppl " << std::exp(loss) << "\n";
  if (args.has("logits-out")) {
    // The first val windows and their logits: what scripts/check_export.py compares against.
    const int64_t seqs = std::stoll(args.get("logits-seqs", "2"));
    const TokenWindowLoader val(cfg.data.val_shard, cfg.train.seq_len, seqs, cfg.train.seed);
    const at::Tensor tokens = val.eval_batch(0).inputs;
    TransformerImpl& model = trainer.model();
    at::NoGradGuard no_grad;
    if (args.has("fp64")) model.to(at::kDouble);
    const at::Tensor logits = model.forward(tokens.to(trainer.device())).to(at::kCPU);
    write_safetensors(args.get("logits-out"), {{"tokens", tokens}, {"logits", logits}},
                      {{"format", "pt"}});
    std::cout << "logits " << args.get("logits-out") << " " << logits.sizes() << "\n";
  }
  return 0;
}

int cmd_bench_data(const Args& args) {
  init_rank_logging(args);
  const Config cfg = args.load();
  const auto& d = cfg.data;
  const std::vector<std::string> paths =
      d.train_shards.empty() ? std::vector<std::string>{d.train_shard} : d.train_shards;
  const MixtureLoader loader(paths, d.train_weights, cfg.train.seq_len, cfg.train.batch_size,
                             cfg.train.seed);
  const int64_t batches = args.has("batches") ? std::stoll(args.get("batches")) : 2000;
  for (int64_t s = 0; s < 20; ++s) loader.batch_at(s);  // page the shards in
  const auto start = std::chrono::steady_clock::now();
  int64_t checksum = 0;  // keeps the batches from being optimized away
  for (int64_t s = 0; s < batches; ++s)
    checksum += loader.batch_at(1000 + s).inputs[0][0].item<int64_t>();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double tokens = static_cast<double>(batches) * cfg.train.batch_size * cfg.train.seq_len;
  std::cout << "bench-data: " << paths.size() << " shard(s), batch " << cfg.train.batch_size
            << " x " << cfg.train.seq_len << ": " << batches << " batches in " << secs
            << " s = " << tokens / secs / 1e6 << "M tokens/s, " << secs / batches * 1e3
            << " ms/batch (checksum " << checksum << ")\n";
  return 0;
}

int cmd_prepare_data(const Args& args) {
  prepare_data(args.load());
  return 0;
}

int cmd_bench(const Args& args) {
  init_rank_logging(args);
  TrainerOptions opts;
  opts.synthetic_data = true;  // measures the step, not the disk
  opts.write_outputs = false;
  const Config cfg = args.load();
  Trainer trainer(cfg, opts);
  const auto& t = cfg.train;
  const int64_t tokens = t.batch_size * t.seq_len * t.grad_accum;
  for (int64_t s = 0; s < cfg.bench.warmup_steps; ++s) trainer.train_step(s);
  compat::cuda_synchronize();
  compat::cuda_reset_peak_memory();
  std::vector<double> ms, probe_ms;
  compat::DeviceTimer timer(trainer.device());
  for (int64_t s = 0; s < cfg.bench.steps; ++s) {
    timer.start();
    trainer.train_step(cfg.bench.warmup_steps + s);
    ms.push_back(timer.stop_ms());
    // With train.probe_every set: a probe after every 4th step, so that steps and probes are
    // timed under the same conditions.
    if (t.probe_every > 0 && s % 4 == 3) {
      timer.start();
      trainer.probe(cfg.bench.warmup_steps + s + 1);
      probe_ms.push_back(timer.stop_ms());
    }
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
  const double tok_s = tokens / (median / 1e3);
  const double tflops = tok_s * trainer.flops_per_token() / 1e12;
  const double mfu = tflops / t.peak_tflops;
  const double peak_gib = compat::cuda_peak_memory_bytes() / double(1 << 30);
  std::ostringstream json;
  json << "{\"config\": \"" << args.config_path << "\", \"device\": \""
       << compat::cuda_device_name() << "\", \"params\": " << trainer.model().num_params()
       << ", \"tokens_per_step\": " << tokens << ", \"ms_per_step_median\": " << median
       << ", \"ms_per_step_mean\": " << mean << ", \"ms_per_step_min\": " << sorted.front()
       << ", \"ms_per_step_max\": " << sorted.back() << ", \"tokens_per_s\": " << tok_s
       << ", \"tflops\": " << tflops << ", \"mfu\": " << mfu
       << ", \"peak_memory_gib\": " << peak_gib << ", \"steps\": " << ms.size();
  if (!probe_ms.empty()) {
    std::sort(probe_ms.begin(), probe_ms.end());
    const double probe_median = probe_ms[probe_ms.size() / 2];
    // Share of a run spent probing at train.probe_every.
    const double share = probe_median / (probe_median + t.probe_every * median);
    json << ", \"probes\": " << probe_ms.size() << ", \"ms_per_probe_median\": " << probe_median
         << ", \"probe_every\": " << t.probe_every << ", \"probe_share_of_run\": " << share;
    std::cout << "probes: " << probe_median << " ms/probe (median of " << probe_ms.size()
              << ") = " << probe_median / median << " steps; at probe_every " << t.probe_every
              << " probes take " << share * 100 << "% of the run\n";
  }
  json << "}";
  std::cout << "bench " << args.config_path << " on " << compat::cuda_device_name() << ": "
            << median << " ms/step (median of " << ms.size() << "), " << tok_s / 1e3
            << "k tokens/s, " << tflops << " TFLOP/s, MFU " << mfu * 100 << "%, peak memory "
            << peak_gib << " GiB\n";
  std::cout << json.str() << "\n";
  if (args.has("json")) {
    std::ofstream f(args.get("json"));
    f << json.str() << "\n";
  }
  return 0;
}

}  // namespace scalevec::cli
