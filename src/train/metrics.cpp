#include "scalevec/metrics.h"

#include <cmath>
#include <filesystem>
#include <sstream>

namespace scalevec {
namespace fs = std::filesystem;

namespace {

const char* kBaseColumns = "step,tokens,lr,train_loss,grad_norm,val_loss,tokens_per_s,mfu";

// Keeps the header (CSV) and the rows whose leading step is <= last_step.
void truncate_after(const std::string& path, int64_t last_step, bool has_header) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::vector<std::string> keep;
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (first && has_header) {
      keep.push_back(line);
      first = false;
      continue;
    }
    first = false;
    const auto pos = line.find_first_of("0123456789");
    if (pos == std::string::npos) continue;
    if (std::stoll(line.substr(pos)) <= last_step) keep.push_back(line);
  }
  in.close();
  std::ofstream out(path + ".tmp");
  for (const auto& l : keep) out << l << "\n";
  out.close();
  if (!out) {  // a full disk: keep the file as it was
    fs::remove(path + ".tmp");
    throw std::runtime_error("cannot rewrite " + path + " (disk full?); it is unchanged");
  }
  fs::rename(path + ".tmp", path);
}

std::string number(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity");
  std::ostringstream os;
  os.precision(17);  // round-trips a double exactly: resumed runs compare bit for bit
  os << v;
  return os.str();
}

}  // namespace

MetricsWriter::MetricsWriter(const std::string& out_dir, std::vector<std::string> extra_columns,
                             std::optional<int64_t> resume_step)
    : out_dir_(out_dir), extra_columns_(std::move(extra_columns)) {
  const std::string jsonl = (fs::path(out_dir) / "metrics.jsonl").string();
  const std::string csv = (fs::path(out_dir) / "metrics.csv").string();
  if (resume_step) {
    truncate_after(jsonl, *resume_step, false);
    truncate_after(csv, *resume_step, true);
  } else {
    // A fresh run in a folder with logs but no checkpoint (an attempt that died early): keep them.
    for (const auto& f : {jsonl, csv})
      if (fs::exists(f)) fs::rename(f, f + ".prev");
  }
  const bool new_csv = !fs::exists(csv);
  jsonl_.open(jsonl, std::ios::app);
  csv_.open(csv, std::ios::app);
  if (!jsonl_ || !csv_) throw std::runtime_error("cannot open metrics files in " + out_dir);
  if (new_csv) {
    csv_ << kBaseColumns;
    for (const auto& c : extra_columns_) csv_ << "," << c;
    csv_ << "\n";
  }
}

void MetricsWriter::write(const StepMetrics& m) {
  std::ostringstream j;
  j << "{\"step\": " << m.step << ", \"tokens\": " << m.tokens << ", \"lr\": " << number(m.lr)
    << ", \"train_loss\": " << number(m.train_loss) << ", \"grad_norm\": " << number(m.grad_norm)
    << ", \"tokens_per_s\": " << number(m.tokens_per_s);
  if (m.val_loss) j << ", \"val_loss\": " << number(*m.val_loss);
  if (m.mfu) j << ", \"mfu\": " << number(*m.mfu);
  for (const auto& [k, v] : m.extra) j << ", \"" << k << "\": " << number(v);
  j << "}\n";
  jsonl_ << j.str();
  jsonl_.flush();

  csv_ << m.step << "," << m.tokens << "," << number(m.lr) << "," << number(m.train_loss) << ","
       << number(m.grad_norm) << "," << (m.val_loss ? number(*m.val_loss) : "") << ","
       << number(m.tokens_per_s) << "," << (m.mfu ? number(*m.mfu) : "");
  for (const auto& c : extra_columns_) {
    auto it = m.extra.find(c);
    csv_ << "," << (it == m.extra.end() ? "" : number(it->second));
  }
  csv_ << "\n";
  csv_.flush();
  // A full disk: stop rather than train on with holes in the curves (the checkpoints are intact).
  if (!jsonl_ || !csv_)
    throw std::runtime_error("cannot write metrics to " + out_dir_ + " at step " +
                             std::to_string(m.step) +
                             " (disk full?); stopping, the last "
                             "checkpoint is intact and --resume continues from it");
}

}  // namespace scalevec
