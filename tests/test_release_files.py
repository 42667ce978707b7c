"""The release's files agree with the code: version, CHANGELOG.md, CITATION.cff, LICENSE, locks."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import yaml

from model.release import __version__
from conftest import REPO
from model.bundle import FORMAT_VERSION


def test_version_prints_the_release_and_the_bundle_format():
    result = subprocess.run([sys.executable, "-m", "calculator.cli", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"cart-risk {__version__} (reads bundle format {FORMAT_VERSION})"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_healthz_and_the_card_show_the_version(client, loaded_bundle):
    health = client.get("/healthz").get_json()
    assert health["version"] == __version__
    assert health["bundle"]["format_version"] == loaded_bundle.manifest["format_version"]
    card = client.get("/about").get_data(as_text=True)
    assert f"cart-risk {__version__}, reading bundle format {FORMAT_VERSION}" in card


def test_the_changelog_opens_with_this_release():
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.M)
    assert releases[0] == ("Unreleased", "")
    assert releases[1][0] == __version__ and releases[1][1]
    assert "keepachangelog.com" in text


def test_citation_cff_names_the_software_and_the_seed_paper():
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert citation["version"] == __version__
    assert citation["license"] == "MIT"
    for required in ("message", "title", "authors"):
        assert citation[required], required
    (paper,) = citation["references"]
    assert paper["type"] == "article" and "ssCART-19" in paper["title"]
    assert [a["family-names"] for a in paper["authors"]][:3] == ["Li", "Xue", "Tang"]
    assert "NCT03919240" in paper["identifiers"][0]["value"]


def test_the_license_is_spdx_with_its_file():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


def _pins(lock: str) -> dict[str, str]:
    text = (REPO / "requirements" / lock).read_text(encoding="utf-8")
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", text, re.M))


def test_the_locks_pin_every_package_with_hashes_and_agree_with_each_other():
    serve, train, dev = (_pins(name) for name in ("serve.txt", "train.txt", "dev.txt"))
    for lock in ("serve.txt", "train.txt", "dev.txt"):
        text = (REPO / "requirements" / lock).read_text(encoding="utf-8")
        blocks = [block for block in re.split(r"^(?=\S)", text, flags=re.M)
                  if not block.startswith("#") and block.strip()]
        assert len(blocks) == len(_pins(lock)) > 10, lock
        for block in blocks:  # every requirement pinned to a version and its files' hashes
            assert "==" in block.splitlines()[0] and "--hash=sha256:" in block, block[:60]
        assert "make lock" in text  # how to refresh it
    assert set(serve) <= set(train) <= set(dev)
    for package, version in serve.items():
        assert train[package] == version == dev[package], package
    assert not {"scikit-learn", "lifelines", "scipy", "matplotlib"} & set(serve)
    assert {"scikit-learn", "lifelines", "scipy", "matplotlib"} <= set(train)
