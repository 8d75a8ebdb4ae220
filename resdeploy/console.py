"""Terminal output: progress and step timings on stderr, results on stdout.

Human progress goes to stderr so that ``--json`` output on stdout stays parseable;
``quiet`` silences progress without hiding results or errors.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

# Width of a table printed to a pipe or file: wide enough that no path is cut.
PIPE_WIDTH = 4096
BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for `cmd | head` when cmd is killed by it


class _Console(Console):
    """A rich Console that, when its stream is not a terminal, prints at full width.

    Rich lays tables out for 80 columns (or $COLUMNS) even into a pipe, and cuts cells that
    do not fit with an ellipsis: a CI log would lose exactly the paths people need. A pipe
    has no width, so none is imposed; tables take their natural width (they do not expand).
    """

    @property
    def size(self) -> ConsoleDimensions:
        if not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, super().size.height)
        return super().size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]

    def on_broken_pipe(self) -> None:
        """``resdeploy validate ... | head``: the reader left. Rich exits 1, this CLI's "a gate
        failed"; a shell reports a reader that left as 141 (128 + SIGPIPE), and so does this."""
        try:
            super().on_broken_pipe()  # silences this console and points stdout at /dev/null
        except SystemExit:
            pass
        raise SystemExit(BROKEN_PIPE_EXIT)


# emoji=False: rich would turn ``:name:`` in user text into an emoji, and model names are
# ``package.module:factory`` ("do not fit mypkg.mod:factory: ..." printed a factory emoji).
stdout = _Console(soft_wrap=True, emoji=False)
stderr = _Console(stderr=True, soft_wrap=True, emoji=False)


@dataclass
class Reporter:
    """What a library call reports while it works; the CLI and library share it."""

    quiet: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def for_command(cls, quiet: bool, json_out: bool) -> Reporter:
        """A command's reporter: ``--json`` keeps progress (on stderr) for a person at a terminal.

        stdout carries the JSON either way; only when stderr is not a terminal too (a script
        capturing both) does ``--json`` silence the progress lines.
        """
        return cls(quiet=quiet or (json_out and not stderr.is_terminal))

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Callable[[str], None]]:
        """Time a named step and print it when done, so long work shows where time goes.

        Yields ``update(text)``: text shown after the step's name while it runs (iterations
        done, time left), a no-op when quiet.
        """
        t0 = time.perf_counter()
        name = escape(name)  # step names are text ("write out [v2]/..."), not markup
        if not self.quiet:
            with stderr.status(f"{name}…") as status:
                yield lambda text: status.update(f"{name}… {escape(text)}")
        else:
            yield lambda text: None
        self._done(name, time.perf_counter() - t0)

    def _done(self, name: str, seconds: float) -> None:
        self.timings[name] = round(seconds, 3)
        self.info(f"[green]✓[/] {name} [dim]({seconds:.1f} s)[/]")

    def info(self, message: str) -> None:
        if not self.quiet:
            stderr.print(message, highlight=False)

    def warn(self, message: str) -> None:
        # Warnings are shown even when quiet: they change what a result means. They are text,
        # not markup: they name user paths ("photos [v2]/"), which rich would otherwise eat.
        stderr.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)

    def track(self, items: Iterable[T], total: int | None, description: str, *, timed: bool = False,
              status: Callable[[], str] | None = None) -> Iterator[T]:
        """Iterate with a progress bar (silent when quiet or when stderr is not a terminal).

        ``timed``: a step in its own right; when the items are done it is timed and reported
        like ``step`` (a step's spinner and a progress bar cannot be shown at once).
        ``status``: called after each item; its text follows the bar (a running loss, say),
        and the bar then shows the time left too.
        """
        t0 = time.perf_counter()
        if self.quiet or not stderr.is_terminal:
            yield from items
        else:
            columns: tuple[object, ...] = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                           TimeElapsedColumn())
            if status is not None:
                columns += (TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
            with Progress(*columns, console=stderr, transient=True) as progress:  # type: ignore[arg-type]
                task = progress.add_task(description, total=total, status="")
                for item in items:
                    yield item
                    progress.update(task, advance=1, status=status() if status is not None else "")
        if timed:
            self._done(escape(description), time.perf_counter() - t0)


QUIET = Reporter(quiet=True)
