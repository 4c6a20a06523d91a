"""Run TorchRL's own transform tests against numbarl and report what passes.

A developer tool (not part of the installed package). It measures how much of
the behaviour TorchRL's users rely on holds when their imports point at
``numbarl.torch_api``:

1. It extracts ``test/transforms/`` (test modules, ``_transforms_common.py``,
   ``conftest.py``), ``test/conftest.py`` (command-line options and fixtures
   such as ``maybe_fork_ParallelEnv``, whose imports are rewritten too) and ``torchrl/testing/mocking_classes.py`` from a TorchRL git directory at a
   given commit into a work directory, twice: ``<workdir>/torchrl`` is left as
   it is; ``<workdir>/numbarl`` is rewritten.
2. In the rewritten copy, every ``from torchrl... import a, b`` statement (at
   any depth, also inside functions) is split: the public names that numbarl
   exports (``numbarl.torch_api.<same sub-path>`` first, then
   ``numbarl.torch_api``) are imported from numbarl, the others (replay
   buffers, modules, private flags such as ``_has_gym``) stay TorchRL's.
   The mock environments (``CountingEnv``, ``ContinuousActionVecMockEnv``...)
   are imported from a local copy of ``mocking_classes.py`` rewritten the same
   way, so they subclass numbarl's ``EnvBase`` and build numbarl's specs.
3. It runs pytest on each test module of both copies, one process per module
   (``-p no:cacheprovider -q -rN``, junit XML to read the results), with a
   per-test timeout when ``pytest-timeout`` is installed and a per-module
   wall-clock limit in any case.
4. It prints, per test module (one transform family each): the tests that pass
   on torchrl, how many of those pass on numbarl, the fraction; then the
   failures on numbarl among tests that pass on torchrl, grouped by exception
   type and message prefix, largest group first.

Usage (from the repository root, with ``numbarl`` importable)::

    python scripts/torchrl_compat.py --git /path/to/pytorch/rl/.git \\
        --commit 6e18e35b2 --workdir /tmp/compat
    # iterate on one family, reusing the torchrl results of the first run:
    python scripts/torchrl_compat.py --git ... --workdir /tmp/compat \\
        --side numbarl --files test_key_transforms.py
    # machine-readable summary
    python scripts/torchrl_compat.py ... --json /tmp/compat/summary.json

``--side torchrl`` or ``--side numbarl`` runs one side only and reads the
other side's XML from an earlier run in the same ``--workdir``; ``--report``
runs nothing and only reads the XML already there.
"""
from __future__ import annotations

import argparse
import ast
import collections
import importlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

MOCK_SRC = "torchrl/testing/mocking_classes.py"
MOCK_LOCAL = "_numbarl_mocking_classes"
TEST_DIR = "test/transforms"


# --------------------------------------------------------------------------- git
def git_show(git_dir: str, commit: str, path: str) -> str:
    """Text of ``path`` at ``commit`` in the git directory ``git_dir``."""
    out = subprocess.run(
        ["git", "-C", git_dir, "show", f"{commit}:{path}"],
        check=True, capture_output=True, text=True,
    )
    return out.stdout


def git_ls(git_dir: str, commit: str, path: str) -> list[str]:
    """File names (full paths) directly under ``path`` at ``commit``."""
    out = subprocess.run(
        ["git", "-C", git_dir, "ls-tree", "--name-only", commit, path + "/"],
        check=True, capture_output=True, text=True,
    )
    return [line for line in out.stdout.splitlines() if line]


# ---------------------------------------------------------------- import rewrite
class NameResolver:
    """Decides, per ``from torchrl.<sub> import name``, where numbarl has it."""

    def __init__(self, root: str = "numbarl.torch_api"):
        self.root = root
        self.top = importlib.import_module(root)
        self._modules: dict[str, object | None] = {}

    def _module(self, name: str):
        if name not in self._modules:
            try:
                self._modules[name] = importlib.import_module(name)
            except Exception:  # noqa: BLE001 - absent sub-module: not exported
                self._modules[name] = None
        return self._modules[name]

    @staticmethod
    def _exported(mod, name: str) -> bool:
        if mod is None or name.startswith("_") or not hasattr(mod, name):
            return False
        return not isinstance(getattr(mod, name), type(sys))

    def where(self, torchrl_module: str, name: str) -> str | None:
        """numbarl module to import ``name`` from, or None to keep torchrl's."""
        sub = torchrl_module[len("torchrl"):]
        if sub:
            cand = self.root + sub
            if self._exported(self._module(cand), name):
                return cand
        if self._exported(self.top, name):
            return self.root
        return None


def _format_import(module: str, aliases: list[ast.alias], indent: str) -> str:
    names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "")
                      for a in aliases)
    return f"{indent}from {module} import ({names})"


def rewrite_imports(source: str, resolver: NameResolver,
                    local_names: dict[str, str] | None = None) -> tuple[str, int]:
    """Point torchrl imports at numbarl where numbarl exports the name.

    ``local_names`` maps a name to a local module that provides it (the
    rebased mock classes); those win over numbarl and torchrl. Returns the new
    source and the number of names redirected.
    """
    local_names = local_names or {}
    tree = ast.parse(source)
    lines = source.splitlines()
    edits = []
    moved = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level:
            continue
        mod = node.module or ""
        if mod != "torchrl" and not mod.startswith("torchrl."):
            continue
        groups: dict[str, list[ast.alias]] = collections.OrderedDict()
        for alias in node.names:
            target = local_names.get(alias.name)
            if target is None:
                target = resolver.where(mod, alias.name) or mod
            groups.setdefault(target, []).append(alias)
        if list(groups) == [mod]:
            continue
        moved += sum(len(v) for k, v in groups.items() if k != mod)
        first = lines[node.lineno - 1]
        indent = first[: len(first) - len(first.lstrip())]
        new = "; ".join(_format_import(m, a, "") for m, a in groups.items())
        edits.append((node.lineno, node.end_lineno, indent + new))
    for start, end, text in sorted(edits, reverse=True):
        lines[start - 1:end] = [text]
    return "\n".join(lines) + "\n", moved


def _defined_names(source: str) -> set[str]:
    tree = ast.parse(source)
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def extract(git_dir: str, commit: str, workdir: Path, files: list[str] | None):
    """Write the torchrl and numbarl copies; return the test module names."""
    paths = git_ls(git_dir, commit, TEST_DIR)
    tests = sorted(Path(p).name for p in paths
                   if Path(p).name.startswith("test_") and p.endswith(".py"))
    if files:
        unknown = sorted(set(files) - set(tests))
        if unknown:
            raise SystemExit(f"--files: unknown test modules {unknown}; "
                             f"choose from {tests}")
        tests = [t for t in tests if t in files]
    helpers = [p for p in paths if not Path(p).name.startswith("test_")]
    resolver = NameResolver()
    mock_src = git_show(git_dir, commit, MOCK_SRC)
    mock_new, _ = rewrite_imports(mock_src, resolver)
    local = {n: MOCK_LOCAL for n in _defined_names(mock_src)}
    redirected = {}
    for side in ("torchrl", "numbarl"):
        base = workdir / side / TEST_DIR
        base.mkdir(parents=True, exist_ok=True)
        conftest = git_show(git_dir, commit, "test/conftest.py")
        if side == "numbarl":  # its fixtures (maybe_fork_ParallelEnv...) import torchrl's envs too
            conftest, _ = rewrite_imports(conftest, resolver)
        (workdir / side / "test" / "conftest.py").write_text(conftest)
        for p in helpers:
            (base / Path(p).name).write_text(git_show(git_dir, commit, p))
        for name in tests:
            src = git_show(git_dir, commit, f"{TEST_DIR}/{name}")
            if side == "numbarl":
                src = src.replace("torchrl.testing.mocking_classes", MOCK_LOCAL)
                src, redirected[name] = rewrite_imports(src, resolver, local)
            (base / name).write_text(src)
        if side == "numbarl":
            (base / f"{MOCK_LOCAL}.py").write_text(mock_new)
    return tests, redirected


# -------------------------------------------------------------------------- run
def run_side(workdir: Path, side: str, tests: list[str], per_test: int,
             per_file: int, log) -> None:
    """Run pytest on each test module of one copy, junit XML per module."""
    has_timeout = importlib.util.find_spec("pytest_timeout") is not None
    root = workdir / side
    xml_dir = workdir / "xml" / side
    xml_dir.mkdir(parents=True, exist_ok=True)
    for name in tests:
        xml = xml_dir / (name[:-3] + ".xml")
        cmd = [sys.executable, "-m", "pytest", f"{TEST_DIR}/{name}",
               "-p", "no:cacheprovider", "-q", "-rN", "-o", "addopts=",
               f"--junitxml={xml}"]
        if has_timeout:
            cmd.append(f"--timeout={per_test}")
        t0 = time.monotonic()
        log(f"[{side}] {name} ...")
        if xml.exists():
            xml.unlink()
        with open(xml_dir / (name[:-3] + ".log"), "w") as out:
            rc = _run_pytest(cmd, root, out, xml, per_file)
        log(f"[{side}] {name}: rc={rc} in {time.monotonic() - t0:.0f}s")


def _run_pytest(cmd, cwd, out, xml: Path, limit: float, grace: float = 20.0):
    """Run pytest in its own process group; end the group once done.

    A test that leaves worker processes or threads behind can keep pytest
    from exiting after it has written its report: once the XML is there,
    the run gets ``grace`` seconds to exit, then its process group is ended
    (and always at ``limit`` seconds).
    """
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    t0, seen = time.monotonic(), None
    rc = None
    while rc is None:
        try:
            rc = proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            if seen is None and xml.exists():
                seen = now
            if now - t0 > limit:
                rc = "timeout"
            elif seen is not None and now - seen > grace:
                rc = "hung after its report"
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return rc


# ----------------------------------------------------------------------- report
def read_xml(path: Path) -> dict[str, tuple[str, str]] | None:
    """``{test id: (outcome, message)}``; outcome passed/failed/skipped."""
    if not path.exists():
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return None
    results = {}
    for case in root.iter("testcase"):
        tid = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, msg = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                msg = child.get("message") or (child.text or "").strip()
                break
            if child.tag == "skipped":
                outcome = "skipped"
                msg = child.get("message") or ""
        prev = results.get(tid)
        if prev is None or prev[0] == "passed":
            results[tid] = (outcome, msg)
    return results


_ADDR = re.compile(r"0x[0-9a-f]+")
# run-specific numbers that would split one cause into many groups
_NOISE = [(re.compile(r"\b(pid|worker|position) \d+"), r"\1 N"),
          (re.compile(r"sub-envs \d+\.\.\d+"), "sub-envs N..M")]


def cause(msg: str, width: int = 110) -> str:
    """Group key of a failure: exception type and the start of its message."""
    first = next((ln for ln in msg.splitlines() if ln.strip()), "(no message)")
    first = _ADDR.sub("0x..", first.strip())
    for pattern, repl in _NOISE:
        first = pattern.sub(repl, first)
    return first[:width]


def summarize(workdir: Path, tests: list[str]) -> dict:
    """Per-module counts and the failures grouped by cause."""
    families, causes = {}, collections.defaultdict(list)
    for name in tests:
        stem = name[:-3]
        tr = read_xml(workdir / "xml" / "torchrl" / f"{stem}.xml")
        nb = read_xml(workdir / "xml" / "numbarl" / f"{stem}.xml")
        if tr is None:
            families[stem] = {"torchrl_pass": None, "numbarl_pass": None}
            continue
        passing = [t for t, (o, _) in tr.items() if o == "passed"]
        ok = 0
        for t in passing:
            res = None if nb is None else nb.get(t)
            if res is not None and res[0] == "passed":
                ok += 1
                continue
            if nb is None:
                why = "module did not run or its XML is missing"
            elif res is None:
                why = "not collected on numbarl (collection error or id differs)"
            elif res[0] == "skipped":
                why = "skipped on numbarl: " + cause(res[1], 80)
            else:
                why = cause(res[1])
            causes[why].append(f"{stem}::{t}")
        families[stem] = {
            "torchrl_pass": len(passing), "numbarl_pass": ok,
            "fraction": (ok / len(passing)) if passing else None,
        }
    ranked = sorted(causes.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    total_tr = sum(f["torchrl_pass"] or 0 for f in families.values())
    total_nb = sum(f["numbarl_pass"] or 0 for f in families.values())
    return {
        "families": families,
        "total": {"torchrl_pass": total_tr, "numbarl_pass": total_nb,
                  "fraction": total_nb / total_tr if total_tr else None},
        "failures": [{"cause": c, "count": len(t), "tests": t}
                     for c, t in ranked],
    }


def print_summary(summary: dict, max_tests: int) -> None:
    print(f"{'family (test module)':40s} {'torchrl':>8s} {'numbarl':>8s} "
          f"{'fraction':>8s}")
    for stem, f in summary["families"].items():
        if f["torchrl_pass"] is None:
            print(f"{stem:40s} {'-':>8s} {'-':>8s} {'(no torchrl results)':>8s}")
            continue
        frac = "-" if f["fraction"] is None else f"{f['fraction']:.1%}"
        print(f"{stem:40s} {f['torchrl_pass']:8d} {f['numbarl_pass']:8d} "
              f"{frac:>8s}")
    tot = summary["total"]
    frac = "-" if tot["fraction"] is None else f"{tot['fraction']:.1%}"
    print(f"{'TOTAL':40s} {tot['torchrl_pass']:8d} {tot['numbarl_pass']:8d} "
          f"{frac:>8s}")
    print("\nFailures on numbarl among tests that pass on torchrl, by cause:")
    for group in summary["failures"]:
        print(f"\n[{group['count']}] {group['cause']}")
        for t in group["tests"][:max_tests]:
            print(f"    {t}")
        if len(group["tests"]) > max_tests:
            print(f"    ... {len(group['tests']) - max_tests} more")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--git", default="/work/.mirror/pytorch+rl/repo",
                   help="TorchRL git directory (bare or not)")
    p.add_argument("--commit", default="6e18e35b2",
                   help="TorchRL commit whose tests to run")
    p.add_argument("--workdir", default="/tmp/torchrl_compat",
                   help="where the copies, XML and logs go (kept)")
    p.add_argument("--files", nargs="+", default=None,
                   help="test module names to run, e.g. test_key_transforms.py")
    p.add_argument("--side", choices=("both", "torchrl", "numbarl"),
                   default="both", help="which copy to run")
    p.add_argument("--report", action="store_true",
                   help="run nothing; summarize the XML already in --workdir")
    p.add_argument("--timeout", type=int, default=120,
                   help="per-test limit in seconds (needs pytest-timeout)")
    p.add_argument("--module-timeout", type=int, default=3600,
                   help="wall-clock limit in seconds per test module")
    p.add_argument("--json", default=None, help="write the summary here")
    p.add_argument("--max-tests", type=int, default=5,
                   help="test ids listed per failure cause")
    args = p.parse_args(argv)

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    tests, redirected = extract(args.git, args.commit, workdir, args.files)
    log("names redirected to numbarl per module: "
        + ", ".join(f"{k}={v}" for k, v in redirected.items()))
    if not args.report:
        sides = ("torchrl", "numbarl") if args.side == "both" else (args.side,)
        for side in sides:
            run_side(workdir, side, tests, args.timeout,
                     args.module_timeout, log)
    summary = summarize(workdir, tests)
    summary["commit"] = args.commit
    print_summary(summary, args.max_tests)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
