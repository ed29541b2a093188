"""stock_svc settings and the layout of its Redis keys and scripts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from meshkit.barrier.redis import barrier_key
from stock_svc.config import HARD_MAX_QUANTITY, StockSection, StockSettings
from stock_svc.hot.redis_stock import (
    ADD_AVAILABLE_BODY,
    CANCEL_BODY,
    CONFIRM_BODY,
    NOT_LOADED,
    RESERVE_BODY,
    stock_key,
)


def hash_tag(key: str) -> str:
    """The part of a key Redis Cluster hashes (the first non-empty {...})."""
    start = key.index("{")
    return key[start + 1 : key.index("}", start)]


def test_defaults_follow_the_design_limits() -> None:
    section = StockSettings().stock
    assert (section.max_items_per_request, section.max_quantity) == (100, HARD_MAX_QUANTITY)
    assert section.redis_namespace == "stock"


@pytest.mark.parametrize(
    "values",
    [
        {"max_quantity": HARD_MAX_QUANTITY + 1},
        {"max_quantity": 0},
        {"max_items_per_request": 0},
        {"redis_namespace": "has}brace"},
        {"redis_namespace": ""},
    ],
)
def test_bad_stock_settings_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        StockSection(**values)


def test_every_sku_key_shares_the_namespace_hash_tag() -> None:
    keys = [stock_key("stock", sku) for sku in ("apple", "{pear}", "a:b")]
    assert keys[0] == "{stock}:sku:apple"
    assert {hash_tag(k) for k in keys} == {"stock"}


def test_barrier_keys_hash_on_the_gid_not_on_the_stock_tag() -> None:
    # Documented limitation: one script touches both tags, so Redis Cluster needs them in one slot.
    assert hash_tag(barrier_key("g-1")) == "g-1"


@pytest.mark.parametrize("body", [RESERVE_BODY, CONFIRM_BODY, CANCEL_BODY, ADD_AVAILABLE_BODY])
def test_every_script_checks_loaded_before_its_first_write(body: str) -> None:
    assert body.index(NOT_LOADED) < body.index("HINCRBY")
