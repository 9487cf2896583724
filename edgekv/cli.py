"""The ``edgekv`` command line: a click group whose verbs live in ``edgekv/commands/<verb>.py``.

Verbs are imported only when dispatched (like mlx-lm's cli.py), so ``edgekv pick`` never pays
for llama_cpp, huggingface_hub, gguf or numpy. ``main()`` holds the one error -> message table:
an EdgekvError prints one line and exits 1, a usage error exits 2, an unexpected exception prints
one line with its type (exit 1); a traceback only with ``EDGEKV_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from edgekv import __version__

# verb -> (module, short help). The module defines a click command named ``command``.
VERBS: dict[str, tuple[str, str]] = {
    "pick": ("edgekv.commands.pick", "Rank model x quant x KV x context x samples for a card."),
    "inspect": ("edgekv.commands.inspect", "Show a GGUF's spec, effective size and KV cost."),
    "run": ("edgekv.commands.run", "Run a GGUF under a VRAM cap with a quantized KV cache."),
    "bench": ("edgekv.commands.bench", "Benchmark prompt/decode speed and memory per configuration."),
    "convert": ("edgekv.commands.convert", "Convert a Hugging Face checkpoint to a GGUF quant ladder."),
    "download": ("edgekv.commands.download", "Download a GGUF (or pick's top plan) from the hub."),
    "eval": ("edgekv.commands.eval", "Measure reasoning accuracy under a token budget (pass@1, maj@k)."),
    "sweep": ("edgekv.commands.sweep", "Evaluate every configuration that fits the given cards (resumable)."),
    "frontier": ("edgekv.commands.frontier", "Show accuracy vs memory of eval results, both accountings."),
    "calibrate": ("edgekv.commands.calibrate", "Fit the rule's constants to a sweep; save a profile for pick."),
    "serve": ("edgekv.commands.serve", "Serve a GGUF or a plan over the OpenAI API (budgets, votes, slots)."),
    "catalog": ("edgekv.commands.catalog", "Add hub repos to the models pick ranks; list them; remove added ones."),
}


class LazyGroup(click.Group):
    """A group that imports a verb's module only when that verb runs (or --help lists it)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in VERBS:
            return None
        module = importlib.import_module(VERBS[cmd_name][0])
        cmd: click.Command = module.command
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in VERBS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekv")
@click.option("-v", "--verbose", count=True, help="More logging (-vv also shows llama.cpp's log).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """edgekv: the most accurate reasoning model your GPU's memory can hold.

    \b
    Examples:
      edgekv pick --vram 8G
      edgekv inspect model.gguf --vram 8G
      edgekv download --vram 8G
      edgekv run model.gguf --vram 8G --kv q8_0 --prompt "2+2?"
    """
    from edgekv.logconfig import configure

    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = -1 if quiet else verbose
    configure(ctx.obj["verbosity"])  # applied when something first logs (plain pick never does)


DEBUG_ENV = "EDGEKV_DEBUG"


def main(argv: list[str] | None = None) -> Any:
    """Entry point: the one exception -> message table, applied once.

    Usage errors (click's, and a command-line value edgekv cannot parse: BadArgument) exit 2; an
    EdgekvError (a file that cannot be used, nothing fits, a full disk) or an OSError about a user's
    file prints one line and exits 1; anything else is a bug: one line naming its type and exit 1.
    ``EDGEKV_DEBUG=1`` re-raises, with the traceback.
    """
    from edgekv import interrupt
    from edgekv.errors import BadArgument, EdgekvError

    debug = os.environ.get(DEBUG_ENV) == "1"
    restore = interrupt.install()  # a Ctrl-C inside llama.cpp's callbacks is raised once they return
    try:
        result = cli.main(args=argv, prog_name="edgekv", standalone_mode=False)
        interrupt.raise_pending()  # a Ctrl-C deferred in a callback near the end is not lost
        return result
    except click.exceptions.Abort:  # click's form of a KeyboardInterrupt (Ctrl-C) within a command
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except EdgekvError as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        sys.exit(2 if isinstance(e, BadArgument) else 1)
    except OSError as e:  # a user's file or folder: permission, a read error; named with its path
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        click.echo(f"error: {where}{e.strerror or e}", err=True)
        sys.exit(1)
    except Exception as e:  # a bug: say what it was and how to see it, without hiding it behind a generic line
        if debug:
            raise
        text = " ".join(str(e).split())
        text = text if len(text) <= 200 else text[:197] + "..."
        click.echo(
            f"edgekv: internal error ({type(e).__name__}: {text}); rerun with {DEBUG_ENV}=1 for the traceback "
            "and report it",
            err=True,
        )
        sys.exit(1)
    finally:
        restore()
