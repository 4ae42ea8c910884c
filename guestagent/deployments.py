"""The deployment model parsed from metadata, validated, and the plan of what to run.

Heat lists every deployment of the server in the metadata each time; this
module turns that list into `Deployment` records (a malformed one becomes
a record with `problem` set, so it can still be failed and signalled) and
decides which of them run this pass.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from guestagent.errors import InvalidDeployment

# Groups whose config is data for the template tree, not something a hook runs.
DATA_GROUPS = frozenset({"os-apply-config", "Heat::Ungrouped"})
# A deployment's own hook timeout (options.timeout), as the operator's hook_timeout.
MIN_TIMEOUT, MAX_TIMEOUT = 0.1, 86400.0
ACTIONS = frozenset({"CREATE", "UPDATE", "DELETE", "SUSPEND", "RESUME"})

# Limits checked up front so one oversized deployment fails alone, with a message, instead of
# raising out of planning or a hook. Heat's ids are UUIDs (36 characters).
MAX_ID = 255            # characters of id, name and group (a group names a hook file)
MAX_INPUT_NAME = 255    # characters of an input name (an environment variable name)
MAX_OUTPUT_NAME = 128   # UTF-8 bytes: `<outputs dir>/<id key>.<name>` must fit NAME_MAX (255)
MAX_VALUE = 1024 * 1024         # bytes of one input value, as JSON text (strings as UTF-8)
MAX_INPUTS_TOTAL = 4 * 1024 * 1024  # bytes of all input values of one deployment together
NAME_MAX = 255          # bytes of one path component (Linux)


@dataclass(frozen=True)
class Deployment:
    """One deployment (Heat's derived config) as the agent runs it."""

    key: str                     # journal key: the id, or a stable stand-in when id is unusable
    id: str
    name: str
    group: str
    config: Any
    options: Mapping[str, Any]
    inputs: tuple[Mapping[str, Any], ...]
    outputs: tuple[Mapping[str, Any], ...]
    raw: Mapping[str, Any] = field(repr=False)
    problem: InvalidDeployment | None = None

    @property
    def label(self) -> str:
        """How logs and errors name it: `name (id)` (lone surrogates escaped, so the text can
        always be written as UTF-8)."""
        return writable(f"{self.name} ({self.id})" if self.name and self.name != self.id
                        else self.id)

    def input_values(self) -> dict[str, Any]:
        """Inputs by name: `value`, else `default`, else None."""
        values: dict[str, Any] = {}
        for item in self.inputs:
            values[item["name"]] = item["value"] if "value" in item else item.get("default")
        return values

    @property
    def action(self) -> str:
        action = self.input_values().get("deploy_action")
        return action if isinstance(action, str) and action else "CREATE"

    @property
    def timeout(self) -> float | None:
        value = self.options.get("timeout")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
        return None

    def hook_input(self) -> dict[str, Any]:
        """The JSON a heat-config hook reads on stdin: the deployment exactly as Heat sent
        it (no key added or normalised; a `component` entry has its tool's group and config,
        as heat-config gave it)."""
        return dict(self.raw)


def parse(document: Mapping[str, Any]) -> list[Deployment]:
    """Parse the `deployments` list of a metadata document; never raises for one bad item."""
    items = document.get("deployments")
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidDeployment("(all)", "deployments", f"must be a list, not {type(items).__name__}")
    result = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        dep = parse_one(item, index)
        if dep.key in seen:
            continue  # the same id twice: run it once
        seen.add(dep.key)
        result.append(dep)
    return result


def parse_one(item: Any, index: int = 0) -> Deployment:
    """Parse one deployment object; problems are recorded, not raised."""
    raw = item if isinstance(item, dict) else {}
    dep_id = raw.get("id")
    if isinstance(dep_id, str) and dep_id.strip():
        key = dep_id
    else:
        # No usable id: key it by content so it is failed and signalled exactly once.
        blob = json.dumps(item, sort_keys=True, default=str).encode()
        key = "invalid-" + hashlib.sha256(blob).hexdigest()[:24]
        dep_id = dep_id if isinstance(dep_id, str) and dep_id else f"deployments[{index}]"
    name = raw.get("name") if isinstance(raw.get("name"), str) and raw.get("name") else dep_id
    options = raw.get("options")
    fields = dict(key=key, id=dep_id, name=name,
                  group=raw.get("group") if isinstance(raw.get("group"), str) else "",
                  config=raw.get("config"),
                  options=options if isinstance(options, dict) else {},
                  inputs=_named(raw.get("inputs")), outputs=_named(raw.get("outputs")),
                  raw=raw)
    try:
        _validate(item, index)
    except InvalidDeployment as exc:
        return Deployment(**fields, problem=exc)
    return Deployment(**fields)


def _named(items: Any) -> tuple[Mapping[str, Any], ...]:
    # Usable entries of an inputs/outputs list; anything else is reported by _validate.
    if not isinstance(items, list):
        return ()
    return tuple(i for i in items if isinstance(i, dict) and isinstance(i.get("name"), str))


def _validate(item: Any, index: int) -> None:
    if not isinstance(item, dict):
        raise InvalidDeployment(f"deployments[{index}]", "(item)",
                                f"must be a JSON object, not {type(item).__name__}")
    label = item.get("name") or item.get("id") or f"deployments[{index}]"
    label = f"{label} ({item['id']})" if item.get("name") and item.get("id") else str(label)
    if len(label) > 120:  # an overlong id or name is named, not repeated whole
        label = f"{label[:60]}...({len(label)} characters)"
    label = writable(label)

    def bad(fld: str, why: str) -> InvalidDeployment:
        return InvalidDeployment(label, fld, why)

    if not isinstance(item.get("id"), str) or not item["id"].strip():
        raise bad("id", "missing or not a non-empty string")
    if not isinstance(item.get("group"), str) or not item["group"].strip():
        raise bad("group", "missing or not a non-empty string")
    for fld in ("id", "name", "group"):
        if isinstance(item.get(fld), str) and len(item[fld]) > MAX_ID:
            raise bad(fld, f"{len(item[fld])} characters long; at most {MAX_ID} allowed")
    for fld, value in item.items():
        if fld not in ("inputs", "outputs"):
            _check_text(bad, str(fld), value)
    if "config" not in item:
        raise bad("config", "missing")
    if item.get("options") is not None and not isinstance(item["options"], dict):
        raise bad("options", "must be an object or null")
    timeout = (item.get("options") or {}).get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT):
        raise bad("options.timeout", f"must be a number of seconds from {MIN_TIMEOUT:g} to "
                                     f"{MAX_TIMEOUT:g} (a day), not {str(timeout)[:40]}")
    for list_name in ("inputs", "outputs"):
        value = item.get(list_name)
        if value is None:
            continue
        if not isinstance(value, list):
            raise bad(list_name, "must be a list")
        for pos, entry in enumerate(value):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                    or not entry["name"]:
                raise bad(f"{list_name}[{pos}].name", "missing or not a string")
            where = f"{list_name}[{pos}]"
            _check_text(bad, where, entry)
            if "=" in entry["name"] or "\0" in entry["name"]:
                raise bad(f"{where}.name", "may not contain '=' or NUL")
            if list_name == "outputs":
                _check_output_name(bad, where, entry["name"])
            elif len(entry["name"]) > MAX_INPUT_NAME:
                raise bad(f"{where}.name", f"{len(entry['name'])} characters long; at most "
                                           f"{MAX_INPUT_NAME} allowed")
    total = 0
    for pos, entry in enumerate(item.get("inputs") or ()):
        for part in ("value", "default"):
            if part in entry:
                size = _json_size(entry[part])
                total += size
                if size > MAX_VALUE:
                    raise bad(f"inputs[{pos}].{part}", f"input {entry['name']!r} is {size} bytes; "
                                                       f"at most {MAX_VALUE} allowed")
    if total > MAX_INPUTS_TOTAL:
        raise bad("inputs", f"{total} bytes of values together; at most {MAX_INPUTS_TOTAL} "
                            "allowed")
    action = None
    for entry in item.get("inputs") or ():
        if entry.get("name") == "deploy_action":
            action = entry.get("value")
    if action is not None and action not in ACTIONS:
        raise bad("inputs.deploy_action", f"unknown action {action!r}")


def writable(text: str) -> str:
    """`text` with lone surrogates spelled as escapes: safe to log, store and signal."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _json_size(value: Any) -> int:
    # Strings reach hooks as they are, the rest as JSON text (process.env_value).
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return len(text.encode("utf-8", "surrogatepass"))


def _check_text(bad, where: str, value: Any) -> None:
    """InvalidDeployment when `value` holds a lone surrogate (it cannot be written as UTF-8,
    so no file, environment or signal could carry it); `where` names the field."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad_text = exc.object[exc.start:exc.end].encode("unicode_escape").decode()
        raise bad(where, f"holds {bad_text}, a lone surrogate, which is not text") from None
    except (TypeError, ValueError) as exc:  # not JSON-shaped (a caller built it by hand)
        raise bad(where, f"not a JSON value ({exc})") from None


def _check_output_name(bad, where: str, name: str) -> None:
    # An output is read from the file `<outputs dir>/<id key>.<name>`: one path component.
    if "/" in name or name in (".", ".."):
        raise bad(f"{where}.name", "may not contain '/' (it names a file)")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise bad(f"{where}.name", "may not contain control characters (it names a file)")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_OUTPUT_NAME:
        raise bad(f"{where}.name", f"{size} bytes long; at most {MAX_OUTPUT_NAME} allowed "
                                   "(it names a file)")


def already_deployed(deployed_dir: Path, dep_id: str) -> bool:
    """Whether an old heat-config agent left its marker `<deployed_dir>/<id>.json` for
    `dep_id`. An id that cannot be one file name there (a '/', a leading dot, too long for
    NAME_MAX, not UTF-8) never had a marker; a directory that cannot be read has none."""
    name = f"{dep_id}.json"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    if "/" in dep_id or "\0" in dep_id or dep_id.startswith(".") or len(encoded) > NAME_MAX:
        return False
    try:
        return os.path.isfile(Path(deployed_dir) / name)
    except (OSError, ValueError):
        return False


def resolve_component(dep: Deployment) -> Deployment | None:
    """For group `component`, the entry of `config.configs` for the current action, run as its tool.

    Returns None when no entry lists the action (nothing to do for it).
    """
    config = dep.config
    if not isinstance(config, dict) or not isinstance(config.get("configs"), list):
        raise InvalidDeployment(dep.label, "config.configs", "must be a list of configs")
    for pos, entry in enumerate(config["configs"]):
        if not isinstance(entry, dict):
            raise InvalidDeployment(dep.label, f"config.configs[{pos}]", "must be an object")
        actions = entry.get("actions") or ["CREATE", "UPDATE"]
        if dep.action not in actions:
            continue
        tool = entry.get("tool")
        if not isinstance(tool, str) or not tool:
            raise InvalidDeployment(dep.label, f"config.configs[{pos}].tool", "missing")
        raw = dict(dep.raw, group=tool, config=entry.get("config", ""))
        return Deployment(key=dep.key, id=dep.id, name=dep.name, group=tool,
                          config=raw["config"], options=dep.options, inputs=dep.inputs,
                          outputs=dep.outputs, raw=raw)
    return None


@dataclass
class Plan:
    """What one pass does: deployments to run in order, journal keys no longer in metadata."""

    to_run: list[Deployment]
    gone: list[str]


def plan(deployments: Iterable[Deployment], journal: Mapping[str, Any],
         already_deployed: callable[[str], bool] = lambda _id: False) -> Plan:
    """Every deployment not yet finished, in list order; and journal keys that vanished.

    `journal` maps keys to JournalEntry; `already_deployed(id)` says whether an
    old agent's marker shows the id as done.
    """
    from guestagent.journal import DONE_STATES, GONE  # the journal imports nothing of ours back

    deployments = list(deployments)
    present = {d.key for d in deployments}
    to_run = []
    for dep in deployments:
        entry = journal.get(dep.key)
        if entry is not None and entry.state in DONE_STATES:
            continue
        if entry is None and already_deployed(dep.id):
            continue
        to_run.append(dep)
    gone = [key for key, entry in journal.items() if key not in present and entry.state != GONE]
    return Plan(to_run=to_run, gone=gone)
