"""How the defaults of ``stylize`` (Gatys) were chosen: layout kept, style taken and colours moved, measured
on real photo/painting pairs for a range of ``--style-weight`` and ``--photoreal-weight`` values.

    python scripts/gatys_weights.py                                       # the README's table (CPU: ~1 h)
    python scripts/gatys_weights.py --pairs yosemite --sizes 96 --steps 30 --style-weights 0.5   # minutes

For each output, one line of JSON:
- ``layout``: the output's ``conv4_2`` distance to its photo over its distance to the style image (below 1:
  the photo's layout is kept);
- ``style``: the relative Gram distance to the style image over the style layers (``style_photo``: the
  photo's own, the starting point);
- ``colour``: the distance of the output's mean colour to the style image's over the photo's (1: the photo's
  colours; 0: the reference's), which ``--photoreal`` runs are read by.

Needs ``../shared`` (or ``CYCLEGAN_SHARED``): its VGG19 and two pairs of its CycleGAN subsets. Outputs are
written to ``--out`` to be looked at. Run from the repository root after ``pip install -e .``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cyclegan.config import StylizeConfig
from cyclegan.style import gatys, vgg
from cyclegan.style.images import read_image, resize_long_side, to_tensor

SHARED = Path(os.environ.get("CYCLEGAN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
PAIRS = {  # (photo, style image), inside SHARED
    "yosemite": ("datasets/summer2winter_yosemite_mini/testA/inputA_0_6.jpg",
                 "datasets/summer2winter_yosemite_mini/testB/inputB_0_56.jpg"),
    "monet": ("datasets/monet2photo_mini/testB/2014-09-14 14_27_52.jpg", "datasets/monet2photo_mini/trainA/00010.jpg"),
}
CONTENT, STYLE = StylizeConfig().content_layers, StylizeConfig().style_layers  # the defaults


def measure(extract: vgg.VGGFeatures, out: torch.Tensor, photo: torch.Tensor, style: torch.Tensor) -> dict:
    """``layout``, ``style``, ``style_photo`` and ``colour`` as the module's docstring defines them."""
    with torch.no_grad():
        fo, fp = extract(out), extract(photo)
        fs = extract(F.interpolate(style, size=photo.shape[-2:], mode="bilinear"))
        grams = {n: vgg.gram_matrix(f) for n, f in extract(style).items()}
    layer = CONTENT[0]
    layout = vgg.relative_mse(fo[layer], fp[layer]) / vgg.relative_mse(fo[layer], fs[layer])
    gram_distance = lambda f: sum(vgg.relative_mse(vgg.gram_matrix(f[n]), grams[n]).item() for n in STYLE)  # noqa: E731
    mean = lambda x: x.mean((2, 3))  # noqa: E731
    colour = (mean(out) - mean(style)).norm() / (mean(photo) - mean(style)).norm()
    return {"layout": round(layout.item(), 3), "style": round(gram_distance(fo), 3),
            "style_photo": round(gram_distance(fp), 3), "colour": round(colour.item(), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--style-weights", nargs="+", type=float, default=[0.4, 0.5, 0.6, 1.0])
    parser.add_argument("--photoreal-weights", nargs="*", type=float, default=[1e-3, 3e-3, 1e-2],
                        help="--photoreal runs (at the first size and the default style weight, yosemite only)")
    parser.add_argument("--out", type=Path, default=Path("gatys_weights"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    features = vgg.load_vgg19(SHARED / "weights/vgg19_features.pth", [*CONTENT, *STYLE])
    extract = vgg.VGGFeatures(features, [*CONTENT, *STYLE])
    runs = [(pair, size, {"style_weight": w}) for pair in args.pairs for size in args.sizes for w in args.style_weights]
    runs += [("yosemite", args.sizes[0], {"photoreal": True, "photoreal_weight": w})
             for w in args.photoreal_weights if "yosemite" in args.pairs]
    for pair, size, options in runs:
        photo_path, style_path = (str(SHARED / p) for p in PAIRS[pair])
        cfg = StylizeConfig(content=photo_path, styles=[style_path], size=size, steps=args.steps, **options)
        start = time.perf_counter()
        image = gatys.Stylizer(cfg, torch.device("cpu"), features=features)(read_image(photo_path, "photo"))[0]
        name = f"{pair}_{size}_" + "_".join(f"{k}{v}" for k, v in options.items())
        image.save(args.out / f"{name}.png")
        photo, style = (to_tensor(resize_long_side(read_image(p, "image"), size)) for p in (photo_path, style_path))
        figures = measure(extract, to_tensor(image), photo, style)
        print(json.dumps({"pair": pair, "size": size, **options, **figures,
                          "seconds": round(time.perf_counter() - start)}), flush=True)


if __name__ == "__main__":
    main()
