"""``cyclegan ui``: a local web page for every method, on the command line's networks and pipeline.

Three tabs: **Translate** (an image or a video through any network ``translate`` takes: a preset, a
pretrained name, a run folder or file, an uploaded model file), **Stylize** (Gatys with a live preview and
a stop button, AdaIN, a fast style network) and **Folder** (a folder into a folder, as ``translate`` does
it). Nothing here has an inference path of its own: images go through ``api.load`` (``networks.py`` and
the ``Translator``), ``gatys.Stylizer``, ``translate.translate_folder``; uploads through the one image
reader and its size policy, models through the one safe loader, so a decompression bomb or a forged file
gives the command line's one-line message in the page. One job runs at a time (one queue for the device);
long work shows its progress (downloads included) and can be stopped.

Needs the ui extra: ``pip install -e ".[ui]"`` (Gradio). Listens on 127.0.0.1 unless ``--host`` or
``--share`` says otherwise.
"""

from __future__ import annotations

import functools
import logging
import queue
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

from . import api
from .catalog import FAST_STYLE_MODELS, PRESETS, PRETRAINED, STYLES, translate_model
from .config import StylizeConfig, TranslateConfig, UiConfig, validate
from .errors import UserError
from .networks import style_names
from .progress import listening
from .runtime import resolve_device
from .style.gatys import Stopped, Stylizer
from .style.images import read_image, save_image, to_image
from .translate import translate_folder
from .video import is_video

log = logging.getLogger(__name__)

SOURCES = ("preset", "pretrained", "path", "upload")
PREVIEW_EVERY = 10  # Gatys steps between previews
JOB = "device"  # one queue for every job: one at a time on the device


class Session:
    """What stays between jobs: the options, a folder for outputs, the last network loaded (reloading a
    ResNet-9 for every image would cost more than translating it)."""

    def __init__(self, cfg: UiConfig):
        self.cfg = cfg
        self.outputs = Path(tempfile.mkdtemp(prefix="cyclegan-ui-"))
        self.key: tuple | None = None
        self.net: api.Network | None = None

    def network(self, source: str, direction: str) -> api.Network:
        if (source, direction) != self.key:
            self.net = None  # free the last one before loading the next
            self.net = api.load(source, self.cfg.device, self.cfg.precision, direction=direction)
            self.key = (source, direction)
        return self.net

    def translate_config(self, source: str, direction: str, options: dict, **paths) -> TranslateConfig:
        """``translate``'s options for a model of the page (``model_source``), the network's options
        (``call_options``) and ``paths`` (input, output...)."""
        checkpoint, direction = api.model_path(source, direction)
        return TranslateConfig(checkpoint=checkpoint, direction=direction, device=self.cfg.device,
                               precision=self.cfg.precision, **options, **paths)

    def output(self, name: str) -> Path:
        folder = Path(tempfile.mkdtemp(dir=self.outputs))
        return folder / name


def model_source(kind: str, preset: str, painter: str, pretrained: str, path: str, upload: str | None,
                 direction: str) -> tuple[str, str]:
    """``(what api.load takes, direction)`` from the model choice of the page."""
    if kind == "preset":
        return translate_model(preset, painter if preset == "painting" else None, None, None, direction), "AtoB"
    if kind == "pretrained":
        return pretrained, direction
    if kind == "path" and path.strip():
        return path.strip(), direction
    if kind == "upload" and upload:
        return upload, "AtoB"
    raise UserError("choose a model: a preset, a pretrained name, a run folder or file, or upload a model file")


def page_errors(fn):
    """A ``UserError`` becomes the command line's one-line message in the page, not a stack trace."""

    @functools.wraps(fn)  # Gradio reads the signature: its gr.Progress parameter
    def wrapper(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
            if isinstance(result, Iterator):
                yield from result
            else:
                yield result
        except UserError as e:
            raise gr.Error(str(e), print_exception=False) from None

    return wrapper


def progress_into(progress: gr.Progress):
    """Every progress bar of the toolkit (a download, a folder) shown in the page while inside."""
    return listening(lambda what, done, total: progress((done, total) if total else None, desc=what))


def build(cfg: UiConfig) -> gr.Blocks:
    session = Session(cfg)
    with gr.Blocks(title="cyclegan") as page:
        gr.Markdown("# cyclegan\nUnpaired image translation (CycleGAN) and style transfer, on this machine.")
        with gr.Tab("Translate"):
            translate_tab(session)
        with gr.Tab("Stylize"):
            stylize_tab(session)
        with gr.Tab("Folder"):
            folder_tab(session)
    page.queue(default_concurrency_limit=1)
    return page


def model_choice(prefix: str) -> list[gr.components.Component]:
    """The components that choose a network, in ``model_source``'s order."""
    with gr.Group():
        kind = gr.Radio(list(SOURCES), value="preset", label="model", elem_id=f"{prefix}-source")
        with gr.Row():
            preset = gr.Dropdown(list(PRESETS), value="painting", label="preset")
            painter = gr.Dropdown(list(STYLES), value="monet", label="painter (preset painting)")
            pretrained = gr.Dropdown([*PRETRAINED, *FAST_STYLE_MODELS], value="style_monet", label="pretrained")
        path = gr.Textbox(label="run folder or model file on this machine", elem_id=f"{prefix}-path")
        upload = gr.File(label="or upload a model file (.safetensors, .pth)", type="filepath", height=90,
                         file_types=[".safetensors", ".pth", ".pt"], elem_id=f"{prefix}-upload")
        direction = gr.Radio(["AtoB", "BtoA"], value="AtoB", label="direction")
    return [kind, preset, painter, pretrained, path, upload, direction]


def network_options() -> list[gr.components.Component]:
    """Per-call options of a network, in ``Network.__call__``'s order."""
    with gr.Row():
        style = gr.Textbox(label="style: a multi-style network's (index or name), or AdaIN's style image path")
        style_mix = gr.Textbox(label="style mix, e.g. 0:0.5,2:0.5")
    with gr.Row():
        strength = gr.Slider(0, 1, value=1, step=0.05, label="strength (0: the input, 1: the network's output)")
        preserve = gr.Checkbox(label="preserve the input's colours")
        tile = gr.Number(value=0, precision=0, label="tile (0: none; at least 64)")
    return [style, style_mix, strength, preserve, tile]


def call_options(style: str, style_mix: str, strength: float, preserve: bool, tile: float) -> dict:
    """``network_options``' values as ``Network.__call__``'s (and ``TranslateConfig``'s) keyword arguments."""
    return {"style": style or None, "style_mix": style_mix or None, "strength": strength,
            "preserve_color": preserve, "tile": int(tile) or None}


def translate_tab(session: Session) -> None:
    with gr.Row():
        image = gr.Image(type="filepath", image_mode=None, label="input image", elem_id="translate-input")
        output = gr.Image(type="filepath", format="png", label="output", interactive=False,
                          elem_id="translate-output")
    with gr.Accordion("a video instead (mp4, mov, mkv, webm; needs the video extra)", open=False):
        with gr.Row():
            video = gr.Video(label="input video", elem_id="translate-video")
            video_out = gr.Video(label="output video", interactive=False)
    models = model_choice("translate")
    options = network_options()
    names = gr.State([])  # the styles of a multi-style network chosen by path or upload: one slider each
    with gr.Row():
        run = gr.Button("Translate", variant="primary", elem_id="translate-run")
        stop = gr.Button("Stop")
    download = gr.File(label="download", elem_id="translate-download")
    kind, path, upload = models[0], models[4], models[5]
    for changed in (kind.change, path.submit, path.blur, upload.change):
        changed(styles_of, [kind, path, upload], names)

    @page_errors
    def translate(image, video, kind, preset, painter, pretrained, path, upload, direction, style, style_mix,
                  strength, preserve, tile, *weights, progress=gr.Progress()):
        source, direction = model_source(kind, preset, painter, pretrained, path, upload, direction)
        if weights and not (style or style_mix):  # the sliders of a multi-style network
            if not any(weights):
                raise UserError("every style's weight is 0: give one style some weight")
            style_mix = ",".join(f"{i}:{w:g}" for i, w in enumerate(weights) if w)
        options = call_options(style, style_mix, strength, preserve, tile)
        with progress_into(progress):
            if video:
                return None, *translate_video(session, video, source, direction, options)
            if not image:
                raise UserError("upload an image (or a video) to translate")
            photo = read_image(image, "input image")  # the command line's reader and size policy
            out = session.output(f"{Path(image).stem}.png")
            save_image(session.network(source, direction)(photo, **options), out)
        return str(out), str(out), None

    @gr.render(inputs=names)
    def style_sliders(styles: list[str]):  # the run button's inputs include the sliders shown now
        sliders = [gr.Slider(0, 1, value=1.0 if i == 0 else 0.0, step=0.05, label=f"style {i}: {name}")
                   for i, name in enumerate(styles)]
        event = run.click(translate, [image, video, *models, *options, *sliders], [output, download, video_out],
                          concurrency_id=JOB)
        stop.click(None, cancels=[event])


def styles_of(kind: str, path: str, upload: str | None) -> list[str]:
    """The style names of a multi-style network given by path or upload (none for any other model)."""
    source = path.strip() if kind == "path" else upload if kind == "upload" else None
    try:
        return style_names(source) if source else []
    except UserError:  # said when it runs
        return []


def translate_video(session: Session, video: str, source: str, direction: str, options: dict) -> tuple:
    """A video through ``translate_folder``: frames batched, audio copied, as the command line does."""
    if not is_video(Path(video)):
        raise UserError(f"{Path(video).name} is not a video this tool reads (mp4, mov, mkv, webm, gif)")
    out = session.output(Path(video).name)
    summary = translate_folder(session.translate_config(source, direction, options, input=video, output=str(out),
                                                        progress=False))
    if summary.failed or summary.stopped:
        raise UserError(summary.stopped or summary.failed[0][1])
    return str(out), str(out)


def stylize_tab(session: Session) -> None:
    with gr.Row():
        content = gr.Image(type="filepath", image_mode=None, label="photo", elem_id="stylize-content")
        output = gr.Image(type="filepath", format="png", label="result (live while Gatys runs)", interactive=False,
                          elem_id="stylize-output")
    styles = gr.File(label="style images (several: blended)", file_count="multiple", type="filepath",
                     file_types=["image"], elem_id="stylize-styles")
    blend = gr.Textbox(label="blend weights, e.g. 0.7,0.3 (default: equal)")
    method = gr.Radio(["gatys", "adain", "fast network"], value="gatys", label="method", elem_id="stylize-method")
    with gr.Accordion("Gatys", open=True):
        with gr.Row():
            size = gr.Number(value=512, precision=0, label="size (long side)", elem_id="stylize-size")
            steps = gr.Number(value=300, precision=0, label="steps", elem_id="stylize-steps")
            style_weight = gr.Number(value=StylizeConfig.style_weight, label="style weight")
        with gr.Row():
            photoreal = gr.Checkbox(label="photoreal (Deep Photo Style Transfer)")
            content_mask = gr.File(label="content mask (PNG)", type="filepath")
            style_mask = gr.File(label="style mask (PNG)", type="filepath")
    with gr.Accordion("AdaIN", open=True):
        alpha = gr.Slider(0, 1, value=1, step=0.05, label="alpha (0: the photo decoded, 1: the full style)")
    with gr.Row():
        vgg_weights = gr.Textbox(label="VGG19 weights file (gatys: a features state dict; adain: vgg_normalised.pth; "
                                 "default: downloaded once)", elem_id="stylize-vgg")
        decoder = gr.Textbox(label="AdaIN decoder file or run folder (default: the published one)")
    fast = gr.Dropdown(list(FAST_STYLE_MODELS), value="candy", label="fast network (pretrained), or a path below")
    fast_path = gr.Textbox(label="a train-style run folder or network file")
    preserve = gr.Checkbox(label="preserve the photo's colours")
    with gr.Row():
        run = gr.Button("Stylize", variant="primary", elem_id="stylize-run")
        stop = gr.Button("Stop", elem_id="stylize-stop")
    status = gr.Markdown(elem_id="stylize-status")
    download = gr.File(label="download")

    @page_errors
    def stylize(content, styles, blend, method, size, steps, style_weight, photoreal, content_mask, style_mask,
                alpha, vgg_weights, decoder, fast, fast_path, preserve, progress=gr.Progress()):
        if not content:
            raise UserError("upload a photo to stylize")
        photo = read_image(content, "photo")
        out = session.output(f"{Path(content).stem}.png")
        if method == "fast network":
            with progress_into(progress):
                net = session.network(fast_path.strip() or fast, "AtoB")
                save_image(net(photo, preserve_color=preserve), out)
            yield str(out), "done", str(out)
            return
        if not styles:
            raise UserError("add at least one style image")
        weights = [float(w) for w in blend.replace(",", " ").split()] if blend.strip() else None
        cfg = StylizeConfig(styles=list(styles), style_blend=weights, method="adain" if method == "adain" else "gatys",
                            size=int(size) if method != "adain" else None, steps=int(steps),
                            style_weight=style_weight, photoreal=photoreal, content_mask=content_mask,
                            style_mask=style_mask, alpha=alpha, preserve_color=preserve, device=session.cfg.device,
                            precision=session.cfg.precision, vgg_weights=vgg_weights.strip() or None,
                            decoder_weights=decoder.strip() or None)
        validate(cfg)
        if cfg.method == "adain":
            with progress_into(progress):
                save_image(api.stylized(cfg, photo, [read_image(s, "style image") for s in styles]), out)
            yield str(out), "done", str(out)
            return
        yield from gatys_live(session, cfg, photo, out)

    event = run.click(stylize, [content, styles, blend, method, size, steps, style_weight, photoreal, content_mask,
                                style_mask, alpha, vgg_weights, decoder, fast, fast_path, preserve],
                      [output, status, download], concurrency_id=JOB)
    stop.click(None, cancels=[event])


def gatys_live(session: Session, cfg: StylizeConfig, photo, out: Path) -> Iterator[tuple]:
    """The optimisation in a thread of its own, its image shown every few steps; closing the generator (the
    Stop button) stops it at its next step."""
    stylizer = Stylizer(cfg, resolve_device(cfg.device))
    updates: queue.Queue = queue.Queue()
    stop = threading.Event()
    steps = [0]

    def on_image(x) -> None:
        if stop.is_set():
            raise Stopped
        steps[0] += 1
        if steps[0] % PREVIEW_EVERY == 0:
            updates.put(("preview", to_image(x)))

    def work() -> None:
        try:
            updates.put(("done", stylizer(photo, on_image=on_image)[0]))
        except Exception as e:  # handed to the page
            updates.put(("error", e))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = updates.get()
            if kind == "error":
                raise value if isinstance(value, UserError) else UserError(f"{type(value).__name__}: {value}")
            preview = session.output("preview.png") if kind == "preview" else out
            save_image(value, preview)
            if kind == "done":
                yield str(out), f"done: {steps[0]} steps", str(out)
                return
            yield str(preview), f"step {steps[0]} of {cfg.steps}", None
    finally:
        stop.set()
        thread.join()


def folder_tab(session: Session) -> None:
    source = gr.Textbox(label="input folder (or one image or video) on this machine", elem_id="folder-input")
    target = gr.Textbox(label="output folder (mirrors the input's sub-folders)", elem_id="folder-output")
    models = model_choice("folder")
    options = network_options()
    overwrite = gr.Checkbox(label="redo outputs that exist (by default they are skipped)")
    with gr.Row():
        run = gr.Button("Translate the folder", variant="primary", elem_id="folder-run")
        stop = gr.Button("Stop")
    summary = gr.Markdown(elem_id="folder-summary")

    @page_errors
    def translate(source_dir, target_dir, kind, preset, painter, pretrained, path, upload, direction, style,
                  style_mix, strength, preserve, tile, overwrite, progress=gr.Progress()):
        model, direction = model_source(kind, preset, painter, pretrained, path, upload, direction)
        cfg = session.translate_config(model, direction, call_options(style, style_mix, strength, preserve, tile),
                                       input=source_dir.strip(), output=target_dir.strip(), overwrite=overwrite)
        with progress_into(progress):
            result = translate_folder(cfg)
        lines = [f"**converted** {len(result.converted)} · **skipped** (output exists) {len(result.skipped)} · "
                 f"**failed** {len(result.failed)}"]
        lines += [f"- failed: `{path}`: {why}" for path, why in result.failed]
        lines += [f"- **stopped**: {result.stopped}"] if result.stopped else []
        return "\n".join(lines)

    event = run.click(translate, [source, target, *models, *options, overwrite], summary, concurrency_id=JOB)
    stop.click(None, cancels=[event])


def serve(cfg: UiConfig, block: bool = True):
    """Start the page (``cyclegan ui``); with ``block=False`` return ``(page, url)`` and keep serving in the
    background (tests)."""
    validate(cfg)
    page = build(cfg)
    _, url, _ = page.launch(server_name=cfg.host, server_port=cfg.port, share=cfg.share, prevent_thread_lock=True,
                            quiet=not block, footer_links=[])
    log.info("cyclegan ui on %s (Ctrl-C stops it)", url)
    if block:
        page.block_thread()
    return page, url
