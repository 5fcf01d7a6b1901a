"""nbval runs the notebooks in order against a fresh temporary workspace."""

import os
import tempfile


def pytest_configure(config):
    if "WORKBENCH_WORKSPACE" not in os.environ:
        os.environ["WORKBENCH_WORKSPACE"] = tempfile.mkdtemp(prefix="wb-notebooks-")
