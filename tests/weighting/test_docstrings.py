"""The Examples sections of the method docstrings run and are correct."""

import doctest
import importlib

import pytest

import mtl_jax.weighting as weighting


@pytest.mark.parametrize("name", weighting.names())
def test_docstring_examples(name):
  module = importlib.import_module(f"mtl_jax.weighting.{name}")
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0, f"{name} has no doctest example"
  assert result.failed == 0
