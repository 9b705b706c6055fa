"""The pure parts of the devkit's image builder (glidein_devkit.node.images): what a
Dockerfile reads, the hash that decides a rebuild, which HTCondor files the pilot base takes."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from glidein_devkit.node import images

ROOT = Path(__file__).resolve().parents[2]


def test_copy_sources_of_the_project_dockerfiles() -> None:
    operator = (ROOT / "images/operator/Dockerfile").read_text()
    # COPY --from=build is the other stage's, not the context's.
    assert images.copy_sources(operator) == ["pyproject.toml", "README.md", "operator"]
    pilot = (ROOT / "images/pilot-pod/Dockerfile").read_text()
    assert images.copy_sources(pilot) == [
        "operator/glidein_operator/__init__.py",
        "operator/glidein_operator/pilot",
    ]


def test_copy_sources_json_form_flags_and_continuations() -> None:
    text = (
        "FROM x\n"
        "# COPY not/this /\n"
        'COPY ["a b.txt", "c", "/dst/"]\n'
        "ADD --chown=1:1 \\\n"
        "    d \\\n"
        "    /e\n"
        "COPY --from=0 /f /g\n"
    )
    assert images.copy_sources(text) == ["a b.txt", "c", "d"]


def _context(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "pkg/__pycache__").mkdir(parents=True)
    (tmp_path / "pkg/mod.py").write_text("x = 1\n")
    (tmp_path / "pkg/__pycache__/mod.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "top.txt").write_text("top\n")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM base\nCOPY top.txt /\nCOPY pkg /pkg\n")
    return dockerfile, tmp_path


def test_input_files_walk_directories_and_leave_byte_code_out(tmp_path: Path) -> None:
    dockerfile, context = _context(tmp_path)
    assert images.input_files(dockerfile, context) == [Path("pkg/mod.py"), Path("top.txt")]


def test_missing_copy_source_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM base\nCOPY nothing /\n")
    with pytest.raises(images.ImagesUnavailable, match="nothing"):
        images.input_files(tmp_path / "Dockerfile", tmp_path)


def test_inputs_hash_follows_content_mode_and_base_only(tmp_path: Path) -> None:
    dockerfile, context = _context(tmp_path)
    first = images.inputs_hash(dockerfile, context, {"base": "a"})
    # A touched file, new byte code, or an unrelated file do not change it.
    os.utime(context / "pkg/mod.py", (1, 1))
    (context / "pkg/__pycache__/mod.cpython-312.pyc").write_bytes(b"\1")
    (context / "unrelated.txt").write_text("no\n")
    assert images.inputs_hash(dockerfile, context, {"base": "a"}) == first
    assert images.inputs_hash(dockerfile, context, {"base": "b"}) != first
    (context / "pkg/mod.py").chmod(0o755)
    executable = images.inputs_hash(dockerfile, context, {"base": "a"})
    assert executable != first
    (context / "pkg/mod.py").write_text("x = 2\n")
    assert images.inputs_hash(dockerfile, context, {"base": "a"}) not in (first, executable)
    dockerfile.write_text(dockerfile.read_text() + "USER 1\n")
    assert images.inputs_hash(dockerfile, context, {"base": "a"}) != first


def test_condor_execute_side_selection() -> None:
    for kept in ("sbin", "sbin/condor_master", "sbin/condor_off", "bin/condor_status",
                 "lib/libclassad.so", "libexec/curl_plugin", "BUILD-INFO.txt"):  # fmt: skip
        assert images._condor_wanted(kept), kept
    for left in ("sbin/condor_schedd", "sbin/condor_collector", "sbin/condor_gridmanager",
                 "etc/condor_config.generic"):  # fmt: skip
        assert not images._condor_wanted(left), left


def test_stage_condor_from_a_tarball(tmp_path: Path) -> None:
    tarball = tmp_path / "htcondor-1.0.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name in ("htcondor/sbin/condor_master", "htcondor/sbin/condor_schedd",
                     "htcondor/lib/libx.so"):  # fmt: skip
            data = b"#!/bin/sh\n"
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("htcondor/sbin/condor_off")
        link.type, link.linkname = tarfile.SYMTYPE, "condor_on"
        tar.addfile(link)
    target = tmp_path / "out"
    images.stage_condor(tarball, target)
    assert (target / "sbin/condor_master").stat().st_mode & 0o111
    assert (target / "lib/libx.so").exists()
    assert not (target / "sbin/condor_schedd").exists()
    assert os.readlink(target / "sbin/condor_off") == "condor_on"


def test_base_recipe_changes_with_what_goes_in() -> None:
    python, condor = images.BASES
    assert images.base_recipe(python, None) == images.base_recipe(python, None)
    assert images.base_recipe(condor, "sha256:a") != images.base_recipe(condor, "sha256:b")


def test_image_references_follow_the_chart() -> None:
    version = images.app_version(ROOT)
    assert images.refs(version) == [
        f"ghcr.io/glidein-operator/operator:{version}",
        f"ghcr.io/glidein-operator/pilot:{version}",
    ]
    pilot_image = (ROOT / "examples/30-cloudentries.yaml").read_text()
    assert f"ghcr.io/glidein-operator/pilot:{version}" in pilot_image
