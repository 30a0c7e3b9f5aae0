"""Command-line flags generated from :mod:`fervid.options`, so each annotate option is written once.

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
from collections.abc import Callable
from typing import Annotated, Any

import typer
import typer.core

from fervid.options import GROUPS, AnnotateOptions, flag, leaf_fields, spec_of


def _is_off_switch(f: dataclasses.Field) -> bool:
    spec = spec_of(f)
    return bool(spec.switch and spec.switch.startswith("--no-"))


def parameter_name(f: dataclasses.Field) -> str:
    """The Python name of an option's CLI parameter (``no_video`` for the ``--no-video`` switch of ``video``)."""
    return spec_of(f).switch.lstrip("-").replace("-", "_") if spec_of(f).switch else f.name


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


def options_from_cli(values: dict[str, Any]) -> AnnotateOptions:
    """The options from parsed CLI values (keyed by :func:`parameter_name`)."""
    flat = {}
    for _, f in leaf_fields():
        value = values[parameter_name(f)]
        flat[f.name] = not value if _is_off_switch(f) else value
    return AnnotateOptions.from_flat(**flat)


def with_parameters(
    fn: Callable[..., Any], before: list[inspect.Parameter], after: list[inspect.Parameter],
    options: list[inspect.Parameter] | None = None,
) -> Callable[..., Any]:  # fmt: skip
    """Give ``fn`` (which takes ``**kwargs``) the signature ``before + options + after``, for Typer (``options``:
    the annotate options by default)."""
    params = [*before, *(option_parameters() if options is None else options), *after]
    fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in params}
    return fn


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
    typer.core.TyperArgument.display_type_rich = argument_display  # type: ignore[method-assign]
    typer.core.TyperArgument._usage_display_name = usage  # type: ignore[method-assign]
