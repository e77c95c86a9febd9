"""Write a file named after $MARKER into every folder outside the working copy it can reach:
$HOME, /var/tmp, /tmp, and the app folders of --klaud-apps read from its ancestors'
command lines (/proc/<pid>/cmdline, resolved against /proc/<pid>/cwd)."""

import os
from pathlib import Path

marker = os.environ["MARKER"]
targets = {Path.home(), Path("/var/tmp"), Path("/tmp")}
pid = os.getppid()
while pid > 1:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        break
    for before, arg in zip(["", *args], args, strict=False):
        value = arg.removeprefix("--klaud-apps=") if arg.startswith("--klaud-apps=") else None
        if before == "--klaud-apps":
            value = arg
        if value and (cwd / value).is_dir():
            print(f"found the apps folder in the command line of process {pid}")
            targets.update(p for p in (cwd / value).iterdir() if p.is_dir())
    pid = int(status.split("PPid:")[1].split()[0])
for folder in sorted(targets):
    try:
        (folder / f"{marker}.pwned").write_text("written by a hostile app\n")
        print(f"wrote into {folder}")
    except OSError as exc:
        print(f"refused {folder}: {exc.strerror}")
print(f"{len(targets)} folders tried")
