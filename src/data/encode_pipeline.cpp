#include "scalevec/encode_pipeline.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

namespace scalevec {

namespace {

struct Work {
  int64_t seq = 0;
  std::vector<std::string> lines;
  std::vector<char> to_val;       // per line
  std::vector<char> block_start;  // per line: the first line of a block
  std::vector<std::vector<int>> ids;
};

}  // namespace

EncodeCounts encode_lines_to(TextLineSource& source, const LineEncoder& encode,
                             const EncodeOptions& options, const LineSink& sink,
                             const std::function<void(const EncodeProgress&)>& progress,
                             double progress_seconds) {
  const int workers = std::max(1, options.workers);
  const size_t max_queued = 2 * static_cast<size_t>(workers);  // bounds memory
  std::mutex mu;
  std::condition_variable work_ready, space_ready, done_ready;
  std::deque<Work> todo;
  std::map<int64_t, Work> done;
  bool finished_reading = false, failed = false;
  std::exception_ptr error;

  auto worker = [&] {
    for (;;) {
      Work w;
      {
        std::unique_lock<std::mutex> lock(mu);
        work_ready.wait(lock, [&] { return !todo.empty() || finished_reading || failed; });
        if (failed || todo.empty()) return;
        w = std::move(todo.front());
        todo.pop_front();
      }
      space_ready.notify_one();
      try {
        w.ids.resize(w.lines.size());
        for (size_t i = 0; i < w.lines.size(); ++i) encode(w.lines[i], w.ids[i]);
        w.lines.clear();
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        failed = true;
        work_ready.notify_all();
        space_ready.notify_all();
        done_ready.notify_all();
        return;
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        done.emplace(w.seq, std::move(w));
      }
      done_ready.notify_one();
    }
  };

  EncodeCounts out;
  int64_t next_to_write = 0;
  uint64_t tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  auto last_report = start;
  // Appends finished work in sequence order, until `until_seq` (waiting for it to be done).
  auto write_ready = [&](int64_t until_seq) {
    for (;;) {
      Work w;
      {
        std::unique_lock<std::mutex> lock(mu);
        if (next_to_write >= until_seq) return;
        done_ready.wait(lock, [&] { return failed || done.count(next_to_write); });
        if (failed) return;
        auto it = done.find(next_to_write);
        w = std::move(it->second);
        done.erase(it);
      }
      for (size_t i = 0; i < w.ids.size(); ++i) {
        sink(w.to_val[i] != 0, w.block_start[i] != 0, w.ids[i]);
        tokens += w.ids[i].size() + 1;
      }
      ++next_to_write;
    }
  };

  std::vector<std::thread> threads;
  for (int i = 0; i < workers; ++i) threads.emplace_back(worker);
  int64_t seq = 0;
  try {
    Work w;
    std::string line;
    auto submit = [&] {
      if (w.to_val.empty()) return;
      w.seq = seq++;
      {
        std::unique_lock<std::mutex> lock(mu);
        space_ready.wait(lock, [&] { return todo.size() < max_queued || failed; });
        if (!failed) todo.push_back(std::move(w));
      }
      work_ready.notify_one();
      w = Work();
      // Keep the writer close behind, so finished work does not pile up.
      write_ready(seq - static_cast<int64_t>(max_queued));
      if (progress) {
        const auto now = std::chrono::steady_clock::now();
        if (std::chrono::duration<double>(now - last_report).count() >= progress_seconds) {
          last_report = now;
          progress(
              {source.stats().bytes, tokens, std::chrono::duration<double>(now - start).count()});
        }
      }
    };
    while (source.next(line)) {
      if (line.empty()) continue;
      const int64_t block = out.lines / options.block_lines;
      const bool to_val =
          std::floor((block + 1) * options.val_fraction) > std::floor(block * options.val_fraction);
      const bool first_of_block = out.lines % options.block_lines == 0;
      if (first_of_block) {
        ++out.blocks;
        out.val_blocks += to_val;
      }
      ++out.lines;
      w.lines.push_back(std::move(line));
      w.to_val.push_back(to_val);
      w.block_start.push_back(first_of_block);
      if (static_cast<int64_t>(w.lines.size()) >= options.batch_lines) submit();
    }
    submit();
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu);
    if (!error) error = std::current_exception();
    failed = true;
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    finished_reading = true;
  }
  work_ready.notify_all();
  space_ready.notify_all();
  if (!failed) write_ready(seq);
  {
    std::lock_guard<std::mutex> lock(mu);
    failed = failed || error != nullptr;
  }
  done_ready.notify_all();
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
  if (progress)
    progress({source.stats().bytes, tokens,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
  return out;
}

EncodeResult encode_lines(TextLineSource& source, const LineEncoder& encode,
                          const EncodeOptions& options,
                          const std::function<void(const EncodeProgress&)>& progress,
                          double progress_seconds) {
  EncodeResult out;
  size_t last_block_start = 0;
  bool last_block_val = false;
  const auto sink = [&](bool to_val, bool block_start, const std::vector<int>& ids) {
    if (block_start) {
      last_block_val = to_val;
      if (!to_val) last_block_start = out.train.size();
    }
    auto& stream = to_val ? out.val : out.train;
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(options.eos);  // lines are the documents (KJV: one verse each)
  };
  const EncodeCounts c = encode_lines_to(source, encode, options, sink, progress, progress_seconds);
  out.lines = c.lines;
  out.blocks = c.blocks;
  out.val_blocks = c.val_blocks;
  // A corpus shorter than 1/f blocks would get no validation data: hold out its last block.
  if (options.val_fraction > 0.0 && out.val_blocks == 0 && out.blocks >= 2 && !last_block_val) {
    out.val.assign(out.train.begin() + static_cast<std::ptrdiff_t>(last_block_start),
                   out.train.end());
    out.train.resize(last_block_start);
    out.val_blocks = 1;
  }
  return out;
}

}  // namespace scalevec
