"""The ``syneg`` command line: the only module that knows about click.

Every command is a thin shell over a library call; bad input surfaces as one line on stderr and exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

import syneg_dspy  # noqa: F401  (sets the offline switches before anything heavy is imported)
from syneg_dspy.errors import InputError


class SynegGroup(click.Group):
    """Turns InputError (and a missing file) into one line and exit code 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except FileNotFoundError as err:
            click.echo(f"error: {err.filename}: no such file or directory", err=True)
            sys.exit(2)


@click.group(cls=SynegGroup)
@click.version_option(syneg_dspy.__version__, prog_name="syneg")
def main() -> None:
    """Train better dense retrievers with LLM-written hard negatives (SyNeg, as DSPy programs)."""


def data_option(f):
    """--data: a BEIR folder or a pair file; default is the bundled SciFact sample."""
    return click.option(
        "--data",
        "data_path",
        type=click.Path(path_type=Path),
        default=None,
        help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or a (query, positive) pair file. Default: bundled sample.",
    )(f)


# ---- data --------------------------------------------------------------------------------------

# ---- mine --------------------------------------------------------------------------------------

# ---- evaluate ----------------------------------------------------------------------------------

# ---- backends / generate -----------------------------------------------------------------------

# ---- mix / train -------------------------------------------------------------------------------

# ---- report / run ------------------------------------------------------------------------------


if __name__ == "__main__":
    main()
