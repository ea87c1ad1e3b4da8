"""The tokenizer's contract: deterministic, additive over whitespace, and replies of exactly the
requested size (that is what makes CountTokens == billed possible)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens.emulator.tokenizer import VOCABULARY, count_json, count_text, reply_words

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(texts, texts)
def test_whitespace_separated_texts_add_up(a: str, b: str) -> None:
    assert count_text(a + " " + b) == count_text(a) + count_text(b)


@given(texts)
def test_whitespace_is_free_and_counts_are_stable(text: str) -> None:
    assert count_text(text) == count_text("  " + text + "\n\t")
    assert count_text(text) == count_text(text)
    assert count_text(text) >= 0


def test_examples() -> None:
    assert count_text("") == 0
    assert count_text("Hello, world!") == 4
    assert count_text("observability") == 3  # six letters per token
    assert count_text("1234567") == 3  # three digits per token
    assert count_text("snake_case") == 3


def test_vocabulary_words_are_single_tokens() -> None:
    assert len(set(VOCABULARY)) == len(VOCABULARY)
    for word in VOCABULARY:
        assert count_text(word) == 1
        assert count_text(word.capitalize()) == 1


@given(st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=2**64))
def test_replies_are_exactly_the_requested_tokens(tokens: int, seed: int) -> None:
    deltas = reply_words(seed, tokens)
    assert sum(count_text(delta) for delta in deltas) == tokens
    assert count_text("".join(deltas)) == tokens
    assert reply_words(seed, tokens) == deltas


def test_json_counts_ignore_key_order() -> None:
    assert count_json({"a": 1, "b": [1, 2]}) == count_json({"b": [1, 2], "a": 1})
