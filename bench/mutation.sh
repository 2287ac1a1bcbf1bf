#!/usr/bin/env bash
# Mutation testing, one target at a time, outside CI (docs/mutation.md): mutmut 2.5.1's mutation operators,
# driven by bench/mutation_run.py (one forked pytest per mutant; heavy imports done once).
#
#   bench/mutation.sh <target> [<target> ...]      e.g. bench/mutation.sh metrics losses gate rgbd_layout
#   bench/mutation.sh --list                        the targets, the files they mutate and the tests they run
#
# Mutants are written into a fresh copy of one commit (MUTATION_COMMIT, default HEAD: `git archive`, so other
# people's uncommitted edits in the checkout never leak into a run) in ${MUTATION_DIR:-/tmp/facesynth-mutation}/<target>,
# never into the checkout. Each target runs only the tests that exercise its code, on one thread, stopping at the
# first failure (-x). MUTATION_ARGS="--every 3" tests every third mutant (a sample). After new kill tests,
# MUTATION_SUFFIX=.recheck MUTATION_ARGS="--recheck $dir/<target>.json" tests only the earlier run's survivors
# (results in <dir>/<target>.recheck.json). Results: <dir>/<target>.json (every mutant, its status and change) and <dir>/<target>.log.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"

WORK="${MUTATION_DIR:-/tmp/facesynth-mutation}"
COMMIT="$(git -C "$REPO" rev-parse "${MUTATION_COMMIT:-HEAD}")"

# The targets and the tests each one runs live in bench/mutation_run.py (TARGETS).
declare -A TARGETS=()
for target in $("$PYTHON" -c "import sys; sys.path.insert(0, '$REPO/bench'); import mutation_run; print(' '.join(mutation_run.TARGETS))"); do
  TARGETS[$target]=1
done

if [[ "${1:-}" == "--list" || $# -eq 0 ]]; then
  "$PYTHON" -c "import sys; sys.path.insert(0, '$REPO/bench'); import mutation_run
for name, (paths, tests) in sorted(mutation_run.TARGETS.items()):
    print(f'{name:18s} mutate {\" \".join(paths):45s} tests {\" \".join(tests)}')"
  exit 0
fi

for target in "$@"; do
  if [[ -z "${TARGETS[$target]:-}" ]]; then
    echo "error: unknown target '$target' (bench/mutation.sh --list)" >&2
    exit 2
  fi
  name="$target${MUTATION_SUFFIX:-}"
  copy="$WORK/$name"
  rm -rf "$copy"
  mkdir -p "$copy"
  # A fresh copy of one commit's sources, configs and tests: mutants are written into it, never into the checkout.
  git -C "$REPO" archive --format=tar "$COMMIT" | tar -C "$copy" -xf -
  echo "== $target (commit $COMMIT, copy: $copy)" >&2
  (cd "$copy" && MUTATION_IN_COPY=1 MUTATION_COMMIT="$COMMIT" PYTHONPATH="$copy" "$PYTHON" bench/mutation_run.py "$target" \
    --out "$WORK/$name.json" ${MUTATION_ARGS:-} | tee "$WORK/$name.log")
done
