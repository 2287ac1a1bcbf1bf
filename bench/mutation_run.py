"""Mutation testing driver: mutmut's mutation operators, one forked pytest per mutant (docs/mutation.md).

Why not `mutmut run`: mutmut 2.5.1 starts a new Python for every mutant (torch + Lightning imports: ~3 CPU-s each,
before any test runs), and on this code base it crashed mid-run in its cache (pony: "Attribute Mutant.line is
required") and then hung. Here the mutants are mutmut's own (`mutmut.list_mutations` / `mutmut.mutate`), but the
heavy imports happen once in a parent process that never imports `src` or `tests`; each mutant is written into the
copy, a forked child runs the target's tests with `pytest.main(["-x", ...])`, and the parent puts the file back.

Run it only inside a throw-away copy of the repository (bench/mutation.sh makes one): it rewrites source files.

    python bench/mutation_run.py <target> [--out results.json] [--limit N]
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

# target -> (files or folders to mutate, tests that exercise them: the kill tests first, they fail fastest)
TARGETS: dict[str, tuple[list[str], list[str]]] = {
    "metrics": (["src/metrics"], ["tests/mutation_kills/test_metrics_kills.py", "tests/metrics"]),
    "losses": (["src/losses"], ["tests/mutation_kills/test_losses_kills.py", "tests/losses"]),
    # The gate's own tests run mediapipe on rendered faces (~10 s a run): its kill tests use exact landmarks.
    "gate": (["src/capture/gate.py"], ["tests/mutation_kills/test_gate_kills.py"]),
    "rgbd_layout": (["src/io/rgbd_layout.py"], ["tests/mutation_kills/test_rgbd_layout_kills.py"]),
    "checkpoint": (
        ["src/utils/checkpoint.py"],
        ["tests/mutation_kills/test_training_kills.py", "tests/entrypoints/test_checkpoints.py"],
    ),
    "export": (["src/export"], ["tests/mutation_kills/test_export_kills.py", "tests/export"]),
    "models_system": (["src/models/system.py", "src/models/gan.py"], ["tests/mutation_kills", "tests/base"]),
    "models_rgbd": (
        ["src/models/rgbd_face.py"],
        ["tests/mutation_kills/test_training_kills.py", "tests/framework/test_framework_gan.py"],
    ),
    "models_base": (["src/models/base"], ["tests/mutation_kills/test_training_kills.py", "tests/base"]),
    "models_components": (["src/models/components"], ["tests/mutation_kills", "tests/components"]),
}
# Imported once in the parent so that forked children start warm (never `src` / `tests`: those must see mutants).
WARM_IMPORTS = ("numpy", "torch", "cv2", "scipy.ndimage", "skimage.metrics", "lightning", "hydra", "omegaconf", "av")


def source_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        files += sorted(p for p in path.rglob("*.py")) if path.is_dir() else [path]
    return [f for f in files if f.name != "__init__.py" or f.stat().st_size > 200]


def mutants_of(path: Path) -> list[tuple[int, str, str]]:
    """(line number, original line, mutated source) of every mutmut mutant of one file."""
    from mutmut import ALL, Context, list_mutations, mutate

    ids = list_mutations(Context(filename=str(path), mutation_id=ALL, dict_synonyms=[]))
    out = []
    for mutation_id in ids:
        mutated, count = mutate(Context(filename=str(path), mutation_id=mutation_id, dict_synonyms=[]))
        if count:
            out.append((mutation_id.line_number + 1, mutation_id.line, mutated))
    return out


def run_tests_in_child(tests: list[str], timeout_s: float) -> tuple[str, float]:
    """Fork; the child runs pytest on `tests` (output discarded). Returns (killed | survived | timeout, seconds)."""
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import pytest

            code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests])
            os._exit(int(code))
        except BaseException:
            os._exit(99)
    deadline = started + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return ("survived" if code == 0 else "killed"), time.monotonic() - started
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - started
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default: mutation-<target>.json)")
    parser.add_argument("--limit", type=int, default=None, help="test at most this many mutants (a quick look)")
    parser.add_argument(
        "--every", type=int, default=1, help="test every k-th mutant in file order (a systematic sample; 1 = all)"
    )
    args = parser.parse_args()
    if (Path(".git").exists() or Path(".venv").exists()) and not os.environ.get("MUTATION_IN_COPY"):
        print("error: run this in a throw-away copy of the repository (bench/mutation.sh)", file=sys.stderr)
        return 2
    sys.dont_write_bytecode = True  # a stale .pyc of the same size and second would hide a mutant
    for cache in Path("src").rglob("__pycache__"):
        shutil.rmtree(cache)
    os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    sys.path.insert(0, os.getcwd())
    for name in WARM_IMPORTS:
        with contextlib.suppress(ImportError):
            __import__(name)
    paths, tests = TARGETS[args.target]
    tests = [t for t in tests if Path(t).exists()]
    baseline, seconds = run_tests_in_child(tests, 3600)
    if baseline != "survived":
        print(f"error: the tests fail without any mutation ({tests})", file=sys.stderr)
        return 1
    timeout = 3 * seconds + 30
    print(f"{args.target}: baseline {seconds:.1f} s; tests {' '.join(tests)}", flush=True)
    results = []
    tested = 0
    for path in source_files(paths):
        original = path.read_text()
        for index, (line_number, _line, mutated) in enumerate(mutants_of(path)):
            if args.limit is not None and tested >= args.limit:
                break
            if index % args.every:
                continue
            path.write_text(mutated)
            try:
                status, took = run_tests_in_child(tests, timeout)
            finally:
                path.write_text(original)
            tested += 1
            diff = [d for d in difflib.unified_diff(original.splitlines(), mutated.splitlines(), lineterm="", n=0)]
            change = " -> ".join(d[1:].strip() for d in diff if d[:1] in "+-" and d[:3] not in ("---", "+++"))
            results.append({"file": str(path), "line": line_number, "status": status, "change": change})
            print(f"{status:8s} {path}:{line_number} {took:5.1f}s  {change[:150]}", flush=True)
    by_file: dict[str, dict[str, int]] = {}
    for r in results:
        by_file.setdefault(r["file"], {"killed": 0, "timeout": 0, "survived": 0})[r["status"]] += 1
    total = {k: sum(c[k] for c in by_file.values()) for k in ("killed", "timeout", "survived")}
    n = sum(total.values())
    rate = (total["killed"] + total["timeout"]) / n if n else float("nan")
    summary = {"target": args.target, "tests": tests, "every": args.every, "by_file": by_file, "total": total}
    summary["kill_rate"] = rate
    out = args.out or Path(f"mutation-{args.target}.json")
    out.write_text(json.dumps({**summary, "mutants": results}, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
