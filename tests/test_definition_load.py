"""Loading the code location stays cheap: no ML library is imported by `pipelines.definitions`.

Every process that runs a step (the code server, the run worker, one process per step under the
multiprocess executor) loads the definitions first, so a library imported at module level anywhere under
`assets/`, `resources/`, `pipelines/` (or an `ops/`/`training/` module they import) is paid for by every
step, even one that never uses it. Heavy libraries belong inside the functions that use them.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "lancedb",
    "sklearn",
    "scipy",
    "great_expectations",
    "llama_cpp",
    "sentence_transformers",
    "matplotlib",
    "datasketch",
    "pandas",
)
PROBE = f"""
import json, sys
import pipelines.definitions
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set({list(HEAVY)!r}))))
"""


@pytest.fixture(scope="module")
def loaded_heavy() -> list[str]:
    """The heavy top-level packages present in `sys.modules` after a fresh interpreter loads the definitions."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loading_the_definitions_imports_no_heavy_library(loaded_heavy: list[str]) -> None:
    assert loaded_heavy == [], (
        f"`import pipelines.definitions` imports {loaded_heavy}: move those imports into the functions that use "
        "them (TYPE_CHECKING for annotations); find the importer with "
        "`python -X importtime -c 'import pipelines.definitions'`"
    )


def test_the_probe_sees_a_heavy_import() -> None:
    """The probe itself is live: a module that imports a heavy library is reported."""
    probe = "import json, sys, ops.common.plots as p; p.pyplot(); print(json.dumps('matplotlib' in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) is True
