#!/usr/bin/env bash
# Bounded libFuzzer runs of the config parser, the token shard reader, the checkpoint loader and
# the safetensors reader (tests/fuzz/), each for SECONDS (default 60), from seed corpora: the shipped configs, small
# shards written here, and a real checkpoint the target writes itself. A crash, a hang or an
# unexpected exception leaves its input in build-fuzz/crashes/ and fails the script; make it a
# regression test (tests/test_*.cpp) when it is fixed. Needs clang and libclang-rt (Debian:
# clang libclang-rt-14-dev); the build is separate (build-fuzz/, ASan + coverage).
#
# usage: bash scripts/fuzz.sh [SECONDS] [config|shard|checkpoint|safetensors ...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config shard checkpoint safetensors)
build=build-fuzz
command -v clang++ >/dev/null || { echo "fuzz: needs clang++ (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
if [ ! -f "$build/CMakeCache.txt" ]; then
  mkdir -p "$build"
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSCALEVEC_FUZZ=ON -DSCALEVEC_BUILD_TESTS=OFF >"$build/configure.log" 2>&1 ||
    { tail -n 30 "$build/configure.log" >&2; exit 1; }
fi
cmake --build "$build" --target $(printf 'fuzz_%s ' "${targets[@]}")

seeds="$build/seeds"
rm -rf "$seeds" && mkdir -p "$seeds"/{config,shard,checkpoint,safetensors} "$build/crashes"
# Configs: every shipped YAML, with `defaults:` includes resolved against configs/.
cp configs/*.yaml configs/sweeps/*.yaml "$seeds/config/" 2>/dev/null || true
printf 'model:\n  d_model: 64\n\0model.norm.variant=unified\ntrain.steps=10\n' >"$seeds/config/overrides"
# Shards: valid little ones of both dtypes, and an empty one.
python3 - "$seeds/shard" <<'PY'
import struct, sys
def fnv(b):
    h = 0xcbf29ce484222325
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h
for name, dtype, vocab, toks in [("u16", 2, 300, [1, 2, 299, 0, 7]), ("u32", 4, 70000, [69999, 3]), ("empty", 2, 10, [])]:
    payload = b"".join(t.to_bytes(dtype, "little") for t in toks)
    header = b"SVTOKEN1" + struct.pack("<IIQQQ", 1, dtype, len(toks), vocab, fnv(payload)) + bytes(24)
    open(f"{sys.argv[1]}/{name}", "wb").write(header + payload)
PY
# Safetensors: a two-tensor file with metadata, and a header-only one.
python3 - "$seeds/safetensors" <<'PY'
import json, struct, sys
def st(tensors, meta=None):
    header, data = ({"__metadata__": meta} if meta else {}), b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data
open(f"{sys.argv[1]}/two", "wb").write(st([("w", "F32", [2, 1], struct.pack("<2f", 1, 2)),
                                           ("b", "BF16", [1], b"\x80\x3f")], {"format": "pt"}))
open(f"{sys.argv[1]}/empty", "wb").write(st([]))
PY
SCALEVEC_FUZZ_SEED_DIR="$seeds/checkpoint" "$build/fuzz_checkpoint" -runs=0 >/dev/null 2>&1 || true

status=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  echo "fuzz: $t for ${seconds} s"
  # Leak checks off: LibTorch's and yaml-cpp's process-lifetime singletons are not leaks.
  if ! ASAN_OPTIONS=detect_leaks=0 "$build/fuzz_$t" -max_total_time="$seconds" -timeout=20 \
      -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" \
      "$corpus" "$seeds/$t" >"$build/fuzz_$t.log" 2>&1; then
    echo "fuzz: $t FOUND A PROBLEM: $(ls "$build/crashes" | grep "^$t-" | head -3 | tr '\n' ' ')"
    grep -m 5 -E 'ERROR|==[0-9]+==|terminate|Assertion' "$build/fuzz_$t.log" || tail -n 20 "$build/fuzz_$t.log"
    status=1
  fi
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|cov: ' "$build/fuzz_$t.log" | tail -n 3 | sed "s/^/  $t: /"
done
exit "$status"
