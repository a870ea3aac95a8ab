"""Run a command with the network cut, to prove that the lab needs nothing from outside.

``python -m toydiff.offline CMD [ARGS ...]`` runs CMD in a new Linux network namespace
(``unshare --net``, with ``--map-root-user`` when not root) in which only the loopback interface
exists, brought up so that Jupyter kernels and a local JupyterLab still talk to each other. Any
attempt to reach another host fails at once with "Network is unreachable". CI runs the whole test
suite, notebooks and browser tests included, this way after installing.

Example::

    python -m toydiff.offline python -m pytest tests notebooks --nbmake
    python -m toydiff.offline toydiff lab      # a classroom without internet

The command sees ``TOYDIFF_OFFLINE=1``. Linux only; elsewhere it stops with a clear message.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import sys

ENV = "TOYDIFF_OFFLINE"
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """Bring the ``lo`` interface up (a new network namespace starts with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP))


def wrap(argv: list[str]) -> list[str]:
    """The full command line that runs argv with the network cut."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        raise SystemExit("toydiff.offline needs Linux and util-linux's `unshare`; not found here")
    flags = ["--net"] if os.geteuid() == 0 else ["--map-root-user", "--net"]
    return [unshare, *flags, "--", sys.executable, "-m", "toydiff.offline", "--inside", *argv]


def main(argv: list[str] | None = None) -> None:
    """Re-run argv inside a fresh network namespace with only loopback, then exec it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv == ["--inside"]:
        raise SystemExit("usage: python -m toydiff.offline COMMAND [ARGS ...]")
    if argv[0] == "--inside":
        loopback_up()
        os.environ[ENV] = "1"
        os.execvp(argv[1], argv[1:])
    command = wrap(argv)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
