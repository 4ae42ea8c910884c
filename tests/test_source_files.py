"""`local` and `heat_local` remember what they read: an unchanged file costs a stat call and
answers NOT_MODIFIED; any rewrite, new or removed file, or chmod is noticed and read in full.

The collectors trust a read only once its files' timestamps are SETTLE_NS old (a change within
the same timestamp tick is invisible to stat); most tests set settle_ns=0 so that a file just
written counts as settled, and give the file an old mtime first where a rewrite must show in it.
"""

import json
import os

import pytest

from guestagent.collectors import build
from guestagent.collectors.base import NOT_MODIFIED, Collected
from guestagent.errors import SourceUnavailable
from guestagent.state import SourceCache

LONG_AGO_NS = 1_000_000_000_000_000_000  # 2001


def write(path, doc):
    path.write_text(json.dumps(doc))
    path.chmod(0o600)


def poll(collector, previous):
    """collect(), and the cache the agent would keep afterwards."""
    got = collector.collect(previous)
    if got is NOT_MODIFIED:
        return got, previous
    return got, SourceCache(got.document)


@pytest.fixture
def local_dir(tmp_path):
    d = tmp_path / "local-data"
    d.mkdir(mode=0o700)
    write(d / "10-a", {"a": 1})
    write(d / "20-b", {"b": 1})
    return d


def settled_local(directory):
    local = build("local", {"path": [str(directory)]})
    local.memo.settle_ns = 0
    return local


def test_local_unchanged_is_not_modified_from_the_same_instance(local_dir):
    local = settled_local(local_dir)
    got, cache = poll(local, None)
    assert got.document == {"a": 1, "b": 1}
    assert local.collect(cache) is NOT_MODIFIED
    assert local.collect(cache) is NOT_MODIFIED
    # No copy held by the caller (first pass), or another copy than the one read: in full.
    assert isinstance(local.collect(None), Collected)
    assert local.collect(SourceCache({"stale": True})).document == {"a": 1, "b": 1}
    # A fresh instance (a new process) has no memory: in full even with the caller's copy.
    assert settled_local(local_dir).collect(cache).document == {"a": 1, "b": 1}


def test_local_notices_same_size_rewrite_new_and_removed_files(local_dir):
    os.utime(local_dir / "10-a", ns=(LONG_AGO_NS, LONG_AGO_NS))
    local = settled_local(local_dir)
    _, cache = poll(local, None)
    assert local.collect(cache) is NOT_MODIFIED

    (local_dir / "10-a").write_text(json.dumps({"a": 2}))  # same size, in place
    got, cache = poll(local, cache)
    assert got.document == {"a": 2, "b": 1}
    assert local.collect(cache) is NOT_MODIFIED

    write(local_dir / "30-c", {"c": 1})
    got, cache = poll(local, cache)
    assert got.document == {"a": 2, "b": 1, "c": 1}

    (local_dir / "20-b").unlink()
    got, cache = poll(local, cache)
    assert got.document == {"a": 2, "c": 1}
    assert local.collect(cache) is NOT_MODIFIED


def test_local_refuses_a_file_made_group_writable_on_every_poll(local_dir):
    local = settled_local(local_dir)
    _, cache = poll(local, None)
    (local_dir / "20-b").chmod(0o620)
    for _ in range(2):  # refused again, never answered from memory
        with pytest.raises(SourceUnavailable, match="20-b: writable by group or others"):
            local.collect(cache)
    (local_dir / "20-b").chmod(0o600)
    assert local.collect(cache).document == {"a": 1, "b": 1}


def test_local_refuses_a_directory_made_world_writable(local_dir):
    local = settled_local(local_dir)
    _, cache = poll(local, None)
    local_dir.chmod(0o702)
    with pytest.raises(SourceUnavailable, match="local-data: writable by group or others"):
        local.collect(cache)


def test_local_missing_directory_then_created(tmp_path):
    local = settled_local(tmp_path / "later")
    got, cache = poll(local, None)
    assert got.document == {}
    assert local.collect(cache) is NOT_MODIFIED
    (tmp_path / "later").mkdir(mode=0o700)
    write(tmp_path / "later" / "x", {"x": 1})
    assert local.collect(cache).document == {"x": 1}


def test_a_file_too_new_to_trust_is_read_in_full_each_poll(local_dir):
    local = build("local", {"path": [str(local_dir)]})
    local.memo.settle_ns = 10 ** 18  # every file counts as just written
    _, cache = poll(local, None)
    assert isinstance(local.collect(cache), Collected)
    assert isinstance(local.collect(cache), Collected)


def test_heat_local_notices_rewrite_chmod_appearance_and_removal(tmp_path):
    first, second = tmp_path / "cfn-init-data", tmp_path / "extra"
    write(first, {"k": "v1"})
    os.utime(first, ns=(LONG_AGO_NS, LONG_AGO_NS))
    heat_local = build("heat_local", {"path": [str(first), str(second)]})
    heat_local.memo.settle_ns = 0
    got, cache = poll(heat_local, None)
    assert got.document == {"k": "v1"}
    assert heat_local.collect(cache) is NOT_MODIFIED
    assert isinstance(heat_local.collect(None), Collected)

    first.write_text(json.dumps({"k": "v2"}))  # same size, in place
    got, cache = poll(heat_local, cache)
    assert got.document == {"k": "v2"}
    assert heat_local.collect(cache) is NOT_MODIFIED

    first.chmod(0o644)
    assert isinstance(heat_local.collect(cache), Collected)

    write(second, {"more": 1})
    got, cache = poll(heat_local, cache)
    assert got.document == {"k": "v2", "more": 1}

    second.unlink()
    got, cache = poll(heat_local, cache)
    assert got.document == {"k": "v2"}
    assert heat_local.collect(cache) is NOT_MODIFIED


def test_heat_local_bad_json_is_refused_on_every_poll(tmp_path):
    path = tmp_path / "cfn-init-data"
    path.write_text("{not json")
    heat_local = build("heat_local", {"path": [str(path)]})
    heat_local.memo.settle_ns = 0
    for _ in range(2):
        with pytest.raises(SourceUnavailable, match="not valid JSON"):
            heat_local.collect(SourceCache({}))


def test_request_source_sees_a_rewrite_within_the_same_second(fakecloud):
    """Swift answers 304 to If-Modified-Since for a rewrite in the same second as the cached
    copy (it checks each validator on its own): with an ETag the source sends only that."""
    fakecloud.swift_conditionals = True
    fakecloud.set_metadata({"deployments": []})
    source = build("request", {"metadata_url": fakecloud.metadata_url})
    first = source.collect(None)
    cache = SourceCache(first.document, first.etag, first.last_modified)
    assert cache.etag and cache.last_modified
    modified = fakecloud._metadata.modified
    fakecloud.set_metadata({"deployments": [{"id": "d1"}]})
    fakecloud._metadata.modified = modified  # Heat's second write, within the same second
    assert source.collect(cache).document == {"deployments": [{"id": "d1"}]}
    last = fakecloud.requests[-1].headers
    assert "If-None-Match" in last and "If-Modified-Since" not in last
