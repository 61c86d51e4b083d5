"""Config settings with their rules: one declaration gives a key's default and what values it accepts.

A defaults tree (skelssl.config.BASE_DEFAULTS, a method's / encoder's / plug-in's `DEFAULTS`, a dataclass such
as AugmentConfig) holds, at each key, either a plain value or a `Setting(default, rule)`. A plain value's
rule is inferred from it: a bool takes bools, an int whole numbers, a float any finite number, a text any
text, a list items of its first item's kind; None takes anything. A Setting says more: a range
(`integer(16, ge=1)`), a probability, one of a few words (`choice("stop", "stop", "skip")`), an optional
value (`optional(...)`). `plain(tree)` gives the defaults, `rules(tree)` the rule of every key, and
`check_value(key, value, rule)` the one-line problem a bad value has (None when it is fine).

A leaf module: it imports nothing of skelssl, so any layer can declare its settings with it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

__all__ = ["Rule", "Number", "Flag", "Text", "Choice", "Items", "Either", "Nullable", "Anything", "Mapping", "Section",
           "Check", "Setting", "integer", "count_range", "odd_integer", "number", "probability", "choice", "optional",
           "integers", "numbers", "texts", "flag", "text", "plain", "rules", "rule_of", "check_value",
           "field_setting", "dataclass_rules"]


class Rule:
    """What values a key accepts: `problem(value)` is None for a good value, else why it is not."""

    def describe(self) -> str:  # pragma: no cover - every rule overrides it
        raise NotImplementedError

    def problem(self, value: Any) -> str | None:  # pragma: no cover - every rule overrides it
        raise NotImplementedError


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bound(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Number(Rule):
    """A finite number (a whole one with `whole`), within the bounds given."""

    whole: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        low = f"[{_bound(self.ge)}" if self.ge is not None else f"({_bound(self.gt)}" if self.gt is not None else None
        high = f"{_bound(self.le)}]" if self.le is not None else f"{_bound(self.lt)})" if self.lt is not None \
            else None
        if low and high:
            return f"{kind} in {low}, {high}"
        if low:
            return f"{kind} {'>=' if self.ge is not None else '>'} {low[1:]}"
        if high:
            return f"{kind} {'<=' if self.le is not None else '<'} {high[:-1]}"
        return kind

    def problem(self, value: Any) -> str | None:
        if not _is_number(value) or (self.whole and not isinstance(value, int)) or not math.isfinite(value):
            return f"must be {self.describe()}"
        if (self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt) or \
                (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt):
            return f"must be {self.describe()}"
        return None


@dataclass(frozen=True)
class Flag(Rule):
    def describe(self) -> str:
        return "true or false"

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else "must be true or false"


@dataclass(frozen=True)
class Text(Rule):
    def describe(self) -> str:
        return "a text"

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, str) and value != "" else "must be a non-empty text"


@dataclass(frozen=True)
class Choice(Rule):
    options: tuple[Any, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(str(o) for o in self.options)

    def problem(self, value: Any) -> str | None:
        # 16 is not "16", True is not 1: compare the kind as well as the value
        if any(type(value) is type(o) and value == o for o in self.options):
            return None
        return f"must be {self.describe()}"


@dataclass(frozen=True)
class Items(Rule):
    """A list whose items follow `item`; `length` fixes its size, `min_length` bounds it, `ascending` asks
    for items in non-decreasing order."""

    item: Rule
    length: int | None = None
    min_length: int = 0
    ascending: bool = False

    def describe(self) -> str:
        size = f"{self.length} " if self.length is not None else ""
        order = ", in increasing order" if self.ascending else ""
        at_least = f" (at least {self.min_length})" if self.min_length and self.length is None else ""
        return f"a list of {size}items, each {self.item.describe()}{at_least}{order}"

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, (list, tuple)):
            return f"must be {self.describe()}"
        if (self.length is not None and len(value) != self.length) or len(value) < self.min_length:
            return f"must be {self.describe()}"
        for position, item in enumerate(value):
            wrong = self.item.problem(item)
            if wrong is not None:
                return f"item {position} ({item!r}) {wrong}"
        if self.ascending and any(a > b for a, b in zip(value, value[1:])):
            return f"must be {self.describe()}"
        return None


@dataclass(frozen=True)
class Mapping(Rule):
    """A mapping whose values follow `value` (its keys are checked where they are used)."""

    value: Rule

    def describe(self) -> str:
        return f"a mapping of names to {self.value.describe()}"

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"must be {self.describe()}"
        for key, item in value.items():
            wrong = self.value.problem(item)
            if wrong is not None:
                return f"entry '{key}' ({item!r}) {wrong}"
        return None


@dataclass(frozen=True)
class Either(Rule):
    """Any one of several rules (e.g. "auto" or a whole number >= 1)."""

    options: tuple[Rule, ...]

    def describe(self) -> str:
        return " or ".join(option.describe() for option in self.options)

    def problem(self, value: Any) -> str | None:
        if any(option.problem(value) is None for option in self.options):
            return None
        return f"must be {self.describe()}"


@dataclass(frozen=True)
class Nullable(Rule):
    rule: Rule

    def describe(self) -> str:
        return f"null or {self.rule.describe()}"

    def problem(self, value: Any) -> str | None:
        return None if value is None or self.rule.problem(value) is None else f"must be {self.describe()}"


@dataclass(frozen=True)
class Section(Rule):
    """A section of keys (each with its own rule): it must stay a mapping."""

    def describe(self) -> str:
        return "a section of keys (a mapping)"

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, dict) else "must be a section of keys (key.subkey=value), not a value"


@dataclass(frozen=True)
class Anything(Rule):
    def describe(self) -> str:
        return "anything"

    def problem(self, value: Any) -> str | None:
        return None


@dataclass(frozen=True)
class Check(Rule):
    """A rule written as a function (value -> problem or None), for what depends on this machine."""

    test: Callable[[Any], str | None]
    text: str

    def describe(self) -> str:
        return self.text

    def problem(self, value: Any) -> str | None:
        return self.test(value)


@dataclass(frozen=True)
class Setting:
    """A key's default and its rule, declared together."""

    default: Any
    rule: Rule


def integer(default: int | None, *, ge: int | None = None, le: int | None = None) -> Setting:
    return Setting(default, Number(whole=True, ge=ge, le=le))


def odd_integer(default: int) -> Setting:
    """A positive odd whole number (a kernel that keeps the frame count with symmetric padding)."""
    return Setting(default, Check(lambda v: None if isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                  and v % 2 == 1 else "must be a positive odd whole number",
                                  "a positive odd whole number"))


def number(default: float | None, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None) -> Setting:
    return Setting(default, Number(ge=ge, gt=gt, le=le, lt=lt))


def probability(default: float) -> Setting:
    return Setting(default, Number(ge=0.0, le=1.0))


def choice(default: Any, *options: Any) -> Setting:
    if default not in options:
        raise ValueError(f"default {default!r} is not among the options {options}")
    return Setting(default, Choice(tuple(options)))


def flag(default: bool) -> Setting:
    return Setting(default, Flag())


def text(default: str | None) -> Setting:
    return Setting(default, Text())


def optional(setting: Setting) -> Setting:
    return Setting(setting.default, Nullable(setting.rule))


def integers(default: list[int], *, ge: int | None = None, min_length: int = 0, length: int | None = None,
             ascending: bool = False) -> Setting:
    return Setting(list(default), Items(Number(whole=True, ge=ge), length=length, min_length=min_length,
                                        ascending=ascending))


def count_range(default: list[int], low: int = 1) -> Setting:
    """[fewest, most]: two whole numbers >= low, the first not above the second (a count drawn between them)."""
    return integers(default, ge=low, length=2, ascending=True)


def numbers(default: list[float] | tuple[float, ...], *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, length: int | None = None, min_length: int = 0,
            ascending: bool = False) -> Setting:
    return Setting(default, Items(Number(ge=ge, gt=gt, le=le), length=length, min_length=min_length,
                                  ascending=ascending))


def texts(default: list[str], *options: str, min_length: int = 0) -> Setting:
    item = Choice(tuple(options)) if options else Text()
    return Setting(list(default), Items(item, min_length=min_length))


def rule_of(value: Any) -> Rule:
    """The rule a plain default implies (module docstring)."""
    if isinstance(value, Setting):
        return value.rule
    if isinstance(value, bool):
        return Flag()
    if isinstance(value, int):
        return Number(whole=True)
    if isinstance(value, float):
        return Number()
    if isinstance(value, str):
        return Text()
    if isinstance(value, (list, tuple)):
        return Items(rule_of(value[0])) if value else Anything()
    return Anything()


def plain(tree: Any) -> Any:
    """The defaults of a declaration tree: every Setting replaced by its default (dicts and lists copied)."""
    if isinstance(tree, Setting):
        return plain(tree.default)
    if isinstance(tree, dict):
        return {key: plain(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [plain(value) for value in tree]
    return tree


def rules(tree: dict[str, Any], prefix: str = "") -> dict[str, Rule]:
    """The rule of every leaf key of a declaration tree, by dotted key ("optim.lr"); a dict default is a
    section (its keys have their own rules) unless a Setting wraps it."""
    found: dict[str, Rule] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            found[path] = Section()
            found.update(rules(value, path + "."))
        else:
            found[path] = rule_of(value)
    return found


def check_value(key: str, value: Any, rule: Rule) -> str | None:
    """"config key 'K' = V: must be ..." for a value its rule refuses, else None."""
    wrong = rule.problem(value)
    return None if wrong is None else f"config key '{key}' = {value!r}: {wrong}"


def field_setting(setting: Setting) -> Any:
    """A dataclass field declared with a Setting: its default (a list or tuple through a factory), its rule in
    the field's metadata (see dataclass_rules)."""
    default = setting.default
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"rule": setting.rule})
    return dataclasses.field(default=default, metadata={"rule": setting.rule})


def dataclass_rules(cls: type, prefix: str = "") -> dict[str, Rule]:
    """The rule of each field of a dataclass: declared with field_setting, or inferred from its default."""
    found: dict[str, Rule] = {}
    for item in dataclasses.fields(cls):
        if "rule" in item.metadata:
            found[prefix + item.name] = item.metadata["rule"]
        else:
            default = item.default if item.default is not dataclasses.MISSING else \
                item.default_factory() if item.default_factory is not dataclasses.MISSING else None
            found[prefix + item.name] = rule_of(default)
    return found


def first_problem(values: Iterable[tuple[str, Any]], found_rules: dict[str, Rule]) -> str | None:
    """The first problem among (key, value) pairs under `found_rules` (keys without a rule pass)."""
    for key, value in values:
        if key in found_rules:
            wrong = check_value(key, value, found_rules[key])
            if wrong is not None:
                return wrong
    return None
