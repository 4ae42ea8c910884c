"""The deployment script's log on the VM's second serial port, checked for overlapping runs.

Lines: ``boot <boot_id>`` (a unit of the image, each boot), and from the script
``start|end|killed <pid> <action> <message>``.
"""

from __future__ import annotations


class RunOverlap(AssertionError):
    """Two runs of the script overlapped (or a run ended that was not running)."""

    def __init__(self, what: str, lines: list[str]) -> None:
        super().__init__(what + ":\n" + "\n".join(lines))


def never_twice(lines: list[str]) -> list[tuple[str, str, str]]:
    """Raise RunOverlap if a run starts while another runs; the (event, action, message) list.

    A ``boot`` line ends every run (the machine restarted); ``end`` and ``killed`` end
    the run of their PID.
    """
    running: set[str] = set()
    events = []
    for line in lines:
        word, _, rest = line.partition(" ")
        if word == "boot":
            running.clear()
            events.append(("boot", "", ""))
            continue
        pid, action, message = (rest.split(" ", 2) + ["", ""])[:3]
        if word == "start":
            if running:
                raise RunOverlap(f"run {pid} started while {running} still ran", lines)
            running.add(pid)
        elif word in ("end", "killed"):
            if running != {pid}:
                raise RunOverlap(f"{word} {pid} but running {running}", lines)
            running.clear()
        events.append((word, action, message))
    return events
