"""Run ``predify`` in a child process and SIGKILL it (or pause it) at a chosen event.

``python tests/kill_child.py SPEC ARGS...`` runs ``predify ARGS`` in this process. Tests use
``python tests/kill_child.py --serve`` instead: it imports predify once, then, for each request
line ``{"spec": SPEC, "args": ARGS, "stdout": PATH, "stderr": PATH}`` on stdin, forks a child
that runs it (a real process with its own pid, killed by a real SIGKILL, but without the few
seconds of importing torch each time), and answers ``{"pid": PID}`` when it started and
``{"returncode": CODE}`` (``-9`` for SIGKILL) when it ended. ``SPEC`` is JSON (or null: no
kill)::

    {"out": OUT, "event": "write" | "replace" | "step", "pattern": "checkpoint.pt", "count": k,
     "action": "torn" | "before" | "after" | "pause", "marker": PATH}

Events are counted in this process, in order:

- ``write``: a file under ``OUT`` whose path relative to ``OUT`` matches ``pattern`` (fnmatch) is
  written, directly or through the ``.NAME.XXXXXXXX.tmp`` file of an atomic write; seen by the
  audit hook for Python's ``open`` and by wrappers of ``torch.save`` and safetensors'
  ``save_file`` (which write from C++/Rust, unseen by the audit hook). Opens that only create
  an empty file (``mkstemp``) are not writes.
- ``replace``: a file is renamed onto a path under ``OUT`` matching ``pattern`` (``os.replace``).
- ``step``: an optimiser step of ``predify train`` has updated the weights.

At the ``count``-th event, ``action``:

- ``torn``: (write) cut the file being written to half of what this write added, as a kill in
  the middle of writing it leaves it, and SIGKILL;
- ``before``: SIGKILL before the event happens (a replace: the temporary file is complete);
- ``after``: SIGKILL right after it (a replace: the new file is in place, nothing after it ran);
- ``pause``: create ``marker``, wait until the test removes it, and go on.

The writes are seen however the code under test writes: a non-atomic writer is cut in the
target file itself, which is what the tests must catch.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_TEMPORARY = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.tmp$")


class Killer:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.out = Path(spec["out"]).resolve()
        self.event = spec["event"]
        self.pattern = spec.get("pattern", "*")
        self.count = int(spec["count"])
        self.action = spec["action"]
        self.marker = spec.get("marker")
        self.seen = 0
        self.last_written: str | None = None
        # (path, size before this write) of a torn write waiting for its next event
        self.armed: tuple[str, int] | None = None
        self.after_pending = False
        self.busy = False

    # ------------------------------------------------------------------ helpers
    def _target_name(self, path: str) -> str | None:
        """The path relative to OUT this file stands for (an atomic write's target), or None."""
        try:
            relative = Path(os.path.abspath(path)).relative_to(self.out)
        except ValueError:
            return None
        match = _TEMPORARY.match(relative.name)
        name = match.group(1) if match else relative.name
        return str(relative.parent / name) if str(relative.parent) != "." else name

    def _matches(self, path: Any) -> bool:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return False
        path = os.fsdecode(path)
        target = self._target_name(path)
        return target is not None and fnmatch.fnmatch(target, self.pattern)

    def _die(self) -> None:
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def _pause(self) -> None:
        assert self.marker
        Path(self.marker).write_text(str(os.getpid()))
        while Path(self.marker).exists():
            time.sleep(0.02)

    def _tear(self, path: str, size_before: int) -> None:
        size = os.path.getsize(path) if os.path.exists(path) else 0
        added = max(0, size - size_before)
        with open(path, "r+b") as handle:
            handle.truncate(size_before + added // 2)
        self._die()

    def _hit(self, path: str | None, size_before: int = 0) -> None:
        """One counted event; act if it is the chosen one."""
        self.seen += 1
        if self.seen != self.count:
            return
        if self.action == "pause":
            self._pause()
        elif self.action == "before":
            self._die()
        elif self.action == "after":
            self.after_pending = True
        elif self.action == "torn":
            assert path is not None
            self.armed = (path, size_before)

    # ------------------------------------------------------------------ the audit hook
    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if self.busy:
            return
        self.busy = True
        try:
            self._audit(event, args)
        finally:
            self.busy = False

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if self.after_pending:
            self._die()
        if self.armed is not None:
            path, size_before = self.armed
            self.armed = None
            self._tear(path, size_before)
        if event == "os.rename" and self.event == "replace" and self._matches(args[1]):
            self._hit(os.fsdecode(args[1]))
        elif event == "open" and self.event == "write":
            path, mode, flags = args
            if not self._matches(path) or not _writes(mode, flags):
                return
            path = os.path.abspath(os.fsdecode(path))
            appending = isinstance(mode, str) and "a" in mode
            size_before = os.path.getsize(path) if appending and os.path.exists(path) else 0
            self._written(path, size_before)

    def _written(self, path: str, size_before: int = 0) -> None:
        # The open and the torch.save of one atomic write are one write.
        if path == self.last_written:
            return
        self.last_written = path
        self._hit(path, size_before)

    # ------------------------------------------------------------------ C-level writers
    def wrap_savers(self) -> None:
        import torch

        real_save = torch.save

        def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
            result = real_save(obj, f, *args, **kwargs)
            if self.event == "write" and self._matches(f):
                self._written(os.path.abspath(os.fsdecode(f)))
                self._fire_armed()
            return result

        torch.save = save
        try:
            import safetensors.torch
        except ImportError:
            return
        real_save_file = safetensors.torch.save_file

        def save_file(tensors: Any, filename: Any, *args: Any, **kwargs: Any) -> Any:
            result = real_save_file(tensors, filename, *args, **kwargs)
            if self.event == "write" and self._matches(filename):
                self._written(os.path.abspath(os.fsdecode(filename)))
                self._fire_armed()
            return result

        safetensors.torch.save_file = save_file

    def _fire_armed(self) -> None:
        if self.armed is not None:
            path, size_before = self.armed
            self.armed = None
            self._tear(path, size_before)

    def wrap_step(self) -> None:
        from predify.train import FeedbackTrainer

        real_step = FeedbackTrainer.step

        def step(trainer: Any, images: Any) -> Any:
            losses = real_step(trainer, images)
            if self.event == "step":
                self._hit(None)
            return losses

        FeedbackTrainer.step = step  # type: ignore[method-assign]


def _writes(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str):
        return any(letter in mode for letter in "wax+")
    if isinstance(flags, int):
        # mkstemp's O_CREAT | O_EXCL only makes an empty file; the write comes next.
        if flags & os.O_EXCL:
            return False
        return bool(flags & (os.O_WRONLY | os.O_RDWR))
    return False


def run(spec: dict[str, Any] | None, args: list[str]) -> int:
    """``predify ARGS`` in this process, with the killer of ``spec`` (None: none)."""
    from predify.cli import main as predify_main

    if spec is not None:
        killer = Killer(spec)
        killer.wrap_savers()
        killer.wrap_step()
        sys.addaudithook(killer.audit)  # for good: this process ends with the run
    return predify_main(args)


def _child(request: dict[str, Any]) -> None:
    """In the forked child: the request's files as stdin/stdout/stderr, run, exit."""
    code = 99
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(request["stdout"], flags, 0o644), 1)
        os.dup2(os.open(request["stderr"], flags, 0o644), 2)
        sys.argv = ["predify", *request["args"]]  # what the lock file names as the command
        code = run(request["spec"], request["args"])
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _answer(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


def serve() -> int:
    """Answer run requests on stdin (see the module docstring) until stdin closes."""
    import torch

    from predify.cli import build_parser

    build_parser()  # imports every command's modules before the first fork
    import importlib

    # And what the commands import when they run, so that no child spends seconds on it.
    for name in ("predify.train.api", "predify.evaluate.api", "predify.evaluate.robustness",
                 "predify.evaluate.attacks", "predify.evaluate.analysis", "predify.tune.api",
                 "torch.utils.tensorboard"):  # fmt: skip
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    torch.set_num_threads(1)
    for line in sys.stdin:
        request = json.loads(line)
        if not hasattr(os, "fork"):  # pragma: no cover - Windows: a fresh process each time
            with open(request["stdout"], "w") as stdout, open(request["stderr"], "w") as stderr:
                process = subprocess.Popen(
                    [sys.executable, __file__, json.dumps(request["spec"]), *request["args"]],
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                )
                _answer({"pid": process.pid})
                _answer({"returncode": process.wait()})
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        _answer({"pid": pid})
        _, status = os.waitpid(pid, 0)
        _answer({"returncode": os.waitstatus_to_exitcode(status)})
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        sys.exit(serve())
    sys.exit(run(json.loads(sys.argv[1]), sys.argv[2:]))
