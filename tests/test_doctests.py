"""Run every docstring example of the installed numbarl modules.

Doctests are collected from the modules as installed (``numbarl.core.*``,
``numbarl.torch_api.*``), so each module is imported once under its real name.
"""
import doctest
import importlib
import pkgutil

import pytest

import numbarl.core
import numbarl.torch_api


def _modules():
    names = []
    for package in (numbarl.core, numbarl.torch_api):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".cuda" in info.name:
                continue  # CUDA modules need the simulator or a GPU: tested in their own process
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_modules_found():
    assert "numbarl.torch_api.envs.common" in MODULES
    assert "numbarl.core.moments" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
