#!/usr/bin/env bash
# Installs the SDK into a temporary prefix, builds examples/out_of_tree_plugin against
# it, and loads the plugin with the installed unitrain; the dataset and scheduler
# examples train with it, and examples/embed predicts through unitrain::inference.
#   usage: out_of_tree_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/lib/cmake/unitrain/unitrainConfig.cmake"
test -f "$tmp/prefix/include/unitrain/plugin_abi.h"
# The kit's headers are what a plugin sees; the engine's are installed apart.
test -f "$tmp/prefix/include/unitrain/options.h"
test -f "$tmp/prefix/include/unitrain-engine/unitrain/trainer.h"
for engine_header in trainer.h registry.h config.h model.h; do
  test ! -e "$tmp/prefix/include/unitrain/$engine_header" \
    || { echo "engine header $engine_header installed among the plugin SDK's"; exit 1; }
done

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
# The plugin's compiler must be the SDK's (the loader compares __GXX_ABI_VERSION, which
# differs between g++ and clang++, as in the sanitizer build).
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
cmake -S "$src/examples/out_of_tree_plugin" -B "$tmp/example" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" ${compiler:+-DCMAKE_CXX_COMPILER="$compiler"} \
  "${launcher[@]}" >/dev/null
cmake --build "$tmp/example" >/dev/null

plugin="$tmp/example/plugins/liblinear_probe.so"
test -f "$plugin"
# It does not link the engine (nor the kit: it calls nothing of it, and LibTorch's
# CMake config links with --as-needed).
needed=$(readelf -d "$plugin")
! grep -q 'libunitrain_core' <<<"$needed" || { echo "plugin links the engine: $needed"; exit 1; }

# A plugin cannot reach the engine: its headers are not on the plugin's include path,
# and a call into it (declared by hand) is an undefined symbol, refused at link time.
mkdir -p "$tmp/reach/src"
cat > "$tmp/reach/src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(reach LANGUAGES CXX)
find_package(unitrain REQUIRED)
unitrain_add_plugin(includes_engine KIND head SOURCES includes_engine.cpp)
unitrain_add_plugin(calls_engine KIND head SOURCES calls_engine.cpp)
CMAKE
echo '#include <unitrain/trainer.h>' > "$tmp/reach/src/includes_engine.cpp"
cat > "$tmp/reach/src/calls_engine.cpp" <<'CPP'
namespace unitrain { void configure_threads(long threads); }  // runtime.h, int64_t
extern "C" void reach_engine() { unitrain::configure_threads(1); }
CPP
cmake -S "$tmp/reach/src" -B "$tmp/reach/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  ${compiler:+-DCMAKE_CXX_COMPILER="$compiler"} >/dev/null
if reach=$(cmake --build "$tmp/reach/build" --target includes_engine 2>&1); then
  echo "a plugin included an engine header: $reach"; exit 1
fi
grep -q 'unitrain/trainer.h' <<<"$reach" || { echo "includes_engine failed otherwise: $reach"; exit 1; }
if reach=$(cmake --build "$tmp/reach/build" --target calls_engine 2>&1); then
  echo "a plugin linked a call into the engine: $reach"; exit 1
fi
grep -q 'undefined reference to .*configure_threads' <<<"$reach" \
  || { echo "calls_engine failed otherwise: $reach"; exit 1; }
# ... although the engine exports exactly that symbol.
core_symbols=$(nm -D --defined-only "$tmp"/prefix/lib*/libunitrain_core.so)
grep -q ' _ZN8unitrain17configure_threadsEl$' <<<"$core_symbols" \
  || { echo "libunitrain_core does not define configure_threads(long)"; exit 1; }
out=$(UNITRAIN_PLUGIN_PATH="$tmp/example/plugins" "$tmp/prefix/bin/unitrain" plugins --json --kind head)
grep -q '"name": "linear_probe"' <<<"$out" || { echo "linear_probe not listed: $out"; exit 1; }
grep -q "\"file\": \"$plugin\"" <<<"$out" || { echo "wrong file: $out"; exit 1; }
grep -q '"origin": "UNITRAIN_PLUGIN_PATH"' <<<"$out" || { echo "wrong origin: $out"; exit 1; }
# The installed binary finds the installed plugins beside it.
all=$("$tmp/prefix/bin/unitrain" plugins)
grep -q "(from installed beside the executable)" <<<"$all" || { echo "installed plugins: $all"; exit 1; }
show=$("$tmp/prefix/bin/unitrain" --plugin "$plugin" plugins show linear_probe)
grep -q '"num_labels": 2' <<<"$show" || { echo "defaults missing: $show"; exit 1; }
# Its key table, generated from its option declaration (unitrain/options.h).
table=$("$tmp/prefix/bin/unitrain" --plugin "$plugin" plugins show linear_probe --options-markdown)
grep -qF '| `num_labels` | int | 2 | classes |' <<<"$table" || { echo "options table: $table"; exit 1; }

# The dataset and scheduler examples of docs/plugin_guide.md: built the same way (no
# build type given: the SDK makes it Release), listed with their README, then used by
# the installed unitrain to train and evaluate a small ImageFolder task.
build_example() {
  cmake -S "$src/examples/$1" -B "$tmp/$1" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    ${compiler:+-DCMAKE_CXX_COMPILER="$compiler"} "${launcher[@]}" >/dev/null
  grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$tmp/$1/CMakeCache.txt" \
    || { echo "$1: the SDK did not default the build type to Release"; exit 1; }
  cmake --build "$tmp/$1" >/dev/null
}
build_example out_of_tree_dataset
build_example out_of_tree_scheduler
unitrain=("$tmp/prefix/bin/unitrain" --plugin-dir "$tmp/out_of_tree_dataset/plugins"
          --plugin-dir "$tmp/out_of_tree_scheduler/plugins")
show=$("${unitrain[@]}" plugins show image_folder)
grep -q "torchvision's \`ImageFolder\` layout" <<<"$show" || { echo "image_folder README: $show"; exit 1; }
# Its options are declared once, the image block as the SDK's group with its own defaults.
table=$("${unitrain[@]}" plugins show image_folder --options-markdown)
grep -qF '| `image/hflip` | float | 0.5 |' <<<"$table" || { echo "image_folder table: $table"; exit 1; }
grep -qF '| `on_bad_record` | string | `"error"` |' <<<"$table" || { echo "image_folder table: $table"; exit 1; }
show=$("${unitrain[@]}" plugins show loss_proportional)
grep -q '"min_share": 0.05' <<<"$show" || { echo "loss_proportional defaults: $show"; exit 1; }

# An ImageFolder tree from the toy suite's COCO images: two classes, train and val.
"${unitrain[@]}" make-toy-suite "$tmp/toy" --images 12 --image-size 48 >/dev/null
i=0
for image in "$tmp"/toy/coco/train2017/*.jpg "$tmp"/toy/coco/val2017/*.jpg; do
  split=train; if (( i % 4 >= 2 )); then split=val; fi
  class=circles; if (( i % 2 )); then class=squares; fi
  mkdir -p "$tmp/folder/$split/$class" && cp "$image" "$tmp/folder/$split/$class/"
  i=$((i + 1))
done
cat > "$tmp/exp.json" <<JSON
{
  "name": "sdk_examples", "seed": 1, "threads": 1,
  "model": {
    "encoders": {"image": {"type": "image", "depth": 18, "width": 8, "layers": [1, 1, 1, 1],
                           "return_layer": "layer3", "hidden_dim": 16, "num_layers": 1,
                           "num_heads": 2, "dim_feedforward": 32, "output_dim": 16}},
    "decoder": {"type": "unit_decoder", "d_model": 16, "num_layers": 1, "num_heads": 2,
                "dim_feedforward": 32},
    "heads": {"shapes": {"type": "mlp_classifier", "in_dim": 16, "num_labels": 2},
              "shapes_flipped": {"type": "mlp_classifier", "in_dim": 16, "num_labels": 2}}
  },
  "tasks": {
    "shapes": {"dataset": {"type": "image_folder", "root": "$tmp/folder",
                           "image": {"min_size": 48, "max_size": 64}},
               "encoders": ["image"], "num_queries": 1, "batch_size": 2},
    "shapes_flipped": {"dataset": {"type": "image_folder", "root": "$tmp/folder",
                                   "image": {"min_size": 48, "max_size": 64, "hflip": 1.0}},
                       "encoders": ["image"], "num_queries": 1, "batch_size": 2}
  },
  "scheduler": {"type": "loss_proportional", "temperature": 2.0},
  "training": {"max_steps": 6, "log_every": 1, "checkpoint_every": 3, "eval_max_batches": 2},
  "data": {"workers": 1, "prefetch": 1}
}
JSON
"${unitrain[@]}" train "$tmp/exp.json" --out "$tmp/run" >"$tmp/train.log" 2>&1 \
  || { cat "$tmp/train.log"; exit 1; }
grep -q '"accuracy"' "$tmp/run/eval.json" || { echo "no accuracy in eval.json"; cat "$tmp/run/eval.json"; exit 1; }
# The scheduler's losses are in the checkpoint's state: a resume from step 3 goes on.
"${unitrain[@]}" train "$tmp/exp.json" --resume "$tmp/run/checkpoints/step_00000003.pt" \
  --out "$tmp/resumed" >"$tmp/resume.log" 2>&1 || { cat "$tmp/resume.log"; exit 1; }
python3 - "$tmp/run/metrics.jsonl" "$tmp/resumed/metrics.jsonl" <<'PY' || exit 1
import json, sys
def steps(path):
    return [(l["step"], l["task"], l["loss"]) for l in map(json.loads, open(path)) if "loss" in l]
straight, resumed = steps(sys.argv[1]), steps(sys.argv[2])
if straight[3:] != resumed:
    sys.exit(f"the resumed run's steps differ: {straight[3:]} != {resumed}")
PY

# examples/embed: a program linking unitrain::inference from the installed SDK answers as
# the installed unitrain predict does, from one thread and from four.
build_example embed
test -f "$tmp/prefix/include/unitrain/inference.h"
images=("$tmp"/folder/val/circles/*.jpg)
image=${images[0]}
plugin_path="$tmp/out_of_tree_dataset/plugins:$tmp/out_of_tree_scheduler/plugins"
embedded=$(UNITRAIN_PLUGIN_PATH="$plugin_path" "$tmp/embed/embed" "$tmp/run" shapes --image "$image" --top 2) \
  || { echo "embed failed: $embedded"; exit 1; }
predicted=$("${unitrain[@]}" predict "$tmp/exp.json" --checkpoint "$tmp/run" --task shapes \
  --image "$image" --top-k 2) || { echo "predict failed: $predicted"; exit 1; }
python3 - "$embedded" "$predicted" <<'PY' || exit 1
import json, sys
lines = sys.argv[1].splitlines()
if lines[0] != "tasks: shapes shapes_flipped" or lines[1] != "task shapes (classification)":
    sys.exit(f"embed printed: {lines}")
if lines[-1] != "threads: 4 concurrent calls agree":
    sys.exit(f"embed threads: {lines}")
got = [(l.split()[0], float(l.split()[1])) for l in lines[2:4]]
want = [(p["label"], p["score"]) for p in json.loads(sys.argv[2])["predictions"]]
if [g[0] for g in got] != [w[0] for w in want] or any(abs(g[1] - w[1]) > 1e-5 for g, w in zip(got, want)):
    sys.exit(f"embed {got} != predict {want}")
PY
echo "out-of-tree head, dataset and scheduler plugins built against the installed SDK, loaded and trained; embed predicts through unitrain::inference: OK"
