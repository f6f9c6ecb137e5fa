#!/usr/bin/env bash
# A second real corpus beside the KJV, for runs that need more than its 1.2M tokens: the C
# sources and documentation of Debian's linux-source-6.1 (the kernel tree as a .tar.xz), as JSON
# Lines (one file per document), tokenized with its own tokenizer into data/linux/.
# Not part of CI (a 140 MB package, minutes of work on 2 cores).
#
# usage: bash scripts/prepare_linux.sh [small|full]   (as root for apt-get; default small)
#   small: kernel/ mm/ fs/ext4 net/core lib/ include/linux Documentation/admin-guide (~60 MB)
#   full:  every .c .h .rst .txt of the tree (~1 GB of text)
# then:   build/scalevec train --config configs/linux.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-small}"
scalevec="${SCALEVEC_BIN:-build/scalevec}"
[ -x "$scalevec" ] || { echo "prepare_linux.sh: build first (bash scripts/setup.sh)" >&2; exit 1; }
tarball=$(ls /usr/src/linux-source-6.1.tar.xz 2>/dev/null || true)
if [ -z "$tarball" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "prepare_linux.sh: run as root to install linux-source-6.1" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-source-6.1 >/dev/null
  tarball=/usr/src/linux-source-6.1.tar.xz
fi
case "$size" in
  small) members=(kernel mm fs/ext4 net/core lib include/linux Documentation/admin-guide) ;;
  full) members=(.) ;;
  *) echo "prepare_linux.sh: size must be small or full" >&2; exit 2 ;;
esac
work=data/linux/src
rm -rf "$work" && mkdir -p "$work"
top=$(basename "$tarball" .tar.xz)  # Debian's tarball unpacks into linux-source-6.1/
paths=()
for m in "${members[@]}"; do paths+=("$top/$m"); done
[ "$size" = full ] && paths=("$top")
echo "prepare_linux.sh: unpacking ${members[*]} from $tarball"
tar -xJf "$tarball" -C "$work" --wildcards "${paths[@]}"
# One JSON object per source file; its newlines become the lines the tokenizer tool encodes.
python3 - "$work/$top" data/linux/corpus.jsonl <<'PY'
import json, os, sys
root, out = sys.argv[1], sys.argv[2]
n = size = 0
with open(out, "w", encoding="utf-8") as f:
    for d, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if not name.endswith((".c", ".h", ".rst", ".txt", ".S")):
                continue
            path = os.path.join(d, name)
            text = open(path, encoding="utf-8", errors="replace").read()
            f.write(json.dumps({"text": text, "path": os.path.relpath(path, root)}) + "\n")
            n += 1
            size += len(text)
print(f"prepare_linux.sh: {n} files, {size / 1e6:.1f} MB of text -> {out}")
PY
rm -rf "$work"
"$scalevec" prepare-data --config configs/linux.yaml
