"""Reading a rules file (YAML) into a checked rule set, or the list of what is wrong.

The YAML is composed into nodes first so every rule, action, script and step
keeps its line; every problem found is reported as ``{file, line, reason}``
(unknown fact, unknown action, syntax error, type error...). A file with any
problem is refused as a whole: the rules in force stay in force.

A file may come from anyone holding an admin login, so reading it is bounded
before anything is built: its size, then (from the YAML tokens, which the scanner
produces without recursion) no anchors, aliases or tags and a bounded nesting
depth, then the number of rules and scripts, then each expression's length and
nesting (``app.rules.expressions``). A ``RecursionError`` anywhere is a refusal.
Checking costs CPU all the same: the API runs it in a worker thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from app.i18n import DEFAULT_LANGUAGE, LANGUAGES, N_, Message
from app.rules.expressions import Compiled, ExpressionError, compile_condition
from app.rules.facts import FACTS, is_event

MAX_SOURCE_BYTES = 256 * 1024
MAX_RULES = 100
MAX_SCRIPTS = 50
# Deepest the format needs is about 10 (a script's step's button's action's
# arguments); collections in collections beyond this are refused unparsed.
MAX_YAML_DEPTH = 16

# The C scanner and composer when PyYAML has them (same nodes and marks, faster).
_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPENERS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSERS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


@dataclass(frozen=True)
class Problem:
    """What is wrong, where: ``reason`` is put into words in the answer's language
    (``str()``: English, for the logs)."""

    file: str
    line: int | None
    reason: Message

    def as_dict(self, language: str = "en") -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason.text(language)}


class RulesRefused(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        where = f"{first.file}:{first.line}" if first.line else first.file
        if len(problems) > 1:
            self.summary = Message(
                "{where}: {reason} (and {count} more)",
                where=where,
                reason=first.reason,
                count=len(problems) - 1,
            )
        else:
            self.summary = Message("{where}: {reason}", where=where, reason=first.reason)
        super().__init__(str(self.summary))
        self.problems = problems


@dataclass(frozen=True)
class Action:
    name: str
    args: dict[str, Any]
    line: int


@dataclass(frozen=True)
class Rule:
    name: str
    on: str
    when: Compiled | None
    then: tuple[Action, ...]
    line: int


@dataclass(frozen=True)
class Button:
    id: str
    label: str
    then: tuple[Action, ...]


@dataclass(frozen=True)
class Step:
    kind: str  # say | ask | checklist | choice
    text: str
    items: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True)
class Script:
    name: str
    version: int
    title: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class RuleSet:
    source_name: str
    rules: tuple[Rule, ...]
    scripts: dict[str, Script]
    by_event: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    # Per event, the facts its rules read (conditions and texts): only these are read.
    needed: dict[str, frozenset[str]] = field(default_factory=dict)
    # The same file read in another language, when it has texts per language.
    variants: dict[str, RuleSet] = field(default_factory=dict)

    def in_language(self, language: str | None) -> RuleSet:
        """The rule set with its texts in ``language`` (itself if it has no such one)."""
        return self.variants.get(language or "", self)

    @property
    def multilingual(self) -> bool:
        return bool(self.variants)

    def for_event(self, event: str) -> tuple[Rule, ...]:
        return self.by_event.get(event, ())

    def facts_for(self, event: str) -> frozenset[str]:
        return self.needed.get(event, frozenset())

    def actions(self) -> Iterable[Action]:
        """Every action: the rules', then the script buttons'."""
        return _all_actions(list(self.rules), self.scripts)


def facts_read(rules: Iterable[Rule]) -> frozenset[str]:
    names: set[str] = set()
    for rule in rules:
        if rule.when is not None:
            names |= rule.when.facts
        for action in rule.then:
            for value in action.args.values():
                if isinstance(value, str):
                    names |= {p for p in PLACEHOLDER.findall(value) if p in FACTS}
    return frozenset(names)


QUEUE_ACTIONS = ("route_to", "transfer", "consult")


def queue_problems(ruleset: RuleSet, queues: set[str], file: str) -> list[Problem]:
    """Actions naming a queue the campaign does not have."""
    return [
        Problem(
            file,
            action.line,
            Message(
                "{action}: the campaign has no queue '{queue}'", action=action.name, queue=name
            ),
        )
        for action in ruleset.actions()
        if action.name in QUEUE_ACTIONS and (name := action.args["queue"]) not in queues
    ]


# --- actions ---------------------------------------------------------------------

# name -> [(argument, kind, required, default)]; the first argument may be given alone.
ACTIONS: dict[str, list[tuple[str, str, bool, Any]]] = {
    "route_to": [("queue", "name", True, None), ("priority", "int", False, 0)],
    "set_priority": [("priority", "int", True, None)],
    "show_script": [("name", "name", True, None)],
    "reject": [("message", "text", True, None), ("reason", "name", False, None)],
    "play": [("message", "text", True, None)],
    "strike": [
        ("number", "text", False, "{caller.number}"),
        ("block_after", "int", False, 0),
        ("duration", "duration", False, 86400),
    ],
    "block": [("duration", "duration", True, None), ("number", "text", False, "{caller.number}")],
    "alert_supervisors": [("text", "text", True, None)],
    "tag": [("label", "name", True, None)],
    "transfer": [("queue", "name", True, None)],
    "consult": [
        ("queue", "name", True, None),
        ("fallback", "duration", False, 60),
        ("timer", "name", False, "no-specialist"),
    ],
    "start_timer": [("name", "name", True, None), ("seconds", "int", True, None)],
    "hangup": [],
    "page_standby": [("limit", "int", False, 0)],
    "offer_callback": [],
}
STEP_KINDS = ("say", "ask", "checklist", "choice")
NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")
PLACEHOLDER = re.compile(r"\{([a-z_]+\.[a-z_0-9]+)\}")
# Placeholders in texts: every fact, plus these.
EXTRA_PLACEHOLDERS = frozenset(
    {
        "caller.first_name",
        "caller.last_name",
        "campaign.name",
        "campaign.opening_hours",
        "campaign.closed_message",
        "campaign.partner_helpline",
        "pledge.reference",
        "pledge.amount_display",
        "agent.name",
        "rule.name",
    }
)
PLACEHOLDERS = frozenset(FACTS) | EXTRA_PLACEHOLDERS
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return int(match.group(1)) * _UNITS[match.group(2)]
    return None


def _per_language(node: yaml.Node) -> bool:
    """A mapping whose keys are all languages (``{fr: ..., en: ...}``)."""
    if not isinstance(node, yaml.MappingNode) or not node.value:
        return False
    return all(isinstance(k, yaml.ScalarNode) and k.value in LANGUAGES for k, _ in node.value)


# An expression's refusal, by kind (app.rules.expressions.ExpressionError).
_EXPRESSION_KINDS = {
    "syntax": N_("syntax"),
    "unknown_fact": N_("unknown fact"),
    "type": N_("type"),
    "limit": N_("limit"),
}

# What a problem is about ("a rule", "script intro"): a message, or a word of the file
# itself (a step's kind, "rules"), which stays as written.
What = Message | str


class _Reader:
    def __init__(self, file: str, language: str = DEFAULT_LANGUAGE) -> None:
        self.file = file
        # A text may be written once, or per language ({fr: ..., en: ...}): this
        # reading keeps the ``language`` one (else the first given).
        self.language = language
        self.multilingual = False
        self.problems: list[Problem] = []
        self.constructor = yaml.SafeLoader("")

    def problem(self, node: yaml.Node | None, reason: Message, line: int | None = None) -> None:
        if line is None and node is not None:
            line = node.start_mark.line + 1
        self.problems.append(Problem(self.file, line, reason))

    def value(self, node: yaml.Node) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            self.problem(node, Message("unreadable value: {reason}", reason=reason))
            return None

    def mapping(self, node: yaml.Node, what: What) -> dict[str, yaml.Node] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, Message("{what} must be a mapping (key: value)", what=what))
            return None
        result: dict[str, yaml.Node] = {}
        for key, value in node.value:
            # The key's text as written: YAML 1.1 would read a bare `on` as true.
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if not isinstance(name, str):
                self.problem(key, Message("keys in {what} are words", what=what))
                continue
            if name in result:
                self.problem(
                    key, Message("'{name}' is given twice in {what}", name=name, what=what)
                )
            result[name] = value
        return result

    def sequence(self, node: yaml.Node, what: What) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, Message("{what} must be a list", what=what))
            return []
        return list(node.value)

    def localized(self, node: yaml.Node, value: Any) -> Any:
        """A text given per language (``{fr: ..., en: ...}``) as this reading's one."""
        if not isinstance(value, dict) or not value:
            return value
        if not set(value) <= set(LANGUAGES) or not all(isinstance(v, str) for v in value.values()):
            keys = ", ".join(LANGUAGES)
            self.problem(node, Message("a text per language has the keys {keys}", keys=keys))
            return None
        self.multilingual = True
        return value.get(self.language) or next(iter(value.values()))

    def text(self, node: yaml.Node, what: What) -> str | None:
        value = self.localized(node, self.value(node))
        if not isinstance(value, str) or not value.strip():
            self.problem(node, Message("{what} must be a text", what=what))
            return None
        self.placeholders(node, value)
        return value

    def placeholders(self, node: yaml.Node, text: str) -> None:
        for name in PLACEHOLDER.findall(text):
            if name not in PLACEHOLDERS:
                self.problem(node, Message("unknown placeholder {{{name}}}", name=name))

    def unknown_keys(
        self, keys: Iterable[str], allowed: set[str], node: yaml.Node, what: What
    ) -> None:
        for key in keys:
            if key not in allowed:
                reason = Message(
                    "unknown key '{key}' in {what} (allowed: {allowed})",
                    key=key,
                    what=what,
                    allowed=sorted(allowed),
                )
                self.problem(node, reason)

    # --- actions --------------------------------------------------------------

    def actions(self, node: yaml.Node, what: What) -> tuple[Action, ...]:
        return tuple(
            a for a in (self.action(item, what) for item in self.sequence(node, what)) if a
        )

    def action(self, node: yaml.Node, what: What) -> Action | None:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            name, arg_node = str(self.value(node)), None
        else:
            entries = self.mapping(node, Message("an action in {what}", what=what))
            if entries is None:
                return None
            if len(entries) != 1:
                self.problem(node, Message("an action is one 'name: arguments' entry"))
                return None
            name, arg_node = next(iter(entries.items()))
        spec = ACTIONS.get(name)
        if spec is None:
            known = ", ".join(ACTIONS)
            reason = Message("unknown action '{name}' (known: {known})", name=name, known=known)
            self.problem(node, reason)
            return None
        given: dict[str, tuple[yaml.Node, Any]] = {}
        if arg_node is None or (
            isinstance(arg_node, yaml.ScalarNode) and self.value(arg_node) is None
        ):
            pass
        elif _per_language(arg_node) and spec and spec[0][1] == "text":
            # A text per language given alone: the first argument's.
            given[spec[0][0]] = (arg_node, self.value(arg_node))
        elif isinstance(arg_node, yaml.MappingNode):
            what = Message("the arguments of {name}", name=name)
            entries = self.mapping(arg_node, what) or {}
            for key, value_node in entries.items():
                if key not in {a for a, *_ in spec}:
                    reason = Message("{name} takes no argument '{key}'", name=name, key=key)
                    self.problem(value_node, reason)
                    continue
                given[key] = (value_node, self.value(value_node))
        elif spec and isinstance(arg_node, yaml.ScalarNode):
            given[spec[0][0]] = (arg_node, self.value(arg_node))
        else:
            reason = Message("the arguments of {name} are a value or a mapping", name=name)
            self.problem(arg_node, reason)
            return None
        args: dict[str, Any] = {}
        for arg, kind, required, default in spec:
            if arg not in given:
                if required:
                    self.problem(node, Message("{name} needs '{arg}'", name=name, arg=arg))
                    return None
                args[arg] = default
                continue
            value_node, value = given[arg]
            checked = self.argument(value_node, name, arg, kind, value)
            if checked is None:
                return None
            args[arg] = checked
        return Action(name=name, args=args, line=line)

    def argument(self, node: yaml.Node, action: str, arg: str, kind: str, value: Any) -> Any:
        if kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            reason = Message(
                "{action} {arg} must be a whole number, not {value}",
                action=action,
                arg=arg,
                value=repr(value),
            )
            self.problem(node, reason)
        elif kind == "name":
            if isinstance(value, str) and NAME.match(value):
                return value
            reason = Message(
                "{action} {arg} must be a name (a-z, 0-9, _ and -), not {value}",
                action=action,
                arg=arg,
                value=repr(value),
            )
            self.problem(node, reason)
        elif kind == "text":
            value = self.localized(node, value)
            if isinstance(value, str) and value.strip():
                self.placeholders(node, value)
                return value
            self.problem(node, Message("{action} {arg} must be a text", action=action, arg=arg))
        elif kind == "duration":
            seconds = parse_duration(value)
            if seconds is not None:
                return seconds
            reason = Message(
                "{action} {arg} must be a duration such as 90s, 10m, 24h or 2d",
                action=action,
                arg=arg,
            )
            self.problem(node, reason)
        return None

    # --- rules ----------------------------------------------------------------

    def rule(self, node: yaml.Node, index: int, names: set[str]) -> Rule | None:
        entries = self.mapping(node, Message("a rule"))
        if entries is None:
            return None
        line = node.start_mark.line + 1
        allowed = {"name", "on", "when", "then", "description"}
        self.unknown_keys(entries, allowed, node, Message("a rule"))
        name = self.value(entries["name"]) if "name" in entries else f"rule-{index + 1}"
        if not isinstance(name, str) or not NAME.match(name):
            reason = Message("a rule name is a-z, 0-9, _ and -: {name}", name=repr(name))
            self.problem(entries.get("name", node), reason)
            return None
        if name in names:
            self.problem(
                entries.get("name", node), Message("two rules are named '{name}'", name=name)
            )
        names.add(name)
        on_node = entries.get("on")
        on = self.value(on_node) if on_node is not None else None
        if not isinstance(on, str) or not is_event(on):
            self.problem(
                on_node or node,
                Message(
                    "rule {name}: 'on' must be an event (call.received, call.queued,"
                    " call.offered, call.connected, call.ended, agent.flagged, script.choice,"
                    " pledge.saved or timer.NAME), not {value}",
                    name=name,
                    value=repr(on),
                ),
            )
            return None
        before = len(self.problems)
        when = self.condition(entries["when"], name, on) if "when" in entries else None
        if "then" not in entries:
            self.problem(node, Message("rule {name} has no 'then' actions", name=name))
            return None
        then = self.actions(entries["then"], Message("rule {name}", name=name))
        if len(self.problems) > before:
            return None
        return Rule(name=name, on=on, when=when, then=then, line=line)

    def condition(self, node: yaml.Node, rule: str, event: str) -> Compiled | None:
        source = self.value(node)
        if isinstance(source, bool):
            source = "true" if source else "false"
        if not isinstance(source, str):
            reason = Message("rule {name}: 'when' must be an expression (text)", name=rule)
            self.problem(node, reason)
            return None
        try:
            return compile_condition(source, event)
        except ExpressionError as exc:
            first = node.start_mark.line + 1
            if getattr(node, "style", None) in ("|", ">"):
                first += 1  # a block scalar starts on the next line
            self.problem(
                node,
                Message(
                    "rule {name}: {kind}: {error}",
                    name=rule,
                    kind=Message(_EXPRESSION_KINDS.get(exc.kind, exc.kind)),
                    error=exc.message,
                ),
                line=first + (exc.line or 1) - 1,
            )
            return None

    # --- scripts --------------------------------------------------------------

    def script(self, node: yaml.Node) -> Script | None:
        entries = self.mapping(node, Message("a script"))
        if entries is None:
            return None
        allowed = {"name", "version", "title", "steps"}
        self.unknown_keys(entries, allowed, node, Message("a script"))
        name = self.value(entries["name"]) if "name" in entries else None
        if not isinstance(name, str) or not NAME.match(name):
            where = entries.get("name", node)
            reason = Message("a script needs a name (a-z, 0-9, _ -): {name}", name=repr(name))
            self.problem(where, reason)
            return None
        version = self.value(entries["version"]) if "version" in entries else 1
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            reason = Message("script {name}: version is a number ≥ 1", name=name)
            self.problem(entries.get("version", node), reason)
            return None
        title = (
            self.localized(entries["title"], self.value(entries["title"]))
            if "title" in entries
            else name
        )
        if not isinstance(title, str):
            reason = Message("script {name}: title is a text", name=name)
            self.problem(entries.get("title", node), reason)
            return None
        no_steps = Message("script {name} has no steps", name=name)
        if "steps" not in entries:
            self.problem(node, no_steps)
            return None
        before = len(self.problems)
        listed = self.sequence(entries["steps"], Message("script {name}", name=name))
        steps = [self.step(s, name) for s in listed]
        if len(self.problems) > before or not steps:
            if not steps:
                self.problem(node, no_steps)
            return None
        return Script(name=name, version=version, title=title, steps=tuple(s for s in steps if s))

    def step(self, node: yaml.Node, script: str) -> Step | None:
        entries = self.mapping(node, Message("a step of script {name}", name=script))
        if entries is None:
            return None
        kinds = [k for k in entries if k in STEP_KINDS]
        if len(kinds) != 1:
            kinds_text = ", ".join(STEP_KINDS)
            self.problem(node, Message("a step is one of {kinds}", kinds=kinds_text))
            return None
        kind = kinds[0]
        allowed = {kind, "buttons"} if kind == "choice" else {kind}
        a_step = Message("a {kind} step", kind=kind)
        self.unknown_keys(entries, allowed, node, a_step)
        if kind == "checklist":
            item = Message("a checklist item")
            items = [self.text(i, item) for i in self.sequence(entries[kind], kind)]
            return Step(kind=kind, text="", items=tuple(i for i in items if i))
        text = self.text(entries[kind], a_step)
        if text is None:
            return None
        buttons: list[Button] = []
        if kind == "choice":
            if "buttons" not in entries:
                self.problem(node, Message("a choice step needs buttons"))
                return None
            ids: set[str] = set()
            for button_node in self.sequence(entries["buttons"], "buttons"):
                button = self.button(button_node, script, ids)
                if button is not None:
                    buttons.append(button)
        return Step(kind=kind, text=text, buttons=tuple(buttons))

    def button(self, node: yaml.Node, script: str, ids: set[str]) -> Button | None:
        entries = self.mapping(node, Message("a button"))
        if entries is None:
            return None
        self.unknown_keys(entries, {"id", "label", "then"}, node, Message("a button"))
        button_id = self.value(entries["id"]) if "id" in entries else None
        if not isinstance(button_id, str) or not NAME.match(button_id):
            self.problem(entries.get("id", node), Message("a button needs an id (a-z, 0-9, _ -)"))
            return None
        if button_id in ids:
            reason = Message(
                "two buttons of script {name} are '{button}'", name=script, button=button_id
            )
            self.problem(entries["id"], reason)
        ids.add(button_id)
        label = (
            self.text(entries["label"], Message("a button label")) if "label" in entries else None
        )
        if label is None:
            if "label" not in entries:
                self.problem(node, Message("button {button} needs a label", button=button_id))
            return None
        what = Message("button {button}", button=button_id)
        then = self.actions(entries["then"], what) if "then" in entries else ()
        return Button(id=button_id, label=label, then=then)


def _yaml_refused(file: str, exc: yaml.YAMLError) -> RulesRefused:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    line = mark.line + 1 if mark is not None else None
    return RulesRefused([Problem(file, line, Message("YAML syntax error: {error}", error=problem))])


def _check_tokens(source: str, file: str) -> None:
    """Refuse anchors, aliases, tags and deep nesting from the tokens alone, before
    anything is composed (composing recurses, and aliases multiply the work)."""
    depth = 0
    try:
        for token in yaml.scan(source, Loader=_YamlLoader):
            line = token.start_mark.line + 1
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                raise RulesRefused(
                    [
                        Problem(
                            file,
                            line,
                            Message("YAML anchors and aliases (& and *) are not allowed"),
                        )
                    ]
                )
            if isinstance(token, yaml.TagToken):
                reason = Message("YAML tags (!...) are not allowed")
                raise RulesRefused([Problem(file, line, reason)])
            if isinstance(token, _OPENERS):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    reason = Message(
                        "nested too deeply (more than {most} levels)", most=MAX_YAML_DEPTH
                    )
                    raise RulesRefused([Problem(file, line, reason)])
            elif isinstance(token, _CLOSERS):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _yaml_refused(file, exc) from exc


def _check_counts(top: dict[str, yaml.Node], file: str) -> None:
    for key, most, too_many in (
        ("rules", MAX_RULES, N_("{count} rules: a file holds at most {most}")),
        ("scripts", MAX_SCRIPTS, N_("{count} scripts: a file holds at most {most}")),
    ):
        node = top.get(key)
        if isinstance(node, yaml.SequenceNode) and len(node.value) > most:
            line = node.start_mark.line + 1
            reason = Message(too_many, count=len(node.value), most=most)
            raise RulesRefused([Problem(file, line, reason)])


def load(source: str, file: str, *, base: RuleSet | None = None) -> RuleSet:
    """Check and build a rule set; raises ``RulesRefused`` with every problem found.

    ``base``'s scripts (the shipped defaults) are available to ``show_script``
    unless the file defines a script of the same name. A file (or base) with texts
    per language is read once per language: ``in_language`` gives each reading.
    CPU-bound (up to about a second for the largest file allowed): callers on the
    event loop run it in a thread.
    """
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        reason = Message("the file is over {most} bytes", most=MAX_SOURCE_BYTES)
        raise RulesRefused([Problem(file, None, reason)])
    try:
        first, multilingual = _load(source, file, base, DEFAULT_LANGUAGE)
        if not multilingual and (base is None or not base.multilingual):
            return first
        variants = {
            language: _load(source, file, base, language)[0]
            for language in LANGUAGES
            if language != DEFAULT_LANGUAGE
        }
        variants[DEFAULT_LANGUAGE] = first
        # Each reading knows the others: any of them turns into another language.
        for language, variant in list(variants.items()):
            variants[language] = replace(variant, variants=variants)
        return variants[DEFAULT_LANGUAGE]
    except RecursionError as exc:  # a last guard: the limits should come first
        reason = Message("the file is nested too deeply")
        raise RulesRefused([Problem(file, None, reason)]) from exc


def _load(source: str, file: str, base: RuleSet | None, language: str) -> tuple[RuleSet, bool]:
    """The file read in ``language``, and whether it has texts per language."""
    base_scripts = base.in_language(language).scripts if base is not None else None
    reader = _Reader(file, language)
    _check_tokens(source, file)
    try:
        root = yaml.compose(source, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise _yaml_refused(file, exc) from exc
    if root is None:
        raise RulesRefused([Problem(file, 1, Message("the file is empty"))])
    top = reader.mapping(root, Message("the file"))
    if top is None:
        raise RulesRefused(reader.problems)
    reader.unknown_keys(top, {"version", "rules", "scripts"}, root, Message("the file"))
    _check_counts(top, file)
    scripts: dict[str, Script] = {}
    scripts_list = reader.sequence(top["scripts"], "scripts") if "scripts" in top else []
    for node in scripts_list:
        script = reader.script(node)
        if script is None:
            continue
        if script.name in scripts:
            reader.problem(node, Message("two scripts are named '{name}'", name=script.name))
        scripts[script.name] = script
    rules: list[Rule] = []
    names: set[str] = set()
    for index, node in enumerate(reader.sequence(top["rules"], "rules") if "rules" in top else []):
        rule = reader.rule(node, index, names)
        if rule is not None:
            rules.append(rule)
    known_scripts = {**(base_scripts or {}), **scripts}
    for action in _all_actions(rules, scripts):
        if action.name == "show_script" and action.args["name"] not in known_scripts:
            reason = Message("show_script: no script named '{name}'", name=action.args["name"])
            reader.problem(None, reason, line=action.line)
    if reader.problems:
        raise RulesRefused(reader.problems)
    by_event: dict[str, list[Rule]] = {}
    for rule in rules:
        by_event.setdefault(rule.on, []).append(rule)
    return RuleSet(
        source_name=file,
        rules=tuple(rules),
        scripts=known_scripts,
        by_event={event: tuple(found) for event, found in by_event.items()},
        needed={event: facts_read(found) for event, found in by_event.items()},
    ), reader.multilingual


def _all_actions(rules: list[Rule], scripts: dict[str, Script]) -> Iterable[Action]:
    for rule in rules:
        yield from rule.then
    for script in scripts.values():
        for step in script.steps:
            for button in step.buttons:
                yield from button.then
