"""Choose the expression models' photometric normalisation by measurement, on validation data only.

One network, three ways of preparing its input: the FER2013 model shipped before this choice
(``weights/fer2013.pt`` at the commit that introduced this script) was trained on FER2013's
per-image equalised faces, so its weights fit an equalised input, and each normalisation is
scored on the FER2013 validation split, clean and under the robustness benchmark's conditions
(low light, blur, small faces...). Clean validation images are already equalised, so every
normalisation starts from the same clean accuracy; what differs is how much survives a
degraded face. Prints a markdown table for the model card.

    python scripts/compare_photometric.py --shared ../shared --model weights/fer2013.pt
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

from fervid.models.expression_input import PHOTOMETRIC
from fervid.models.expression_weights import load_expression_model
from fervid.train.data import load_dataset
from fervid.train.evaluate import Evaluation
from fervid.train.predict import predict_probs


def _robustness():
    path = Path(__file__).parents[1] / "benchmarks" / "robustness.py"
    spec = importlib.util.spec_from_file_location("robustness", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["robustness"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--model", default="fer2013", help="a model trained on equalised faces")
    args = parser.parse_args()
    data = load_dataset(args.shared / "data/fer2013/validation.zip", "val")
    versions = _robustness().degraded_versions(data.images, seed=0)
    loaded = load_expression_model(args.model, verify=False)
    net, cfg = loaded.model, loaded.config
    print("| normalisation | " + " | ".join(versions) + " | mean of conditions |")
    print("|---|" + "---|" * (len(versions) + 1))
    for method in PHOTOMETRIC:
        # standardize yields zero mean, unit variance: the moments the equalised input had after mean/std
        config = replace(cfg, photometric=method, **({"mean": 0.0, "std": 1.0} if method == "standardize" else {}))
        scores = []
        for images in versions.values():
            probs = predict_probs(net, config, images, "cpu")
            scores.append(Evaluation.from_probs(data.labels, probs, cfg.classes).accuracy)
        mean = sum(scores[1:]) / len(scores[1:])
        print(f"| {method} | " + " | ".join(f"{s:.2%}" for s in scores) + f" | {mean:.2%} |", flush=True)


if __name__ == "__main__":
    main()
