"""A build log that grows in blob storage while Packer runs.

Lines are prefixed like AIB's customization.log (`[<build id>] PACKER OUT ...`, `PACKER ERR ...`,
and `[<build id>] KAIB ...` for the agent's own lines), redacted, echoed to the agent's stdout (the
container's log), buffered, and appended to an append blob by a background thread at least every
`flush_seconds`. A storage hiccup never fails the build: the buffer is kept and retried next tick.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO

from kaib.builder.storage import Store

Kind = str  # "PACKER OUT" | "PACKER ERR" | "KAIB"


class LogStream:
    def __init__(
        self,
        store: Store,
        blob: str,
        build_id: str,
        redact: Callable[[str], str],
        flush_seconds: float,
        echo: TextIO | None = sys.stdout,
    ) -> None:
        self._store, self._blob, self._build_id = store, blob, build_id
        self._redact, self._flush_seconds, self._echo = redact, flush_seconds, echo
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()  # one append at a time, in order
        self.failures = 0
        store.ensure_append_blob(blob)
        self._thread = threading.Thread(target=self._run, name=f"log {blob}", daemon=True)
        self._thread.start()

    def line(self, kind: Kind, text: str) -> None:
        text = self._redact(text.rstrip("\r\n"))
        formatted = f"[{self._build_id}] {kind} {text}\n"
        with self._lock:
            self._pending.append(formatted)
        if self._echo is not None:
            self._echo.write(formatted)
            self._echo.flush()

    def kaib(self, text: str) -> None:
        for part in text.splitlines() or [""]:
            self.line("KAIB", part)

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                chunk, self._pending = "".join(self._pending), []
            if not chunk:
                return
            try:
                self._store.append(self._blob, chunk.encode("utf-8"))
            except Exception as e:  # keep the lines; try again on the next tick
                self.failures += 1
                print(f"kaib builder: appending to {self._blob} failed: {e}", file=sys.stderr)
                with self._lock:
                    self._pending.insert(0, chunk)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush()

    def __enter__(self) -> LogStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
