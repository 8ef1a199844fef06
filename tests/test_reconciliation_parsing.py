"""Reading exports (amounts, encodings, headers, card data) and scoring matches:
the pure parts of ``app/reconciliation``, with property tests for the amounts
(bounded and derandomized: the same examples on every run)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.reconciliation.amounts import AmountError, parse_amount
from app.reconciliation.csvfile import CARD_MASK, Mapping_, parse
from app.reconciliation.matching import Candidate, Pool, Scored, name_tokens, references_in

PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None)
FR = {"decimal_separator": ",", "currency": "EUR"}
EN = {"decimal_separator": ".", "currency": "EUR"}


def _group(whole: int, separator: str) -> str:
    return f"{whole:,}".replace(",", separator)


@PROPERTY
@given(
    minor=st.integers(min_value=0, max_value=10**15),
    separator=st.sampled_from([" ", "\u00a0", "\u202f", ".", ""]),
    sign=st.sampled_from(["", "-", "+"]),
)
def test_a_french_amount_is_read_exactly(minor: int, separator: str, sign: str) -> None:
    text = f"{sign}{_group(minor // 100, separator)},{minor % 100:02d}"
    expected = -minor if sign == "-" else minor
    assert parse_amount(text, **FR) == expected


@PROPERTY
@given(minor=st.integers(min_value=0, max_value=10**15), separator=st.sampled_from([",", " ", ""]))
def test_an_english_amount_is_read_exactly(minor: int, separator: str) -> None:
    text = f"{_group(minor // 100, separator)}.{minor % 100:02d}"
    assert parse_amount(text, **EN) == minor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 234,50", 123450),
        ("1.234,50", 123450),
        ("1234,5", 123450),
        ("12", 1200),
        ("12,50 €", 1250),
        ("€ 12,50", 1250),
        ("12,50-", -1250),
        ("\u22125,00", -500),
        ("0,10", 10),
        ("0,29", 29),  # 0.29 * 100 is 28.999999999999996 as a float
        ("1 000 000,01", 100000001),
    ],
)
def test_french_amounts(text: str, expected: int) -> None:
    assert parse_amount(text, **FR) == expected


@pytest.mark.parametrize(
    "text", ["", "-", "12,345", "1 23,00", "1,2,3", "12.5.0", "1e3", "abc", "12,5x", "--1", "١٢"]
)
def test_what_is_not_an_amount(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text, **FR)


def test_zero_decimal_currencies_take_no_decimals() -> None:
    assert parse_amount("1 234", decimal_separator=",", currency="JPY") == 1234
    with pytest.raises(AmountError):
        parse_amount("12,5", decimal_separator=",", currency="JPY")


MAPPING = Mapping_(
    name="banque",
    kind="bank",
    delimiter=";",
    decimal_separator=",",
    encoding="cp1252",
    date_format="%d/%m/%Y",
    currency="EUR",
    columns={"date": "Date", "amount": "Montant", "reference": "Libellé", "payer": "Nom"},
)
TEXT = "Relevé du compte;;;\r\nDate;Libellé;Nom;Montant\r\n04/12/2026;DON ÉTÉ;Zoé;1 234,50\r\n"


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("cp1252", TEXT.encode("cp1252")),
        ("utf-8", TEXT.encode("utf-8")),
        ("utf-8", b"\xef\xbb\xbf" + TEXT.encode("utf-8")),
        ("cp1252", b"\xef\xbb\xbf" + TEXT.encode("utf-8")),  # a BOM says UTF-8
    ],
)
def test_every_encoding_reads_the_same_lines_with_the_same_keys(encoding: str, data: bytes) -> None:
    reference = parse(TEXT.encode("cp1252"), MAPPING)
    parsed = parse(data, Mapping_(**{**MAPPING.__dict__, "encoding": encoding}))
    assert parsed.problems == []
    [line] = parsed.lines
    assert (line.label, line.payer, line.amount_minor, line.line_no) == (
        "DON ÉTÉ",
        "Zoé",
        123450,
        3,
    )
    assert line.key == reference.lines[0].key and line.key.startswith("sha256:")


def test_quoted_cells_over_several_lines_keep_the_line_numbers() -> None:
    text = 'Date;Libellé;Nom;Montant\n04/12/2026;"DON\nSUR DEUX LIGNES";A;1,00\n04/12/2026;X;B;x\n'
    parsed = parse(text.encode("cp1252"), MAPPING)
    assert [p.as_dict() for p in parsed.problems] == [
        {"line": 4, "column": "Montant", "reason": "not an amount: not a number"}
    ]
    assert parsed.lines == []


def test_card_numbers_are_masked_and_not_in_the_key() -> None:
    card = "4111111111111111"
    text = f"Date;Libellé;Nom;Montant\n04/12/2026;CB {card};A;1,00\n"
    other = "Date;Libellé;Nom;Montant\n04/12/2026;CB 4012888888881881;A;1,00\n"
    [line] = parse(text.encode("cp1252"), MAPPING).lines
    assert line.label == f"CB {CARD_MASK}" and line.masked
    # The key is taken over the masked cells: it holds nothing of the number.
    assert line.key == parse(other.encode("cp1252"), MAPPING).lines[0].key


def test_references_are_found_however_the_bank_writes_them() -> None:
    assert references_in("VIR SEPA REF K7Q4M2 DE M DUPONT") == ["K7Q-4M2"]
    assert "K7Q-4M2" in references_in("don k7q 4m2 merci")
    assert references_in("DON K7Q-4M2") == ["K7Q-4M2"]
    # Not inside a longer word or number, and never with look-alike letters.
    assert references_in("XK7Q4M2 K7Q4M2X 1O1-ILU") == []


def test_names_lose_accents_case_and_titles() -> None:
    assert name_tokens("M. OU MME DUPONT Jean-Pierre") == {"dupont", "jean", "pierre"}
    assert name_tokens("Émile ZOLA") == name_tokens("emile zola")


def _candidate(pledge_id: int, first: str, last: str, amount: int, **kw: object) -> Candidate:
    values: dict[str, object] = {
        "reference": f"REF-{pledge_id}",
        "paid_minor": 0,
        "currency": "EUR",
        "frequency": "one_off",
        **kw,
    }
    return Candidate(pledge_id, first_name=first, last_name=last, amount_minor=amount, **values)  # type: ignore[arg-type]


def test_confidence_by_amount_and_name() -> None:
    pool = Pool(
        [
            _candidate(1, "Jean", "Dupont", 2500),
            _candidate(2, "Marie", "Curie", 2500),
            _candidate(3, "Anne", "Martin", 4000, paid_minor=1500),
            _candidate(4, "Paul", "Durand", 2500, currency="CHF"),
        ]
    )
    assert [
        (s.pledge_id, s.confidence) for s in pool.score(2500, "EUR", "MME CURIE MARIE", "")
    ] == [
        (2, 90),
        (1, 30),
        (3, 30),
    ]
    assert pool.score(2500, "EUR", "", "VIR DUPONT")[0].confidence == 70
    # Two pledges fit as well as each other: halved, never sure enough to record.
    assert [s.confidence for s in pool.score(2500, "EUR", "X", "")] == [15, 15, 15]
    # A partly paid pledge is found by what it still owes, not by its promise.
    assert pool.score(2500, "EUR", "Martin Anne", "")[0] == Scored(3, 90)
    assert pool.score(4000, "EUR", "Martin Anne", "") == []
    assert pool.score(2500, "CHF", "", "")[0].pledge_id == 4
    # Once paid, a pledge no longer takes the next line of its amount.
    pool.paid(2, 2500)
    assert [s.pledge_id for s in pool.score(2500, "EUR", "MME CURIE MARIE", "")] == [1, 3]


def test_a_monthly_pledge_is_found_by_its_instalment_every_month() -> None:
    pool = Pool([_candidate(7, "Jean", "Dupont", 1000, frequency="monthly")])
    for _ in range(3):
        assert pool.score(1000, "EUR", "DUPONT JEAN", "")[0].confidence == 90
        pool.paid(7, 1000)


def test_a_provider_line_needs_a_transaction_id_that_is_no_card_number() -> None:
    provider = Mapping_(
        **{
            **MAPPING.__dict__,
            "kind": "provider",
            "columns": {**MAPPING.columns, "transaction_id": "Id"},
        }
    )
    text = (
        "Date;Libellé;Nom;Montant;Id\n"
        "04/12/2026;A;B;1,00;4111111111111111\n"
        "04/12/2026;A;B;1,00;\n"
        "04/12/2026;A;B;1,00;tr_1\n"
        "04/12/2026;A;B;2,00;tr_1\n"
    )
    parsed = parse(text.encode("cp1252"), provider)
    assert [p.as_dict() for p in parsed.problems] == [
        {"line": 2, "column": "Id", "reason": "the transaction id reads as a card number"},
        {"line": 3, "column": "Id", "reason": "no transaction id"},
        {"line": 5, "column": "Id", "reason": "the same transaction id as line 4"},
    ]
    assert "4111" not in repr(parsed)


def test_a_separator_at_the_end_of_the_lines_adds_no_column() -> None:
    for header_end, row_end in ((";", ""), ("", ";"), (";", ";;")):
        text = f"Date;Libellé;Nom;Montant{header_end}\n04/12/2026;DON;A;1,00{row_end}\n"
        parsed = parse(text.encode("cp1252"), MAPPING)
        assert parsed.problems == [], (header_end, row_end)
        assert [line.amount_minor for line in parsed.lines] == [100]
    # A cell beyond the header's columns, or a line cut short, is refused.
    text = "Date;Libellé;Nom;Montant\n04/12/2026;DON;A;1,00;X\n04/12/2026;DON;1,00\n"
    parsed = parse(text.encode("cp1252"), MAPPING)
    assert [p.as_dict() for p in parsed.problems] == [
        {"line": 2, "column": None, "reason": "5 cells where the header has 4"},
        {"line": 3, "column": None, "reason": "3 cells where the header has 4"},
    ]
