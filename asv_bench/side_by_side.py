"""Run the asv benchmarks side by side in one process and print ratios against numbarl.

Every ``time_*`` method of every benchmark class whose parameters include an
implementation (``impl``) is timed for each implementation in the same run:
median of ``--repeat`` repeats after one warm-up call. Rows group the other
parameters; columns are implementations; the last column is each peer's time
divided by numbarl's (``x`` > 1 means numbarl is faster).

Usage::

    python asv_bench/side_by_side.py                 # every benchmark module
    python asv_bench/side_by_side.py rollout moments # modules whose name contains these words
    python asv_bench/side_by_side.py --repeat 9 --json out.json
    python asv_bench/side_by_side.py --every --repeat 1  # CI: every benchmark once, exit 1 on an error
"""
from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _modules(words):
    sys.path.insert(0, HERE)
    names = sorted(f[:-3] for f in os.listdir(os.path.join(HERE, "benchmarks"))
                   if f.startswith("bench_") and f.endswith(".py"))
    if words:
        names = [n for n in names if any(w in n for w in words)]
    return [importlib.import_module(f"benchmarks.{n}") for n in names]


def _classes(module):
    for name in dir(module):
        cls = getattr(module, name)
        if isinstance(cls, type) and cls.__module__ == module.__name__ and any(m.startswith("time_") for m in dir(cls)):
            yield cls


def _param_grid(cls):
    params = getattr(cls, "params", None)
    names = list(getattr(cls, "param_names", []))
    if params is None:
        return [], [()]
    if names and not isinstance(params[0], (list, tuple)):
        params = [params]
    return names, list(itertools.product(*params))


def _time(obj, method, args, repeat):
    from benchmarks._timing import median_seconds

    fn = getattr(obj, method)
    return median_seconds(lambda: fn(*args), repeat, warmup=True)  # warm-up: compilation, caches


def run(words, repeat, every=False):
    """Time the benchmarks with an ``impl`` parameter; with ``every``, also run the others and ``track_*``.

    An exception other than NotImplementedError (asv's skip) is recorded as ``"error"`` and the run goes on.
    """
    results = []
    for module in _modules(words):
        for cls in _classes(module):
            names, grid = _param_grid(cls)
            if "impl" not in names and not every:
                continue
            methods = [m for m in dir(cls) if m.startswith("time_") or (every and m.startswith("track_"))]
            for args in grid:
                obj = cls()
                bench = f"{module.__name__.split('.')[-1]}.{cls.__name__}"
                params = dict(zip(names, map(str, args)))
                try:
                    if hasattr(obj, "setup"):
                        obj.setup(*args)
                except NotImplementedError as skip:
                    results.append({"bench": bench, "params": params, "skipped": str(skip) or "not available"})
                    continue
                except Exception as err:  # noqa: BLE001 - reported, and the run fails at the end
                    results.append({"bench": bench, "params": params, "error": f"setup: {err!r}"})
                    continue
                for method in methods:
                    try:
                        if method.startswith("track_"):
                            getattr(obj, method)(*args)
                            continue
                        seconds = _time(obj, method, args, repeat)
                    except Exception as err:  # noqa: BLE001
                        results.append({"bench": f"{bench}.{method}", "params": params, "error": repr(err)})
                        continue
                    results.append({"bench": f"{bench}.{method}", "params": params, "seconds": seconds})
                if hasattr(obj, "teardown"):
                    obj.teardown(*args)
    return results


def _table(results):
    rows = {}
    impls = []
    for r in results:
        if "seconds" not in r:
            continue
        params = dict(r["params"])
        impl = params.pop("impl", "numbarl")
        if impl not in impls:
            impls.append(impl)
        key = (r["bench"], tuple(sorted(params.items())))
        rows.setdefault(key, {})[impl] = r["seconds"]
    print(f"# {platform.node()} {platform.processor() or platform.machine()} {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    for (bench, params), by_impl in rows.items():
        label = bench + (" " + ",".join(f"{k}={v}" for k, v in params) if params else "")
        base = by_impl.get("numbarl")
        cells = []
        for impl in impls:
            if impl in by_impl:
                t = by_impl[impl]
                ratio = f" ({t / base:.1f}x)" if base and impl != "numbarl" else ""
                cells.append(f"{impl}={t * 1e6:,.1f}us{ratio}")
        print(f"{label}\n    " + "  ".join(cells))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("words", nargs="*", help="only benchmark modules whose name contains one of these")
    parser.add_argument("--repeat", type=int, default=7, help="timed repeats per benchmark (median reported)")
    parser.add_argument("--json", default=None, help="also write the raw results to this file")
    parser.add_argument("--every", action="store_true",
                        help="also run the benchmarks without an impl parameter and the track_* methods")
    args = parser.parse_args(argv)
    results = run(args.words, args.repeat, args.every)
    _table(results)
    for r in results:
        if "skipped" in r:
            print(f"skipped {r['bench']} {r['params']}: {r['skipped']}")
    errors = [r for r in results if "error" in r]
    for r in errors:
        print(f"ERROR {r['bench']} {r['params']}: {r['error']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
