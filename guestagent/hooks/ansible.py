"""The `ansible` hook: run the config as a playbook on this machine, inputs as extra-vars.

Command line and files as heat-agents' hook-ansible: `ansible-playbook -i <inventory>
[--module-path M] [--skip-tags S] [--tags T] <work>/<id>_playbook.yaml --extra-vars
@<work>/<id>_variables.json`, the variables file holding `heat_config_id`, the inputs and
`heat_outputs_path`, `ANSIBLE_CALLBACK_PLUGINS` from the option. Two deliberate additions
for the default `localhost,` inventory only, made in the environment so the command line
stays upstream's: the local connection (`ANSIBLE_TRANSPORT=local`, what `-c local` sets;
else a play without `connection: local` tries ssh to this machine) and our interpreter
(`ANSIBLE_PYTHON_INTERPRETER`; discovery can pick a broken shim). Being settings, not
extra-vars, both yield to a play's own `connection:` or `ansible_python_interpreter`, and
to the operator's environment.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

from guestagent.deployments import Deployment
from guestagent.errors import InvalidDeployment
from guestagent.hooks.base import (
    Hook,
    HookContext,
    HookResult,
    clear_outputs,
    option_text,
    read_outputs,
    result_from_process,
    tool_command,
    write_private,
)
from guestagent.state import safe_component

INSTALL_HINT = "install it with `pip install ansible-core` or `apt-get install ansible-core`"
DEFAULT_INVENTORY = "localhost,"


class AnsibleHook(Hook):
    """Write `<id>_playbook.yaml` and `<id>_variables.json`, run `ansible-playbook` on them."""

    tool = "ansible"

    def run(self, dep: Deployment, ctx: HookContext) -> HookResult:
        playbook_text = self._playbook(dep)
        argv = tool_command(ctx, "HEAT_ANSIBLE_CMD", "ansible-playbook", INSTALL_HINT)
        environ = ctx.environ()
        base = ctx.work_dir / safe_component(dep.id)
        inventory = self._inventory(dep, base, environ)
        argv += ["-i", inventory]
        for option, flag in (("modulepath", "--module-path"), ("skip_tags", "--skip-tags"),
                             ("tags", "--tags")):
            value = option_text(dep, option)
            if value:
                argv += [flag, value]
        playbook = write_private(Path(f"{base}_playbook.yaml"), playbook_text)
        outputs_base = clear_outputs(dep, ctx)
        variables = {"heat_config_id": dep.id}
        variables.update({item["name"]: item.get("value", "") for item in dep.inputs})
        variables["heat_outputs_path"] = str(outputs_base)
        # Inputs may hold secrets: they travel in a 0600 file, never on argv.
        varfile = write_private(Path(f"{base}_variables.json"), json.dumps(variables))
        argv += [playbook, "--extra-vars", f"@{varfile}"]
        env = {"ANSIBLE_NOCOLOR": "1"}
        if inventory == DEFAULT_INVENTORY:
            # The default inventory is this machine: no ssh to ourselves, and a pinned
            # interpreter, because discovery can pick a broken shim.
            for name, value in (("ANSIBLE_TRANSPORT", "local"),
                                ("ANSIBLE_PYTHON_INTERPRETER", sys.executable)):
                if not environ.get(name):
                    env[name] = value
        if "UTF-8" not in (environ.get("LC_ALL") or environ.get("LANG") or "").upper():
            env["LC_ALL"] = "C.UTF-8"  # ansible refuses to start under a non-UTF-8 locale
        callbacks = option_text(dep, "callback_plugins")
        if callbacks:
            env["ANSIBLE_CALLBACK_PLUGINS"] = callbacks
        proc = ctx.run(dep, argv, env_extra=env)
        return result_from_process(proc, read_outputs(dep, outputs_base), ctx.timeout_for(dep))

    @staticmethod
    def _playbook(dep: Deployment) -> str:
        if isinstance(dep.config, str):
            return dep.config
        if isinstance(dep.config, list):  # a structured playbook: plays as a list
            return yaml.safe_dump(dep.config, default_flow_style=False, sort_keys=False)
        raise InvalidDeployment(dep.label, "config",
                                "the ansible group needs a playbook (YAML text or a list of plays)")

    @staticmethod
    def _inventory(dep: Deployment, base: Path, environ) -> str:
        """The `-i` argument: the option, else $HEAT_ANSIBLE_INVENTORY, else `localhost,`.

        As upstream, the option is a path relative to the working directory (an absolute
        path stays as it is); our additions: a comma-separated host list that names no
        file is passed as is, and inventory text (several lines) is written to a file.
        """
        value = option_text(dep, "inventory")
        if value is None:
            return environ.get("HEAT_ANSIBLE_INVENTORY") or DEFAULT_INVENTORY
        if "\n" in value:
            return str(write_private(Path(f"{base}_inventory"), value))
        path = os.path.join(base.parent, value)
        if "," in value and not os.path.exists(path):
            return value
        return path


HOOK = AnsibleHook()


def main() -> int:
    """Standalone heat-config hook: deployment JSON on stdin, response JSON on stdout."""
    from guestagent.hooks.standalone import run_standalone
    return run_standalone(HOOK, "ansible")


if __name__ == "__main__":
    raise SystemExit(main())
