"""A hook that hangs is killed at its timeout with its whole process tree (children and a
grandchild that ignores SIGTERM) and reported failed; the deployments after it still run."""

import time

from tests.support.agent import deployment, run_agent, signals_for
from tests.support.wait import wait_until


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_hung_hook_is_killed_with_its_tree_and_reported(fakecloud, tmp_path):
    pids = tmp_path / "pids"
    hung = deployment(fakecloud, "hung", f"""#!/bin/sh
echo $$ >> {pids}
sleep 1000 &
echo $! >> {pids}
sh -c 'trap "" TERM; echo $$ >> {pids}; while :; do sleep 1; done' &
echo started
wait
""", options={"timeout": 2})
    after = deployment(fakecloud, "after", "#!/bin/sh\necho fine\n")
    fakecloud.set_metadata({"deployments": [hung, after]})

    began = time.monotonic()
    proc = run_agent(tmp_path / "state", "--collectors", "request",
                     "--request-metadata-url", fakecloud.metadata_url)
    took = time.monotonic() - began
    assert proc.returncode == 1
    # The timeout, then at most the SIGTERM grace before SIGKILL, plus start-up.
    assert 2 <= took < 2 + 5 + 10, took

    [body] = signals_for(fakecloud, "hung")
    assert body["deploy_status_code"] == 124
    assert "did not finish within 2 s" in body["deploy_stderr"]
    assert body["deploy_stdout"] == "started\n"
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 3
    wait_until(lambda: not any(alive(p) for p in started), timeout=5,
               what="every process of the hung hook to be gone")
    assert signals_for(fakecloud, "after")[0]["deploy_stdout"] == "fine\n"
    assert "hung" in proc.stderr and "failed with status 124" in proc.stderr
