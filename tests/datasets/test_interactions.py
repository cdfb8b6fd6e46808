from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from eventseq.errors import ConfigError
from eventseq.datasets import interactions as synthetic
from eventseq.datasets.interactions import SyntheticInteractions, make_interactions
from eventseq.rec.metrics import ndcg_at_k

N_USERS, N_ITEMS, N_DAYS = 300, 200, 30


@pytest.fixture(scope="module")
def data() -> SyntheticInteractions:
    """A few hundred users on otherwise default settings: large enough for the signal checks, ~0.1 s."""
    return make_interactions(n_users=N_USERS, n_items=N_ITEMS, n_days=N_DAYS, seed=0)


def _views(log: pl.DataFrame) -> pl.DataFrame:
    return log.filter(pl.col("action_type") == "view", pl.col("request_id").is_not_null())


def _shown_with_cart_label(data: SyntheticInteractions) -> pl.DataFrame:
    """The oracle rows with carted = 1 where the log has a cart of that item in that request."""
    carts = data.log.filter(pl.col("action_type") == "cart").select("request_id", "item_id", carted=pl.lit(1))
    return data.oracle.join(carts, on=["request_id", "item_id"], how="left").with_columns(pl.col("carted").fill_null(0))


def test_log_and_oracle_have_the_specified_columns_and_dtypes(data):
    assert list(data.log.schema.items()) == [
        ("user_id", pl.Int64),
        ("item_id", pl.Int64),
        ("action_type", pl.String),
        ("source_type", pl.String),
        ("timestamp", pl.Datetime("us")),
        ("request_id", pl.Int64),
    ]
    assert list(data.oracle.schema.items()) == [
        ("request_id", pl.Int64),
        ("item_id", pl.Int64),
        ("oracle_score", pl.Float64),
    ]
    assert data.user_factors.shape == (N_USERS, 8) and data.item_factors.shape == (N_ITEMS, 8)


def test_values_are_in_range_and_the_log_is_sorted(data):
    log = data.log
    assert set(log["action_type"].unique()) == {"view", "click", "cart", "purchase"}
    assert set(log["source_type"].drop_nulls().unique()) == {"search", "catalog", "recommendations", "main_page"}
    assert log["user_id"].min() >= 1 and log["user_id"].max() <= N_USERS
    assert log["item_id"].min() >= 1 and log["item_id"].max() <= N_ITEMS
    assert log["timestamp"].min() >= datetime(2024, 1, 1) and log["timestamp"].max() < datetime(2024, 1, 1 + N_DAYS)
    assert_frame_equal(log, log.sort(["timestamp", "user_id"], maintain_order=True))
    # Views and carts always belong to a request; some standalone clicks have no source.
    in_request = log.filter(pl.col("action_type").is_in(["view", "cart"]))
    assert in_request["request_id"].null_count() == 0
    clicks = log.filter(pl.col("action_type") == "click")
    assert 0.05 < clicks["source_type"].null_count() / clicks.height < 0.15


def test_each_request_belongs_to_one_user_and_shows_distinct_items(data):
    views = _views(data.log)
    per_request = views.group_by("request_id").agg(
        users=pl.col("user_id").n_unique(), shown=pl.len(), distinct=pl.col("item_id").n_unique()
    )
    assert (per_request["users"] == 1).all()
    assert (per_request["shown"] == per_request["distinct"]).all()
    assert per_request["shown"].min() >= 10 and per_request["shown"].max() <= 30
    assert data.log.filter(pl.col("request_id").is_not_null())["request_id"].n_unique() == per_request.height


def test_every_cart_follows_a_view_of_the_same_item_in_the_same_request(data):
    carts = data.log.filter(pl.col("action_type") == "cart", pl.col("request_id").is_not_null())
    assert carts.height > 0
    matched = carts.join(
        _views(data.log).select("request_id", "item_id", "user_id", view_time="timestamp"),
        on=["request_id", "item_id", "user_id"],
        how="inner",
    )
    assert matched.height == carts.height
    assert (matched["timestamp"] > matched["view_time"]).all()


def test_same_seed_same_data_other_seed_other_data():
    first, second = (make_interactions(n_users=50, n_items=100, seed=3) for _ in range(2))
    assert_frame_equal(first.log, second.log)
    assert_frame_equal(first.oracle, second.oracle)
    np.testing.assert_array_equal(first.user_factors, second.user_factors)
    other = make_interactions(n_users=50, n_items=100, seed=4)
    assert not first.log.equals(other.log)
    assert not np.allclose(first.user_factors, other.user_factors)


def test_oracle_has_one_row_per_shown_item_matching_the_views(data):
    keys = ["request_id", "item_id"]
    assert data.oracle.select(keys).is_unique().all()
    assert_frame_equal(data.oracle.select(keys).sort(keys), _views(data.log).select(keys).sort(keys))


def test_oracle_is_personal_affinity_plus_item_and_context_terms(data):
    # oracle = signal·u·v + p_item + b_context + intercept, so removing signal·u·v leaves one value
    # per (item, context).
    views = _views(data.log).select("request_id", "item_id", "user_id", "source_type")
    shown = data.oracle.join(views, on=["request_id", "item_id"])
    user = shown["user_id"].to_numpy() - 1
    item = shown["item_id"].to_numpy() - 1
    personal = np.einsum("nk,nk->n", data.user_factors[user], data.item_factors[item])
    rest = shown.with_columns(rest=shown["oracle_score"] - 2.0 * personal)
    spread = rest.group_by("item_id", "source_type").agg(pl.col("rest").max() - pl.col("rest").min())
    assert spread["rest"].max() < 1e-9
    assert rest["rest"].n_unique() > N_ITEMS  # items and contexts do differ


def test_planted_signal_separates_carted_items_and_ranks_well(data):
    shown = _shown_with_cart_label(data)
    assert 0.10 < shown["carted"].mean() < 0.25
    means = shown.group_by("carted").agg(pl.col("oracle_score").mean()).sort("carted")["oracle_score"]
    assert means[1] > means[0] + 1.0
    # Requests with at least one cart and one non-cart: the others score the same under any ranking.
    mixed = shown.filter(pl.col("carted").n_unique().over("request_id") == 2)
    labels, groups = mixed["carted"].to_numpy(), mixed["request_id"].to_numpy()
    oracle = ndcg_at_k(mixed["oracle_score"].to_numpy(), labels, groups)
    random = ndcg_at_k(np.random.default_rng(0).random(mixed.height), labels, groups)
    assert oracle - random > 0.1
    assert 0.0 < random < oracle < 1.0


def test_standalone_positives_reveal_the_user_factors(data):
    positives = data.log.filter(pl.col("request_id").is_null(), pl.col("action_type").is_in(["click", "purchase"]))
    user = positives["user_id"].to_numpy() - 1
    item = positives["item_id"].to_numpy() - 1
    random_item = np.random.default_rng(0).integers(0, N_ITEMS, len(item))
    affinity = np.einsum("nk,nk->n", data.user_factors[user], data.item_factors[item])
    random_affinity = np.einsum("nk,nk->n", data.user_factors[user], data.item_factors[random_item])
    assert affinity.mean() > random_affinity.mean() + 1.0  # ~1.6 vs ~0.0


def test_a_request_can_show_every_item_and_chunks_change_nothing_structural(monkeypatch):
    # Showing all 20 of 20 items forces many repeat draws; tiny chunks force the chunk loops.
    monkeypatch.setattr(synthetic, "CHUNK_ELEMENTS", 64)
    data = make_interactions(n_users=30, n_items=20, items_per_request=(20, 20), seed=1)
    per_request = data.oracle.group_by("request_id").agg(pl.col("item_id").sort())
    assert per_request.height > 0
    assert all(items == list(range(1, 21)) for items in per_request["item_id"].to_list())
    assert data.log["user_id"].n_unique() == 30


def test_draws_without_replacement_follow_the_weights():
    # P(first = a) = w_a, P(second = b | first = a) = w_b / (1 - w_a).
    weights = np.array([0.5, 0.3, 0.2])
    request, item = synthetic._draw_shown(np.full(40_000, 2), weights, np.random.default_rng(0))
    assert np.array_equal(request, np.repeat(np.arange(40_000), 2))
    pairs = item.reshape(-1, 2)
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert abs(np.mean((pairs[:, 0] == 0) & (pairs[:, 1] == 1)) - 0.5 * 0.3 / 0.5) < 0.01
    assert abs(np.mean((pairs[:, 0] == 2) & (pairs[:, 1] == 0)) - 0.2 * 0.5 / 0.8) < 0.01


def test_no_requests_gives_an_empty_oracle_with_the_right_schema():
    data = make_interactions(n_users=5, n_items=50, requests_per_user=0.0, seed=0)
    assert data.oracle.height == 0 and data.oracle.schema["oracle_score"] == pl.Float64
    assert set(data.log["action_type"].unique()) <= {"click", "purchase"}
    assert data.log["request_id"].null_count() == data.log.height


@pytest.mark.parametrize(
    "arguments, named",
    [
        ({"n_users": 0}, "n_users"),
        ({"n_items": 5}, "n_items"),
        ({"n_days": 0}, "n_days"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"requests_per_user": -1.0}, "requests_per_user"),
        ({"positives_per_user": float("nan")}, "positives_per_user"),
        ({"items_per_request": (5, 3)}, "items_per_request"),
        ({"items_per_request": (0, 3)}, "items_per_request"),
        ({"signal": -1.0}, "signal"),
        ({"start": "first of May"}, "start"),
    ],
)
def test_bad_arguments_raise_config_error_naming_them(arguments, named):
    with pytest.raises(ConfigError, match=named):
        make_interactions(**{"n_users": 5, **arguments})
