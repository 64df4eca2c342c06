"""A non-editable install runs the shipped pipelines: the wheel carries the demo bundles.

The wheel is built offline from a copy of the sources and installed into a fresh venv that has
nothing else of the node: the dependencies (torch, MONAI...) come from this venv's
site-packages as a plain path entry, so its editable install of the node stays out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from pydicom import dcmread

from dicomnode.synthetic import brain_mr, write_study

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "setup.py", "README.md", "dicomnode", "pipelines", "models"]


def _copy_sources(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    target.mkdir()
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)


def _run(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_wheel_ships_the_bundles_and_runs_a_pipeline_from_a_fresh_venv(tmp_path):
    src, dist, venv = tmp_path / "src", tmp_path / "dist", tmp_path / "venv"
    _copy_sources(src)
    built = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-q", "-w", dist, src, cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("dicomnode-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for bundle in ("lung_nodule_ct_detection", "brain_flair_segmentation", "mammo_classification"):
        for part in ("configs/metadata.json", "configs/inference.json", "models/model.pt"):
            assert f"pipelines/models/{bundle}/{part}" in names
    assert not [n for n in names if n.split("/")[0] in ("tests", "testkit", "models", "bench")]
    for part in ("pages.py", "queries.py", "templates/study.html", "static/web.css"):
        assert f"dicomnode/web/{part}" in names  # the web app, its templates and stylesheet

    assert _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path).returncode == 0
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / "bin" / "python"
    installed = _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "-q", wheel, cwd=tmp_path,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]

    where = _run(
        python, "-c",
        "import sys, dicomnode, pipelines.common.base as b; "
        "print(dicomnode.__file__); print(b.MODELS_DIR); "
        "print(any('editable' in m for m in sys.modules))",
        cwd=tmp_path,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    module, models, editable = where.stdout.split("\n")[:3]
    assert Path(module).is_relative_to(site) and Path(models) == site / "pipelines" / "models"
    assert editable == "False"

    mr = brain_mr(9102, shape=(64, 64, 24))
    write_study(mr.datasets, tmp_path / "mr")
    run = _run(
        venv / "bin" / "dicomnode", "run", "brain_lesion", tmp_path / "mr",
        "--out", tmp_path / "out", "--device", "cpu", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    modalities = sorted(dcmread(p).Modality for p in (tmp_path / "out").glob("*.dcm"))
    assert "SR" in modalities and "SEG" in modalities
