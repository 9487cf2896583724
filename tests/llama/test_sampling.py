"""edgekv.llama.sampling.top_k_candidates against a full sort (no llama.cpp needed)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekv.llama.sampling import top_k_candidates


def best(ids: np.ndarray, vals: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (id, value) of each row, best first, a tie by token id."""
    order = np.lexsort((ids, -vals), axis=1)[:, :k]
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(vals, order, axis=1)


@pytest.mark.parametrize("n_vocab", [151_936, 262_144, 151_936 - 37, 32_000, 512, 30])
@pytest.mark.parametrize("rows", [1, 5, 16])
def test_candidates_hold_the_full_sorts_top_k(n_vocab: int, rows: int) -> None:
    rng = np.random.default_rng(n_vocab + rows)
    logits = (rng.standard_normal((rows, n_vocab)) * 4).astype(np.float32)
    logits[0, -1] = 100.5  # the best token in the vocabulary's tail (past 64 x its group width)
    logits[-1, :20] = 90.0 + np.arange(20)  # a row whose top 20 sit together in one stretch
    everything = np.broadcast_to(np.arange(n_vocab), logits.shape)
    for k in (1, 20, 40):
        ids, vals = top_k_candidates(logits, k)
        assert ids.shape == vals.shape and min(k, n_vocab) <= ids.shape[1] <= max(64 * k + 63, n_vocab)
        for r in range(rows):
            assert len(set(ids[r].tolist())) == ids.shape[1]  # no token twice
        np.testing.assert_array_equal(vals, np.take_along_axis(logits, ids.astype(np.int64), axis=1))
        got_ids, got_vals = best(ids, vals, k)
        want_ids, want_vals = best(everything, logits, k)
        np.testing.assert_array_equal(got_vals, want_vals)
        np.testing.assert_array_equal(got_ids, want_ids)


def test_large_vocabularies_are_cut_to_a_few_groups() -> None:
    logits = np.random.default_rng(0).standard_normal((4, 151_936)).astype(np.float32)
    ids, _ = top_k_candidates(logits, 20)
    assert ids.shape == (4, 64 * 20)  # 151,936 = 64 x 2,374: no tail


def test_ties_keep_k_distinct_tokens_of_the_best_value() -> None:
    logits = np.zeros((3, 151_936), dtype=np.float32)  # a zero-weight model: every logit ties
    logits[1, 7] = 1.0
    ids, vals = top_k_candidates(logits, 20)
    got_ids, got_vals = best(ids, vals, 20)
    for r in range(3):
        assert len(set(got_ids[r].tolist())) == 20
    assert got_ids[1, 0] == 7 and got_vals[1, 0] == 1.0 and (got_vals[1, 1:] == 0).all()
    assert (got_vals[0] == 0).all()
