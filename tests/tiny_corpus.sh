# Sourced by the ctest shell tests: prepare_tiny_corpus SRC BUILD DIR writes DIR/base.yaml
# (configs/tiny.yaml with a 512-piece tokenizer over Debian's license texts, in DIR/data) and
# runs the real prepare-data path on it.
prepare_tiny_corpus() {
  local src="$1" build="$2" dir="$3"
  cat /usr/share/common-licenses/{GPL-3,Apache-2.0,GFDL-1.3,MPL-2.0} > "$dir/corpus.txt"
  cat > "$dir/base.yaml" <<YAML
defaults: $src/configs/tiny.yaml
model: {vocab_size: 512}
data:
  corpus: [$dir/corpus.txt]
  out_dir: $dir/data
  train_shard: $dir/data/train.bin
  val_shard: $dir/data/val.bin
  tokenizer: $dir/data/tokenizer.model
  val_fraction: 0.1
YAML
  "$build/scalevec" prepare-data --config "$dir/base.yaml" > "$dir/prepare.log" 2>&1 ||
    { cat "$dir/prepare.log"; return 1; }
}
