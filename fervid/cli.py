"""The ``fervid`` command line: thin Typer commands that build a config and call the library."""

from __future__ import annotations

import contextlib
import inspect
import shlex
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from fervid import __version__
from fervid.checks import plural
from fervid.cli_options import (
    from_cli,
    option_annotation,
    options_from_cli,
    parameters_of,
    plain_help_types,
    train_cli_values,
    train_config_from_cli,
    train_parameters,
    with_parameters,
)
from fervid.options import AgreeOptions, ClassificationOptions, OutputOptions

if TYPE_CHECKING:
    from rich.table import Table

    from fervid.batch import BatchInput, BatchReport, Outcome

app = typer.Typer(
    name="fervid",
    help="Facial-expression timelines from video: detect, track and classify faces, fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)  # soft wrap: errors stay on one line
plain_help_types()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line styled error and return the Exit to raise.

    ``message`` is plain text (paths, user values, ``pip install 'fervid[parquet]'``): it is
    escaped here, so Rich never takes its brackets for markup.
    """
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _command_line(params: dict[str, object], name: str) -> str:
    """A command with every option spelled out (defaults too), for provenance records.

    Lists repeat the flag (an empty one is left out), a true flag option is the bare flag and a
    false one is left out (``fervid train``'s flags have no ``--no-`` form), so the line runs as written.
    """
    parts = []
    for key, value in params.items():
        flag = f"--{key.replace('_', '-')}"
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, bool):
                parts += [flag] if item else []
            elif item is not None:
                parts.append(f"{flag} {shlex.quote(str(item))}")
    return " ".join(["fervid", name, *parts])


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fervid {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """fervid: facial-expression timelines from video."""


_TRAIN_BEFORE = [
    inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[list[Path], typer.Option(
        metavar="PATH", help="Weights to write per --data (or per head of --pack), e.g. ferplus.pt.")]),
    inspect.Parameter("data", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[list[Path]], typer.Option(  # noqa: UP045 - a runtime type for Typer
            metavar="PATH",
            help="Training split: FER2013 class folders (dir/.zip), fer2013.csv, or FER+. Give FER2013 and FER+ "
            "(twice --data) to train one network with a head for each on the same faces.")]),
    inspect.Parameter("val", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option(metavar="PATH", help="Validation split per --data, same layout; selection only.")]),
    inspect.Parameter("pack", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[Path], typer.Option(  # noqa: UP045
            metavar="PATH",
            help="Instead of --data and --val: a training pack (scripts/gpu/pack_fer.py) holding the training faces, "
            "every head's labels and validation split in one compact file, for a machine without the archives.")]),
]  # fmt: skip
_TRAIN_AFTER = [
    inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, default="auto",
                      annotation=Annotated[str, typer.Option(help="auto, cpu or cuda.")]),
    inspect.Parameter("threads", inspect.Parameter.KEYWORD_ONLY, default=0, annotation=Annotated[
        int, typer.Option(min=0, help="CPU threads for torch (0: torch's default).")]),
    inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--resume", show_default=False,
                           help="Continue the checkpoint beside the first --out (<out>.last.pt) with the options it "
                           "was started with, even where this command's differ. Without it, a checkpoint of the "
                           "same options is continued and one of other options is refused.")]),
]  # fmt: skip


def train(**kwargs: Any) -> None:
    """Train an expression model (from scratch, or from --init); the best epoch on --val is kept.

    An interrupted run continues from its checkpoint when the same command is run again.
    """
    import torch

    from fervid.devices import resolve_device
    from fervid.models.expression_weights import load_expression_model
    from fervid.train.heads import load_pack_heads, load_training_heads

    out, data, val, pack = (kwargs.pop(name) for name in ("out", "data", "val", "pack"))
    device, threads, resume = (kwargs.pop(name) for name in ("device", "threads", "resume"))
    if threads:
        torch.set_num_threads(threads)
    try:
        if pack is None and not data:
            raise ValueError("give the training data: --data and --val, or --pack")
        if pack is not None and (data or val):
            raise ValueError("give --pack or --data with --val, not both")
        if pack is None and not len(data or []) == len(val or []) == len(out):
            raise ValueError(f"give one --val and one --out per --data (got {len(data or [])}, {len(val or [])}, "
                             f"{len(out)})")  # fmt: skip
        cfg = train_config_from_cli(kwargs)
        dev = resolve_device(device)
        for path in [*cfg.init, *cfg.teachers]:  # a bad --init or --teacher file fails before the slow data loading
            load_expression_model(path, verify=False)
        training, heads = load_training_heads(data, val, out) if pack is None else load_pack_heads(pack, out)
        if cfg.pose_balance and training.head_turns is None:
            training.head_turns = _head_turns(training.images, heads[0].out.with_suffix(".turns.npz"), str(dev))
    except (ValueError, OSError) as exc:
        raise fail(str(exc), 2) from None
    sets = ", ".join(f"{h.labels.name} ({int(h.labels.valid.sum())} labelled)" for h in heads)
    console.print(f"train {len(training)} images: {escape(sets)}; device {dev}", highlight=False)

    def command(effective: Any) -> str:
        """The command that runs this config again: every option spelled out, the architecture really trained."""
        params = {"out": out, "data": data, "val": val, "pack": pack, **train_cli_values(effective),
                  "device": device, "threads": threads}  # fmt: skip
        return _command_line(params, "train")

    _run_training(training, heads, cfg, dev, command, resume)


def _run_training(training: Any, heads: Any, cfg: Any, dev: Any, command: Callable[[Any], str], resume: bool) -> None:
    """Train with a progress bar, saying when a checkpoint is continued; one line per head at the end."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fervid.train.trainer import EpochLog
    from fervid.train.trainer import train as run_training

    def on_resume(checkpoint: Path, kept: Any, changes: list[str]) -> None:
        progress.update(task, total=kept.epochs)
        note = f"; its own options kept: {'; '.join(changes)}" if changes else ""
        console.print(f"resuming from {escape(str(checkpoint))} (delete it to start afresh){escape(note)}",
                      highlight=False)  # fmt: skip

    with Progress(
        TextColumn("[bold]epoch"), MofNCompleteColumn(), BarColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"), console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task("train", total=cfg.epochs, status="")

        def on_epoch(log: EpochLog) -> None:
            accuracy = "  ".join(f"{name} {acc:.4f}" for name, acc in log.val_accuracy.items())
            status = f"loss {log.train_loss:.3f}  val acc {accuracy}  ({log.seconds:.0f}s)"
            progress.update(task, completed=log.epoch, status=status)
            if not console.is_terminal:
                console.print(f"epoch {log.epoch}/{progress.tasks[0].total:.0f} {status} lr {log.lr:.5f}",
                              highlight=False)  # fmt: skip

        try:
            configs = run_training(training, heads, cfg, dev, command=command, on_epoch=on_epoch, resume=resume,
                                   on_resume=on_resume)  # fmt: skip
        except ValueError as exc:  # --init or --teacher models that do not fit the data; a checkpoint of other options
            raise fail(str(exc), 2) from None
    for head in heads:
        info = configs[head.labels.name].info
        console.print(
            f"{head.labels.name}: best val accuracy {info['val_accuracy']:.4f} at epoch {info['best_epoch']}, "
            f"temperature {configs[head.labels.name].temperature:.2f} -> {head.out}",
            highlight=False,
        )


app.command(name="train")(with_parameters(train, _TRAIN_BEFORE, _TRAIN_AFTER, train_parameters()))


def _head_turns(images: Any, cache: Path, device: str) -> Any:
    """The training faces' head turns (fervid.train.pose): read from ``cache``, or measured with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fervid.train.pose import cached_head_turns, measure_head_turns

    def measure(faces: Any) -> Any:
        with Progress(
            TextColumn("[bold]head turns"), MofNCompleteColumn(), BarColumn(), TimeRemainingColumn(), console=console
        ) as progress:
            task = progress.add_task("turns", total=len(faces))
            return measure_head_turns(faces, device, on_batch=lambda n: progress.advance(task, n))

    turns = cached_head_turns(images, cache, measure)
    console.print(f"head turns of {len(images)} faces: {escape(str(cache))}", highlight=False)
    return turns


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="Test split in any layout `fervid train` reads.")],
    model: Annotated[
        str, typer.Option(help="A shipped model name (see `fervid models`), a .pt or a .rule.json path.")
    ] = ClassificationOptions().model,
    tta: Annotated[bool, typer.Option("--tta", help="Average over flipped and shifted views.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write per-class CSV, confusion CSV and PNG here.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Evaluate a model on a labelled split: accuracy, macro-F1, per-class scores, confusion matrix, calibration.

    The data may have only some of the model's classes (e.g. no contempt, no neutral): they are
    scored on the classes the data has, the model still chooses among all of its own, and the
    output names the model classes the data lacks.
    """
    import json
    from dataclasses import replace

    import numpy as np

    from fervid.devices import resolve_device
    from fervid.models.expression_weights import WeightsError, load_expression_model
    from fervid.train.data import DatasetLayoutError, load_dataset
    from fervid.train.evaluate import Evaluation, check_classes, majority_protocol
    from fervid.train.predict import average_probabilities, predict_view_logits
    from fervid.train.reliability_data import dataset_reliability

    try:
        dev = resolve_device(device)
        loaded = load_expression_model(model)
        net, cfg = loaded.model, loaded.config
        test = load_dataset(data, "test")
        check_classes(test.classes, cfg.classes, str(data))
    except (WeightsError, DatasetLayoutError, ValueError, OSError) as exc:
        raise fail(str(exc), 2) from None
    logits = predict_view_logits(net, cfg, test.images, dev, tta=tta)
    probs = average_probabilities(logits, cfg)
    result = Evaluation.from_probs(test.labels, probs, cfg.classes, test.classes)
    majority = majority_protocol(test, probs, cfg.classes)  # FER+ votes: the subset published figures use
    raw = average_probabilities(logits, replace(cfg, temperature=1.0))
    uncalibrated = Evaluation.from_probs(test.labels, raw, cfg.classes, test.classes)
    if out is not None:
        _save_evaluation(result, out, f"{Path(str(model)).stem}{'-tta' if tta else ''}", data.name)
    calibration = {"temperature": cfg.temperature, "ece_uncalibrated": uncalibrated.ece}
    correct = np.asarray(cfg.classes, dtype=object)[probs.argmax(axis=1)] == np.asarray(test.classes)[test.labels]
    try:
        reliability = dataset_reliability(model, test.images, probs, correct)  # the model's reliability file, if any
    except WeightsError as exc:
        raise fail(str(exc), 2) from None
    if json_output:
        extra = {} if majority is None else {"majority_protocol": majority.to_json()}
        extra |= {} if reliability is None else {"reliability": reliability}
        typer.echo(json.dumps({"model": str(model), "data": str(data), "tta": tta, **result.to_json(), **calibration,
                               **extra}))  # fmt: skip
        return
    shown = Console()
    shown.print(_evaluation_table(result, f"{model} on {data} ({'TTA' if tta else 'no TTA'})"))
    if result.missing_classes:
        shown.print(f"the data has no {', '.join(result.missing_classes)}: scored on its {len(test.classes)} classes; "
                    "the model still chooses among all of its own", highlight=False)  # fmt: skip
    shown.print(f"accuracy [bold]{result.accuracy:.4f}[/]  macro-F1 [bold]{result.macro_f1:.4f}[/]  n={result.n}")
    shown.print(f"ECE {result.ece:.4f} (temperature {cfg.temperature:.2f}; {uncalibrated.ece:.4f} without)")
    for line in _evaluation_notes(majority, reliability):
        shown.print(line, highlight=False)


def _save_evaluation(result: Any, out: Path, stem: str, data_name: str) -> None:
    """``fervid evaluate --out``: the per-class scores and the confusion matrix as CSV, and the matrix as a PNG."""
    out.mkdir(parents=True, exist_ok=True)
    result.per_class().to_csv(out / f"{stem}.per_class.csv", index=False)
    result.confusion_frame().to_csv(out / f"{stem}.confusion.csv")
    result.save_confusion_png(
        out / f"{stem}.confusion.png", f"{stem} on {data_name}: accuracy {result.accuracy:.4f}, n={result.n}"
    )


def _evaluation_table(result: Any, title: str) -> Table:
    """Precision, recall, F1 and support per class; a model class the data lacks is left out."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in result.per_class().itertuples(index=False):
        if row[4] or row[0] not in result.missing_classes:
            table.add_row(row[0], f"{row[1]:.3f}", f"{row[2]:.3f}", f"{row[3]:.3f}", str(row[4]))
    return table


def _evaluation_notes(majority: Any, reliability: dict[str, Any] | None) -> list[str]:
    """The lines under the scores, when there is something to say: FER+'s own protocol, the reliability file's."""
    lines = []
    if majority is not None:
        lines.append(f"FER+'s own test protocol (only the {majority.n} faces with a clear majority of votes, as "
                     f"published FER+ figures): accuracy [bold]{majority.accuracy:.4f}[/]  "
                     f"macro-F1 {majority.macro_f1:.4f}")  # fmt: skip
    if reliability is not None:
        r = reliability
        kept = f", {r['accuracy_trusted']:.4f} right" if r["accuracy_trusted"] is not None else ""
        lines.append(f"p_correct (the model's reliability file): AURC {r['aurc_p_correct']:.4f} against "
                     f"{r['aurc_top']:.4f} for the top probability, ECE {r['ece_p_correct']:.4f}; "
                     f"trusted at {r['threshold']:g}: {r['trusted_share']:.1%} of faces{kept}")  # fmt: skip
    return lines


def annotate(**kwargs: Any) -> None:
    """Detect, track and classify faces; write an annotated video and per-face emotion timelines (CSV).

    A folder of images only is one input; any other folder is a batch: each file in it that is not an
    image is one input (see --recursive). A path that does not exist, --sequence without an image
    folder, and a --start past the end of every video are usage errors (exit code 2), found
    before any model is loaded.

    Inputs with complete outputs from an earlier run are skipped (--overwrite redoes them).

    --ray spreads the same run over a Ray cluster: `fervid annotate corpus/ -o /shared/out --ray-address auto`.

    Exit codes: 0 all inputs done, 1 some input failed, 2 usage error, 130/143 interrupted.
    """
    from fervid.batch import (
        BatchRunner,
        ExecutorError,
        OutputDirError,
        UsageError,
        check_inputs,
        check_output_dir,
        discover_inputs,
        missing_paths,
        run_batch,
        stop_on_signals,
    )
    from fervid.io.atomic import removed_if_left_empty
    from fervid.models.errors import WeightsError

    inputs, output = kwargs.pop("inputs"), kwargs.pop("output")
    recursive, overwrite = kwargs.pop("recursive"), kwargs.pop("overwrite")
    cluster = _cluster_options(kwargs)  # --ray: None for a local run
    with (
        stop_on_signals(say=lambda message: console.print(f"[yellow]{escape(message)}", highlight=False)),
        removed_if_left_empty(output),
    ):
        try:
            try:
                options = options_from_cli(kwargs)
                if missing := missing_paths(inputs):  # a typo, not an input that fails: before any work
                    raise UsageError(f"{', '.join(map(str, missing))}: no such file or folder")
                check_output_dir(output)
                unvisited: list[Path] = []
                items = discover_inputs(inputs, recursive=recursive, exclude=[output], unvisited=unvisited)
                items, notes = check_inputs(items, options)  # --sequence, --start/--end against the inputs
                if options.output.events is not None:  # --events against the inputs' names and durations
                    items, notes = _check_events(items, options, notes)
                for note in notes + _unvisited_note(unvisited):
                    console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
                runner = BatchRunner(None, output, overwrite=overwrite, options=options)
                executor, load_s = None, None
                if any(i.problem is None and runner.completed(i) is None for i in items):  # else no models needed
                    started = time.perf_counter()
                    executor = None if cluster is None else _ray_executor(options, cluster)
                    runner.pipeline = _pipeline(options) if executor is None else None  # --ray: workers load theirs
                    load_s = time.perf_counter() - started
            except (OutputDirError, ValueError, OSError, ImportError, WeightsError) as exc:
                raise fail(str(exc), 2) from None
            try:
                report = run_batch(runner, items, progress=_progress_bar, on_outcome=_print_outcome, executor=executor)
            except ExecutorError as exc:  # --ray: no cluster, or workers that cannot work; nothing was processed
                raise fail(str(exc), 2) from None
            if executor is not None:
                load_s = executor.startup_s  # connecting and loading the models on every worker
        except KeyboardInterrupt as exc:  # while loading models or looking for inputs: nothing written yet
            console.print("[yellow]interrupted[/]: nothing was written", highlight=False)
            raise typer.Exit(128 + getattr(exc, "signum", 2)) from None
    if options.output.report:  # OUTPUT/index.html: every input's report, and what failed and why
        from fervid.report.index import write_batch_index

        write_batch_index(output, report)
    out = Console()
    if not out.is_terminal:  # a log file or pipe: wide enough that reasons stay on one line
        out = Console(width=160)
    out.print(_outcome_table(report, load_s))
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _check_events(items: list[BatchInput], options: Any, notes: list[str]) -> tuple[list[BatchInput], list[str]]:
    """Read the --events file and check it against the inputs (each probed once: the result travels with it)."""
    from fervid.batch import probed
    from fervid.events import check_events, load_events

    events = load_events(options.output.events, options.output.events_tier)
    items = [probed(item) if item.problem is None else item for item in items]
    fps = options.input.fps if options.input.sequence else None
    inputs = [(item.stem, item.label, item.media if item.problem is None else None) for item in items]
    return items, notes + check_events(events, inputs, fps)  # an input that fails anyway: its name only


def _pipeline(options: Any) -> Any:
    """The models loaded for ``options``; what loading warns about (a --people photo without a face) is printed."""
    from fervid.pipeline import Pipeline

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline = Pipeline(options)
    for note in caught:
        console.print(f"[yellow]warning:[/] {escape(str(note.message))}", highlight=False)
    return pipeline


def _unvisited_note(subfolders: list[Path]) -> list[str]:
    """The line saying which subfolders were not looked into (no --recursive), or none."""
    if not subfolders:
        return []
    names = ", ".join(f"{p.parent.name or p.parent}/{p.name}" for p in subfolders[:3])  # as inputs are labelled
    names += ", ..." if len(subfolders) > 3 else ""
    return [f"skipped {plural(len(subfolders), 'subfolder')} ({names}): add --recursive to look inside"]


_BATCH_BEFORE = [
    inspect.Parameter("inputs", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[
        list[Path],
        typer.Argument(
            metavar="INPUT...",
            help="Videos (anything FFmpeg reads), images, or folders: a folder of images only is one input; "
            "any other folder is a batch, where each file that is not an image is one input and the loose images "
            "one more (see docs/batch.md).",
            show_default=False,
        ),
    ]),
    inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY, default=Path("fervid-out"), annotation=Annotated[
        Path, typer.Option("-o", "--output", metavar="FOLDER", help="Output folder; each input gets OUTPUT/<stem>/.")
    ]),
]  # fmt: skip
_BATCH_AFTER = [
    inspect.Parameter("recursive", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--recursive", "-r", help="Also look for inputs in subfolders of folder arguments.")
    ]),
    inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--overwrite", help="Redo inputs whose outputs are already complete (default: skip).")
    ]),
    inspect.Parameter("ray", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--ray", help="Spread the inputs over Ray workers (each holds the models and writes whole "
                           "inputs to OUTPUT, which every node must reach): alone, a local Ray instance on this "
                           "machine's GPUs/CPUs; see --ray-address. Needs: pip install 'fervid\\[ray]'.",
                           rich_help_panel="Cluster (Ray)")
    ]),
    inspect.Parameter("ray_address", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        str | None, typer.Option("--ray-address", metavar="ADDRESS", help="Join a running Ray cluster (implies "
                                 "--ray): auto (the cluster this machine is a node of) or ray://HEAD:10001.",
                                 rich_help_panel="Cluster (Ray)")
    ]),
    inspect.Parameter("ray_gpus_per_worker", inspect.Parameter.KEYWORD_ONLY, default=1.0, annotation=Annotated[
        float, typer.Option("--ray-gpus-per-worker", metavar="SHARE", help="GPU share of a worker: 1 = one per GPU; "
                            "0.5 or 0.25 put 2 or 4 on each GPU when it has room. A GPU node's CPUs are split "
                            "between its workers.", rich_help_panel="Cluster (Ray)")
    ]),
    inspect.Parameter("ray_cpus_per_worker", inspect.Parameter.KEYWORD_ONLY, default=4, annotation=Annotated[
        int, typer.Option("--ray-cpus-per-worker", metavar="N", min=1, help="Without GPUs (or with --device cpu): "
                          "CPU cores per worker; its torch threads follow.", rich_help_panel="Cluster (Ray)")
    ]),
]  # fmt: skip
app.command(name="annotate")(with_parameters(annotate, _BATCH_BEFORE, _BATCH_AFTER))


def _cluster_options(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """Pop the --ray options from the annotate arguments: the executor's settings, or None for a local run."""
    ray, address = kwargs.pop("ray"), kwargs.pop("ray_address")
    gpus, cpus = kwargs.pop("ray_gpus_per_worker"), kwargs.pop("ray_cpus_per_worker")
    if not ray and address is None:
        return None
    return {"address": None if address == "local" else address, "gpus_per_worker": gpus, "cpus_per_worker": cpus}


def _ray_executor(options: Any, cluster: dict[str, Any]) -> Any:
    """The --ray executor (an ImportError naming the extra to install when Ray is missing)."""
    from fervid.cluster.executor import RayExecutor

    def say(message: str) -> None:
        style = "[yellow]warning:[/] " if message.startswith("warning: ") else ""
        console.print(f"{style}{escape(message.removeprefix('warning: '))}", highlight=False)

    return RayExecutor(options, **cluster, console=console, say=say)


@contextlib.contextmanager
def _progress_bar(item: BatchInput, total: int | None) -> Iterator[Callable[[int], None]]:
    """A transient per-input progress bar on stderr; yields the frames-done callback.

    Without a terminal (a log file, a pipe, a test) there is no bar: a transient bar
    would leave an empty line per input there, and the closing table says it all.
    """
    if not console.is_terminal:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(f"[bold]{escape(item.label)}"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
        TextColumn("{task.fields[fps]} fps"), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
        transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("annotate", total=total, fps="-")

        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[0].speed
            progress.update(task, fps=f"{speed:.1f}" if speed else "-")

        yield advance


def _print_outcome(outcome: Outcome) -> None:
    """One line on stderr per input as it finishes: errors, damage and encoder notes, never a traceback."""
    label = escape(outcome.input.label)
    for note in outcome.notes:
        console.print(f"[yellow]warning:[/] {label}: {escape(note)}", highlight=False)
    status, reason = outcome.status.value, escape(outcome.reason or "")
    if status == "failed":
        console.print(f"[bold red]error:[/] {label}: {reason}", highlight=False)
    elif status == "partial":
        console.print(f"[yellow]warning:[/] {label}: {reason}; outputs marked partial", highlight=False)
    elif status == "interrupted":
        console.print(f"[yellow]interrupted:[/] {label}: {reason}", highlight=False)


def _outcome_table(report: BatchReport, load_s: float | None = None) -> Table:
    """The closing table: one row per input with its status and output folder or one-line reason.

    ``time`` is the input's whole wall time (opening it, processing, writing its outputs);
    ``fps (processing)`` is the speed while its frames were processed, as the progress bar
    showed it. Loading the models, once per run, is in the caption (when any were loaded:
    a run whose inputs were all complete loads none).
    """
    from rich.table import Table

    styles = {"done": "green", "partial": "yellow", "skipped": "cyan", "failed": "red", "interrupted": "red"}
    table = Table(title="fervid annotate")
    for column in ("input", "status", "frames", "faces", "time", "fps (processing)", "output / reason"):
        numeric = column in ("frames", "faces", "time", "fps (processing)")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for o in report.outcomes:
        status = o.status.value
        cells = ["", "", "", ""]
        if o.result is not None:
            r = o.result
            cells = [str(r.frames), str(r.faces), f"{r.seconds:.1f}s", f"{r.fps:.1f}"]
        note = str(o.outdir) if status in ("done", "partial") else ""
        if o.reason:
            note = f"{note} ({o.reason})" if note else o.reason
        table.add_row(escape(o.input.label), f"[{styles[status]}]{status}", *cells, escape(note))
    for item in report.not_started:
        table.add_row(escape(item.label), "[dim]not started", "", "", "", "", report.stopped or "")
    counts = {s: sum(o.status.value == s for o in report.outcomes) for s in styles}
    table.caption = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no inputs"
    if report.not_started:
        table.caption += f", {len(report.not_started)} not started"
    if counts["skipped"]:
        table.caption += " (--overwrite redoes skipped inputs)"
    if load_s is not None:
        table.caption += f" · models loaded in {load_s:.1f} s before the first input"
    return table


def agree(**kwargs: Any) -> None:
    """Compare a run's labels of one person with a human-coded ELAN tier: Cohen's kappa, per-class precision, recall
    and F1, a confusion matrix, frame and event agreement (docs/outputs.md, "Agreement with human coding").

    Writes <stem>.agreement.csv, <stem>.agreement.confusion.csv and <stem>.agreement.txt into the run's folder.
    """
    from fervid.agreement import agree as compare

    folder = kwargs.pop("folder")
    try:
        result = compare(folder, from_cli(AgreeOptions, kwargs))
    except (ValueError, OSError) as exc:
        raise fail(str(exc), 2) from None
    out = Console(soft_wrap=True)  # the text is laid out already
    out.print(escape(result.text.rstrip()), highlight=False)
    out.print(f"wrote {escape(', '.join(str(p) for p in result.outputs))}", highlight=False)


_AGREE_BEFORE = [
    inspect.Parameter("folder", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[
        Path, typer.Argument(metavar="FOLDER", help="One input's output folder (OUT/<stem>, written by fervid "
                             "annotate).", show_default=False)
    ]),
]  # fmt: skip


app.command(name="agree")(with_parameters(agree, _AGREE_BEFORE, [], parameters_of(AgreeOptions)))


@app.command()
def models() -> None:
    """List the shipped expression models: dataset, classes, test accuracy, calibration, training hardware."""
    import json

    from rich.table import Table

    from fervid.models.expression_weights import WEIGHTS_DIR, WeightsError, load_expression_model, shipped_models
    from fervid.options import ClassificationOptions

    card_path = WEIGHTS_DIR / "metrics.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    table = Table(title=f"Expression models ({WEIGHTS_DIR}; model card: README.md there)")
    for column in ("name", "dataset", "classes", "test accuracy", "test + TTA", "macro-F1", "training hardware"):
        table.add_column(column)
    default = ClassificationOptions().model
    for name in shipped_models():
        label = f"{name} [bold](default)[/]" if name == default else name
        try:
            cfg = load_expression_model(name).config
        except WeightsError as exc:
            table.add_row(label, f"[red]{escape(str(exc))}", "", "", "", "", "")
            continue
        figures = card.get(name, {})
        test, tta = figures.get("test", {}), figures.get("test_tta", {})
        dataset = cfg.info.get("dataset") or figures.get("dataset", "")
        table.add_row(
            label, escape(dataset), ", ".join(cfg.classes), _pct(test.get("accuracy")), _pct(tta.get("accuracy")),
            _score(test.get("macro_f1")), escape(str(cfg.info.get("hardware", ""))),
        )  # fmt: skip
    Console().print(table)
    if not shipped_models():
        Console().print(f"no shipped models in {escape(str(WEIGHTS_DIR))} (an incomplete install?)")


def _corpus_title(folder: Path, table: Any, complete: int) -> str:
    """``OUT: 4 inputs (1 without faces), 12 persons``: every complete input counts, with faces or not."""
    with_faces = table["input"].nunique()
    title = f"{folder}: {plural(complete, 'input')}"
    if complete > with_faces:
        title += f" ({complete - with_faces} without faces)"
    tracks = int(table["person_id"].isna().sum())
    title += f", {plural(len(table) - tracks, 'person')}"
    return title + (f", {plural(tracks, 'face track')} (run with --no-identity)" if tracks else "")


def _person(person_id: Any, name: Any) -> str:
    """``P2``, ``P2 Ada`` with a --people name, or a dash for a face track of a run without identity."""
    from pandas import isna

    if isna(person_id):
        return "-"
    return f"P{person_id}" + (f" {name}" if isinstance(name, str) and name else "")


def _share(value: float) -> str:
    """A share in percent; a dash when unknown (a run made before readable_share existed)."""
    return "-" if value != value else f"{100 * value:.0f} %"


def _dominant(row: Any) -> str:
    """``happy (0.81)``: the dominant label and its mean probability; ``- (never readable)`` without a trusted face."""
    if not isinstance(row.dominant_emotion, str):
        return "- (never readable)"
    return f"{row.dominant_emotion} ({getattr(row, f'mean_p_{row.dominant_emotion}', float('nan')):.2f})"


def _seen(first: float, last: float) -> str:
    """A face's time span, or a dash for photos (which have no time)."""
    return "-" if first != first else f"{first:.1f}-{last:.1f}"  # NaN != NaN


def _score(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "not evaluated"


def _pct(value: float | None) -> str:
    return f"{100 * value:.2f}%" if value is not None else "not evaluated"


#: ``fervid summarize --format``: annotate's option (:class:`fervid.options.OutputOptions`), defined there once.
if TYPE_CHECKING:
    TableFormat = str  # what the option holds (OutputOptions.format); the runtime Annotated adds Typer's help
else:
    TableFormat = option_annotation(OutputOptions, "format")


@app.command()
def summarize(
    folder: Annotated[
        Path,
        typer.Argument(
            metavar="FOLDER", help="A `fervid annotate -o` folder (one subfolder per input).", show_default=False
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Table path without suffix (default: FOLDER/corpus.summary); the other corpus "
            "tables go beside it (FOLDER/corpus.persons.csv...; -o study: study.persons.csv...).",
        ),
    ] = None,
    table_format: TableFormat = "csv",
    rows: Annotated[int, typer.Option(min=0, help="Rows to print (the file always has all of them).")] = 40,
) -> None:
    """One table over every finished input: a row per input and person (times, dominant emotion, mean probabilities).

    Beside it, the study's tables (see docs/outputs.md): corpus.persons (a row per input and person, the same
    numbers) and, when inputs were run with --events, corpus.events (every input's event rows); each also in
    tidy long form (corpus.persons.long, corpus.events.long: keys, measure, value) for R's lme4 and pandas.
    Also writes FOLDER/index.html, linking every input's report (incomplete inputs are listed as such).
    """

    from fervid.api import summarize as summarize_outputs
    from fervid.metadata import is_complete, run_records
    from fervid.options import table_suffixes

    try:
        suffixes = table_suffixes(table_format)  # annotate's check: an unknown name, Parquet without pyarrow
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = summarize_outputs(folder)
    except (ImportError, OSError, ValueError) as exc:
        raise fail(str(exc), 2) from None
    for note in caught:
        console.print(f"[yellow]warning:[/] {escape(str(note.message))}", highlight=False)
    complete = sum(is_complete(f, s) for f, s in run_records(folder))
    if not complete:
        console.print(f"[yellow]warning:[/] {escape(str(folder))}: no finished fervid results here; nothing written",
                      highlight=False)  # fmt: skip
        raise typer.Exit(1)
    base = output if output is not None else folder / "corpus.summary"
    if base.suffix in (".csv", ".parquet"):
        base = base.with_suffix("")
    written = _write_corpus(folder, table, base, suffixes)
    out = Console()
    out.print(_corpus_view(table, _corpus_title(folder, table, complete), rows))
    if len(table) > rows:
        out.print(f"... {len(table) - rows} more rows in the file")
    out.print(f"wrote {escape(', '.join(written))}", highlight=False)


def _write_corpus(folder: Path, table: Any, base: Path, suffixes: tuple[str, ...]) -> list[str]:
    """The corpus summary at ``base`` in each format, the study's tables beside it, their codebook, and
    ``folder``'s index.html; the paths written."""
    from fervid.corpus import LONG_FLOAT_FORMAT, corpus_tables, table_paths, write_corpus_codebook
    from fervid.io.tables import write_table
    from fervid.report.index import write_index

    written = []
    for suffix in suffixes:
        path = base.with_name(base.name + suffix)
        write_table(table, path)
        written.append(str(path))
    columns = {"summary": list(table.columns)}
    for name, corpus_table in corpus_tables(folder, table).items():  # persons and events, wide and long
        digits = LONG_FLOAT_FORMAT if name.endswith(".long") else "%.6g"
        for path in table_paths(base, name, suffixes):
            write_table(corpus_table, path, digits)
            written.append(str(path))
        columns[name] = list(corpus_table.columns)
    written.append(str(write_corpus_codebook(columns, base)))  # what each column of these tables means
    written.append(str(write_index(folder)))  # every input's report; incomplete runs listed as such
    return written


def _corpus_view(table: Any, title: str, rows: int) -> Table:
    """The first ``rows`` rows of the corpus summary as ``fervid summarize`` prints them."""
    import pandas as pd
    from rich.table import Table

    shown = Table(title=title)
    shown.caption = ("readable: the share of the frames whose face the conclusions rest on (readable, p_correct "
                     "at or above --min-p-correct); dominant: the most frequent top label over those faces; its mean "
                     "p: that class's mean probability")  # fmt: skip
    for column in ("input", "person", "tracks", "seen (s)", "frames", "readable", "dominant (its mean p)"):
        numeric = column in ("tracks", "seen (s)", "frames", "readable")
        shown.add_column(column, justify="right" if numeric else "left", overflow="fold", no_wrap=column == "input")
    names = table["person"] if "person" in table else pd.Series("", index=table.index)
    for row, name in zip(table.head(rows).itertuples(index=False), names):
        shown.add_row(
            escape(str(row.input)), escape(_person(row.person_id, name)), str(row.face_ids),
            _seen(row.first_time_s, row.last_time_s), str(row.frames), _share(row.readable_share), _dominant(row),
        )  # fmt: skip
    return shown


def _edit_help(name: str) -> dict[str, Any]:
    """Help and metavar of a ``fervid persons`` option, from where the edits are defined."""
    from fervid.identity.edits import edit_option

    spec = edit_option(name)
    return {"help": spec.help, "metavar": spec.metavar, "show_default": False}


@app.command()
def persons(
    targets: Annotated[
        list[str],
        typer.Argument(metavar="FOLDER", help="One input's output folder: OUT/<stem>.", show_default=False),
    ],
    merge: Annotated[list[str] | None, typer.Option("--merge", **_edit_help("merge"))] = None,
    name: Annotated[list[str] | None, typer.Option("--name", **_edit_help("names"))] = None,
    drop: Annotated[list[str] | None, typer.Option("--drop", **_edit_help("drop"))] = None,
) -> None:
    """Merge, name or drop persons after a run, and write every output of the input again (no model runs).

    Tables, report, gallery, moments, ELAN file, timeline plot and the annotated video (drawn again from the
    input) all change together, or nothing changes. run.json records the edit. See docs/identity.md.
    """
    from fervid.identity.edits import EditError, PersonEdits, is_person_id
    from fervid.identity.rewrite import edit_persons
    from fervid.io.errors import InputError

    # `--merge P3 P5`: an option takes one value, so P5 arrives here beside the folder; the edits pair it up
    loose = [t for t in targets if is_person_id(t) and not Path(t).is_dir()]
    folders = [Path(t) for t in targets if t not in loose]
    if len(folders) != 1:
        given = f", not {len(folders)}: {' '.join(map(str, folders))}" if folders else ""
        raise fail(f"give one output folder (OUT/<stem>){given}", 2)
    folder = folders[0]
    bar = _EditProgress()
    try:
        edits = PersonEdits.from_cli(merge or [], name or [], drop or [], loose)
        with bar:
            outcome = edit_persons(folder, edits, progress=bar.advance, on_start=bar.start)
    except (EditError, InputError, OSError) as exc:
        raise fail(str(exc), 2 if isinstance(exc, EditError) else 1) from None
    except Exception as exc:  # noqa: BLE001 - anything else: one line too, and the outputs are as they were
        raise fail(f"{folder}: {type(exc).__name__}: {exc} (nothing was changed)") from None
    say = Console()
    say.print(f"{escape(str(outcome.folder))}: {escape(edits.describe())}", highlight=False)
    replayed = f", {outcome.frames_replayed} frames read again from the input" if outcome.frames_replayed else ""
    say.print(f"wrote {plural(len(outcome.written), 'output')}{replayed}", highlight=False)
    if outcome.removed:
        say.print(f"no longer written: {escape(', '.join(outcome.removed))}", highlight=False)
    if outcome.carried:
        say.print(f"kept as they were (not fervid's): {escape(', '.join(outcome.carried))}", highlight=False)


class _EditProgress:
    """A transient bar over the frames ``fervid persons`` replays (none without a terminal, as annotate's)."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _EditProgress:
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = (TextColumn("[bold]drawing again"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"))
            self._progress = Progress(*columns, TimeRemainingColumn(), console=console, transient=True)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, total: int) -> None:
        if self._progress is not None and total:
            self._task = self._progress.add_task("persons", total=total)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)


if __name__ == "__main__":
    app()
