"""Runs each measurement in a process of its own and reads its JSON line.

A process per run, because a Keras backend is fixed when Keras is
imported, and because each run's peak memory and start-up are its own.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile

from _page import shown

TAIL_LINES = 20  # of a failed run's stderr


def available_cores():
    """The CPU cores this process may use; the backends use all of them."""
    return len(os.sched_getaffinity(0))


def run_json(command, env=None):
    """Runs `command`; returns its last stdout line, parsed as JSON.

    The child's stderr goes to a temporary file, shown only if it fails.

    Raises:
        RuntimeError: the command failed; the message holds the end of its
            stderr.
    """
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=stderr, env=env
        )
        if process.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode().splitlines()[-TAIL_LINES:]
            shown_command = " ".join(
                shown(part) if os.path.isabs(part) else str(part)
                for part in command
            )
            raise RuntimeError(
                f"{shown_command} exited with {process.returncode}:\n"
                + "\n".join(tail)
            )
    return json.loads(process.stdout.decode().strip().splitlines()[-1])


def peak_rss_mb():
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def progress(message):
    """A line on stderr, so that stdout holds the tables alone."""
    print(message, file=sys.stderr, flush=True)
