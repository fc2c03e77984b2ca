#!/usr/bin/env bash
# unit_toy8's training throughput in one process and in N local processes (Gloo on
# loopback), from the runs' throughput.json: it/s, the group's samples/s and the ratio,
# and the ms per update in each phase. Two groups: the per-process batches of unit_toy8
# (the global batch N times larger; one loader thread per task at nice 10, as
# unit_toy8_dp2) and unit_toy8_2proc's halved batches (unit_toy8's global batch; N = 2
# only). A last row runs N independent one-process trainings side by side, with no
# collective between them: the host's own ceiling for N processes, what contention for
# memory bandwidth and caches leaves. Runs are interleaved over ROUNDS, medians printed.
#   usage: bench/data_parallel_throughput.sh [STEPS=400] [ROUNDS=2] [N=2] [BUILD_DIR]
#   environment: UNITRAIN_TOY_SUITE (default .cache/toy_suite)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
steps=${1:-400}
rounds=${2:-2}
n=${3:-2}
unitrain=${4:-"$root/build"}/bin/unitrain
export UNITRAIN_TOY_SUITE=${UNITRAIN_TOY_SUITE:-"$root/.cache/toy_suite"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=(--set "training.max_steps=$steps" --set training.eval_every=0 --set training.eval_max_batches=1
        --set training.checkpoint_every=0)

for r in $(seq 1 "$rounds"); do
  "$unitrain" train "$root/experiments/unit_toy8.json" --out "$tmp/one_$r" "${common[@]}" > /dev/null 2>&1
  "$unitrain" train "$root/experiments/unit_toy8.json" --nproc-per-node "$n" --out "$tmp/group_$r" \
    --set data.workers=1 --set data.worker_nice=10 "${common[@]}" > /dev/null 2>&1
  if [ "$n" = 2 ]; then
    "$unitrain" train "$root/experiments/unit_toy8_2proc.json" --nproc-per-node 2 --out "$tmp/half_$r" \
      "${common[@]}" > /dev/null 2>&1
  fi
  pids=()
  for k in $(seq 1 "$n"); do
    "$unitrain" train "$root/experiments/unit_toy8.json" --out "$tmp/apart_${r}_$k" \
      --set data.workers=1 --set data.worker_nice=10 "${common[@]}" > /dev/null 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
done
python3 - "$tmp" "$rounds" "$n" "$steps" <<'PY'
import json, statistics, sys, os
tmp, rounds, n, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def runs(kind):
    out = []
    for r in range(1, rounds + 1):
        f = os.path.join(tmp, f"{kind}_{r}", "throughput.json")
        if os.path.exists(f):
            out.append(json.load(open(f))["all"])
    return out
def apart():
    # N independent processes per round, each with the same steps: their samples/s add
    # up; it/s and phases are the processes' means.
    out = []
    for r in range(1, rounds + 1):
        fs = [os.path.join(tmp, f"apart_{r}_{k}", "throughput.json") for k in range(1, n + 1)]
        if not all(os.path.exists(f) for f in fs):
            continue
        xs = [json.load(open(f))["all"] for f in fs]
        out.append({"it_per_s": sum(x["it_per_s"] for x in xs) / n,
                    "samples_per_s": sum(x["samples_per_s"] for x in xs) / n,
                    "steps": xs[0]["steps"],
                    "phases": {p: sum(x["phases"][p] for x in xs) / n for p in xs[0]["phases"]},
                    "collectives": 0.0})
    return out
rows = [("1 process", "one", 1), (f"{n} processes, unit_toy8's batch each", "group", n),
        ("2 processes, halved batches (unit_toy8_2proc)", "half", 2),
        (f"{n} independent processes (no collectives)", "apart", n)]
base = None
print(f"unit_toy8, {steps} updates, median of {rounds} interleaved rounds (rank 0's clock)")
print(f"{'run':<48} {'it/s':>6} {'samples/s':>10} {'ratio':>6}   ms per update: data / fwd / bwd / update"
      " (of which in collectives)")
for label, kind, procs in rows:
    rs = apart() if kind == "apart" else runs(kind)
    if not rs:
        continue
    its = statistics.median(x["it_per_s"] for x in rs)
    # rank 0 counts its own samples; the group trains procs times as many
    sps = statistics.median(x["samples_per_s"] for x in rs) * procs
    if base is None:
        base = sps
    phases = {p: statistics.median(1000 * x["phases"][p] / x["steps"] for x in rs)
              for p in ("data", "forward", "backward", "update")}
    coll = statistics.median(1000 * x.get("collectives", 0.0) / x["steps"] for x in rs)
    print(f"{label:<48} {its:6.2f} {sps:10.1f} {sps / base:6.2f}x   "
          f"{phases['data']:.1f} / {phases['forward']:.1f} / {phases['backward']:.1f} / {phases['update']:.1f} ({coll:.1f})")
PY
