"""Damaged config drives (issue 11, item 13): a slightly corrupted ISO 9660 or vfat image, or
user_data that expands without end, is the config_drive source's typed error and nothing
else. Real images built by genisoimage and mkfs.vfat + mtools, mutated by hypothesis."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from guestagent.collectors import config_drive
from guestagent.collectors.base import Collected
from guestagent.errors import SourceNotConfigured, SourceUnavailable
from tests.test_source_config_drive import (
    BOOT,
    EC2,
    META,
    heat_user_data,
    make_iso,
    make_vfat,
)


def fuzz(examples: int) -> settings:
    """Bounded, reproducible runs (the same examples every time)."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


SECTOR = 2048


def write_tree(root: Path, user_data: bytes) -> Path:
    (root / "openstack" / "latest").mkdir(parents=True)
    (root / "ec2" / "latest").mkdir(parents=True)
    (root / "openstack" / "latest" / "meta_data.json").write_text(json.dumps(META))
    (root / "openstack" / "latest" / "user_data").write_bytes(user_data)
    (root / "ec2" / "latest" / "meta-data.json").write_text(json.dumps(EC2))
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    base = tmp_path_factory.mktemp("drives")
    tree = write_tree(base / "tree", heat_user_data(BOOT))
    return {"iso9660": make_iso(tree, base / "cd.iso").read_bytes(),
            "vfat": make_vfat(tree, base / "cd.img").read_bytes()}


def collect(image: Path):
    """What the source makes of `image`: Collected, or the typed error it raised."""
    source = config_drive.ConfigDrive(device=str(image),
                                      boot_metadata_file=image.parent / "absent")
    try:
        return source.collect(None)
    except (SourceUnavailable, SourceNotConfigured) as exc:
        return exc


def mutate(data: bytes, edits: list, cut: int | None) -> bytes:
    out = bytearray(data)
    for offset, value in edits:
        out[offset % len(out)] = value
    return bytes(out[:cut]) if cut else bytes(out)


def test_unmutated_images_read(images, tmp_path):
    for kind, data in images.items():
        path = tmp_path / kind
        path.write_bytes(data)
        assert collect(path).document == {**BOOT, "openstack": META, "ec2": EC2}, kind


# Where ISO 9660 keeps its structure (volume descriptors, path tables, directory records with
# their Rock Ridge and Joliet names): sectors 16 to about 40 of a small genisoimage image.
iso_edits = st.lists(st.tuples(st.integers(16 * SECTOR, 40 * SECTOR),
                               st.sampled_from([0, 255]) | st.integers(0, 255)),
                     min_size=1, max_size=8)


@fuzz(300)
@given(edits=iso_edits, cut=st.none() | st.integers(16 * SECTOR, 60 * SECTOR))
# One zero byte in the primary volume descriptor's path table location: pycdlib raised
# struct.error, which the reader did not catch (found by this fuzzing; kept as examples).
@example(edits=[(16 * SECTOR + 140, 0)], cut=None)
@example(edits=[(16 * SECTOR + 151, 0)], cut=None)
def test_mutated_iso_is_read_or_a_typed_error(images, tmp_path_factory, edits, cut):
    path = tmp_path_factory.mktemp("iso") / "cd.iso"
    path.write_bytes(mutate(images["iso9660"], edits, cut))
    started = time.monotonic()
    result = collect(path)
    assert isinstance(result, (Collected, SourceUnavailable, SourceNotConfigured))
    assert time.monotonic() - started < 10


# vfat: boot sector, both FATs and the root directory sit in the first 64 KiB of the image.
vfat_edits = st.lists(st.tuples(st.integers(0, 64 * 1024), st.integers(0, 255)),
                      min_size=1, max_size=8)


@fuzz(60)
@given(edits=vfat_edits)
def test_mutated_vfat_is_read_or_a_typed_error(images, tmp_path_factory, edits):
    path = tmp_path_factory.mktemp("vfat") / "cd.img"
    path.write_bytes(mutate(images["vfat"], edits, None))
    result = collect(path)
    assert isinstance(result, (Collected, SourceUnavailable, SourceNotConfigured))


def test_gzip_bomb_user_data_stops_at_the_bound(tmp_path):
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)  # about 200 KB
    image = make_iso(write_tree(tmp_path / "tree", bomb), tmp_path / "bomb.iso")
    started = time.monotonic()
    result = collect(image)
    assert isinstance(result, SourceUnavailable)
    assert f"expands to more than {config_drive.MAX_USER_DATA} bytes" in str(result)
    assert time.monotonic() - started < 10


def test_compressed_user_data_within_the_bound_is_read():
    assert config_drive.cfn_init_data(gzip.compress(heat_user_data(BOOT))) == BOOT
    with pytest.raises(SourceUnavailable, match="bad gzip data"):
        config_drive.cfn_init_data(gzip.compress(heat_user_data(BOOT))[:-20])


def test_deeply_nested_mime_is_a_typed_error():
    parts = []
    for level in range(3000):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{level}"\n\n--b{level}\n')
    data = b"MIME-Version: 1.0\n" + "".join(parts).encode()
    result = None
    try:
        result = config_drive.cfn_init_data(data)
    except SourceUnavailable as exc:
        result = exc
    assert result is None or isinstance(result, SourceUnavailable)
