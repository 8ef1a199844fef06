"""Rules files: the shipped defaults load, and a bad file is refused with file, line, reason."""

from __future__ import annotations

import textwrap

import pytest

from app.rules.engine import default_source, defaults, load_for_campaign
from app.rules.loader import Problem, RulesRefused, load


def refused(source: str) -> list[Problem]:
    with pytest.raises(RulesRefused) as caught:
        load_for_campaign(textwrap.dedent(source), "campaign.yaml")
    return caught.value.problems


def test_the_shipped_defaults_load_with_every_default_rule_and_script() -> None:
    ruleset = load(default_source(), "defaults/rules.yaml")
    names = {rule.name for rule in ruleset.rules}
    assert {
        "after-hours",
        "withheld-number",
        "repeat-prank-caller",
        "prank-button",
        "needs-support",
        "no-specialist",
        "large-pledge",
    } <= names
    assert {"pledge", "pledge-withheld", "prank-close", "handover", "partner-helpline"} <= set(
        ruleset.scripts
    )
    # Indexed by event: an event nobody listens to has no rules.
    assert [r.name for r in ruleset.for_event("agent.flagged")] == ["prank-button", "needs-support"]
    assert ruleset.for_event("call.connected") == ()


def test_a_campaign_file_may_use_the_shipped_scripts() -> None:
    ruleset = load_for_campaign(
        textwrap.dedent(
            """\
            rules:
              - name: vip
                on: call.received
                when: caller.distinct_days >= 3
                then:
                  - route_to: {queue: vip, priority: 5}
                  - show_script: pledge
            """
        ),
        "c.yaml",
    )
    rule = ruleset.rules[0]
    assert rule.then[0].args == {"queue": "vip", "priority": 5}
    assert "prank-close" in ruleset.scripts
    assert defaults().scripts["pledge"] is ruleset.scripts["pledge"]


def test_unknown_fact_is_refused_with_its_line() -> None:
    problems = refused(
        """\
        rules:
          - name: ok
            on: call.received
            when: caller.withheld
            then: [tag: withheld]
          - name: typo
            on: call.received
            when: caller.calls_per_hour > 3
            then: [tag: busy]
        """
    )
    assert len(problems) == 1
    assert problems[0].file == "campaign.yaml"
    assert problems[0].line == 8
    assert "unknown fact 'caller.calls_per_hour'" in str(problems[0].reason)


def test_unknown_action_is_refused_with_its_line() -> None:
    problems = refused(
        """\
        rules:
          - name: r
            on: call.received
            then:
              - tag: a
              - launch_missiles: now
        """
    )
    assert [(p.line, "unknown action 'launch_missiles'" in str(p.reason)) for p in problems] == [
        (6, True)
    ]


def test_yaml_syntax_error_is_refused_with_its_line() -> None:
    problems = refused(
        """\
        rules:
          - name: r
            on: call.received
            then: [tag: a
        """
    )
    assert str(problems[0].reason).startswith("YAML syntax error")
    assert problems[0].line is not None and problems[0].line >= 4


def test_expression_syntax_and_type_errors() -> None:
    problems = refused(
        """\
        rules:
          - name: syntax
            on: call.received
            when: caller.calls_last_hour >=
            then: [tag: a]
          - name: types
            on: call.received
            when: caller.number > 3
            then: [tag: b]
          - name: not-a-bool
            on: call.received
            when: caller.calls_today
            then: [tag: c]
        """
    )
    assert [(p.line, str(p.reason).split(":")[1].strip()) for p in problems] == [
        (4, "syntax"),
        (8, "type"),
        (12, "type"),
    ]
    assert "cannot compare string > int" in str(problems[1].reason)


def test_wrong_arguments_events_and_scripts_are_refused() -> None:
    problems = refused(
        """\
        rules:
          - name: a
            on: call.teleported
            then: [tag: a]
          - name: b
            on: call.received
            then:
              - route_to: {queue: vip, priority: high}
          - name: c
            on: call.received
            then:
              - show_script: no-such-script
          - name: d
            on: call.received
            then:
              - block: {duration: forever}
          - name: e
            on: call.received
            then:
              - alert_supervisors: "Hello {caller.shoe_size}"
          - name: f
            on: call.received
            when: pledge.amount > 10
            then: [tag: f]
        """
    )
    reasons = [(p.line, str(p.reason)) for p in problems]
    assert any(line == 3 and "'on' must be an event" in r for line, r in reasons), reasons
    assert any(line == 8 and "priority must be a whole number" in r for line, r in reasons)
    assert any(line == 16 and "duration" in r for line, r in reasons)
    assert any(line == 20 and "unknown placeholder {caller.shoe_size}" in r for line, r in reasons)
    assert any(line == 23 and "not known on call.received" in r for line, r in reasons)
    assert any(line == 12 and "no script named 'no-such-script'" in r for line, r in reasons)


def test_scripts_are_checked_too() -> None:
    problems = refused(
        """\
        scripts:
          - name: s
            version: 2
            steps:
              - say: Hello {caller.first_name}
              - dance: now
              - choice: Pick one
                buttons:
                  - id: go
                    label: Go
                    then: [explode]
        """
    )
    reasons = [(p.line, str(p.reason)) for p in problems]
    assert any(
        line == 6 and "a step is one of say, ask, checklist, choice" in r for line, r in reasons
    )
    assert any(line == 11 and "unknown action 'explode'" in r for line, r in reasons)


def test_a_bare_on_key_is_the_word_on_not_true() -> None:
    # YAML 1.1 reads an unquoted `on` as true; rules files mean the key.
    ruleset = load_for_campaign("rules:\n  - on: call.ended\n    then: [tag: done]\n", "x.yaml")
    assert ruleset.rules[0].on == "call.ended"


def test_texts_per_language_are_read_once_per_language() -> None:
    ruleset = load_for_campaign(
        textwrap.dedent(
            """\
            rules:
              - on: call.received
                then:
                  - alert_supervisors:
                      fr: "Appel de {caller.number}"
                      en: "Call from {caller.number}"
            scripts:
              - name: thanks
                title: {fr: Merci, en: Thanks}
                steps:
                  - say: {fr: Merci !, en: Thank you!}
                  - checklist: [{fr: Relire, en: Read back}, Same in both]
            """
        ),
        "c.yaml",
    )
    french, english = ruleset.in_language("fr"), ruleset.in_language("en")
    assert french is ruleset and ruleset.multilingual
    assert french.rules[0].then[0].args == {"text": "Appel de {caller.number}"}
    assert english.rules[0].then[0].args == {"text": "Call from {caller.number}"}
    assert (french.scripts["thanks"].title, english.scripts["thanks"].title) == ("Merci", "Thanks")
    assert english.scripts["thanks"].steps[1].items == ("Read back", "Same in both")
    # The shipped scripts come in both languages too; an unknown language is French.
    assert english.scripts["pledge"].title == "Pledge call"
    assert french.scripts["pledge"].title == "Appel de promesse"
    assert ruleset.in_language("de") is ruleset


def test_a_text_per_language_names_known_languages_only() -> None:
    problems = refused(
        """\
        scripts:
          - name: thanks
            steps:
              - say: {fr: Merci, de: Danke}
        """
    )
    assert (problems[0].line, str(problems[0].reason)) == (
        4,
        "a text per language has the keys fr, en",
    )


def test_an_empty_placeholder_leaves_no_space_before_a_comma() -> None:
    from app.rules.scripts import fill

    text = "Bonjour {caller.first_name}, merci. Je m'appelle {agent.name}."
    assert fill(text, {"agent.name": "Camille"}) == "Bonjour, merci. Je m'appelle Camille."
    assert fill(text, {"caller.first_name": "Marie", "agent.name": "Camille"}) == (
        "Bonjour Marie, merci. Je m'appelle Camille."
    )
