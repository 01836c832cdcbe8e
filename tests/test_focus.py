"""Passages cut to the sentences the question is about (bot.answer.focus)."""

from __future__ import annotations

from bot.answer.focus import focus_passages, terms
from bot.domain import Passage


def passage(chunk_id: int, title: str, body: str) -> Passage:
    """A passage as the chunker writes it: the document's title line, a blank line, the text."""
    return Passage(chunk_id, chunk_id, title, f"doc:{chunk_id}", f"{title}\n\n{body}", 1.0 / chunk_id)


CLINIC = passage(
    1,
    "Harbor Street Clinic",
    "The clinic was founded in 1987. It opens at 8:30 on weekdays. On Saturdays it opens at 10:15 and closes at "
    "14:00. It is closed on Sundays.",
)
PARKING = passage(2, "Parking", "Employees park in garage B. Visitor parking is on level 2 of the north garage.")
FAQ_ZH = passage(3, "常见问题", "数据存放在公司自己的 PostgreSQL 数据库中。周六客服上午十点到下午两点营业。周日休息。")


def test_zero_sentences_keeps_the_passages_whole() -> None:
    assert focus_passages("When does the clinic open on Saturdays?", [CLINIC, PARKING], 0) == (CLINIC, PARKING)


def test_the_answering_sentence_is_kept_with_the_title_line_and_the_rest_dropped() -> None:
    (focused,) = focus_passages("When does the clinic open on Saturdays?", [CLINIC], 1)

    assert focused.text == "Harbor Street Clinic\n\nOn Saturdays it opens at 10:15 and closes at 14:00."
    assert (focused.chunk_id, focused.title, focused.source_uri) == (1, "Harbor Street Clinic", "doc:1")


def test_kept_sentences_stay_in_their_passages_order_and_passages_in_rank_order() -> None:
    question = "Where do visitors park, and when does the clinic open on weekdays?"

    two = focus_passages(question, [CLINIC, PARKING], 2)
    three = focus_passages(question, [CLINIC, PARKING], 3)

    assert [p.text for p in two] == [
        "Harbor Street Clinic\n\nIt opens at 8:30 on weekdays.",
        "Parking\n\nVisitor parking is on level 2 of the north garage.",
    ]
    assert [p.text for p in three] == [  # a tie goes to the better-ranked passage, then the earlier sentence
        "Harbor Street Clinic\n\nThe clinic was founded in 1987. It opens at 8:30 on weekdays.",
        "Parking\n\nVisitor parking is on level 2 of the north garage.",
    ]


def test_a_passage_left_without_sentences_is_dropped_so_citations_number_what_the_model_saw() -> None:
    focused = focus_passages("Where is visitor parking?", [CLINIC, PARKING], 1)

    assert [p.chunk_id for p in focused] == [2]
    assert focused[0].text == "Parking\n\nVisitor parking is on level 2 of the north garage."


def test_chinese_sentences_are_matched_by_character_bigrams() -> None:
    (focused,) = focus_passages("周六客服几点营业？", [FAQ_ZH], 1)

    assert focused.text == "常见问题\n\n周六客服上午十点到下午两点营业。"


def test_markdown_lines_count_as_sentences() -> None:
    hours = passage(4, "Support hours", "# Support hours\n\n- Monday to Friday: 9am to 6pm\n- Saturday: 10am to 2pm")

    (focused,) = focus_passages("What are the hours on Saturday?", [hours], 2)

    assert focused.text == "Support hours\n\n# Support hours Saturday: 10am to 2pm".replace("Saturday", "- Saturday")


def test_a_question_without_search_terms_keeps_the_first_sentences_of_the_best_passages() -> None:
    focused = focus_passages("???", [CLINIC, PARKING], 2)

    assert [p.text for p in focused] == [
        "Harbor Street Clinic\n\nThe clinic was founded in 1987. It opens at 8:30 on weekdays."
    ]


def test_no_passages_and_huge_passages_are_handled() -> None:
    huge = passage(5, "Log", "Nothing to see here. " * 20_000 + "The backup runs at 2am.")

    assert focus_passages("When does the backup run?", [], 10) == ()
    (focused,) = focus_passages("When does the backup run?", [huge], 1)
    assert focused.text == "Log\n\nThe backup runs at 2am."


def test_terms_stem_english_words_drop_stop_words_and_take_cjk_bigrams() -> None:
    assert terms("What are the Routes of the mergers?") == {"route", "merge"}
    assert terms("周六营业") == {"周六", "六营", "营业"}
