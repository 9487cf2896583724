"""``edgekv calibrate``: fit the scale rule's constants to a sweep and save them as a profile for pick."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgekv.plan.bounds import OPTIONS
from edgekv.requests.bounded import BoundedFloat, bounded, bounded_float


@click.command("calibrate")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--name", help="Profile name  [default: the dataset's]")
@click.option("--accounting", type=click.Choice(["paper", "runtime"]), default="paper", show_default=True,
              help="Frontier the fits walk: paper = weights + KV, runtime = the whole process.")  # fmt: skip
@click.option("--bootstrap", default=200, show_default=True, type=bounded("--bootstrap"), help="Bootstrap draws.")
@click.option("--seed", default=0, show_default=True, type=bounded("--seed"), help="Bootstrap seed.")
@click.option("--tolerance", default=0.02, show_default=True, type=bounded_float("--tolerance"),
              help="Saturation: the budget within this fraction of the best accuracy.")  # fmt: skip
@click.option("--max-spread", default=2.0, show_default=True, type=BoundedFloat(OPTIONS["--max-spread"], open_lo=True),
              help="A fit whose 95% interval spans more (high/low) is not used by pick.")  # fmt: skip
@click.option("--min-problems", default=30, show_default=True, type=bounded("--min-problems"),
              help="Fits on fewer problems are not used by pick.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing profile of that name.")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
def command(
    results: tuple[str, ...], name: str | None, accounting: str, bootstrap: int, seed: int, tolerance: float,
    max_spread: float, min_problems: int, force: bool, as_json: bool,
) -> None:  # fmt: skip
    """Fit E1, the token saturation, the 4-bit findings and where G > 1 pays, from a sweep's results.

    Each constant comes with a bootstrap interval over problems. The profile is written to
    edgekv's settings folder (profiles/NAME.json); `edgekv pick --profile NAME` uses it. A fit too
    weak to act on (fewer than --min-problems problems, an interval wider than --max-spread, or one
    that holds in under 90% of the resamples) is kept in the profile but not used by pick, which
    keeps the paper's value; a warning says why and about how many problems would do.

    \b
    Examples:
      edgekv calibrate sweep-aime25
      edgekv calibrate sweep-aime25 --name my-aime --bootstrap 1000 --force
      edgekv pick --vram 8G --profile my-aime
    """
    from edgekv.eval.calibrate import calibrate, measured_capacity, profile_dict
    from edgekv.eval.frontier import Accounting
    from edgekv.eval.scores import read_results
    from edgekv.report import common as rcommon
    from edgekv.report import eval as reval
    from edgekv.store.profiles import write_profile

    res = read_results(results)
    cal = calibrate(res, accounting=Accounting(accounting), n_bootstrap=bootstrap, seed=seed, tolerance=tolerance)
    prof_name = name or Path(cal.dataset.split(",")[0] or "default").stem
    from edgekv.store.catalog import load_all

    capacity = measured_capacity(res, load_all().models)
    data = profile_dict(cal, name=prof_name, sources=[str(Path(r).resolve()) for r in results], capacity=capacity,
                        max_spread=max_spread, min_problems=min_problems)  # fmt: skip
    path = write_profile(data, prof_name, force=force)
    for w in data["warnings"]:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    rcommon.console().print(reval.calibration_table(data, path=path))
