"""Property-based fuzzing (hypothesis) of what turns untrusted metadata into actions: the
deployment parser, the planner, signal trimming, and a whole agent pass. No exception escapes
but the documented one, and nothing is written outside the state directory."""

import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guestagent import config, deployments, signals
from guestagent.agent import Agent
from guestagent.errors import InvalidDeployment
from guestagent.journal import DONE_STATES, JournalEntry

FAST = settings(max_examples=2500, deadline=None)
SLOW = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
# Strings chosen to break paths and environments.
nasty = st.sampled_from(["", ".", "..", "../../escape", "/etc/passwd", "a/b", "x\0y", "a=b",
                         "-rf", "~", "$(touch /tmp/pwned)", "é" * 50, "a" * 300, "\n",
                         "a" * 3000, "lone \ud800 surrogate", "\x1b[31mred", "forged\nline",
                         "x" * 2_000_000]) \
    | st.text(max_size=30)
# Nesting past any sane depth (a small document that used to raise RecursionError).
deep = st.integers(1, 1500).map(lambda n: json.loads("[" * n + "]" * n))
numbers = st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e300, -1, 0, 1e-9,
                           True, "30"]) | st.floats() | st.integers()
ids = nasty | st.uuids().map(str) | scalars
groups = st.sampled_from(["os-apply-config", "Heat::Ungrouped", "component", "no-such-tool",
                          "../script", "script/../../x", ""]) | nasty
inputs = st.lists(st.fixed_dictionaries(
    {"name": nasty | st.sampled_from(["deploy_action", "deploy_signal_transport",
                                       "deploy_signal_id", "deploy_signal_verb"])},
    optional={"value": json_values | nasty, "type": st.sampled_from(["String", "Json", "Number"]),
              "default": json_values}) | json_values, max_size=5)
outputs = st.lists(st.fixed_dictionaries({"name": nasty}) | json_values, max_size=3)
one_deployment = st.fixed_dictionaries({}, optional={
    "id": ids, "name": nasty | scalars, "group": groups | scalars,
    "config": json_values | nasty | deep, "options": st.none() | json_values
    | st.fixed_dictionaries({"timeout": scalars | numbers}),
    "inputs": inputs | json_values, "outputs": outputs | json_values,
}) | json_values
documents = st.fixed_dictionaries({}, optional={
    "deployments": st.lists(one_deployment, max_size=6) | json_values | deep,
    "os-collect-config": json_values | st.fixed_dictionaries({}, optional={
        "collectors": json_values, "polling_interval": scalars | numbers, "state_dir": nasty,
        "conditional_polling_interval": numbers, "splay": numbers, "hook_timeout": numbers,
        "max_attempts": numbers, "os_config_dir": nasty, "hooks_dirs": json_values | nasty,
        "deployed_dir": nasty, "heat_local": json_values, "request": json_values})})


@FAST
@given(documents)
def test_parser_never_raises_but_invalid_deployment(doc):
    try:
        parsed = deployments.parse(doc)
    except InvalidDeployment as exc:
        assert "deployments" in str(exc)
        return
    keys = [d.key for d in parsed]
    assert len(keys) == len(set(keys))
    for dep in parsed:
        assert isinstance(dep.key, str) and dep.key and isinstance(dep.group, str)
        assert isinstance(dep.options, dict)
        dep.input_values(), dep.action, dep.timeout, dep.label  # never raise
        if dep.problem is None:
            assert dep.group.strip() and isinstance(dep.raw.get("id"), str)


@FAST
@given(documents, st.lists(st.tuples(st.integers(0, 8), st.sampled_from(
    ["received", "running", "finished", "signalled", "refused", "gone"])), max_size=8), st.data())
def test_planner_runs_only_unfinished_and_names_only_vanished(doc, journal_spec, data):
    try:
        parsed = deployments.parse(doc)
    except InvalidDeployment:
        return
    journal = {}
    for index, state in journal_spec:
        key = parsed[index].key if index < len(parsed) else f"old-{index}"
        journal[key] = JournalEntry(key=key, id=key, name=key, group="script", state=state)
    deployed = data.draw(st.sets(st.sampled_from([d.id for d in parsed] or ["x"])))
    plan = deployments.plan(parsed, journal, lambda i: i in deployed)
    present = {d.key for d in parsed}
    for dep in plan.to_run:
        assert dep in parsed
        entry = journal.get(dep.key)
        assert entry is None or entry.state not in DONE_STATES
    assert [d.key for d in plan.to_run] == [d.key for d in parsed if d in plan.to_run]
    for key in plan.gone:
        assert key in journal and key not in present and journal[key].state != "gone"


big_text = st.text(min_size=0, max_size=30000) | st.builds(
    lambda c, n: c * n, st.sampled_from(["a", "é", "\U0001f600", "\\", '"', "\0"]),
    st.integers(0, 20000))


@FAST
@given(st.fixed_dictionaries({"deploy_stdout": big_text | scalars, "deploy_stderr": big_text,
                              "deploy_status_code": st.integers(-1, 255) | scalars},
                             optional={"result": big_text | json_values,
                                       "other": json_values}),
       st.integers(4096, 40000))
def test_trimmed_signal_fits_and_is_json(response, limit):
    body = signals.trim(response, "/state/deployments/x/response.json", limit=limit)
    assert len(body) <= limit
    decoded = json.loads(body)
    if len(json.dumps(response, ensure_ascii=False).encode()) <= limit:
        assert decoded == json.loads(json.dumps(response))  # untouched when it fits
    elif set(decoded) != {"deploy_stdout", "deploy_stderr", "deploy_status_code"} \
            or "reply too large to signal" not in str(decoded.get("deploy_stderr")):
        # Not the fallback reply (told apart by its message: a status code of True equals 1).
        assert set(decoded) == set(response)  # cut, but every key kept
        assert decoded["deploy_status_code"] == response["deploy_status_code"]
    else:
        assert decoded["deploy_status_code"] == 1 and "too large" in decoded["deploy_stderr"]


def files_under(root: Path) -> set:
    return {Path(d, f) for d, _, fs in os.walk(root) for f in fs} | \
        {Path(d) for d, _, _ in os.walk(root)}


@SLOW
@given(documents)
def test_agent_pass_writes_only_inside_its_state_dir(tmp_path, doc):
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    metadata = base / "metadata.json"
    metadata.write_text(json.dumps(doc))
    state = base / "state"
    before = files_under(tmp_path)
    loaded = config.load("/dev/null", {
        "collectors": ["heat_local"], "heat_local": {"path": [str(metadata)]},
        "state_dir": str(state), "deployed_dir": str(base / "deployed")}, old_config=None)
    agent = Agent(loaded, quick_signal_attempts=1, sleep=lambda _s: None)
    cwd = os.getcwd()
    os.chdir(base)
    try:
        agent.run_pass()
        agent.run_pass()  # and again: nothing new, nothing raised
    finally:
        os.chdir(cwd)
    created = files_under(tmp_path) - before
    outside = {p for p in created if state not in p.parents and p != state}
    assert outside == set()
