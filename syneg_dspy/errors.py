"""The one error type users see: where (file, line) and what is wrong, printed as one line by the CLI."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input. ``str(err)`` is ``file:line: message`` (line omitted when it does not apply)."""

    def __init__(self, message: str, file: str | Path | None = None, line: int | None = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or ""
        if self.file and self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.message}" if where else self.message
