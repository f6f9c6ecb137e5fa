// Parallel encoding of corpus lines into the train and validation token streams: one reader,
// N encoding workers, and an in-order writer, so the output is byte-identical whatever N is.
// Torch-free and tokenizer-agnostic (the tokenizer tool passes sentencepiece's Encode).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "scalevec/text_source.h"

namespace scalevec {

struct EncodeOptions {
  int workers = 1;
  int64_t block_lines = 64;    // validation is taken in blocks of this many non-empty lines
  double val_fraction = 0.01;  // block j is held out iff floor((j+1)*f) > floor(j*f)
  uint32_t eos = 2;            // appended after every line
  int64_t batch_lines = 4096;  // lines per unit of work
};

struct EncodeProgress {
  uint64_t bytes = 0;   // text bytes read so far
  uint64_t tokens = 0;  // tokens written so far
  double seconds = 0;
};

struct EncodeCounts {
  int64_t lines = 0, blocks = 0, val_blocks = 0;
};

struct EncodeResult : EncodeCounts {
  std::vector<uint32_t> train, val;
};

// Thread-safe: called concurrently by the workers. Writes the ids of one line.
using LineEncoder = std::function<void(const std::string& line, std::vector<int>& ids)>;

// Called in input order, from the calling thread, once per non-empty line: which stream it goes
// to, whether it opens a validation block, and its ids (EOS not included).
using LineSink = std::function<void(bool to_val, bool block_start, const std::vector<int>& ids)>;

// The streaming form: memory is the batches in flight (2 x workers), whatever the input size.
EncodeCounts encode_lines_to(TextLineSource& source, const LineEncoder& encode,
                             const EncodeOptions& options, const LineSink& sink,
                             const std::function<void(const EncodeProgress&)>& progress = {},
                             double progress_seconds = 2.0);

// Both streams in memory (EOS after every line). A corpus too short for one validation block
// gets its last block held out.
// Reads every line of `source`, skips empty ones, encodes the rest; `progress` (if set) is called
// from the calling thread about every `progress_seconds`. Errors in a worker are rethrown here.
EncodeResult encode_lines(TextLineSource& source, const LineEncoder& encode,
                          const EncodeOptions& options,
                          const std::function<void(const EncodeProgress&)>& progress = {},
                          double progress_seconds = 2.0);

}  // namespace scalevec
