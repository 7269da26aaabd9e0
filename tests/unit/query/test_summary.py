"""The press-release bullet list: wording, pluralisation, money to the penny, drugs named."""

from __future__ import annotations

from services.demo.data import REFERENCE
from services.query.summary import (
    details_from_groups,
    format_summary,
    pounds,
)

REFERENCE_DETAILS = {
    "arrests": {"adult": 56},
    "drug_wraps_seized": {"cocaine": 1000, "crack": 1586, "heroin": 1000},
}


def test_reference_week_of_action_reads_like_the_press_release() -> None:
    assert format_summary(REFERENCE, REFERENCE_DETAILS) == (
        "- 52 warrants executed\n"
        "- 56 adults arrested\n"
        "- 3,586 wraps of crack, heroin and cocaine seized\n"
        "- 118 mobile phones seized\n"
        "- 22 weapons seized\n"
        "- £79,245.60 in cash seized\n"
        "- 24 schools visited\n"
        "- 22 vulnerable people engaged\n"
    )


def test_only_the_drugs_actually_seized_are_named() -> None:
    text = format_summary({"drug_wraps_seized": 7}, {"drug_wraps_seized": {"cannabis": 7}})
    assert text == "- 7 wraps of cannabis seized\n"
    text = format_summary(
        {"drug_wraps_seized": 3}, {"drug_wraps_seized": {"heroin": 2, "other": 1, "crack": 0}}
    )
    assert text == "- 3 wraps of heroin and other drugs seized\n"


def test_singular_and_zero_lines() -> None:
    text = format_summary(
        {"warrants_executed": 1, "weapons_seized": 0, "vulnerable_people_engaged": 1},
        {},
    )
    assert text == "- 1 warrant executed\n- 1 vulnerable person engaged\n"
    assert format_summary({}) == "- nothing recorded yet\n"


def test_arrests_name_the_age_bands_they_have() -> None:
    assert format_summary({"arrests": 5}, {"arrests": {"youth": 5}}) == (
        "- 5 young people arrested\n"
    )
    assert format_summary({"arrests": 9}, {"arrests": {"adult": 6, "youth": 3}}) == (
        "- 9 people arrested (6 adults, 3 young people)\n"
    )
    assert format_summary({"arrests": 2}) == "- 2 people arrested\n"


def test_cash_is_exact_to_the_penny() -> None:
    assert pounds(7_924_560) == "£79,245.60"
    assert pounds(5) == "£0.05"
    assert pounds(100) == "£1.00"
    assert pounds(123_456_789_01) == "£123,456,789.01"


def test_details_from_an_item_grouped_answer() -> None:
    groups = [
        {"item": None, "metrics": {"warrants_executed": 2, "arrests": 0}},
        {"item": "adult", "metrics": {"arrests": 3, "drug_wraps_seized": 0}},
        {"item": "crack", "metrics": {"drug_wraps_seized": 40}},
    ]
    assert details_from_groups(groups) == {
        "arrests": {"adult": 3},
        "drug_wraps_seized": {"crack": 40},
    }
