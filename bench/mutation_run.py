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

# target -> (files or folders to mutate, tests that exercise them: the kill tests first, they fail fastest).
# Tests may be node ids (file::test): slow entry-point tests (run_cli, subprocesses, ONNX of big nets) are left out,
# so a surviving mutant (it runs the whole list) costs a few CPU-seconds.
_CKPT_SAFETY = "tests/entrypoints/test_checkpoint_safety.py::"
_EXPORT_CKPT = "tests/export/test_export_checkpoint.py::"
_GENERIC_COMPONENTS = [
    f"src/models/components/{name}.py"
    for name in ("backbones", "discriminators", "generators", "importers", "norms", "rgbd_masking")
]
TARGETS: dict[str, tuple[list[str], list[str]]] = {
    "metrics": (["src/metrics"], ["tests/mutation_kills/test_metrics_kills.py", "tests/metrics"]),
    "losses": (["src/losses"], ["tests/mutation_kills/test_losses_kills.py", "tests/losses"]),
    # The gate's own tests run mediapipe on rendered faces (~10 s a run): its kill tests use exact landmarks.
    "gate": (["src/capture/gate.py"], ["tests/mutation_kills/test_gate_kills.py"]),
    "rgbd_layout": (["src/io/rgbd_layout.py"], ["tests/mutation_kills/test_rgbd_layout_kills.py"]),
    "checkpoint": (
        ["src/utils/checkpoint.py"],
        [
            "tests/mutation_kills/test_checkpoint_kills.py",
            "tests/mutation_kills/test_training_kills.py::test_a_checkpoint_that_runs_code_is_refused_and_does_not_run",
            f"{_CKPT_SAFETY}test_atomic_save_replaces_the_file_and_keeps_normal_permissions",
            f"{_CKPT_SAFETY}test_a_pickle_that_would_run_code_is_refused_with_one_line",
            f"{_CKPT_SAFETY}test_our_checkpoints_load_weights_only_with_no_allow_listed_globals",
            "tests/entrypoints/test_checkpoints.py",
        ],
    ),
    "export": (
        ["src/export"],
        [
            "tests/mutation_kills/test_export_kills.py",
            "tests/export/test_export_generator.py::test_bad_requests_are_one_line_errors",
            "tests/export/test_export_modules.py::test_declaration_mismatches_are_one_line_errors",
            f"{_EXPORT_CKPT}test_checkpoint_export_rebuilds_the_module_and_matches_its_deployable_network",
            f"{_EXPORT_CKPT}test_raw_generator_export_with_explicit_image_size",
            "tests/export/test_export_generator.py::test_export_that_differs_from_eager_fails_and_keeps_previous_files",
        ],
    ),
    # src/models: the shared base, the system hooks, rgbd_face, the generic components, then one target per system
    # (its model file and its own components, with its fast model-level tests).
    "models_base": (
        ["src/models/base"],
        ["tests/mutation_kills/test_base_kills.py", "tests/mutation_kills/test_training_kills.py", "tests/base"],
    ),
    "models_system": (
        ["src/models/system.py"],
        [
            "tests/mutation_kills/test_system_kills.py",
            "tests/base",
            f"{_EXPORT_CKPT}test_raw_generator_export_with_explicit_image_size",
        ],
    ),
    "models_rgbd": (
        ["src/models/rgbd_face.py"],
        [
            "tests/mutation_kills/test_training_kills.py",
            "tests/mutation_kills/test_rgbd_kills.py",
            "tests/base/test_rgbd_face_pinned.py",
            "tests/framework/test_framework_gan.py",
        ],
    ),
    "models_components": (_GENERIC_COMPONENTS, ["tests/mutation_kills/test_components_kills.py", "tests/components"]),
    "models_dfdn": (
        ["src/models/dfdn.py", "src/models/components/dfdn_networks.py", "src/models/components/dfdn_render.py"],
        [
            "tests/mutation_kills/test_dfdn_kills.py",
            "tests/dfdn/test_dfdn_networks.py",
            "tests/dfdn/test_dfdn_render.py",
            "tests/dfdn/test_dfdn_system.py",
        ],
    ),
    "models_dg": (
        [
            "src/models/dg_idsg.py",
            "src/models/dg_rfg.py",
            "src/models/components/dg_face_features.py",
            "src/models/components/dg_idsg.py",
            "src/models/components/dg_landmark_probe.py",
            "src/models/components/dg_rfg.py",
            "src/models/components/dg_geometry.py",
        ],
        [
            "tests/mutation_kills/test_dg_kills.py",
            "tests/dg/test_dg_networks.py",
            "tests/dg/test_dg_systems.py",
            "tests/dg/test_dg_drawing_geometry.py",
        ],
    ),
    "models_head2head": (
        [
            "src/models/head2head.py",
            "src/models/components/head2head_generator.py",
            "src/models/components/head2head_parts.py",
            "src/models/components/flownet2.py",
            "src/models/components/flownet2_ops.py",
        ],
        ["tests/mutation_kills/test_head2head_kills.py", "tests/head2head/test_head2head_model.py", "tests/flownet2"],
    ),
    "models_prnet": (
        [
            "src/models/prnet.py",
            "src/models/components/prnet_crop.py",
            "src/models/components/prnet_resfcn.py",
            "src/models/components/prnet_tf_bundle.py",
            "src/models/components/prnet_uv.py",
        ],
        [
            "tests/mutation_kills/test_prnet_kills.py",
            "tests/prnet/test_prnet_network.py",
            "tests/prnet/test_prnet_system.py",
            "tests/faces2one/test_network_formats.py",
        ],
    ),
}
# Imported once in the parent so that forked children start warm (never `src` / `tests`: those must see mutants).
WARM_IMPORTS = ("numpy", "torch", "cv2", "scipy.ndimage", "skimage.metrics", "lightning", "hydra", "omegaconf", "av")


def source_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        files += sorted(p for p in path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
    return [f for f in files if f.name != "__init__.py" or f.stat().st_size > 200]


def mutants_of(path: Path, every: int = 1, only: set[int] | None = None) -> list[tuple[int, int, str]]:
    """(index, line number, mutated source) of every `every`-th mutmut mutant of one file (or those in `only`).

    The index is the mutant's place in mutmut's file order (what --recheck uses to find it again). Only the sampled
    mutants are built: mutmut re-parses the file for each one (3 CPU-min for all of src/models).
    """
    from mutmut import ALL, Context, list_mutations, mutate

    ids = list_mutations(Context(filename=str(path), mutation_id=ALL, dict_synonyms=[]))
    wanted = sorted(only) if only is not None else range(0, len(ids), every)
    out = []
    for index in wanted:
        if index >= len(ids):
            continue
        mutated, count = mutate(Context(filename=str(path), mutation_id=ids[index], dict_synonyms=[]))
        if count:
            out.append((index, ids[index].line_number + 1, mutated))
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
    parser.add_argument(
        "--recheck",
        type=Path,
        default=None,
        help="test again only the surviving mutants of an earlier results JSON (after new kill tests)",
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
    tests = [t for t in tests if Path(t.split("::")[0]).exists()]
    baseline, seconds = run_tests_in_child(tests, 3600)
    if baseline != "survived":
        print(f"error: the tests fail without any mutation ({tests})", file=sys.stderr)
        return 1
    timeout = 3 * seconds + 30
    print(f"{args.target}: baseline {seconds:.1f} s; tests {' '.join(tests)}", flush=True)
    results = []
    tested = 0
    recheck: dict[str, dict[int, str]] | None = None
    if args.recheck is not None:  # {file: {index: change}} of the earlier run's survivors
        recheck = {}
        earlier = json.loads(args.recheck.read_text())
        place: dict[str, int] = {}
        for r in earlier["mutants"]:
            # results written before the index was recorded: the k-th sampled mutant of a file is index k * every
            index = r.get("index", place.get(r["file"], 0) * earlier["every"])
            place[r["file"]] = place.get(r["file"], 0) + 1
            if r["status"] == "survived":
                recheck.setdefault(r["file"], {})[index] = r["change"]
    for path in source_files(paths):
        if recheck is not None and str(path) not in recheck:
            continue
        original = path.read_text()
        only = set(recheck[str(path)]) if recheck is not None else None
        for index, line_number, mutated in mutants_of(path, args.every, only):
            if args.limit is not None and tested >= args.limit:
                break
            path.write_text(mutated)
            try:
                status, took = run_tests_in_child(tests, timeout)
            finally:
                path.write_text(original)
            tested += 1
            diff = [d for d in difflib.unified_diff(original.splitlines(), mutated.splitlines(), lineterm="", n=0)]
            change = " -> ".join(d[1:].strip() for d in diff if d[:1] in "+-" and d[:3] not in ("---", "+++"))
            if recheck is not None and recheck[str(path)][index] != change:
                status = "stale"  # the file changed since the earlier run: this index is another mutant now
            results.append(
                {
                    "file": str(path),
                    "index": index,
                    "line": line_number,
                    "status": status,
                    "seconds": round(took, 1),
                    "change": change,
                }
            )
            print(f"{status:8s} {path}:{line_number} {took:5.1f}s  {change[:150]}", flush=True)
    by_file: dict[str, dict[str, int]] = {}
    for r in results:
        by_file.setdefault(r["file"], {"killed": 0, "timeout": 0, "survived": 0, "stale": 0})[r["status"]] += 1
    total = {k: sum(c[k] for c in by_file.values()) for k in ("killed", "timeout", "survived", "stale")}
    n = total["killed"] + total["timeout"] + total["survived"]
    rate = (total["killed"] + total["timeout"]) / n if n else float("nan")
    commit = os.environ.get("MUTATION_COMMIT", "unknown")
    summary = {"target": args.target, "commit": commit, "tests": tests, "every": args.every}
    summary["recheck"] = str(args.recheck) if args.recheck is not None else None
    summary.update({"by_file": by_file, "total": total})
    summary["kill_rate"] = rate
    out = args.out or Path(f"mutation-{args.target}.json")
    out.write_text(json.dumps({**summary, "mutants": results}, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
