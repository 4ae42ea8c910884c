"""Truthful truncation (issue 11, item 11): 2.4 MB of stdout is cut once for the signal, and the
one marker gives the exact number of characters cut, the bytes the capture dropped, and the
file holding the rest; outputs are never cut, one too large fails the signal naming it."""

from __future__ import annotations

import json
import re
import sys

from guestagent import capture, process, signals
from guestagent.hooks.base import HookResult

MARK = re.compile(r"\n\[\.\.\. guestagent cut (\d+) characters here to fit the signal, where the "
                  r"capture had already dropped (\d+) bytes; what was kept is in (\S+) \.\.\.\]\n")


def test_two_point_four_mb_of_stdout_is_cut_once_with_exact_counts(tmp_path):
    total = 2_400_000
    # Head "a", tail "z", multi-byte "é" in the middle (characters are not bytes): 2.4 MB.
    script = ("import sys; out = sys.stdout.buffer; out.write(b'a' * 1200000); "
              "out.write('é'.encode() * 50000); out.write(b'z' * 1100000)")
    proc = process.run([sys.executable, "-c", script], stdout_path=tmp_path / "stdout",
                       stderr_path=tmp_path / "stderr")
    assert proc.printed["stdout"] == total
    captured = proc.stdout()
    assert captured.count("guestagent dropped") == 1  # the capture's cut, not a read-back cut

    where = str(tmp_path / "response.json")
    body = signals.trim(HookResult(0, stdout=captured).response(), where)
    assert len(body) <= signals.MAX_BODY
    out = json.loads(body)["deploy_stdout"]
    [mark] = list(MARK.finditer(out))
    assert out.count("guestagent") == 1  # one marker: cut once
    cut, dropped, named = int(mark.group(1)), int(mark.group(2)), mark.group(3)
    assert named == where
    assert dropped == total - capture.HEAD - capture.TAIL
    kept = len(out) - len(mark.group(0))
    capture_mark = len(capture.marker(dropped).decode())
    assert cut == len(captured) - capture_mark - kept  # every character accounted for
    assert out.startswith("a" * 1000) and out.endswith("z" * 1000)


def test_a_single_cut_names_the_response_file_and_its_exact_count():
    text = "H" * 1000 + "é" * 900_000 + "T" * 1000
    body = signals.trim({"deploy_stdout": text, "deploy_stderr": "", "deploy_status_code": 0},
                        "/state/d/response.json")
    out = json.loads(body)["deploy_stdout"]
    found = re.search(r"guestagent cut (\d+) characters here to fit the signal; full text in "
                      r"/state/d/response\.json", out)
    assert found
    marker_len = len(found.group(0)) + len("\n[... ") + len(" ...]\n")
    assert int(found.group(1)) == len(text) - (len(out) - marker_len)


def test_output_too_large_for_heat_is_named_with_its_size_not_cut():
    response = {"deploy_stdout": "x" * 10, "deploy_stderr": "", "deploy_status_code": 0,
                "small": "ok", "huge": "h" * 1_100_000}
    assert "output 'huge' is 1100002 bytes" in signals.fit_problem(response, "/r.json")
    body = json.loads(signals.trim(response, "/r.json"))
    assert body["deploy_status_code"] == 1 and "huge" not in body and "small" not in body
    assert "output 'huge' is 1100002 bytes" in body["deploy_stderr"]
    assert "max_json_body_size" in body["deploy_stderr"] and "/r.json" in body["deploy_stderr"]
    fits = dict(response, huge="h" * 900_000, deploy_stdout="s" * 500_000)
    assert signals.fit_problem(fits) is None  # stdout can be cut to make room
    assert json.loads(signals.trim(fits))["huge"] == "h" * 900_000  # outputs never cut
