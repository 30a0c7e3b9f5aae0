"""The ``fervid`` command line: thin Typer commands that build a config and call the library."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fervid import __version__

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
    data: Annotated[Path, typer.Option(help="Training split: FER2013 class folders (dir/.zip), fer2013.csv, or FER+.")],
    val: Annotated[Path, typer.Option(help="Validation split, same layout; used for model selection only.")],
    out: Annotated[Path, typer.Option(help="Where to write the weights, e.g. weights/ferplus.pt.")],
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (one-cycle schedule).")] = 40,
    batch_size: Annotated[int, typer.Option(min=8, help="Batch size.")] = 128,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (SGD, Nesterov).")] = 0.1,
    widths: Annotated[str, typer.Option(help="Channel widths: stem, then one per stage.")] = "32,64,128,256",
    blocks: Annotated[str, typer.Option(help="Residual blocks per stage.")] = "1,1,1",
    class_weight_power: Annotated[float, typer.Option(help="Loss weight = class frequency ** -power.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    threads: Annotated[int, typer.Option(min=0, help="CPU threads for torch (0: torch's default).")] = 0,
) -> None:
    """Train an expression model from scratch; the best epoch on --val is kept."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fervid.train.data import DatasetLayoutError, load_dataset
    from fervid.train.trainer import EpochLog, TrainConfig, resolve_device
    from fervid.train.trainer import train as run_training

    if threads:
        torch.set_num_threads(threads)
    try:
        dev = resolve_device(device)
        train_data = load_dataset(data, "train")
        val_data = load_dataset(val, "val")
        cfg = TrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, class_weight_power=class_weight_power,
            widths=tuple(int(w) for w in widths.split(",")), blocks=tuple(int(b) for b in blocks.split(",")),
        )  # fmt: skip
    except (DatasetLayoutError, ValueError, OSError) as exc:
        raise fail(str(exc), 2) from None
    console.print(
        f"train {len(train_data)} images, val {len(val_data)}, classes {', '.join(train_data.classes)}, device {dev}"
    )
    command = "fervid " + " ".join(shlex.quote(a) for a in sys.argv[1:])
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

    from fervid.models.expression_weights import WeightsError, load_weights
    from fervid.train.data import DatasetLayoutError, load_dataset
    from fervid.train.evaluate import Evaluation
    from fervid.train.predict import predict_probs
    from fervid.train.trainer import resolve_device

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


if __name__ == "__main__":
    app()
