"""Command-line flags generated from :mod:`fervid.options`, so each annotate option is written once; and
``fervid train``'s from :class:`fervid.train.config.TrainConfig` (:func:`train_parameters`) in the same way.

:func:`option_parameters` turns every option field into a Typer parameter (name, type,
default, help, range, metavar; booleans become switches that take no value), and
:func:`options_from_cli` turns the parsed values back into an
:class:`~fervid.options.AnnotateOptions`. :func:`with_parameters` gives a command function
the generated signature, which is what Typer reads.

Typer's help shows Python types (``<bool>`` after a switch, ``<list[Path]>`` after an
argument that has a metavar); :func:`plain_help_types` makes it show the metavar, or
nothing for a switch.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import typer.core

from fervid.options import GROUPS, AnnotateOptions, flag, leaf_fields, spec_of
from fervid.train.config import AugmentConfig, TrainConfig


def _is_off_switch(f: dataclasses.Field) -> bool:
    spec = spec_of(f)
    return bool(spec.switch and spec.switch.startswith("--no-"))


def parameter_name(f: dataclasses.Field) -> str:
    """The Python name of an option's CLI parameter (``no_video`` for the ``--no-video`` switch of ``video``,
    ``degrade`` for ``fervid train``'s ``--degrade``)."""
    spelt = spec_of(f).switch or spec_of(f).name
    return spelt.lstrip("-").replace("-", "_") if spelt else f.name


def option_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per annotate option, annotated for Typer."""
    return [_parameter(GROUPS[group], f) for group, f in leaf_fields()]


def parameters_of(options: type) -> list[inspect.Parameter]:
    """One keyword parameter per field of another command's options dataclass (:class:`fervid.options.AgreeOptions`)."""
    return [_parameter(options, f) for f in dataclasses.fields(options)]


def from_cli(options: type, values: dict[str, Any]) -> Any:
    """That dataclass from parsed CLI values (keyed by :func:`parameter_name`)."""
    fields = dataclasses.fields(options)
    return options(**{f.name: not values[parameter_name(f)] if _is_off_switch(f) else values[parameter_name(f)]
                      for f in fields})  # fmt: skip


def _parameter(owner: type, f: dataclasses.Field) -> inspect.Parameter:
    """A field as a Typer parameter: a switch, or an option with its type, range and metavar (required ones have no
    default)."""
    spec = spec_of(f)
    if spec.switch:
        annotation: Any = Annotated[bool, typer.Option(spec.switch, help=spec.help, show_default=False)]
        default: Any = False
    else:
        kind = typing.get_type_hints(owner)[f.name]
        default = inspect.Parameter.empty if spec.required else f.default
        option = typer.Option(flag(f), help=spec.help, min=spec.min, max=spec.max, metavar=spec.metavar,
                              show_default=default not in (None, inspect.Parameter.empty))  # fmt: skip
        annotation = Annotated[kind, option]
    return inspect.Parameter(parameter_name(f), inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def option_annotation(owner: type, name: str) -> Any:
    """One option field as the ``Annotated`` type of a hand-written command's parameter, so a command that shares
    an option with ``fervid annotate`` (``fervid summarize``'s ``--format``) does not define it again."""
    (f,) = [f for f in dataclasses.fields(owner) if f.name == name]
    return _parameter(owner, f).annotation


def options_from_cli(values: dict[str, Any]) -> AnnotateOptions:
    """The options from parsed CLI values (keyed by :func:`parameter_name`)."""
    flat = {}
    for _, f in leaf_fields():
        value = values[parameter_name(f)]
        flat[f.name] = not value if _is_off_switch(f) else value
    return AnnotateOptions.from_flat(**flat)


def with_parameters(
    fn: Callable[..., Any],
    before: list[inspect.Parameter],
    after: list[inspect.Parameter],
    options: list[inspect.Parameter] | None = None,
) -> Callable[..., Any]:
    """Give ``fn`` (which takes ``**kwargs``) the signature ``before + options + after``, for Typer
    (``options``: annotate's unless given)."""
    params = [*before, *(option_parameters() if options is None else options), *after]
    fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in params}
    return fn


# ------------------------------------------------------------------------------- fervid train
def train_fields() -> Iterator[tuple[type, dataclasses.Field]]:
    """(dataclass, field) of every ``fervid train`` flag: TrainConfig's, AugmentConfig's where ``augment`` is."""
    for f in dataclasses.fields(TrainConfig):
        if f.name == "augment":
            yield from ((AugmentConfig, g) for g in dataclasses.fields(AugmentConfig) if "option" in g.metadata)
        elif "option" in f.metadata:
            yield TrainConfig, f


def _tuple_of(cls: type, f: dataclasses.Field) -> type | None:
    """The item type of a tuple field (``widths``: int, ``init``: str), else None."""
    kind = typing.get_type_hints(cls)[f.name]
    return typing.get_args(kind)[0] if typing.get_origin(kind) is tuple else None


def _train_cli_type(cls: type, f: dataclasses.Field) -> Any:
    """The flag's type: a tuple of numbers is one comma-separated word (``--widths 32,64``), a tuple of
    paths a repeated flag (``--init a.pt --init b.pt``), anything else its own type."""
    item = _tuple_of(cls, f)
    if item is None:
        return typing.get_type_hints(cls)[f.name]
    return str if item is int else Optional[list[Path]]  # noqa: UP045 - a runtime type for Typer


def _to_cli(cls: type, f: dataclasses.Field, value: Any) -> Any:
    item = _tuple_of(cls, f)
    if item is None:
        return value
    return ",".join(map(str, value)) if item is int else [Path(v) for v in value] or None


def _from_cli(cls: type, f: dataclasses.Field, value: Any) -> Any:
    item = _tuple_of(cls, f)
    if item is None:
        return value
    if item is not int:
        return tuple(str(v) for v in value or [])
    try:
        return tuple(int(v) for v in str(value).split(","))
    except ValueError:
        raise ValueError(f"{flag(f)} takes whole numbers separated by commas, got {value!r}") from None


def _default(f: dataclasses.Field) -> Any:
    # typeshed cannot narrow default_factory by f.default; every option field has one of the two.
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]  # typeshed: (above)


def train_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per ``fervid train`` option, annotated for Typer, with the config's defaults."""
    params = []
    for cls, f in train_fields():
        spec = spec_of(f)
        if spec.switch:
            annotation: Any = Annotated[bool, typer.Option(spec.switch, help=spec.help, show_default=False)]
        else:
            option = typer.Option(flag(f), help=spec.help, min=spec.min, max=spec.max, metavar=spec.metavar)
            annotation = Annotated[_train_cli_type(cls, f), option]
        params.append(inspect.Parameter(parameter_name(f), inspect.Parameter.KEYWORD_ONLY,
                                        default=_to_cli(cls, f, _default(f)), annotation=annotation))  # fmt: skip
    return params


def train_cli_values(cfg: TrainConfig) -> dict[str, Any]:
    """A config's options as parsed CLI values (keyed by :func:`parameter_name`): what a command line that
    runs it again holds."""
    return {
        parameter_name(f): _to_cli(cls, f, getattr(cfg.augment if cls is AugmentConfig else cfg, f.name))
        for cls, f in train_fields()
    }


def train_config_from_cli(values: dict[str, Any]) -> TrainConfig:
    """The training config from parsed CLI values; ValueError (naming the flag) for a malformed one."""
    fields: dict[type, dict[str, Any]] = {TrainConfig: {}, AugmentConfig: {}}
    for cls, f in train_fields():
        fields[cls][f.name] = _from_cli(cls, f, values[parameter_name(f)])
    return TrainConfig(**fields[TrainConfig], augment=AugmentConfig(**fields[AugmentConfig]))


#: Words for Python types in help, as click writes them.
_TYPE_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH", "Path": "PATH", "bool": "BOOLEAN"}


def plain_help_types() -> None:
    """Typer help in words, not Python types: a switch shows nothing, an option its metavar (or click's word for
    its type: TEXT, INTEGER, FLOAT, PATH), an argument with a metavar just that."""
    option_type = typer.core.TyperOption.display_type_rich
    argument_type = typer.core.TyperArgument.display_type_rich
    argument_usage = typer.core.TyperArgument._usage_display_name

    def option_display(self: typer.core.TyperOption, ctx: Any) -> str | None:
        if self.is_flag:
            return None
        shown = option_type(self, ctx)
        if self.metavar is not None or shown is None:
            return shown
        kind = shown.strip("<>").replace(" range", "")  # a range is printed beside it
        return _TYPE_WORDS.get(kind, kind.upper())

    def argument_display(self: typer.core.TyperArgument, ctx: Any) -> str | None:
        return None if self.metavar else argument_type(self, ctx)

    def usage(self: typer.core.TyperArgument) -> str:
        return self.metavar or argument_usage(self)

    typer.core.TyperOption.display_type_rich = option_display  # type: ignore[method-assign]
    typer.core.TyperArgument.display_type_rich = argument_display  # type: ignore[method-assign,assignment]
    typer.core.TyperArgument._usage_display_name = usage  # type: ignore[method-assign]
