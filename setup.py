"""Package layout that pyproject.toml cannot state: the demo bundles ship inside the wheel.

The MONAI bundles live in the repository's ``models/<bundle>/`` (beside their training code,
which does not ship). Each one goes into the wheel as the data-only package
``pipelines.models.<bundle>`` (``configs/*.json``, ``models/*.pt``), so that a plain
``pip install .`` runs the shipped pipelines; :data:`pipelines.common.base.MODELS_DIR` finds
them there, or in ``models/`` when running from the source tree. Everything else is in
pyproject.toml.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
BUNDLES = sorted(p.name for p in (ROOT / "models").iterdir() if (p / "configs").is_dir())

setup(
    packages=[
        *find_packages(include=["dicomnode*", "pipelines*"]),
        *(f"pipelines.models.{name}" for name in BUNDLES),
    ],
    package_dir={f"pipelines.models.{name}": f"models/{name}" for name in BUNDLES},
    package_data={
        "dicomnode": [
            "py.typed",
            "store/migrations/*.py",
            "store/migrations/versions/*.py",
            "config/*.yaml",
            "web/templates/*.html",
            "web/static/*.css",
        ],
        **{f"pipelines.models.{name}": ["configs/*.json", "models/*.pt"] for name in BUNDLES},
    },
)
