// Per-step metrics to metrics.jsonl and metrics.csv (same rows, fixed columns).
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace scalevec {

struct StepMetrics {
  int64_t step = 0;
  int64_t tokens = 0;
  double lr = 0;
  double train_loss = 0;
  double grad_norm = 0;
  std::optional<double> val_loss;
  double tokens_per_s = 0;
  std::optional<double> mfu;
  std::map<std::string, double> extra;  // e.g. scale.pre_attn.mean; missing columns stay empty
};

class MetricsWriter {
 public:
  // On resume, rows after `resume_step` (written after the checkpoint) are dropped first, so the
  // files hold each step once.
  MetricsWriter(const std::string& out_dir, std::vector<std::string> extra_columns,
                std::optional<int64_t> resume_step);
  void write(const StepMetrics& m);

 private:
  std::string out_dir_;
  std::vector<std::string> extra_columns_;
  std::ofstream jsonl_, csv_;
};

}  // namespace scalevec
