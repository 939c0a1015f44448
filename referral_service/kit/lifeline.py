"""Child processes that end with the process that started them, however it ends (even SIGKILL).

Linux lets a process ask for a signal when its parent dies (`prctl(PR_SET_PDEATHSIG)`); the request
survives `exec`, so a program we start is wrapped:

    python -m referral_service.kit.lifeline PARENT_PID PROGRAM [ARGS...]

asks for SIGTERM, checks that PARENT_PID has not already gone (the request would come too late),
then becomes PROGRAM. Python children (uvicorn's worker processes) call `die_with_parent` first
thing instead. Elsewhere than Linux this does nothing: stop SPIS with Ctrl+C or SIGTERM there.

The kernel means the parent *thread*: start these children from a thread that lives as long as
they should.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent ended before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def wrap(command: Sequence[str]) -> list[str]:
    """`command`, started so that it ends with this process."""
    return [sys.executable, "-m", "referral_service.kit.lifeline", str(os.getpid()), *command]


def main(argv: Sequence[str]) -> None:
    parent, program = int(argv[0]), list(argv[1:])
    die_with_parent(parent)
    os.execv(program[0], program)  # noqa: S606 - the caller's own argv, no shell


if __name__ == "__main__":
    main(sys.argv[1:])
