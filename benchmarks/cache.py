"""The result cache on the sample corpus: first run against the rerun of the unchanged apps.

    .venv/bin/python benchmarks/cache.py [--repetitions 3] [--workers N]

Copies ``evals/`` (the suite and its 15 apps) to a temp folder and, per repetition,
runs ``python -m pytest -q --klaud-cache --klaud-no-tracking`` twice: the first run
with ``--klaud-cache-clear`` (every app evaluated), the second over the unchanged apps
(every result reused). Reports the wall times, their ratio (the issue asks for at least
20x), and where the rerun's time goes: pytest start-up and collection with the plugin
(``--collect-only``) and the cache keys (hashing the apps, in this process).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _common import ROOT, clean_env, machine_table, markdown_table, median, timed, wall_and_cpu

from pytest_klaudbiusz.apps.evaluation import EvalOptions
from pytest_klaudbiusz.apps.plan import discover_apps
from pytest_klaudbiusz.scale.reuse import result_key

TARGET_RATIO = 20.0


def reused_count(suite: Path) -> int:
    report = json.loads((suite / "app-eval" / "evaluation_report.json").read_text())
    return int(report["summary"]["reused"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3, help="first/second run pairs")
    parser.add_argument("--workers", type=int, default=0, help="pytest-xdist workers (-n)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="klaud-bench-") as tmp:
        suite = Path(tmp, "evals")
        shutil.copytree(ROOT / "evals", suite, ignore=shutil.ignore_patterns("__pycache__"))
        (suite / "pytest.ini").write_text("[pytest]\nklaud_apps = apps\n")
        # Byte-code caches as a user has them, without writing into the repository.
        env = clean_env(PYTHONPYCACHEPREFIX=str(Path(tmp, "pycache")))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        command = [sys.executable, "-m", "pytest", "-q", "--klaud-cache", "--klaud-no-tracking"]
        if args.workers:
            command += ["-n", str(args.workers)]
        apps = discover_apps(suite / "apps")
        wall_and_cpu([*command, "--co"], suite, env)  # byte-code compiled once, not timed
        firsts, seconds = [], []
        for _ in range(args.repetitions):
            firsts.append(wall_and_cpu([*command, "--klaud-cache-clear"], suite, env))
            if reused_count(suite) != 0:
                sys.exit("the first run reused results: the cache was not cleared")
            seconds.append(wall_and_cpu(command, suite, env))
            if reused_count(suite) != len(apps):
                sys.exit(f"the second run reused {reused_count(suite)} of {len(apps)} results")
        collect = [wall_and_cpu([*command, "--co"], suite, env) for _ in range(5)]
        options = EvalOptions(os.environ)
        keys = median([timed(lambda: [result_key(a, options) for a in apps]) for _ in range(5)])

    def cells(runs: list[tuple[float, float]]) -> tuple[str, str, str]:
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        return f"{median(walls):.3f}", f"{min(walls):.3f}", f"{median(cpus):.3f}"

    print(f"## Result cache, sample corpus ({len(apps)} apps)\n")
    print(
        f"`{' '.join(['python', *command[1:]])}` in a copy of `evals/`, run twice per "
        f"repetition ({args.repetitions} repetitions; the first run with `--klaud-cache-clear`). "
        "CPU time: user + system of pytest and every process it waited for.\n"
    )
    rows = [
        ("first run (every app evaluated)", *cells(firsts)),
        ("second run (every result reused)", *cells(seconds)),
        ("pytest start-up + collection only (`--co`)", *cells(collect)),
        (f"cache keys of the {len(apps)} apps (in process)", f"{keys:.3f}", "", ""),
    ]
    print(markdown_table(("run", "median wall (s)", "min wall (s)", "median CPU (s)"), rows))
    for kind, index in (("wall", 0), ("CPU", 1)):
        ratio = median([f[index] / s[index] for f, s in zip(firsts, seconds, strict=True)])
        verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
        print(
            f"\n**first / second run, {kind} time, median of paired ratios: {ratio:.1f}x** "
            f"({verdict} the {TARGET_RATIO:g}x target)"
        )
    print()
    print(machine_table())


if __name__ == "__main__":
    main()
