"""The examples in the core docstrings run and print what they say."""

import doctest

import pytest

import rtrl.api
import rtrl.learner
import rtrl.network


@pytest.mark.parametrize("module", [rtrl.api, rtrl.network, rtrl.learner], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
