"""`<think>…</think>` splitting, with the tags cut at every possible place."""

import itertools

import pytest

from orchard.providers import ReasoningDelta, TextDelta, ThinkSplitter


def split(chunks):
    splitter = ThinkSplitter()
    events = [e for c in chunks for e in splitter.feed(c)] + splitter.flush()
    assert all(e.text for e in events), "no empty deltas"
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    return reasoning, answer


STREAM = "<think>\nI should greet back.\n</think>\n\nHello! <b>bold</b>"


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_every_single_cut(cut):
    assert split([STREAM[:cut], STREAM[cut:]]) == ("I should greet back.\n", "Hello! <b>bold</b>")


def test_every_pair_of_cuts_in_the_tags():
    for a, b in itertools.combinations(range(1, 30), 2):
        chunks = [STREAM[:a], STREAM[a:b], STREAM[b:]]
        assert split(chunks) == ("I should greet back.\n", "Hello! <b>bold</b>"), chunks


def test_one_character_at_a_time():
    assert split(list(STREAM)) == ("I should greet back.\n", "Hello! <b>bold</b>")


def test_leading_whitespace_before_the_tag():
    assert split(["  \n", "<think>r</think>", "a"]) == ("r", "a")


def test_no_tags_is_all_answer_and_keeps_leading_whitespace():
    assert split(["  Hello", " world"]) == ("", "  Hello world")


def test_a_tag_later_in_the_answer_is_answer():
    assert split(["Use ", "<think>", " tags</think>"]) == ("", "Use <think> tags</think>")


def test_a_lone_lt_at_the_start_is_answer():
    assert split(["<", "3 you"]) == ("", "<3 you")
    assert split(["<thi"]) == ("", "<thi")


def test_unclosed_think_is_all_reasoning():
    assert split(["<think>still thinking", " </thi"]) == ("still thinking </thi", "")


def test_answer_streams_without_delay_once_decided():
    splitter = ThinkSplitter()
    assert splitter.feed("Hel") == [TextDelta("Hel")]
    assert splitter.feed("lo") == [TextDelta("lo")]


def test_reasoning_streams_holding_back_only_a_possible_tag():
    splitter = ThinkSplitter()
    assert splitter.feed("<think>abc</") == [ReasoningDelta("abc")]
    assert splitter.feed("x") == [ReasoningDelta("</x")]
