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

from app.i18n import DEFAULT_LANGUAGE, LANGUAGES
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
    file: str
    line: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


class RulesRefused(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        where = f"{first.file}:{first.line}" if first.line else first.file
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{where}: {first.reason}{more}")
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
        Problem(file, action.line, f"{action.name}: the campaign has no queue {name!r}")
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


class _Reader:
    def __init__(self, file: str, language: str = DEFAULT_LANGUAGE) -> None:
        self.file = file
        # A text may be written once, or per language ({fr: ..., en: ...}): this
        # reading keeps the ``language`` one (else the first given).
        self.language = language
        self.multilingual = False
        self.problems: list[Problem] = []
        self.constructor = yaml.SafeLoader("")

    def problem(self, node: yaml.Node | None, reason: str, line: int | None = None) -> None:
        if line is None and node is not None:
            line = node.start_mark.line + 1
        self.problems.append(Problem(self.file, line, reason))

    def value(self, node: yaml.Node) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            self.problem(node, f"unreadable value: {reason}")
            return None

    def mapping(self, node: yaml.Node, what: str) -> dict[str, yaml.Node] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping (key: value)")
            return None
        result: dict[str, yaml.Node] = {}
        for key, value in node.value:
            # The key's text as written: YAML 1.1 would read a bare `on` as true.
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if not isinstance(name, str):
                self.problem(key, f"keys in {what} are words")
                continue
            if name in result:
                self.problem(key, f"{name!r} is given twice in {what}")
            result[name] = value
        return result

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what} must be a list")
            return []
        return list(node.value)

    def localized(self, node: yaml.Node, value: Any) -> Any:
        """A text given per language (``{fr: ..., en: ...}``) as this reading's one."""
        if not isinstance(value, dict) or not value:
            return value
        if not set(value) <= set(LANGUAGES) or not all(isinstance(v, str) for v in value.values()):
            self.problem(node, f"a text per language has the keys {', '.join(LANGUAGES)}")
            return None
        self.multilingual = True
        return value.get(self.language) or next(iter(value.values()))

    def text(self, node: yaml.Node, what: str) -> str | None:
        value = self.localized(node, self.value(node))
        if not isinstance(value, str) or not value.strip():
            self.problem(node, f"{what} must be a text")
            return None
        self.placeholders(node, value)
        return value

    def placeholders(self, node: yaml.Node, text: str) -> None:
        for name in PLACEHOLDER.findall(text):
            if name not in PLACEHOLDERS:
                self.problem(node, f"unknown placeholder {{{name}}}")

    def unknown_keys(
        self, keys: Iterable[str], allowed: set[str], node: yaml.Node, what: str
    ) -> None:
        for key in keys:
            if key not in allowed:
                self.problem(node, f"unknown key {key!r} in {what} (allowed: {sorted(allowed)})")

    # --- actions --------------------------------------------------------------

    def actions(self, node: yaml.Node, what: str) -> tuple[Action, ...]:
        return tuple(
            a for a in (self.action(item, what) for item in self.sequence(node, what)) if a
        )

    def action(self, node: yaml.Node, what: str) -> Action | None:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            name, arg_node = str(self.value(node)), None
        else:
            entries = self.mapping(node, f"an action in {what}")
            if entries is None:
                return None
            if len(entries) != 1:
                self.problem(node, "an action is one 'name: arguments' entry")
                return None
            name, arg_node = next(iter(entries.items()))
        spec = ACTIONS.get(name)
        if spec is None:
            self.problem(node, f"unknown action {name!r} (known: {', '.join(ACTIONS)})")
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
            entries = self.mapping(arg_node, f"the arguments of {name}") or {}
            for key, value_node in entries.items():
                if key not in {a for a, *_ in spec}:
                    self.problem(value_node, f"{name} takes no argument {key!r}")
                    continue
                given[key] = (value_node, self.value(value_node))
        elif spec and isinstance(arg_node, yaml.ScalarNode):
            given[spec[0][0]] = (arg_node, self.value(arg_node))
        else:
            self.problem(arg_node, f"the arguments of {name} are a value or a mapping")
            return None
        args: dict[str, Any] = {}
        for arg, kind, required, default in spec:
            if arg not in given:
                if required:
                    self.problem(node, f"{name} needs {arg!r}")
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
            self.problem(node, f"{action} {arg} must be a whole number, not {value!r}")
        elif kind == "name":
            if isinstance(value, str) and NAME.match(value):
                return value
            self.problem(node, f"{action} {arg} must be a name (a-z, 0-9, _ and -), not {value!r}")
        elif kind == "text":
            value = self.localized(node, value)
            if isinstance(value, str) and value.strip():
                self.placeholders(node, value)
                return value
            self.problem(node, f"{action} {arg} must be a text")
        elif kind == "duration":
            seconds = parse_duration(value)
            if seconds is not None:
                return seconds
            self.problem(node, f"{action} {arg} must be a duration such as 90s, 10m, 24h or 2d")
        return None

    # --- rules ----------------------------------------------------------------

    def rule(self, node: yaml.Node, index: int, names: set[str]) -> Rule | None:
        entries = self.mapping(node, "a rule")
        if entries is None:
            return None
        line = node.start_mark.line + 1
        self.unknown_keys(entries, {"name", "on", "when", "then", "description"}, node, "a rule")
        name = self.value(entries["name"]) if "name" in entries else f"rule-{index + 1}"
        if not isinstance(name, str) or not NAME.match(name):
            self.problem(entries.get("name", node), f"a rule name is a-z, 0-9, _ and -: {name!r}")
            return None
        if name in names:
            self.problem(entries.get("name", node), f"two rules are named {name!r}")
        names.add(name)
        on_node = entries.get("on")
        on = self.value(on_node) if on_node is not None else None
        if not isinstance(on, str) or not is_event(on):
            self.problem(
                on_node or node,
                f"rule {name}: 'on' must be an event (call.received, call.queued, call.offered,"
                f" call.connected, call.ended, agent.flagged, script.choice, pledge.saved or"
                f" timer.NAME), not {on!r}",
            )
            return None
        before = len(self.problems)
        when = self.condition(entries["when"], name, on) if "when" in entries else None
        if "then" not in entries:
            self.problem(node, f"rule {name} has no 'then' actions")
            return None
        then = self.actions(entries["then"], f"rule {name}")
        if len(self.problems) > before:
            return None
        return Rule(name=name, on=on, when=when, then=then, line=line)

    def condition(self, node: yaml.Node, rule: str, event: str) -> Compiled | None:
        source = self.value(node)
        if isinstance(source, bool):
            source = "true" if source else "false"
        if not isinstance(source, str):
            self.problem(node, f"rule {rule}: 'when' must be an expression (text)")
            return None
        try:
            return compile_condition(source, event)
        except ExpressionError as exc:
            first = node.start_mark.line + 1
            if getattr(node, "style", None) in ("|", ">"):
                first += 1  # a block scalar starts on the next line
            self.problem(
                node,
                f"rule {rule}: {exc.kind.replace('_', ' ')}: {exc.message}",
                line=first + (exc.line or 1) - 1,
            )
            return None

    # --- scripts --------------------------------------------------------------

    def script(self, node: yaml.Node) -> Script | None:
        entries = self.mapping(node, "a script")
        if entries is None:
            return None
        self.unknown_keys(entries, {"name", "version", "title", "steps"}, node, "a script")
        name = self.value(entries["name"]) if "name" in entries else None
        if not isinstance(name, str) or not NAME.match(name):
            where = entries.get("name", node)
            self.problem(where, f"a script needs a name (a-z, 0-9, _ -): {name!r}")
            return None
        version = self.value(entries["version"]) if "version" in entries else 1
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            self.problem(entries.get("version", node), f"script {name}: version is a number ≥ 1")
            return None
        title = (
            self.localized(entries["title"], self.value(entries["title"]))
            if "title" in entries
            else name
        )
        if not isinstance(title, str):
            self.problem(entries.get("title", node), f"script {name}: title is a text")
            return None
        if "steps" not in entries:
            self.problem(node, f"script {name} has no steps")
            return None
        before = len(self.problems)
        steps = [self.step(s, name) for s in self.sequence(entries["steps"], f"script {name}")]
        if len(self.problems) > before or not steps:
            if not steps:
                self.problem(node, f"script {name} has no steps")
            return None
        return Script(name=name, version=version, title=title, steps=tuple(s for s in steps if s))

    def step(self, node: yaml.Node, script: str) -> Step | None:
        entries = self.mapping(node, f"a step of script {script}")
        if entries is None:
            return None
        kinds = [k for k in entries if k in STEP_KINDS]
        if len(kinds) != 1:
            self.problem(node, f"a step is one of {', '.join(STEP_KINDS)}")
            return None
        kind = kinds[0]
        allowed = {kind, "buttons"} if kind == "choice" else {kind}
        self.unknown_keys(entries, allowed, node, f"a {kind} step")
        if kind == "checklist":
            items = [self.text(i, "a checklist item") for i in self.sequence(entries[kind], kind)]
            return Step(kind=kind, text="", items=tuple(i for i in items if i))
        text = self.text(entries[kind], f"a {kind} step")
        if text is None:
            return None
        buttons: list[Button] = []
        if kind == "choice":
            if "buttons" not in entries:
                self.problem(node, "a choice step needs buttons")
                return None
            ids: set[str] = set()
            for button_node in self.sequence(entries["buttons"], "buttons"):
                button = self.button(button_node, script, ids)
                if button is not None:
                    buttons.append(button)
        return Step(kind=kind, text=text, buttons=tuple(buttons))

    def button(self, node: yaml.Node, script: str, ids: set[str]) -> Button | None:
        entries = self.mapping(node, "a button")
        if entries is None:
            return None
        self.unknown_keys(entries, {"id", "label", "then"}, node, "a button")
        button_id = self.value(entries["id"]) if "id" in entries else None
        if not isinstance(button_id, str) or not NAME.match(button_id):
            self.problem(entries.get("id", node), "a button needs an id (a-z, 0-9, _ -)")
            return None
        if button_id in ids:
            self.problem(entries["id"], f"two buttons of script {script} are {button_id!r}")
        ids.add(button_id)
        label = self.text(entries["label"], "a button label") if "label" in entries else None
        if label is None:
            if "label" not in entries:
                self.problem(node, f"button {button_id} needs a label")
            return None
        then = self.actions(entries["then"], f"button {button_id}") if "then" in entries else ()
        return Button(id=button_id, label=label, then=then)


def _yaml_refused(file: str, exc: yaml.YAMLError) -> RulesRefused:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    line = mark.line + 1 if mark is not None else None
    return RulesRefused([Problem(file, line, f"YAML syntax error: {problem}")])


def _check_tokens(source: str, file: str) -> None:
    """Refuse anchors, aliases, tags and deep nesting from the tokens alone, before
    anything is composed (composing recurses, and aliases multiply the work)."""
    depth = 0
    try:
        for token in yaml.scan(source, Loader=_YamlLoader):
            line = token.start_mark.line + 1
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                raise RulesRefused(
                    [Problem(file, line, "YAML anchors and aliases (& and *) are not allowed")]
                )
            if isinstance(token, yaml.TagToken):
                raise RulesRefused([Problem(file, line, "YAML tags (!...) are not allowed")])
            if isinstance(token, _OPENERS):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    reason = f"nested too deeply (more than {MAX_YAML_DEPTH} levels)"
                    raise RulesRefused([Problem(file, line, reason)])
            elif isinstance(token, _CLOSERS):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _yaml_refused(file, exc) from exc


def _check_counts(top: dict[str, yaml.Node], file: str) -> None:
    for key, most in (("rules", MAX_RULES), ("scripts", MAX_SCRIPTS)):
        node = top.get(key)
        if isinstance(node, yaml.SequenceNode) and len(node.value) > most:
            line = node.start_mark.line + 1
            reason = f"{len(node.value)} {key}: a file holds at most {most}"
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
        raise RulesRefused([Problem(file, None, f"the file is over {MAX_SOURCE_BYTES} bytes")])
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
        raise RulesRefused([Problem(file, None, "the file is nested too deeply")]) from exc


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
        raise RulesRefused([Problem(file, 1, "the file is empty")])
    top = reader.mapping(root, "the file")
    if top is None:
        raise RulesRefused(reader.problems)
    reader.unknown_keys(top, {"version", "rules", "scripts"}, root, "the file")
    _check_counts(top, file)
    scripts: dict[str, Script] = {}
    for node in reader.sequence(top["scripts"], "scripts") if "scripts" in top else []:
        script = reader.script(node)
        if script is None:
            continue
        if script.name in scripts:
            reader.problem(node, f"two scripts are named {script.name!r}")
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
            reader.problem(
                None, f"show_script: no script named {action.args['name']!r}", line=action.line
            )
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
