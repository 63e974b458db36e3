"""The examples in harness/datasets/ docstrings run and say what they show."""
import doctest
import importlib
import pkgutil

import pytest

import harness.datasets

MODULES = sorted(m.name for m in pkgutil.iter_modules(harness.datasets.__path__, "harness.datasets."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
