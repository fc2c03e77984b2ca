#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets of fuzz/ (in the sanitizer build folder,
# see scripts/sanitize.sh) and runs each for a bounded time from its committed seed
# corpus, then prints per target the executions, the inputs that found new coverage
# and what was found. Exit 1 when a target found a crash, a sanitizer report, an
# exception other than unitrain's errors, a hang or a run past the memory limit; the
# input that did it is in BUILD_DIR/fuzz/findings/ (rerun: BUILD_DIR/fuzz/TARGET FILE).
#   usage: scripts/fuzz.sh [BUILD_DIR]   (default build-sanitize)
#   FUZZ_SECONDS (default 60) per target; FUZZ_TARGETS to choose ("fuzz_coco fuzz_glue")
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-"$root/build-sanitize"}
jobs=${UNITRAIN_JOBS:-$(nproc)}
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"fuzz_experiment fuzz_coco fuzz_glue fuzz_vqa2 fuzz_snli_ve fuzz_image fuzz_tokenizer fuzz_tensor_file"}

UNITRAIN_EXTRA_PACKAGES="clang libclang-rt-14-dev" "$root/scripts/setup.sh" --deps-only
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER=clang++ -DUNITRAIN_FUZZ=ON \
    -DUNITRAIN_BUILD_TESTS=ON -DUNITRAIN_BUILD_BENCH=OFF
fi
# The fuzz targets and the dataset plugins they load.
cmake --build "$build_dir" -j "$jobs" --target fuzz_targets unitrain_coco_detection \
  unitrain_vg_detection unitrain_glue unitrain_vqa2 unitrain_snli_ve

source "$root/scripts/sanitizer_env.sh"
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/fuzz/lsan.supp}
export OMP_NUM_THREADS=1
findings_dir="$build_dir/fuzz/findings"
mkdir -p "$findings_dir"
printf '%-18s %8s %12s %10s %10s  %s\n' target seconds executions exec/s new_units result
failed=0
for target in $targets; do
  corpus="$build_dir/fuzz/corpus/$target"  # grows run after run; the seeds stay as committed
  log="$build_dir/fuzz/$target.log"
  mkdir -p "$corpus"
  status=0
  "$build_dir/fuzz/$target" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
    -malloc_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$findings_dir/$target-" \
    "$corpus" "$root/fuzz/corpus/$target" >"$log" 2>&1 || status=$?
  stat() { grep -oP "^stat::$1:\s*\K[0-9]+" "$log" | tail -1 || true; }
  execs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  units=$(stat new_units_added)
  result="ok"
  if ((status != 0)); then
    result="FOUND: $(grep -m1 -oE 'ERROR: [A-Za-z]+: [^ ]+( [^ ]+)?|deadly signal|timeout after|out-of-memory|terminate called[^\n]*' "$log" || echo "exit $status") (see $log)"
    failed=1
  fi
  printf '%-18s %8s %12s %10s %10s  %s\n' "$target" "$seconds" "${execs:-?}" "${rate:-?}" "${units:-?}" "$result"
done
exit $failed
