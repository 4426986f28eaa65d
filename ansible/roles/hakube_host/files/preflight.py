"""What hakube's preflight checks look at on one host, printed as one JSON object.

Run by the hakube_host role (tasks/preflight.yml) with the host's Python; reads only, changes
nothing. Arguments: SWAPS_FILE OS_RELEASE_FILE OURS PORT... -- OURS is the directory of hakube's
own executables: a listening port held by a process started from there is hakube's (a second
run), not a conflict. Listening sockets are read from /proc/net/tcp{,6}, which show this
process's network namespace: the host's view.
"""

import json
import os
import sys
import time


def os_release(path):
    found = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep:
                    found[key] = value.strip().strip('"')
    except OSError:
        pass
    return found


def swaps(path):
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()[1:]  # the header line names the columns
    except OSError:
        return []
    return [line.split()[0] for line in lines if line.strip()]


def memory_mb():
    with open("/proc/meminfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def listening_inodes(ports):
    """{port: socket inode} of the TCP sockets listening on one of ``ports``."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="utf-8") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            port = int(cols[1].rsplit(":", 1)[1], 16)
            if cols[3] == "0A" and port in ports:  # 0A: LISTEN
                found.setdefault(port, cols[9])
    return found


def owners(inodes):
    """{inode: (pid, command line)} of the processes holding those sockets."""
    wanted = {f"socket:[{i}]": i for i in inodes}
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in wanted:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                except OSError:
                    cmd = "?"
                found[wanted[target]] = (int(pid), cmd)
    return found


def main():
    swaps_file, release_file, ours = sys.argv[1:4]
    ports = {int(p) for p in sys.argv[4:]}
    inodes = listening_inodes(ports)
    held = owners(set(inodes.values()))
    busy = []
    for port, inode in sorted(inodes.items()):
        pid, cmd = held.get(inode, (0, "?"))
        if ours and ours in cmd:
            continue
        busy.append(f"port {port} by pid {pid} ({cmd[:80]})")
    release = os_release(release_file)
    print(
        json.dumps(
            {
                "os_id": release.get("ID", "unknown"),
                "os_version": release.get("VERSION_ID", ""),
                "os_name": release.get("PRETTY_NAME", release.get("ID", "an unknown system")),
                "cpus": len(os.sched_getaffinity(0)),
                "memory_mb": memory_mb(),
                "swaps": swaps(swaps_file),
                "busy_ports": busy,
                "time": time.time(),
            }
        )
    )


main()
