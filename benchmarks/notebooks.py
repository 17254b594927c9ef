"""Learner mode in minutes: execute each notebook as a learner does and report its seconds and peak memory.

Each notebook is executed top to bottom (``jupyter nbconvert --execute``) in learner mode
(``VAELIB_FAST`` unset) or, with ``--fast``, in the CI's smoke mode, from a copy in a temporary
folder (so the repository's notebooks and figures are left as they are). Peak memory is the largest
resident set of the kernel process (``getrusage(RUSAGE_CHILDREN)`` of a process that runs only that
notebook). Targets: at most 3 minutes on 2 CPU cores and 4 GB per notebook in learner mode.

    python benchmarks/notebooks.py                  # all notebooks, learner mode
    python benchmarks/notebooks.py 01 05            # some of them
    python benchmarks/notebooks.py --fast           # the smoke mode CI runs
    python benchmarks/notebooks.py --quick          # the first notebook only, fast mode (a test runs this)

Writes ``benchmarks/results/notebooks-<mode>.json`` (or ``--out``) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S, LIMIT_GB = 180, 4.0

RUN_ONE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr[-3000:] if done.returncode else "")
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB: the largest descendant (the kernel)
sys.exit(done.returncode)
"""


def run_notebook(path: Path, fast: bool, timeout: int) -> dict:
    """Execute a copy of ``path``; return its seconds, peak memory and whether it succeeded."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "notebooks"
        work.mkdir()
        (Path(tmp) / "figures").mkdir()
        copy = work / path.name
        shutil.copy(path, copy)
        env = {**os.environ, "VAELIB_FIGURES": str(Path(tmp) / "figures"), "PYTHONPATH": str(ROOT)}
        env.pop("VAELIB_FAST", None)
        if fast:
            env["VAELIB_FAST"] = "1"
        command = [sys.executable, "-c", RUN_ONE, sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook",
                   "--execute", f"--ExecutePreprocessor.timeout={timeout}", "--output", "executed.ipynb", str(copy)]
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=work, env=env)
        seconds = time.perf_counter() - t0
    peak_kib = int(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else 0
    return {"notebook": path.stem, "seconds": round(seconds, 1), "peak_gb": round(peak_kib / 2**20, 2),
            "ok": done.returncode == 0, "error": done.stderr.strip().splitlines()[-1] if done.returncode else ""}


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="notebook numbers (e.g. 01 05); default: all")
    parser.add_argument("--fast", action="store_true", help="smoke mode (VAELIB_FAST=1) instead of learner mode")
    parser.add_argument("--quick", action="store_true", help="the first notebook only, in fast mode")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    parser.add_argument("--out", default=None, help="JSON record path (default benchmarks/results/notebooks-<mode>.json)")
    args = parser.parse_args(argv)
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [p for p in notebooks if p.name[:2] in args.only]
    fast = args.fast or args.quick
    if args.quick:
        notebooks = notebooks[:1]
    mode = "fast" if fast else "learner"
    print(f"{mode} mode, {os.cpu_count()} CPU cores, python {platform.python_version()}; "
          f"targets: <= {LIMIT_S} s and <= {LIMIT_GB} GB per notebook")
    print(f"{'notebook':<36} {'seconds':>8} {'peak GB':>8}  result")
    rows = []
    for path in notebooks:
        row = run_notebook(path, fast, args.timeout)
        rows.append(row)
        within = row["ok"] and row["seconds"] <= LIMIT_S and row["peak_gb"] <= LIMIT_GB
        verdict = ("ok" if within else "over target") if row["ok"] else f"FAILED: {row['error'][:80]}"
        print(f"{row['notebook']:<36} {row['seconds']:>8.1f} {row['peak_gb']:>8.2f}  {verdict}", flush=True)
    total = sum(r["seconds"] for r in rows)
    print(f"{'total':<36} {total:>8.1f}")
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"notebooks-{mode}.json"
    if not args.quick or args.out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"mode": mode, "cores": os.cpu_count(), "results": rows}, indent=2) + "\n")
        print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    rows = main()
    raise SystemExit(0 if all(r["ok"] for r in rows) else 1)
