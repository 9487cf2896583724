"""A built-in, seeded generator of multi-step arithmetic word problems with exact integer answers.

Four templates (shopping, rates, sharing, ages), 2-4 arithmetic steps each; every number is drawn
so that each step stays a positive integer. Same ``seed`` and ``n``, same problems (``random.Random``
seeded with an int is stable across Python versions). Each item keeps its numbers by name
(``SynthItem.values``) so a test can recompute the answer on its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elif", "Femi", "Goro", "Hana", "Ivan", "Jaya", "Kofi", "Lena")
GOODS = (("notebook", "pen"), ("apple", "pear"), ("ticket", "snack"), ("shirt", "sock"), ("cup", "plate"))
THINGS = ("marbles", "stickers", "cards", "shells", "stamps")
MACHINES = (("printer", "pages"), ("bakery", "loaves"), ("pump", "buckets"), ("loom", "scarves"))
RELATIVES = ("mother", "father", "aunt", "uncle", "grandmother")


@dataclass(frozen=True, slots=True)
class SynthItem:
    """One generated problem: its template, its named numbers, the question and the exact answer."""

    template: str
    values: tuple[tuple[str, int], ...]
    question: str
    answer: int


def _shopping(rng: random.Random) -> SynthItem:
    name, (item, item2) = rng.choice(NAMES), rng.choice(GOODS)
    a, p, b, q = rng.randint(2, 9), rng.randint(2, 15), rng.randint(2, 9), rng.randint(1, 12)
    total = a * p + b * q
    bill = (total // 50 + 1) * 50
    question = (
        f"{name} buys {a} {item}s at ${p} each and {b} {item2}s at ${q} each, "
        f"and pays with ${bill}. How many dollars of change does {name} get back?"
    )
    return SynthItem("shopping", (("a", a), ("p", p), ("b", b), ("q", q), ("bill", bill)), question, bill - total)


def _rates(rng: random.Random) -> SynthItem:
    machine, unit = rng.choice(MACHINES)
    r, h1, h2 = rng.randint(3, 40), rng.randint(2, 9), rng.randint(2, 9)
    d = rng.randint(1, r * (h1 + h2) // 3)
    question = (
        f"A {machine} makes {r} {unit} per hour. It runs for {h1} hours on Monday and {h2} hours on "
        f"Tuesday, and {d} of the {unit} turn out to be faulty. How many good {unit} were made?"
    )
    return SynthItem("rates", (("r", r), ("h1", h1), ("h2", h2), ("d", d)), question, r * (h1 + h2) - d)


def _sharing(rng: random.Random) -> SynthItem:
    name, things = rng.choice(NAMES), rng.choice(THINGS)
    k, each = rng.randint(2, 8), rng.randint(3, 20)
    c = rng.randint(2, 10)
    b = rng.randint(1, max(1, (k * each - 1) // c))
    a = k * each - b * c
    question = (
        f"{name} has {a} {things} and buys {b} packs of {c} {things}. {name} then shares all of them "
        f"equally among {k} friends. How many {things} does each friend get?"
    )
    return SynthItem("sharing", (("a", a), ("b", b), ("c", c), ("k", k)), question, (a + b * c) // k)


def _ages(rng: random.Random) -> SynthItem:
    name, relative = rng.choice(NAMES), rng.choice(RELATIVES)
    x, m, y = rng.randint(3, 15), rng.randint(3, 5), rng.randint(2, 12)
    question = (
        f"{name} is {x} years old and {name}'s {relative} is {m} times as old. "
        f"In {y} years, what will the sum of their ages be?"
    )
    return SynthItem("ages", (("x", x), ("m", m), ("y", y)), question, (x + y) + (m * x + y))


TEMPLATES: dict[str, Callable[[random.Random], SynthItem]] = {
    "shopping": _shopping,
    "rates": _rates,
    "sharing": _sharing,
    "ages": _ages,
}


def generate(n: int, *, seed: int = 0) -> tuple[SynthItem, ...]:
    """``n`` problems: the first four use each template once, the rest a seeded random one; same seed, same problems."""
    rng = random.Random(seed)
    names = list(TEMPLATES)
    return tuple(TEMPLATES[names[rng.randrange(len(names))] if i >= len(names) else names[i]](rng) for i in range(n))
