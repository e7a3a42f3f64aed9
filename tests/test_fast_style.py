"""Fast neural style (Johnson et al.) and conditional instance norm: the network, train-style, translate."""

import copy
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from cyclegan.checkpoint import NETWORK_KEY, load_state
from cyclegan.cli import app
from cyclegan.config import StyleTrainConfig
from cyclegan.networks import load_network
from cyclegan.style import fast, images, vgg
from cyclegan.translate import Translator
from tests.conftest import REPO, make_folder, shared_path, write_image
from tests.fileserver import FileServer

runner = CliRunner()
train_style = fast.FastStyleRun.launch


# -- pytorch/examples' fast_neural_style TransformerNet, as published, for reference ---------------------


class RefConvLayer(torch.nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride):
        super().__init__()
        self.reflection_pad = torch.nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class RefResidualBlock(torch.nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = RefConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = torch.nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = RefConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = torch.nn.InstanceNorm2d(channels, affine=True)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class RefUpsampleConvLayer(torch.nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, upsample=None):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = torch.nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        if self.upsample:
            x = torch.nn.functional.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class RefTransformerNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = RefConvLayer(3, 32, kernel_size=9, stride=1)
        self.in1 = torch.nn.InstanceNorm2d(32, affine=True)
        self.conv2 = RefConvLayer(32, 64, kernel_size=3, stride=2)
        self.in2 = torch.nn.InstanceNorm2d(64, affine=True)
        self.conv3 = RefConvLayer(64, 128, kernel_size=3, stride=2)
        self.in3 = torch.nn.InstanceNorm2d(128, affine=True)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (RefResidualBlock(128) for _ in range(5))
        self.deconv1 = RefUpsampleConvLayer(128, 64, kernel_size=3, stride=1, upsample=2)
        self.in4 = torch.nn.InstanceNorm2d(64, affine=True)
        self.deconv2 = RefUpsampleConvLayer(64, 32, kernel_size=3, stride=1, upsample=2)
        self.in5 = torch.nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = RefConvLayer(32, 3, kernel_size=9, stride=1)
        self.relu = torch.nn.ReLU()

    def forward(self, X):
        y = self.relu(self.in1(self.conv1(X)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def published_layout_file(path, seed=0):
    """A .pth in pytorch/examples' layout: random weights (affine ones too), and the stale running-stat
    keys that old PyTorch saved for every instance norm."""
    torch.manual_seed(seed)
    ref = RefTransformerNet()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if ".in" in f".{name}" and name.rsplit(".", 2)[-2].startswith("in"):
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
    state = dict(ref.state_dict())
    for name, module in ref.named_modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.randn(module.num_features)
            state[f"{name}.running_var"] = torch.rand(module.num_features) + 0.5
    torch.save(state, path)
    return ref.eval()


def read_rgb(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def translate(*args, ok=True):
    result = runner.invoke(app, ["translate", *map(str, args), "--device", "cpu", "--workers", "0",
                                 "--no-progress"])
    if ok:
        assert result.exit_code == 0, result.output
    return result


# -- the published layout ---------------------------------------------------------------------------------


def test_published_layout_loads_with_no_flags_and_matches_its_forward(tmp_path):
    ref = published_layout_file(tmp_path / "mosaic.pth")
    photos = tmp_path / "in"
    write_image(photos / "a.png", size=(32, 24), seed=1)
    write_image(photos / "b.png", size=(40, 28), seed=2)
    translate(tmp_path / "mosaic.pth", photos, tmp_path / "out", "--precision", "fp32")
    for name in ("a.png", "b.png"):
        x = torch.from_numpy(read_rgb(photos / name)).permute(2, 0, 1)[None].float()
        with torch.no_grad():
            want = ref(x).clamp(0, 255).round()[0].permute(1, 2, 0).numpy()
        got = read_rgb(tmp_path / "out" / name)
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1  # rounding of the [-1, 1] round trip


def test_any_size_keeps_its_size(tmp_path):
    published_layout_file(tmp_path / "candy.pth")
    write_image(tmp_path / "odd.png", size=(33, 21), seed=3)
    translate(tmp_path / "candy.pth", tmp_path / "odd.png", tmp_path / "odd_out.png")
    assert Image.open(tmp_path / "odd_out.png").size == (33, 21)


def test_one_style_state_dict_is_the_published_layout():
    ours = set(fast.TransformerNet(1).state_dict())
    theirs = {k for k in RefTransformerNet().state_dict() if not fast.STALE_KEY.search(k)}
    assert ours == theirs


def test_strength_zero_gives_the_input_and_preserve_color_is_stylize_s(tmp_path):
    published_layout_file(tmp_path / "net.pth")
    write_image(tmp_path / "in" / "a.png", size=(32, 32), seed=4)
    translate(tmp_path / "net.pth", tmp_path / "in", tmp_path / "s0", "--strength", "0")
    assert np.array_equal(read_rgb(tmp_path / "s0" / "a.png"), read_rgb(tmp_path / "in" / "a.png"))
    translate(tmp_path / "net.pth", tmp_path / "in", tmp_path / "full")
    translate(tmp_path / "net.pth", tmp_path / "in", tmp_path / "color", "--preserve-color")
    want = np.asarray(images.preserve_color(Image.open(tmp_path / "full" / "a.png"),
                                         Image.open(tmp_path / "in" / "a.png"))).astype(np.int16)
    got = read_rgb(tmp_path / "color" / "a.png")
    assert np.abs(got - want).mean() < 1.0  # PIL rounds its YCbCr planes to 8 bits; we do not
    assert np.abs(got - read_rgb(tmp_path / "full" / "a.png")).mean() > 3  # the colours did change


def test_strength_and_preserve_color_apply_to_cyclegan_generators(tmp_path):
    from cyclegan.checkpoint import save_network
    from cyclegan.models import GeneratorSpec, build_generator

    spec = GeneratorSpec.from_name("resnet_6blocks", ngf=8)
    save_network(tmp_path / "g.safetensors", build_generator(spec), spec)
    write_image(tmp_path / "in" / "a.png", size=(32, 32), seed=5)
    translate(tmp_path / "g.safetensors", tmp_path / "in", tmp_path / "s0", "--strength", "0")
    assert np.array_equal(read_rgb(tmp_path / "s0" / "a.png"), read_rgb(tmp_path / "in" / "a.png"))
    result = translate(tmp_path / "g.safetensors", tmp_path / "in", tmp_path / "x", "--style-mix", "0:1", ok=False)
    assert result.exit_code == 2 and "style network" in result.output


# -- train-style ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vgg(tmp_path_factory):
    """Random VGG19 weights up to the deepest loss layer (float16, as the shared file)."""
    torch.manual_seed(0)
    depth = max(vgg.LAYER_INDEX[n] for n in fast.STYLE_LAYERS) + 1
    path = tmp_path_factory.mktemp("vgg") / "vgg.pth"
    torch.save({f"features.{k}": v.half() for k, v in vgg.vgg19_features()[:depth].state_dict().items()}, path)
    return path


def test_the_perceptual_loss_is_the_same_for_any_scale_of_vgg_activations():
    """VGG19 files differ by orders of magnitude in activation scale (torchvision's, Caffe's): the relative
    terms make the default weights hold for all of them. Dividing the first weights and every bias by k
    divides every ReLU output by k; raw terms would shrink by k² (content) and k⁴ (style)."""
    torch.manual_seed(0)
    net = vgg.vgg19_features(widths=(8, 16, 16, 16, 16))
    for m in net:
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.uniform_(m.bias, -0.1, 0.1)
    scaled = copy.deepcopy(net)
    k = 200.0
    with torch.no_grad():
        scaled[0].weight.div_(k)
        for m in scaled:
            if isinstance(m, torch.nn.Conv2d):
                m.bias.div_(k)
    style = torch.rand(1, 3, 48, 40)
    x, y = torch.rand(2, 3, 32, 32) * 255, torch.rand(2, 3, 32, 32) * 255
    weights = {"content": 1.0, "style": 1.0, "tv": 0.0}
    a = fast.PerceptualLoss(net, [style], weights)(y, x, 0)
    b = fast.PerceptualLoss(scaled, [style], weights)(y, x, 0)
    assert a["content"] > 0.01 and a["style"] > 0.01
    for term in ("content", "style"):
        torch.testing.assert_close(b[term], a[term], rtol=1e-4, atol=0)


@pytest.fixture
def data(tmp_path):
    photos = make_folder(tmp_path / "photos", 4, size=(40, 36))
    styles = [write_image(tmp_path / "styles" / f"{n}.png", size=(36, 36), seed=10 + i)
              for i, n in enumerate(("waves", "stars"))]
    return photos, styles


def style_cfg(tmp_path, photos, styles, vgg, **kw):
    base = dict(styles=[str(s) for s in styles], content=str(photos), checkpoints_dir=str(tmp_path / "runs"),
                image_size=32, batch_size=2, steps=6, vgg_weights=str(vgg), workers=0, device="cpu",
                precision="fp32", wandb_mode="disabled", sample_every=100, save_every=100)
    return StyleTrainConfig(**{**base, **kw})


def test_train_style_run_folder_and_exact_resume(tmp_path, data, tiny_vgg):
    photos, styles = data
    full = train_style(style_cfg(tmp_path, photos, styles[:1], tiny_vgg, name="full"))
    assert full.step == 6 and not full.interrupted
    run = tmp_path / "runs" / "full"
    for name in ("config.json", "latest.pt", "style.safetensors"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000001.png", "step_0000006.png"]
    train_style(style_cfg(tmp_path, photos, styles[:1], tiny_vgg, name="split", max_steps=3))
    assert load_state(tmp_path / "runs" / "split" / "latest.pt")["step"] == 3
    # a resumed run keeps its --max-steps: the rest of the run is asked for by a larger one
    train_style(StyleTrainConfig(name="split", checkpoints_dir=str(tmp_path / "runs"), resume=True, workers=0,
                                device="cpu", precision="fp32", wandb_mode="disabled", max_steps=6))
    a, b = load_file(run / "style.safetensors"), load_file(tmp_path / "runs" / "split" / "style.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.conv2d.weight"], fast.TransformerNet(1).state_dict()["conv1.conv2d.weight"])


def test_cin_styles_by_index_name_and_mix(tmp_path, data, tiny_vgg):
    photos, styles = data
    train_style(style_cfg(tmp_path, photos, styles, tiny_vgg, name="two", steps=4))
    run = tmp_path / "runs" / "two"
    assert load_file(run / "style.safetensors")["in1.weight"].shape == (2, 32)
    out = {}
    for key, flags in {"0": ["--style", "0"], "1": ["--style", "1"], "name": ["--style", "stars"],
                       "mix": ["--style-mix", "0:1"], "half": ["--style-mix", "waves:1,stars:1"]}.items():
        translate(run, photos, tmp_path / key, *flags)
        out[key] = read_rgb(tmp_path / key / "img_000.png")
    assert np.abs(out["0"] - out["1"]).max() > 0
    assert np.array_equal(out["mix"], out["0"])
    assert np.array_equal(out["name"], out["1"])
    assert not np.array_equal(out["half"], out["0"]) and not np.array_equal(out["half"], out["1"])
    result = translate(run, photos, tmp_path / "bad", "--style", "7", ok=False)
    assert result.exit_code == 2 and "waves" in result.output


def test_add_style_trains_only_the_new_style_and_the_grown_run_resumes(tmp_path, data, tiny_vgg):
    photos, styles = data
    sky = write_image(tmp_path / "styles" / "sky.png", size=(36, 36), seed=20)
    train_style(style_cfg(tmp_path, photos, styles, tiny_vgg, name="grow", steps=4))
    run = tmp_path / "runs" / "grow"
    before = load_file(run / "style.safetensors")
    for key in ("0", "1"):
        translate(run, photos, tmp_path / f"before_{key}", "--style", key)

    add = dict(name="grow", checkpoints_dir=str(tmp_path / "runs"), resume=True, add_style=True, styles=[str(sky)],
               steps=4, workers=0, device="cpu", precision="fp32", wandb_mode="disabled")
    result = train_style(StyleTrainConfig(**add, max_steps=6))  # stops half-way: the resume below goes on
    assert result.step == 6
    state = load_state(run / "latest.pt")
    assert state["step"] == 6 and state["trainer"]["net"]["in1.weight"].shape == (3, 32)
    # only the (γ, β) tables are optimised
    assert len(state["trainer"]["opt"]["param_groups"][0]["params"]) == len(
        [k for k in before if fast.NORM_PARAM.search(k)])
    train_style(StyleTrainConfig(name="grow", checkpoints_dir=str(tmp_path / "runs"), resume=True, workers=0,
                                device="cpu", precision="fp32", wandb_mode="disabled", max_steps=8))
    assert load_state(run / "latest.pt")["step"] == 8
    after = load_file(run / "style.safetensors")
    for k, v in before.items():
        if fast.NORM_PARAM.search(k):
            assert torch.equal(after[k][:2], v), k  # the trained styles' rows, bit for bit
        else:
            assert torch.equal(after[k], v), k  # every shared parameter is frozen
    meta = json.loads(safe_open(str(run / "style.safetensors"), "pt").metadata()[NETWORK_KEY])
    assert meta == {"kind": "fast_style", "n_styles": 3, "styles": ["waves", "stars", "sky"], "arch": "full"}
    for key in ("0", "1"):
        translate(run, photos, tmp_path / f"after_{key}", "--style", key)
        assert np.array_equal(read_rgb(tmp_path / f"after_{key}" / "img_000.png"),
                              read_rgb(tmp_path / f"before_{key}" / "img_000.png"))
    translate(run, photos, tmp_path / "sky", "--style", "sky")
    sky_out = read_rgb(tmp_path / "sky" / "img_000.png")
    assert not any(np.array_equal(sky_out, read_rgb(tmp_path / f"after_{k}" / "img_000.png")) for k in "01")


def test_add_style_starts_from_the_nearest_style_or_the_mean(tmp_path, data, tiny_vgg, caplog):
    caplog.set_level("INFO")
    photos, styles = data
    train_style(style_cfg(tmp_path, photos, styles, tiny_vgg, name="near", steps=2))
    run = tmp_path / "runs" / "near"
    trained = load_file(run / "style.safetensors")["in1.weight"]
    copy = tmp_path / "stars_again.png"
    copy.write_bytes(styles[1].read_bytes())  # the same picture as "stars": nearest to it, at distance 0
    add = dict(name="near", checkpoints_dir=str(tmp_path / "runs"), resume=True, add_style=True,
               styles=[str(copy)], steps=1, max_steps=2, workers=0, device="cpu", precision="fp32",
               wandb_mode="disabled")
    assert train_style(StyleTrainConfig(**add)).step == 2  # grown and saved, not trained: what it started from
    grown = load_file(run / "style.safetensors")["in1.weight"]
    assert torch.allclose(grown[2], trained[1], atol=1e-6)
    assert "starts from the (γ, β) of stars" in caplog.text

    for s in styles:
        s.unlink()  # the images of the trained styles are gone: the mean, with a warning
    train_style(StyleTrainConfig(**{**add, "styles": [str(copy)]}))
    grown2 = load_file(run / "style.safetensors")["in1.weight"]
    assert grown2.shape == (4, 32)
    assert torch.allclose(grown2[3], grown[:3].mean(0), atol=1e-6)
    assert "are gone" in caplog.text


def test_add_style_needs_resume_and_new_styles(tmp_path, data, tiny_vgg):
    photos, styles = data
    result = runner.invoke(app, ["train-style", "--add-style", "--style", str(styles[0]), "--name", "x",
                                 "--checkpoints-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--resume" in result.output


def test_train_style_cli_and_sigint_checkpoint(tmp_path, data, tiny_vgg):
    photos, styles = data
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "cyclegan", "train-style", "--style", str(styles[0]), "--content", str(photos),
           "--checkpoints-dir", str(tmp_path), "--name", "sig", "--steps", "100000", "--image-size", "32",
           "--batch-size", "1", "--vgg-weights", str(tiny_vgg), "--device", "cpu", "--wandb-mode", "disabled",
           "--sample-every", "1", "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples = tmp_path / "sig" / "samples"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(samples.glob("*.png"))) < 2 and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert load_state(tmp_path / "sig" / "latest.pt")["step"] >= 2
    assert "--resume" in out
    result = runner.invoke(app, ["train-style", "--name", "sig", "--checkpoints-dir", str(tmp_path),
                                 "--style", str(styles[0]), "--content", str(photos)])
    assert result.exit_code == 2 and "--resume" in result.output  # the run is never clobbered


def test_train_style_bad_input_is_one_line(tmp_path, data, tiny_vgg):
    photos, styles = data
    for args, message in (([], "--style"), (["--style", str(tmp_path / "nope.jpg"), "--content", str(photos)],
                                             "nope.jpg"),
                          (["--style", str(styles[0]), "--content", str(tmp_path / "none")], "does not exist")):
        result = runner.invoke(app, ["train-style", "--checkpoints-dir", str(tmp_path / "r"), "--vgg-weights",
                                     str(tiny_vgg), "--wandb-mode", "disabled", "--device", "cpu", *args])
        assert result.exit_code == 2 and message in result.output, result.output


# -- the pretrained networks of pytorch/examples ----------------------------------------------------------


def test_pretrained_style_networks_download_once_from_their_zip(tmp_path, monkeypatch):
    nets = {}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, name in enumerate(("candy", "mosaic", "rain_princess", "udnie")):
            path = tmp_path / f"{name}.pth"
            nets[name] = published_layout_file(path, seed=i)
            zf.write(path, f"saved_models/{name}.pth")
        zf.writestr("../evil.txt", "not extracted")
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "saved_models.zip").write_bytes(buf.getvalue())
    monkeypatch.setenv("CYCLEGAN_MODELS_DIR", str(tmp_path / "cache"))
    write_image(tmp_path / "in" / "a.png", size=(32, 32), seed=6)
    with FileServer(tmp_path / "served") as server:
        monkeypatch.setenv("CYCLEGAN_FAST_STYLE_URL", f"{server.url}/saved_models.zip")
        translate("--pretrained", "candy", tmp_path / "in", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "cache" / "fast_style").glob("*.pth")) == [
        "candy.pth", "mosaic.pth", "rain_princess.pth", "udnie.pth"]
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "cache" / "evil.txt").exists()
    x = torch.from_numpy(read_rgb(tmp_path / "in" / "a.png")).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        want = nets["candy"](x).clamp(0, 255).round()[0].permute(1, 2, 0).numpy()
    assert np.abs(read_rgb(tmp_path / "out" / "a.png") - want).max() <= 1
    translate("--pretrained", "mosaic", tmp_path / "in", tmp_path / "out2")  # no server: from the cache
    listed = runner.invoke(app, ["models", "list"])
    assert all(name in listed.output for name in ("candy", "mosaic", "rain_princess", "udnie"))


# -- a real painting, real photos -------------------------------------------------------------------------


@pytest.mark.slow  # about 100 s on a 2-core CPU
# The slim network takes a higher rate to learn as much in as few steps (at 2e-3 it needs 400: measured)
@pytest.mark.parametrize("arch, lr", [("full", 2e-3), ("slim", 5e-3)])
def test_a_trained_network_paints_unseen_photos_like_the_painting_and_keeps_them_apart(tmp_path, arch, lr):
    """With the default weights: the outputs' Grams move towards the painting's, and each output still
    shows its own photo (a network that paints every photo as the same texture fails the second part)."""
    vgg_path = shared_path("weights", "vgg19_features.pth")
    root = shared_path("datasets", "monet2photo_mini")
    photos = sorted((root / "trainB").glob("*.jpg"))[:16]
    held_out = sorted((root / "testB").glob("*.jpg"))[:6]
    painting = sorted((root / "trainA").glob("*.jpg"))[0]
    (tmp_path / "photos").mkdir()
    for p in photos:
        (tmp_path / "photos" / p.name).symlink_to(p)
    cfg = StyleTrainConfig(styles=[str(painting)], content=str(tmp_path / "photos"), name="monet",
                           checkpoints_dir=str(tmp_path), image_size=64, batch_size=4, steps=200, lr=lr, arch=arch,
                           vgg_weights=str(vgg_path), workers=0, device="cpu", precision="fp32",
                           wandb_mode="disabled", sample_every=1000, save_every=1000)
    train_style(cfg)
    for p in held_out:
        (tmp_path / "held_out").mkdir(exist_ok=True)
        Image.open(p).convert("RGB").resize((96, 96)).save(tmp_path / "held_out" / f"{p.stem}.png")
    translate(tmp_path / "monet", tmp_path / "held_out", tmp_path / "out")

    layers = [fast.CONTENT_LAYER, *fast.STYLE_LAYERS]
    ex = vgg.VGGFeatures(vgg.load_vgg19(vgg_path, layers), layers)

    def features(img):
        with torch.no_grad():
            return ex(images.to_tensor(img))

    target = {n: vgg.gram_matrix(f) for n, f in features(images.resize_long_side(Image.open(painting).convert("RGB"),
                                                                             64)).items()}

    def style_distance(feats):
        return sum(vgg.relative_mse(vgg.gram_matrix(feats[n]), target[n]).item() for n in fast.STYLE_LAYERS)

    photo = [features(Image.open(tmp_path / "held_out" / f"{p.stem}.png")) for p in held_out]
    out = [features(Image.open(tmp_path / "out" / f"{p.stem}.png")) for p in held_out]
    before, after = np.mean([style_distance(f) for f in photo]), np.mean([style_distance(f) for f in out])
    assert after < 0.5 * before, (before, after)

    def content_distance(i, j):  # output i against photo j
        return vgg.relative_mse(out[i][fast.CONTENT_LAYER], photo[j][fast.CONTENT_LAYER]).item()

    n = len(held_out)
    own = np.mean([content_distance(i, i) for i in range(n)])
    others = np.mean([content_distance(i, j) for i in range(n) for j in range(n) if i != j])
    assert own < 0.6 * others, (own, others)


def test_fp16_training_scales_its_loss(tmp_path, data, tiny_vgg, monkeypatch):
    """fp16 gradients underflow without loss scaling: every training command's update goes through the one
    gradient scaler (``runtime.Amp``), whose state a resumed run continues."""
    photos, styles = data
    scaled = []
    real_scale = torch.amp.GradScaler.scale
    monkeypatch.setattr(torch.amp.GradScaler, "scale",
                        lambda self, loss: scaled.append(self.is_enabled()) or real_scale(self, loss))
    train_style(style_cfg(tmp_path, photos, styles[:1], tiny_vgg, name="half", steps=2, precision="fp16"))
    assert scaled == [True, True]
    state = load_state(tmp_path / "runs" / "half" / "latest.pt")
    assert state["trainer"]["scaler"]["scale"] > 1  # a live scale, saved with the run


def test_slim_network_trains_loads_translates_and_tiles_like_the_full_one(tmp_path, data, tiny_vgg):
    photos, styles = data
    train_style(style_cfg(tmp_path, photos, styles, tiny_vgg, name="slim", arch="slim", steps=2))
    run = tmp_path / "runs" / "slim"
    state = load_file(run / "style.safetensors")
    assert state["conv1.conv2d.weight"].shape == (16, 3, 9, 9) and state["in1.weight"].shape == (2, 16)
    translate(run, photos, tmp_path / "out", "--style", "stars")
    assert read_rgb(tmp_path / "out" / "img_000.png").shape == (36, 40, 3)
    torch.save(state, tmp_path / "slim.pth")  # without our metadata its tensors say which network it is
    net, spec = load_network(tmp_path / "slim.pth")
    assert spec.arch == "slim" and spec.describe() == "slim style network (2 styles)"
    x = (torch.rand(1, 3, 300, 200) * 255).to(torch.uint8)
    plain = Translator(net, spec, torch.device("cpu"))(x)
    tiled = Translator(net, spec, torch.device("cpu"), tile=64)(x)
    assert (tiled - plain).abs().max() < 1e-3


def test_slim_network_is_a_tenth_of_the_full_one():
    x = torch.rand(1, 3, 256, 256)
    flops = {}
    for arch in ("full", "slim"):
        with FlopCounterMode(display=False) as counter:
            fast.TransformerNet(3, arch)(x)
        flops[arch] = counter.get_total_flops()
    assert flops["slim"] < 0.12 * flops["full"]


def test_slim_is_a_johnson_network_only(tmp_path, data):
    photos, _ = data
    cfg = StyleTrainConfig(method="adain", arch="slim", content=str(photos), style_dir=str(photos))
    assert any("--arch" in p for p in cfg.problems())


FORGERIES = {"conv1 a scalar": ("conv1.conv2d.weight", torch.tensor(1.0)),
             "in1 a scalar": ("in1.weight", torch.tensor(1.0)),
             "in1 absent": ("in1.weight", None)}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_style_network_is_one_line_naming_the_file_in_the_cli_and_the_api(tmp_path, forgery):
    import cyclegan
    from cyclegan.errors import UserError

    published_layout_file(tmp_path / "real.pth")
    state = torch.load(tmp_path / "real.pth", weights_only=True)
    key, value = FORGERIES[forgery]
    state.pop(key) if value is None else state.__setitem__(key, value)
    forged = tmp_path / "forged.pth"
    torch.save(state, forged)
    write_image(tmp_path / "in" / "a.png", size=(32, 32), seed=1)
    result = translate(forged, tmp_path / "in", tmp_path / "out", ok=False)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and str(forged) in errors[0], result.output
    assert "not a style network" in errors[0] and "Traceback" not in result.output
    with pytest.raises(UserError, match="not a style network") as e:
        cyclegan.load(forged, device="cpu")
    assert str(forged) in str(e.value)


def test_style_mix_weights_that_add_up_to_zero_are_refused_alike_for_every_network(tmp_path):
    from tests.test_adain import published_files

    write_image(tmp_path / "in" / "a.png", size=(32, 32), seed=1)
    style = write_image(tmp_path / "style.png", size=(32, 32), seed=2)
    torch.manual_seed(0)
    from cyclegan.checkpoint import save_network

    two = save_network(tmp_path / "two.safetensors", fast.TransformerNet(2), fast.FastStyleSpec(n_styles=2))
    published_files(tmp_path / "adain")
    for model, mix in ((two, "0:0,1:0"), (tmp_path / "adain" / "decoder.pth", f"{style}:0")):
        result = translate(model, tmp_path / "in", tmp_path / "out", "--style-mix", mix, "--vgg-weights",
                           tmp_path / "adain" / "vgg_normalised.pth", ok=False)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert "the weights add up to 0" in result.output


def test_a_resumed_style_run_keeps_its_architecture(tmp_path, data, tiny_vgg):
    photos, styles = data
    train_style(style_cfg(tmp_path, photos, styles[:1], tiny_vgg, name="slim", arch="slim", steps=2, save_every=1))
    result = runner.invoke(app, ["train-style", "--checkpoints-dir", str(tmp_path / "runs"), "--name", "slim",
                                 "--resume", "--arch", "full"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--arch full: the run at" in result.output and "learns with --arch slim" in result.output


def test_a_style_run_that_ends_far_too_short_says_so(tmp_path, data, tiny_vgg, caplog):
    photos, styles = data
    with caplog.at_level("WARNING"):
        train_style(style_cfg(tmp_path, photos, styles[:1], tiny_vgg, name="short", steps=3))
    assert "3 steps is far too few for a usable network (at least 500; --steps 40000 by default)" in caplog.text
