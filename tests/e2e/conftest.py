import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import DPOP, WASM, Envoy  # noqa: E402


def pytest_sessionstart(session):
    for path in (WASM, DPOP):
        if not os.path.exists(path):
            raise pytest.UsageError(f"{path} missing: run `make build` (make e2e does it)")


@pytest.fixture(scope="module")
def demo_envoy():
    """The shipped envoy/envoy.yaml as is (two workers)."""
    with Envoy(concurrency=2, name="demo") as e:
        yield e
