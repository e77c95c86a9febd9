"""pytest start-up cost of the installed plugin on a suite that does not use it.

    .venv/bin/python benchmarks/startup.py [--repetitions 20] [--tests 20]

Runs ``python -m pytest -q -p no:cacheprovider`` on a generated suite of trivial
tests, with and without ``-p no:klaudbiusz``, interleaved, and reports median wall
and CPU times and the median of the paired ratios (DESIGN.md section 6: within a
few percent). Then
reads ``python -X importtime`` to show what importing the plugin costs and to
confirm that neither the plugin module nor the pytest run imports mlflow.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from _common import clean_env, machine_table, markdown_table, median, wall_and_cpu

PLUGIN = "pytest_klaudbiusz.plugin"
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def make_suite(folder: Path, tests: int) -> None:
    (folder / "pytest.ini").write_text("[pytest]\n")
    body = "".join(f"def test_{i}():\n    assert {i} + 1 == {i + 1}\n\n\n" for i in range(tests))
    (folder / "test_trivial.py").write_text(body)


def parse_importtime(stderr: str) -> list[tuple[str, int, int, int]]:
    """(module, self us, cumulative us, depth) in the order Python printed them."""
    rows = []
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            own, cumulative, indent, name = match.groups()
            rows.append((name, int(own), int(cumulative), len(indent) // 2))
    return rows


def plugin_imports(cwd: Path, env: dict[str, str]) -> list[tuple[str, int, int, int]]:
    """Modules imported by the plugin module once pytest itself is loaded."""
    code = f"import pytest; import {PLUGIN}"
    command = [sys.executable, "-X", "importtime", "-c", code]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    rows = parse_importtime(done.stderr)
    start = max(i for i, row in enumerate(rows) if row[0] == "pytest" and row[3] == 0)
    return rows[start + 1 :]


def direct_imports(rows: list[tuple[str, int, int, int]]) -> dict[tuple[str, str], int]:
    """Cumulative time of each module imported directly by a module of the package."""
    found = {}
    for i, (name, _, cumulative, depth) in enumerate(rows):
        parent = next((r[0] for r in rows[i + 1 :] if r[3] == depth - 1), None)
        if parent and parent.startswith("pytest_klaudbiusz") and parent != name:
            found[name, parent] = cumulative
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=20, help="runs of each variant")
    parser.add_argument("--tests", type=int, default=20, help="trivial tests in the suite")
    parser.add_argument("--import-runs", type=int, default=9, help="importtime samples")
    parser.add_argument("--top", type=int, default=10, help="heaviest imports shown")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="klaud-bench-") as tmp:
        suite = Path(tmp, "suite")
        suite.mkdir()
        make_suite(suite, args.tests)
        # Byte-code caches as a user has them, without writing into the repository.
        env = clean_env(PYTHONPYCACHEPREFIX=str(Path(tmp, "pycache")))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        variants = {"plugin installed": base, "-p no:klaudbiusz": [*base, "-p", "no:klaudbiusz"]}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for round_ in range(2 + args.repetitions):  # 2 warm-up rounds
            for name, command in variants.items():
                measured = wall_and_cpu(command, suite, env)
                if round_ >= 2:
                    times[name].append(measured)

        run_modules = parse_importtime(
            subprocess.run(
                [sys.executable, "-X", "importtime", *base[1:]],
                cwd=suite, env=env, capture_output=True, text=True,
            ).stderr
        )  # fmt: skip
        samples = [plugin_imports(suite, env) for _ in range(args.import_runs)]

    print(f"## pytest start-up, {args.tests} trivial tests, plugin not used\n")
    print(f"`{' '.join(['python', *base[1:]])}` in a temp suite with its own empty `pytest.ini`;")
    print(
        f"{args.repetitions} interleaved runs of each variant (2 warm-up rounds dropped). "
        "CPU time (user + system of the pytest process) is less disturbed by other load "
        "than wall time.\n"
    )
    rows = []
    for name, runs in times.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        rows.append((name, f"{median(walls):.3f}", f"{min(walls):.3f}", f"{median(cpus):.3f}"))
    print(markdown_table(("variant", "median wall (s)", "min wall (s)", "median CPU (s)"), rows))
    with_plugin, without = times["plugin installed"], times["-p no:klaudbiusz"]
    ratios = {
        kind: median([a[i] / b[i] for a, b in zip(with_plugin, without, strict=True)])
        for i, kind in enumerate(("wall", "CPU"))
    }
    verdict = "within" if max(ratios.values()) <= 1.05 else "OVER"
    print(
        f"\n**installed / disabled, median of paired ratios: wall {ratios['wall']:.3f}, "
        f"CPU {ratios['CPU']:.3f}** ({verdict} the 5% target)\n"
    )

    cumulative = median([next(r[2] for r in s if r[0] == PLUGIN) for s in samples])
    total: dict[tuple[str, str], list[int]] = defaultdict(list)
    for sample in samples:
        for (name, parent), cumulative_us in direct_imports(sample).items():
            total[name, parent].append(cumulative_us)
    heaviest = sorted(total, key=lambda k: median(total[k]), reverse=True)[: args.top]
    mlflow_in_plugin = any(n.split(".")[0] == "mlflow" for s in samples for n, *_ in s)
    mlflow_in_run = any(n.split(".")[0] == "mlflow" for n, *_ in run_modules)
    print(f"## Import cost of `{PLUGIN}` (after `import pytest`)\n")
    print(
        f"Median of {args.import_runs} `python -X importtime` runs: "
        f"**{cumulative / 1000:.1f} ms** cumulative, {len(samples[0])} modules. "
        "Heaviest imports made by the plugin's modules (cumulative, children included):\n"
    )
    print(
        markdown_table(
            ("module", "imported by", "cumulative (ms)"),
            [(f"`{n}`", f"`{p}`", f"{median(total[n, p]) / 1000:.1f}") for n, p in heaviest],
        )
    )
    print(
        f"\n`mlflow` imported by the plugin module: **{'yes' if mlflow_in_plugin else 'no'}**; "
        f"by the whole pytest run: **{'yes' if mlflow_in_run else 'no'}** "
        f"({len(run_modules)} modules imported in that run).\n"
    )
    print(machine_table())


if __name__ == "__main__":
    main()
