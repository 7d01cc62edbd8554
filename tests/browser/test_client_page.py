"""The browser client page (GET /) in headless Chromium on a phone, against a live server.

Each test plays as players do: open the page with a token from `thengine token`,
connect, join, answer, and read the page. No page may log a console error (the
`phone` fixture checks).
"""

from __future__ import annotations

from typing import Callable

from playwright.sync_api import expect

from .conftest import Phone


def ann_then_zoe(hunt: str, phone: Callable[[], Phone]) -> tuple[Phone, Phone]:
    """Two phones in the hunt: ann joined first, so she leads while both have 0."""
    ann, zoe = phone(), phone()
    for player, name in ((ann, "ann"), (zoe, "zoe")):
        player.connect(name)
        player.join(hunt)
    return ann, zoe


def test_a_player_answers_wrong_then_right_and_sees_its_score_and_rank_change(
        hunt: str, phone: Callable[[], Phone]) -> None:
    ann, zoe = ann_then_zoe(hunt, phone)
    expect(zoe.page.locator("#score")).to_contain_text("score 0, rank 2")
    zoe.expect_board((1, "ann", 0, 0), (2, "zoe", 0, 0))

    zoe.answer("The harbour", "a lighthouse keeper")
    expect(zoe.page.locator("#log")).to_contain_text("zoe answered harbour wrongly")
    expect(zoe.page.locator("#score")).to_contain_text("score 0, rank 2")
    expect(zoe.clue("The harbour")).not_to_contain_text("✓")

    zoe.answer("The harbour", "anchor")
    expect(zoe.page.locator("#score")).to_contain_text("score 10, rank 1")
    expect(zoe.clue("The harbour")).to_contain_text("✓")
    zoe.expect_board((1, "zoe", 10, 1), (2, "ann", 0, 0))


def test_a_players_board_shows_a_rival_overtaking_it_without_a_reload(
        hunt: str, phone: Callable[[], Phone]) -> None:
    ann, zoe = ann_then_zoe(hunt, phone)
    ann.expect_board((1, "ann", 0, 0), (2, "zoe", 0, 0))

    own_row = ann.page.locator("#board tr.me")
    expect(own_row).to_contain_text("ann")  # the live board (`watch` with `me`) marks her row
    zoe.answer("The harbour", "anchor")
    ann.expect_board((1, "zoe", 10, 1), (2, "ann", 0, 0))
    expect(own_row.locator("td").first).to_have_text("2")  # her own rank, moved down by the watch
    expect(ann.page.locator("#score")).to_contain_text("score 0, rank 2")
    expect(ann.page.locator("#log")).to_contain_text("zoe solved harbour (+10)")


def test_what_a_player_is_typing_survives_a_board_update(
        hunt: str, phone: Callable[[], Phone]) -> None:
    ann, zoe = ann_then_zoe(hunt, phone)
    zoe.answer_box("The harbour").fill("anch")

    ann.answer("The harbour", "anchor")
    zoe.expect_board((1, "ann", 10, 1), (2, "zoe", 0, 0))
    expect(zoe.answer_box("The harbour")).to_have_value("anch")
