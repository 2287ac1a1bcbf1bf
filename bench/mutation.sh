#!/usr/bin/env bash
# Mutation testing with mutmut 2.5.1, one module at a time, outside CI (see docs/mutation.md).
#
#   bench/mutation.sh <target> [<target> ...]      targets: metrics losses gate rgbd_layout checkpoint export
#                                                          models_system models_rgbd models_base models_components
#   bench/mutation.sh --list                        print the targets with their paths and tests
#
# mutmut 2 mutates files IN PLACE, so each target runs in its own copy of the repository
# (${MUTATION_DIR:-/tmp/facesynth-mutation}/<target>), never in the checkout. Each target runs only the tests that
# exercise its code (the runner below), on one thread, stopping at the first failure (-x): a killed mutant costs
# one pytest start (~3 CPU-s) plus the tests up to the first failing one. Results: `mutmut results` in the copy,
# also written to <copy>/mutmut-results.txt.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
MUTMUT="${MUTMUT:-$REPO/.venv/bin/mutmut}"
WORK="${MUTATION_DIR:-/tmp/facesynth-mutation}"
PYTEST="env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $PYTHON -m pytest -x -q -p no:cacheprovider -p no:randomly"

# target -> "paths to mutate|tests that exercise them"
declare -A TARGETS=(
  [metrics]="src/metrics/|tests/metrics tests/mutation_kills/test_metrics_kills.py"
  [losses]="src/losses/|tests/losses tests/mutation_kills/test_losses_kills.py"
  [gate]="src/capture/gate.py|tests/capture/test_capture_gate.py tests/mutation_kills/test_gate_kills.py"
  [rgbd_layout]="src/io/rgbd_layout.py|tests/mutation_kills/test_rgbd_layout_kills.py tests/framework/test_framework_datamodule.py tests/convert/test_convert_frames.py"
  [checkpoint]="src/utils/checkpoint.py|tests/entrypoints/test_checkpoints.py tests/mutation_kills/test_training_kills.py"
  [export]="src/export/|tests/export tests/mutation_kills/test_export_kills.py"
  [models_system]="src/models/system.py,src/models/gan.py|tests/base tests/mutation_kills/test_training_kills.py"
  [models_rgbd]="src/models/rgbd_face.py|tests/base/test_rgbd_face_pinned.py tests/framework/test_framework_gan.py tests/mutation_kills/test_training_kills.py"
  [models_base]="src/models/base/|tests/base tests/mutation_kills/test_training_kills.py"
  [models_components]="src/models/components/|tests/components tests/mutation_kills/test_training_kills.py"
)

if [[ "${1:-}" == "--list" || $# -eq 0 ]]; then
  for target in "${!TARGETS[@]}"; do
    IFS='|' read -r paths tests <<<"${TARGETS[$target]}"
    printf '%-18s mutate %-40s tests %s\n' "$target" "$paths" "$tests"
  done | sort
  exit 0
fi

for target in "$@"; do
  if [[ -z "${TARGETS[$target]:-}" ]]; then
    echo "error: unknown target '$target' (bench/mutation.sh --list)" >&2
    exit 2
  fi
  IFS='|' read -r paths tests <<<"${TARGETS[$target]}"
  copy="$WORK/$target"
  mkdir -p "$copy"
  # A fresh copy of the sources and tests; the cache (.mutmut-cache) survives, so a rerun retests only what changed.
  find "$copy" -mindepth 1 -maxdepth 1 ! -name .mutmut-cache -exec rm -rf {} +
  tar -C "$REPO" --exclude ./.git --exclude ./.venv --exclude ./data --exclude ./logs --exclude ./outputs \
    --exclude '__pycache__' --exclude .mutmut-cache -cf - . | tar -C "$copy" -xf -
  existing=""
  for t in $tests; do [[ -e "$copy/$t" ]] && existing="$existing $t"; done
  echo "== $target: mutate $paths; tests$existing" >&2
  (
    cd "$copy"
    "$MUTMUT" run --paths-to-mutate "$paths" --tests-dir tests/ --runner "$PYTEST$existing" --no-progress || true
    "$MUTMUT" results | tee mutmut-results.txt
  )
done
