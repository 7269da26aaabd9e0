"""The press release carries its signed checkpoint and the command behind each figure."""

from services.query.summary import provenance, summary_document

NOTE = (
    "opsledger.local/op-p\n130\naIo9ZFEhomASxdvzlSjQH42GKthizVK3dWZWmTGaW0I=\n"
    "\n\u2014 opsledger.local AAAA\n"
)


def test_no_checkpoint_no_paragraph() -> None:
    assert provenance("op-p", None, 0, 130, {"arrests": 56}) == ""


def test_the_checkpoint_is_quoted_and_each_nonzero_figure_has_its_prove_command() -> None:
    text = provenance("op-p", NOTE, 130, 130, {"arrests": 56, "weapons_seized": 0})
    assert "its Merkle tree of all 130 events" in text
    assert "    opsledger.local/op-p\n    130\n" in text
    assert "`opsledger prove --operation op-p --metric arrests`" in text
    assert "weapons_seized" not in text


def test_a_checkpoint_behind_the_tally_says_so() -> None:
    text = provenance("op-p", NOTE, 130, 140, {"arrests": 56})
    assert "the first 130 of 140 events" in text


def test_the_json_document() -> None:
    doc = summary_document("op-p", {"arrests": 56}, {"arrests": {"adult": 56}}, {"size": 130}, 130)
    assert doc["markdown"] == "- 56 adults arrested\n"
    assert doc["checkpoint"] == {"size": 130}
    assert doc["prove"] == {"arrests": "opsledger prove --operation op-p --metric arrests"}
