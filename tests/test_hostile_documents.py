"""Hostile documents and deployments (issue 11, items 1 and 2): over-deep or non-finite JSON
is a source error and the last good copy stays; an overlong id, a huge input, a long output
name or a lone surrogate fails that deployment alone, with a message naming the field."""

from __future__ import annotations

import json

import pytest

from guestagent import deployments, jsondoc
from guestagent.collectors.jsonfiles import read_object
from guestagent.errors import SourceUnavailable
from tests.support.agent import deployment, run_agent, signals_for


def nested(levels: int) -> bytes:
    """A metadata document whose `deep` key nests `levels` arrays (about 2 bytes a level)."""
    return b'{"deep": ' + b"[" * levels + b"]" * levels + b"}"


@pytest.mark.parametrize("levels", [500, 1000, 100_000])
def test_over_deep_json_is_a_source_error_with_its_depth(tmp_path, levels):
    path = tmp_path / "doc.json"
    path.write_bytes(nested(levels))
    with pytest.raises(SourceUnavailable, match=f"not valid JSON: nested {levels + 1} levels"):
        read_object("local", path)


@pytest.mark.parametrize("text,why", [
    (b'{"a": NaN}', "NaN is not a JSON value"),
    (b'{"a": -Infinity}', "-Infinity is not a JSON value"),
    (b'{"a": 1e999}', "number 1e999 is out of range"),
    (b'{"a": 1' + b"0" * 5000 + b"}", "not valid JSON: "),
    (b'{"a": "\xff"}', "not UTF-8"),
])
def test_non_json_numbers_and_bytes_are_refused(tmp_path, text, why):
    path = tmp_path / "doc.json"
    path.write_bytes(text)
    with pytest.raises(SourceUnavailable, match=why):
        read_object("local", path)


def test_brackets_inside_strings_do_not_count_and_64_levels_pass():
    text = json.dumps({"s": "[" * 5000 + '\\"{' * 100, "d": json.loads("[" * 63 + "]" * 63)})
    assert jsondoc.loads(text)["s"].startswith("[[[")
    with pytest.raises(jsondoc.DocumentError, match="nested 65 levels"):
        jsondoc.loads("[" * 65 + "]" * 65)
    with pytest.raises(jsondoc.DocumentError, match="larger than 10 bytes"):
        jsondoc.loads(b"[" + b" " * 20 + b"]", max_bytes=10)


def _ran(runs):
    return runs.read_text().split() if runs.exists() else []


@pytest.mark.parametrize("levels", [500, 1000])
def test_deep_document_over_request_source_keeps_last_good_copy(fakecloud, tmp_path, levels):
    state, runs = tmp_path / "state", tmp_path / "runs"
    good = deployment(fakecloud, "good", f"#!/bin/sh\necho good >> {runs}\n")
    fakecloud.set_metadata({"deployments": [good]})
    args = ("--collectors", "request", "--request-metadata-url", fakecloud.metadata_url)
    assert run_agent(state, *args).returncode == 0

    fakecloud.set_metadata(nested(levels))
    proc = run_agent(state, *args)
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert f"nested {levels + 1} levels deep" in proc.stderr
    cached = json.loads((state / "sources" / "request.json").read_text())
    assert [d["name"] for d in cached["document"]["deployments"]] == ["good"]
    assert _ran(runs) == ["good"] and len(signals_for(fakecloud, "good")) == 1


@pytest.mark.parametrize("levels", [500, 1000])
def test_deep_document_over_local_source_keeps_last_good_copy(fakecloud, tmp_path, levels):
    state, runs, data = tmp_path / "state", tmp_path / "runs", tmp_path / "local-data"
    data.mkdir(mode=0o700)
    good = deployment(fakecloud, "good", f"#!/bin/sh\necho good >> {runs}\n")
    (data / "10-deployments").write_text(json.dumps({"deployments": [good]}))
    args = ("--collectors", "local", "--local-path", str(data))
    assert run_agent(state, *args).returncode == 0

    (data / "10-deployments").write_bytes(nested(levels))
    proc = run_agent(state, *args)
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert f"not valid JSON: nested {levels + 1} levels deep" in proc.stderr
    cached = json.loads((state / "sources" / "local.json").read_text())
    assert [d["name"] for d in cached["document"]["deployments"]] == ["good"]
    assert _ran(runs) == ["good"]


def test_each_oversized_or_unwritable_deployment_fails_alone(fakecloud, tmp_path):
    runs = tmp_path / "runs"
    long_id = deployment(fakecloud, "long-id", "#!/bin/sh\n", dep_id="i" * 3000)
    huge_input = deployment(fakecloud, "huge-input", "#!/bin/sh\n",
                            inputs=[{"name": "blob", "value": "x" * 3_000_000}])
    long_output = deployment(fakecloud, "long-output", "#!/bin/sh\n", outputs=["o" * 300])
    surrogate = deployment(fakecloud, "surrogate", "#!/bin/sh\n",
                           inputs=[{"name": "text", "value": "a\udc80b"}])
    fine = deployment(fakecloud, "fine", f"#!/bin/sh\necho fine >> {runs}\n")
    # The surrogate travels as JSON's \udc80 escape, as a hostile document would carry it.
    document = json.dumps({"deployments": [long_id, huge_input, long_output, surrogate, fine]})
    fakecloud.set_metadata(document.encode())

    proc = run_agent(tmp_path / "state", "--collectors", "request",
                     "--request-metadata-url", fakecloud.metadata_url)
    assert "Traceback" not in proc.stderr and "OSError" not in proc.stderr
    assert proc.returncode == 1
    assert _ran(runs) == ["fine"]
    assert signals_for(fakecloud, "fine")[0]["deploy_status_code"] == 0
    expect = {"long-id": "field 'id': 3000 characters long; at most 255",
              "huge-input": "field 'inputs[0].value': input 'blob' is 3000000 bytes",
              "long-output": "field 'outputs[0].name': 300 bytes long; at most 128",
              "surrogate": "field 'inputs[0]': holds \\udc80, a lone surrogate"}
    for name, message in expect.items():
        [body] = signals_for(fakecloud, name)
        assert body["deploy_status_code"] != 0, name
        assert message in body["deploy_stderr"], (name, body["deploy_stderr"])


def test_an_input_too_large_for_the_environment_fails_with_its_name(fakecloud, tmp_path):
    # 200 KiB passes the 1 MiB input limit but not Linux's 128 KiB per environment variable.
    dep = deployment(fakecloud, "env-big", "#!/bin/sh\necho never\n",
                     inputs=[{"name": "big_value", "value": "v" * 200_000}])
    fakecloud.set_metadata({"deployments": [dep]})
    proc = run_agent(tmp_path / "state", "--collectors", "request",
                     "--request-metadata-url", fakecloud.metadata_url)
    assert "Traceback" not in proc.stderr
    [body] = signals_for(fakecloud, "env-big")
    assert body["deploy_status_code"] != 0
    assert "environment is too large" in body["deploy_stderr"]
    assert "big_value (200009 bytes)" in body["deploy_stderr"]


def test_old_marker_lookup_never_builds_a_name_over_name_max(tmp_path):
    deployed = tmp_path / "deployed"
    deployed.mkdir()
    (deployed / ("m" * 250 + ".json")).write_text("{}")  # 255 bytes: the longest name there is
    assert deployments.already_deployed(deployed, "m" * 250) is True
    assert deployments.already_deployed(deployed, "m" * 251) is False  # no error: no marker
    assert deployments.already_deployed(deployed, "é" * 127) is False  # 254 bytes + .json
    assert deployments.already_deployed(deployed, "a\udc80") is False
    assert deployments.already_deployed(deployed, "../deployed/x") is False


def test_251_character_id_with_an_old_deployed_dir_runs(fakecloud, tmp_path):
    state, runs = tmp_path / "state", tmp_path / "runs"
    (state / "no-markers").mkdir(parents=True)  # the old agent's directory exists
    dep = deployment(fakecloud, "id251", f"#!/bin/sh\necho ran >> {runs}\n", dep_id="d" * 251)
    fakecloud.set_metadata({"deployments": [dep]})
    proc = run_agent(state, "--collectors", "request",
                     "--request-metadata-url", fakecloud.metadata_url)
    assert "Traceback" not in proc.stderr
    assert _ran(runs) == ["ran"]
