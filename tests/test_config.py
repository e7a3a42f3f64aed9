"""The option declarations in config.py: one check, one message format, for the CLI and Python callers."""

from __future__ import annotations

import pytest
from conftest import make_folder

from cyclegan import config
from cyclegan.config import EvalConfig, StylizeConfig, TrainConfig, TranslateConfig, validate, vgg_min_size
from cyclegan.errors import UserError

CONFIGS = (TrainConfig, TranslateConfig, EvalConfig, StylizeConfig)


@pytest.mark.parametrize("cls", CONFIGS)
def test_defaults_are_valid_and_every_option_has_help(cls):
    validate(cls(styles=["s.png"]) if cls is StylizeConfig else cls())  # stylize's arguments name a style
    for f, _ in config.option_fields(cls):
        assert f.metadata["help"].strip(), f.name


@pytest.mark.parametrize("cfg, message", [
    (TrainConfig(load_size=0), "--load-size 0: must be at least 1"),
    (TrainConfig(norm="foo"), "--norm foo: choose one of instance, batch, none"),
    (TrainConfig(epochs=-5), "--epochs -5: must be at least 0"),
    (TrainConfig(epochs_decay=-5, epochs=10), "--epochs-decay -5: must be at least 0"),
    (TrainConfig(epochs=0, epochs_decay=0), "--epochs 0 --epochs-decay 0: train for at least one epoch"),
    (TrainConfig(load_size=200), "--load-size 200: must be at least --image-size (256) with --preprocess "),
    (TrainConfig(epochs="5"), "--epochs 5: must be an integer"),
    (TrainConfig(workers=True), "--workers True: must be an integer"),
    (TrainConfig(domain_a=None), "--domainA None: must be given"),
    (TrainConfig(device="cuda:x"), "--device cuda:x: choose auto, cpu, cuda, cuda:N or mps"),
    (TrainConfig(lr=0), "--lr 0: must be more than 0"),
    (TrainConfig(upsample="bilinear"), "--upsample bilinear: choose one of transposed, resize"),
    (TrainConfig(net_g="unet_256", upsample="resize"), "--upsample resize: is for the ResNet generators"),
    (TranslateConfig(quality=0), "--quality 0: must be from 1 to 100"),
    (TranslateConfig(resize=0), "--resize 0: must be at least 1"),
    (EvalConfig(baseline="fid"), "--baseline fid: choose one of nst"),
    (EvalConfig(json_path=3), "--json 3: must be a str"),
    (StylizeConfig(style_layers=[]), "--style-layers: name at least one layer"),
    (StylizeConfig(style_layers=["conv9_1"]), "--style-layers conv9_1: unknown layer(s) conv9_1; choose from conv1_1"),
    (StylizeConfig(style_blend=[1, "x"]), "--style-blend 1,x: must be a list of float values"),
    (StylizeConfig(styles=["s.png"], size=15), "--size 15: must be at least 16 for the layers chosen"),
    (StylizeConfig(styles=["a.png", "b.png"], style_blend=[1.0]), "--style-blend has 1 weights for 2 style images"),
    (StylizeConfig(styles=["a.png"], style_blend=[0.0]), "--style-blend weights must be non-negative and not all"),
    (StylizeConfig(), "give at least one style image"),
])
def test_one_message_names_the_option_and_value(cfg, message):
    with pytest.raises(UserError) as e:
        validate(cfg)
    assert str(e.value).startswith(message), str(e.value)


def test_cross_option_rules_apply_only_where_they_mean_something():
    validate(TrainConfig(load_size=100, image_size=128, preprocess="crop"))  # crop: no resizing first
    validate(TrainConfig(epochs=0, epochs_decay=5))
    validate(TrainConfig(max_steps=None, test_dir=None))
    validate(StylizeConfig(styles=["s.png"], size=8, content_layers=["conv2_2"], style_layers=["conv1_1", "conv2_1"]))


def test_vgg_min_size_leaves_the_deepest_layer_one_pixel():
    assert vgg_min_size(StylizeConfig().style_layers) == 16  # conv5_1: after 4 poolings
    assert vgg_min_size(["conv1_1"]) == 1
    assert vgg_min_size(["conv4_2", "pool1"]) == 8
    assert vgg_min_size(["pool5"]) == 32
    assert vgg_min_size(["nonsense"]) == 1  # left to config.vgg_layers, which names unknown layers


def test_choices_are_the_ones_the_code_implements():
    from cyclegan import data, losses, runtime, tracking, translate
    from cyclegan.models import generator, layers
    from cyclegan.style import gatys, vgg

    hints = {cls: dict((f.name, hint) for f, hint in config.option_fields(cls)) for cls in CONFIGS}
    assert config.choices(hints[TrainConfig]["gan_mode"]) == losses.GAN_MODES
    assert config.choices(hints[TrainConfig]["norm"]) == layers.NORMS
    assert config.choices(hints[TrainConfig]["init_type"]) == layers.INIT_TYPES
    assert config.choices(hints[TrainConfig]["upsample"]) == generator.UPSAMPLES
    assert config.choices(hints[TrainConfig]["preprocess"]) == data.PREPROCESS_MODES
    assert config.choices(hints[TrainConfig]["precision"]) == ("auto", *runtime.PRECISIONS)
    assert config.choices(hints[TrainConfig]["wandb_mode"]) == tracking.WANDB_MODES
    assert set(config.choices(hints[TranslateConfig]["format"])) == set(translate.FORMATS)
    assert config.choices(hints[StylizeConfig]["optimizer"]) == gatys.OPTIMIZERS
    assert config.choices(hints[StylizeConfig]["pooling"]) == vgg.POOLINGS
    assert config.choices(hints[StylizeConfig]["init"]) == gatys.INITS


def test_list_options_parse_commas_and_spaces():
    assert config.parse_list("0.7,0.3", float, "--style-blend") == [0.7, 0.3]
    assert config.parse_list("conv1_1, conv2_1 conv3_1", str, "--style-layers") == ["conv1_1", "conv2_1", "conv3_1"]
    assert config.parse_list(None, float, "--style-blend") is None
    with pytest.raises(UserError, match="--style-blend 1,x: give float values separated by commas"):
        config.parse_list("1,x", float, "--style-blend")


def test_json_round_trip_keeps_every_field(tmp_path):
    cfg = TrainConfig(domain_a="a", epochs=3, max_steps=5, flip=False)
    assert config.from_dict(TrainConfig, {**config.to_dict(cfg), "from_a_newer_version": 1}) == cfg
    assert StylizeConfig().style_layers is not StylizeConfig().style_layers


def test_python_callers_are_checked_before_any_work(tmp_path):
    from cyclegan.evaluate import evaluate
    from cyclegan.summary import Summary
    from cyclegan.translate import plan

    src = make_folder(tmp_path / "in", 1)
    with pytest.raises(UserError, match="^--writers -1: must be at least 0$"):
        plan(TranslateConfig(input=str(src), output=str(tmp_path / "out"), writers=-1), Summary())
    with pytest.raises(UserError, match="^--steps 0: must be at least 1$"):
        validate(StylizeConfig(styles=["s.png"], steps=0))
    with pytest.raises(UserError, match="^--max-images 1: must be at least 2$"):
        evaluate(EvalConfig(target=str(tmp_path / "no-run"), max_images=1))
    with pytest.raises(UserError, match="^--batch-size 0: must be at least 1$"):  # two folders, too
        evaluate(EvalConfig(target=str(src), real_dir=str(src), batch_size=0))
    with pytest.raises(UserError, match="^--precision fp8: choose one of auto, fp32, bf16, fp16$"):
        from cyclegan.runtime import resolve_precision

        resolve_precision("fp8", None)
    with pytest.raises(UserError, match="^--wandb-mode loud: choose one of auto, online, offline, disabled$"):
        from cyclegan.tracking import resolve_wandb_mode

        resolve_wandb_mode("loud")


@pytest.mark.parametrize("cfg, flag", [
    (StylizeConfig(styles=["s.png"], method="adain", alpha=float("nan")), "--alpha nan"),
    (StylizeConfig(styles=["s.png"], style_weight=float("inf")), "--style-weight inf"),
    (StylizeConfig(styles=["s.png"], histogram_weight=float("inf")), "--histogram-weight inf"),
    (StylizeConfig(styles=["a.png", "b.png"], style_blend=[float("nan"), 1.0]), "--style-blend nan,1.0"),
    (config.SmoothConfig(strength=float("nan")), "--strength nan"),
    (config.ExportConfig(tolerance=float("nan")), "--tolerance nan"),
    (TranslateConfig(strength=float("nan")), "--strength nan"),
    (TrainConfig(lambda_cycle=float("-inf")), "--lambda-cycle -inf"),
])
def test_non_finite_numbers_are_refused(cfg, flag):
    """nan passes every bound (each comparison is False): it gave black images with exit status 0."""
    with pytest.raises(UserError, match=f"^{flag}: must be a finite number$"):
        validate(cfg)
