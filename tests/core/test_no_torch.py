"""numbarl.core must not import torch or tensordict."""
import subprocess
import sys

CODE = """
import importlib, pkgutil, sys
import numbarl.core
for info in pkgutil.walk_packages(numbarl.core.__path__, "numbarl.core."):
    importlib.import_module(info.name)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "tensordict"))
print("MODULES", sorted(m for m in sys.modules if m.startswith("numbarl.core")))
print("BAD", bad)
"""


def test_core_imports_neither_torch_nor_tensordict():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "numbarl.core.moments" in proc.stdout and "numbarl.core.shared" in proc.stdout
    assert "BAD []" in proc.stdout, proc.stdout
