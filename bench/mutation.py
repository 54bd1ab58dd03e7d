"""Mutation testing of the security- and correctness-critical modules, one module at a time.

Why this exists: a green unit suite says the code does what the tests ask, not
that the tests would notice if the code stopped doing it.  mutmut makes one
small semantic change at a time (a flipped comparison, a dropped argument, a
changed constant) and runs the unit tests that reach the changed function; a
change no test notices ("survived") is a hole in the suite.  For a product
whose promise is isolation, the holes that matter most are in the policy,
naming, translation, proxy resolution, patrol, queue and CRD validation code.

Each module runs in its own scratch copy of the repository
(``.mutation/<module>/``, so the working tree is never touched) with only that
module mutated and only its unit tests selected, under a time budget.  The
mutants a test cannot kill because they do not change behaviour are listed
with a justification in ``docs/mutation-equivalents.toml``; a listed mutant
whose diff no longer matches is reported as stale and counted as survived.

    scripts/mutation                       # every module, prints the table
    scripts/mutation vcluster/policy.py    # one module
    scripts/mutation --survivors           # also print each survivor's diff
    scripts/mutation --report docs/mutation.md   # rewrite the committed report
    scripts/mutation syncer/upward.py --report docs/mutation.md   # only that module's row and survivors

Kill rate = (killed + timeout) / (mutants - equivalent - not checked).  The target is 90 %.
"No tests": no selected test reaches the mutated function (counted as not killed).  "Not checked":
mutmut gave no verdict (the time budget ran out, or no test reaches the function at all);
a module with only unchecked mutants reads 0 %.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRATCH = REPO / ".mutation"
EQUIVALENTS = REPO / "docs" / "mutation-equivalents.toml"
PACKAGES = ("vcluster", "syncer", "tenant_crd", "virtual_node")
TARGET = 0.90

#: module → the unit tests that state its behaviour (globs, relative to the repo).
MODULES: dict[str, tuple[str, ...]] = {
    "vcluster/policy.py": ("tests/vcluster/test_policy*.py", "tests/syncer/test_pod_policy_fields.py"),
    "vcluster/naming.py": ("tests/vcluster/test_naming*.py",),
    # The tenant-wide quota's accounting (creates and growing updates are admitted against it).
    "vcluster/quota.py": ("tests/vcluster/test_quota*.py", "tests/syncer/test_quota_gate.py"),
    "syncer/resources/networkpolicy.py": ("tests/syncer/test_resources*.py", "tests/syncer/test_networkpolicy*.py"),
    # The pod's hooks (context, before_create, prepare, the lost-pod delete) run inside the reconcile: its
    # engine tests state what they do.
    "syncer/resources/pod.py": (
        "tests/syncer/test_resources*.py", "tests/syncer/test_pod*.py",
        "tests/syncer/test_engine_*.py", "tests/syncer/test_downward*.py",
    ),
    "virtual_node/proxy/resolver.py": ("tests/virtual_node/proxy/test_*.py",),
    "virtual_node/proxy/routing.py": ("tests/virtual_node/proxy/test_*.py",),
    "syncer/patrol.py": ("tests/syncer/test_patrol*.py",),
    "syncer/queue.py": ("tests/syncer/test_queue*.py",),
    # What goes into every new tenant's etcd before its apiserver starts (only the bootstrap kinds).
    "vcluster/controlplane/bootstrap_seed.py": ("tests/vcluster/controlplane/test_bootstrap_seed.py",),
    "syncer/retries.py": ("tests/syncer/test_retries*.py",),
    "tenant_crd/models.py": ("tests/tenant_crd/test_models*.py",),
    # The engine's reconcile: driven through a real Syncer between two fake apiservers (tests/syncer/fakeapi.py);
    # its gate on the tenant-wide quota (admit, refuse, release, wake) has tests of its own.
    "syncer/downward.py": ("tests/syncer/test_engine_*.py", "tests/syncer/test_downward*.py",
                           "tests/syncer/test_quota_gate.py"),
    "syncer/upward.py": ("tests/syncer/test_engine_*.py",),
}

#: mutmut exit codes (mutmut.stats.status_by_exit_code) folded into what the report counts.
_KILLED = {1, 3, 37}
_TIMEOUT = {24, 36, 152, 255, -24}
_SURVIVED = {0}
_NO_TESTS = {5, 33}


@dataclass(slots=True)
class Result:
    module: str
    mutants: int = 0
    killed: int = 0
    timeout: int = 0
    survived: list[str] = field(default_factory=list)
    no_tests: list[str] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    not_checked: int = 0
    diffs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: When the run finished (UTC day) and on which commit of the repository (``-dirty``: with local changes).
    date: str = ""
    commit: str = ""

    @property
    def rate(self) -> float:
        scored = self.mutants - len(self.equivalent) - self.not_checked
        return (self.killed + self.timeout) / scored if scored else 0.0


def _slug(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".")


def _mutmut() -> str:
    found = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or shutil.which("mutmut")
    if not found:
        raise SystemExit("error: mutmut is not installed (pip install -e '.[dev]')")
    return found


def _prepare(module: str, tests: tuple[str, ...]) -> Path:
    work = SCRATCH / _slug(module)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in (*PACKAGES, "tests"):
        shutil.copytree(REPO / package, work / package, ignore=ignore)
    selected = sorted({str(p.relative_to(REPO)) for pattern in tests for p in REPO.glob(pattern)})
    if not selected:
        raise SystemExit(f"error: no unit tests match {tests} for {module}")
    config = {
        "source_paths": [f"{p}/" for p in PACKAGES],
        "only_mutate": [module],
        "pytest_add_cli_args_test_selection": selected,
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q", "--timeout=60"],
    }
    body = (REPO / "pyproject.toml").read_text()
    body += "\n[tool.mutmut]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items())
    (work / "pyproject.toml").write_text(body)
    return work


_DIFFS = """
import json, sys
from pathlib import Path
from mutmut.mutation.diff_apply import get_diff_for_mutant
wanted = json.load(sys.stdin)
print(json.dumps({name: get_diff_for_mutant(name, path=Path(path)) for name, path in wanted}))
"""


def _diffs(work: Path, module: str, names: list[str]) -> dict[str, str]:
    """The changed lines of each mutant (one process for all: ``mutmut show`` per mutant is slow)."""
    if not names:
        return {}
    proc = subprocess.run([sys.executable, "-c", _DIFFS], cwd=work, input=json.dumps([[n, module] for n in names]),
                          capture_output=True, text=True, check=True)
    out: dict[str, str] = {}
    for name, diff in json.loads(proc.stdout).items():
        out[name] = "\n".join(line for line in diff.splitlines()
                              if line[:1] in "+-" and not line.startswith(("+++", "---")))
    return out


def _equivalents() -> dict[str, dict[str, str]]:
    if not EQUIVALENTS.exists():
        return {}
    data = tomllib.loads(EQUIVALENTS.read_text())
    return {e["mutant"]: e for e in data.get("equivalent", [])}


def run_module(module: str, *, budget: float, children: int, want_diffs: bool) -> Result:
    commit = _commit()
    work = _prepare(module, MODULES[module])
    result = Result(module, commit=commit)
    start = time.monotonic()
    log = work / "mutmut.log"
    with log.open("w") as out:
        try:
            subprocess.run([_mutmut(), "run", "--max-children", str(children)], cwd=work, stdout=out,
                           stderr=subprocess.STDOUT, timeout=budget, check=False,
                           env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        except subprocess.TimeoutExpired:
            print(f"  {module}: time budget of {budget:.0f} s spent; unchecked mutants are left out", file=sys.stderr)
    result.seconds = time.monotonic() - start
    result.date = time.strftime("%Y-%m-%d", time.gmtime())
    meta = work / "mutants" / (module + ".meta")
    if not meta.exists():
        raise SystemExit(f"error: mutmut produced no results for {module}; see {log}")
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    equivalents = _equivalents()
    undetected = [name for name, code in codes.items()
                  if code is not None and code not in _KILLED and code not in _TIMEOUT]
    diffs = _diffs(work, module, undetected)
    for name, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
        result.mutants += 1
        if code in _KILLED:
            result.killed += 1
        elif code in _TIMEOUT:
            result.timeout += 1
        elif code is None:
            result.not_checked += 1
        else:
            diff = diffs.get(name, "")
            known = equivalents.get(name)
            if known is not None and known.get("line", "").strip() in diff:
                result.equivalent.append(name)
                continue
            if known is not None:
                result.stale.append(name)
            (result.no_tests if code in _NO_TESTS else result.survived).append(name)
            if want_diffs:
                result.diffs[name] = diff
    return result


def _commit() -> str:
    """The short commit a module's scratch copy is taken from, ``-dirty`` when the copied folders (the packages
    and the unit tests) differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *PACKAGES, "tests"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def _natural(name: str) -> tuple[str, int]:
    head, _, number = name.rpartition("_")
    return (head, int(number) if number.isdigit() else 0)


def _table(results: list[Result]) -> list[str]:
    rows = ["| module | mutants | killed | timeout | survived | no tests | not checked | equivalent | kill rate "
            "| date | commit |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        rows.append(f"| `{r.module}` | {r.mutants} | {r.killed} | {r.timeout} | {len(r.survived)} | "
                    f"{len(r.no_tests)} | {r.not_checked} | {len(r.equivalent)} | {r.rate:.1%} | {r.date} | "
                    f"`{r.commit}` |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("modules", nargs="*", help=f"modules to mutate (default: all of {', '.join(MODULES)})")
    parser.add_argument("--budget", type=float, default=900, help="seconds per module (default 900)")
    parser.add_argument("--children", type=int, default=1, help="parallel mutant runs (default 1)")
    parser.add_argument("--survivors", action="store_true", help="print the diff of every surviving mutant")
    parser.add_argument("--report", type=Path, help="write the table and survivors as Markdown to this file")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"not a configured module: {', '.join(unknown)}")
    results: list[Result] = []
    for module in args.modules or list(MODULES):
        print(f"==> {module}", file=sys.stderr)
        result = run_module(module, budget=args.budget, children=args.children,
                            want_diffs=args.survivors or args.report is not None)
        results.append(result)
        print(f"    {result.mutants} mutants, {result.killed + result.timeout} killed, "
              f"{len(result.survived)} survived, {len(result.equivalent)} equivalent: {result.rate:.1%} "
              f"in {result.seconds:.0f} s", file=sys.stderr)
        if args.survivors:
            for name, diff in result.diffs.items():
                print(f"--- {name}\n{diff}")
    print("\n".join(_table(results)))
    for r in results:
        if r.stale:
            print(f"stale equivalents in {r.module} (diff changed; re-justify or drop): {', '.join(r.stale)}")
    if args.report:
        _write_report(args.report, results)
    return 0 if all(r.rate >= TARGET for r in results) else 1


#: Everything after this line of an existing report is kept when the report is rewritten (history by hand).
HISTORY_MARK = "<!-- history: kept by scripts/mutation --report -->"


def _kept_parts(text: str, rerun: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Table rows and survivor sections of an existing report, by module, for modules not run again."""
    rows: dict[str, str] = {}
    sections: dict[str, str] = {}
    current: str | None = None
    for line in text.split(HISTORY_MARK, 1)[0].splitlines():
        if line.startswith("| `"):
            module = line.split("`", 2)[1]
            if module not in rerun:
                rows[module] = line
        elif line.startswith("## "):
            current = line.split("`", 2)[1] if line.startswith("## Survivors in `") else None
            if current is not None and current not in rerun:
                sections[current] = line + "\n"
            else:
                current = None
        elif current is not None:
            sections[current] += line + "\n"
    return rows, sections


def _write_report(path: Path, results: list[Result]) -> None:
    """Write the report; rows and survivors of configured modules not run this time are kept as they were."""
    history = ""
    old = path.read_text() if path.exists() else ""
    if HISTORY_MARK in old:
        history = HISTORY_MARK + old.split(HISTORY_MARK, 1)[1]
    kept_rows, kept_sections = _kept_parts(old, {r.module for r in results})
    by_module = {r.module: r for r in results}
    order = [m for m in MODULES if m in by_module or m in kept_rows]
    version = f"mutmut {importlib.metadata.version('mutmut')}"
    lines = [
        "# Mutation testing report",
        "",
        f"Written by `scripts/mutation --report {path.relative_to(REPO) if path.is_absolute() else path}` "
        f"({version}, Python {sys.version_info.major}.{sys.version_info.minor}); target: {TARGET:.0%} per module.",
        "Kill rate = (killed + timeout) / (mutants − equivalent − not checked). Equivalent mutants are justified in",
        "`docs/mutation-equivalents.toml`. Date and commit: when a module's row was measured, on which commit",
        "(`-dirty`: with uncommitted changes). See CONTRIBUTING.md for when to run it.",
        "",
        *_table([]),
        *(_table([by_module[m]])[2] if m in by_module else kept_rows[m] for m in order),
        "",
    ]
    for module in order:
        if module not in by_module:
            if module in kept_sections:
                lines += [*kept_sections[module].rstrip("\n").split("\n"), ""]
            continue
        r = by_module[module]
        left = r.survived + r.no_tests
        if not left:
            continue
        lines += [f"## Survivors in `{r.module}`", "", "```diff"]
        for name in left:
            lines.append(f"# {name}")
            lines.append(r.diffs.get(name, ""))
        lines += ["```", ""]
    path.write_text("\n".join(lines) + ("\n" + history if history else ""))


if __name__ == "__main__":
    raise SystemExit(main())
