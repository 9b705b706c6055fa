"""What a grid pilot job carries: the bootstrap (its executable) and the pilot as a zipapp.

A grid pilot runs in a batch slot of a site that owes it nothing: no HTCondor, no
glidein-pilot, maybe not even the Python we want, and no right to install anything. The
decision: a POSIX shell bootstrap (``grid_bootstrap.sh``) and this standard-library
package as a zipapp (``glidein-pilot.pyz``). The shell is the one interpreter every
worker node has; it finds a Python (``python3``, then ``python3.X``; it refuses, naming
what is missing, below MIN_PYTHON) and an HTCondor (``condor_master`` on PATH, else the
tarball that came with the job, its first argument; ``-``: PATH only), writes the base
configuration a VM image would have, and runs the pilot with ``--shutdown-command true``:
on a batch slot, shutting down means exiting. The zipapp needs nothing but that Python,
so the job carries exactly three files: the zipapp, the payload (PAYLOAD_NAME) and the
tarball. At exit the bootstrap prints the ends of the pilot's and HTCondor's logs between
LOG_TAIL_BEGIN and LOG_TAIL_END lines (``log_tails`` reads them back from the job's
stdout), then stops whatever of its HTCondor is left.

MIN_PYTHON is what the pilot's code needs (``enum.StrEnum``: 3.11); the bootstrap says
the same, and a unit test holds the two equal.

Builds are deterministic (fixed timestamps, modes and order): the same sources give the
same bytes, so the operator builds once per process and a cache keyed on the bytes holds.
"""

from __future__ import annotations

import io
import re
import shutil
import zipapp
import zipfile
from dataclasses import dataclass
from pathlib import Path

ZIPAPP_NAME = "glidein-pilot.pyz"
PAYLOAD_NAME = "glidein-payload"
BOOTSTRAP_NAME = "grid_bootstrap.sh"
MIN_PYTHON = (3, 11)
LOG_TAIL_BEGIN = "==== glidein-pilot log tail: {name} ===="
LOG_TAIL_END = "==== end of {name} ===="

_PILOT = Path(__file__).resolve().parent
_PACKAGE = _PILOT.parent
# Zip's epoch: a fixed stamp, so the bytes do not depend on when files were installed.
_STAMP = (1980, 1, 1, 0, 0, 0)
_MAIN = b"import sys\n\nfrom glidein_operator.pilot.main import main\n\nsys.exit(main())\n"


@dataclass(frozen=True)
class GridPilotFiles:
    executable: Path  # the bootstrap, mode 0755: the job's executable
    zipapp: Path  # ZIPAPP_NAME: goes with the job (transfer_input_files)


def sources() -> dict[str, bytes]:
    """The zipapp's members: the package's ``__init__`` and the pilot's modules, by their
    name in the archive, in archive order."""
    files = [_PACKAGE / "__init__.py", *sorted(_PILOT.glob("*.py"))]
    members = {f.relative_to(_PACKAGE.parent).as_posix(): f.read_bytes() for f in files}
    return {"__main__.py": _MAIN, **members}


def zipapp_bytes() -> bytes:
    """The zipapp: ``python3 glidein-pilot.pyz`` runs ``glidein_operator.pilot.main``."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in sources().items():
            info = zipfile.ZipInfo(name, _STAMP)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    # zipapp from a directory stamps files with their mtimes and __main__.py with the
    # time of the build, in directory order: the archive is made above, zipapp adds the
    # interpreter line.
    archive.seek(0)
    out = io.BytesIO()
    zipapp.create_archive(archive, out, interpreter="/usr/bin/env python3")
    return out.getvalue()


def write_grid_pilot(folder: Path) -> GridPilotFiles:
    """The bootstrap (mode 0755) and the zipapp, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    executable = folder / BOOTSTRAP_NAME
    shutil.copyfile(_PILOT / BOOTSTRAP_NAME, executable)
    executable.chmod(0o755)
    target = folder / ZIPAPP_NAME
    target.write_bytes(zipapp_bytes())
    target.chmod(0o755)
    return GridPilotFiles(executable=executable, zipapp=target)


_FRAME = re.compile(
    "^" + re.escape(LOG_TAIL_BEGIN).replace(re.escape("{name}"), "(?P<name>.+)") + "$"
)


# Lines of each log printed at the end, and kept of it in a summary: the status keeps
# the last 4,000 characters of a pilot's log, so the pilot's own words go last.
TAIL_LINES = {"MasterLog": 8, "StartLog": 15, "StarterLog": 15, "glidein-pilot.log": 25}


def _keep(name: str) -> int:
    return TAIL_LINES.get("StarterLog" if name.startswith("StarterLog") else name, 15)


def frame(name: str, text: str, lines: int) -> list[str]:
    """One log's last ``lines`` lines between the frame lines ``log_tails`` cuts out."""
    return [
        LOG_TAIL_BEGIN.format(name=name),
        *text.splitlines()[-lines:],
        LOG_TAIL_END.format(name=name),
    ]


def condor_log_frames(log_dir: Path | None) -> list[str]:
    """The framed ends of HTCondor's MasterLog, StartLog and StarterLogs in ``log_dir``."""
    if log_dir is None or not log_dir.is_dir():
        return []
    out: list[str] = []
    names = ["MasterLog", "StartLog", *sorted(p.name for p in log_dir.glob("StarterLog*"))]
    for name in names:
        path = log_dir / name
        try:
            with path.open("rb") as handle:
                handle.seek(0, 2)
                handle.seek(max(0, handle.tell() - 65536))  # a long-lived log stays cheap
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        out += frame(name, text, _keep(name))
    return out


def condensed(console: str) -> str:
    """A console with framed log ends in it, short: what it said outside the frames
    (its last lines), then each log's end, the pilot's own last. Unframed text is
    returned as it is."""
    tails = log_tails(console)
    if not tails:
        return console
    outside: list[str] = []
    inside = False
    for line in console.splitlines():
        if not inside and _FRAME.match(line):
            inside = True
        elif inside and line.startswith("==== end of ") and line.endswith(" ===="):
            inside = False
        elif not inside:
            outside.append(line)
    lines = outside[-10:]
    own = "glidein-pilot.log"
    for name in sorted(tails, key=lambda n: (n == own, n)):
        if tails[name].strip():
            lines += [f"--- {name}", *tails[name].splitlines()[-_keep(name) :]]
    return "\n".join(lines)


def log_tails(stdout: str) -> dict[str, str]:
    """The log ends a bootstrap printed, by log name (``MasterLog``, ``StartLog``,
    ``StarterLog.slot1_1``, ``glidein-pilot.log``); a frame cut short (the job killed
    while printing) keeps what it got."""
    tails: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in stdout.splitlines():
        if name is None:
            m = _FRAME.match(line)
            if m:
                name, lines = m.group("name"), []
        elif line == LOG_TAIL_END.format(name=name):
            tails[name] = "\n".join(lines)
            name = None
        else:
            lines.append(line)
    if name is not None:
        tails[name] = "\n".join(lines)
    return tails
