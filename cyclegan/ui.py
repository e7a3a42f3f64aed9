"""``cyclegan ui``: a local web page for every method, on the command line's networks and pipeline.

Three tabs: **Translate** (an image or a video through any network ``translate`` takes: a preset, a
pretrained name, a run folder or file, an uploaded model file), **Stylize** (Gatys with a live preview and
a stop button, AdaIN, a fast style network) and **Folder** (a folder into a folder, as ``translate`` does
it). Nothing here has an inference path of its own: images go through ``api.load`` (``networks.py`` and
the ``Translator``), ``gatys.Stylizer``, ``translate.translate_folder``; uploads through the one image
reader and its size policy, models through the one safe loader, so a decompression bomb or a forged file
gives the command line's one-line message in the page. One job runs at a time (one queue for the device);
long work shows its progress (downloads included) and can be stopped.

What a visitor may touch: every folder or model path typed into the page is taken inside ``--root`` and
refused outside it (links are followed first, so none leads out), and never inside Gradio's own temporary
folder, whose files the page serves; uploads are bounded by ``--max-upload-mb``. The page listens on
127.0.0.1; another ``--host`` or ``--share`` needs ``--auth`` or ``--trusted-network``. Its temporary files
(uploads, outputs) are deleted when it stops.

Needs the ui extra: ``pip install -e ".[ui]"`` (Gradio).
"""

from __future__ import annotations

import functools
import logging
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr
from gradio.route_utils import delete_files_created_by_app
from gradio.utils import get_upload_folder

from . import api
from .catalog import FAST_STYLE_MODELS, PRESETS, PRETRAINED, STYLES, translate_model
from .config import StylizeConfig, TranslateConfig, UiConfig, validate
from .data import IMAGE_EXTENSIONS
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
        self.root = Path(cfg.root).resolve()
        self.outputs = Path(tempfile.mkdtemp(prefix="cyclegan-ui-"))
        self.key: tuple | None = None
        self.net: api.Network | None = None
        self.stopping = threading.Event()  # set by a Stop button: the job running now ends at its next image

    def stop(self) -> None:
        self.stopping.set()

    def inside(self, text: str, what: str) -> str:
        """A path typed into the page, as the absolute path it names inside ``--root``; refused outside it
        (after following links) and inside Gradio's temporary folder, whose files the page serves."""
        path = (self.root / text.strip()).resolve()  # an absolute path stays itself; links are followed
        served = Path(get_upload_folder()).resolve()
        if not path.is_relative_to(self.root):
            raise UserError(f"{what} {text.strip()!r} is outside the folder this page may use ({self.root}): "
                            "start `cyclegan ui --root` at a folder that holds it")
        if path.is_relative_to(served) or path.is_relative_to(self.outputs):
            raise UserError(f"{what} {text.strip()!r} is inside the page's own temporary folder: choose another")
        return str(path)

    def path_or_none(self, text: str, what: str) -> str | None:
        """An optional path field: None when left empty, else ``inside``'s path."""
        return self.inside(text, what) if text.strip() else None

    def style_file(self, name: str) -> str:
        """A style as typed: a style network's name or index as it is; an image file (AdaIN's style)
        inside ``--root`` like every other path."""
        if "/" in name or Path(name).suffix.lower() in IMAGE_EXTENSIONS or (self.root / name).is_file():
            return self.inside(name, "style image")
        return name

    def call_options(self, style: str, style_mix: str, strength: float, preserve: bool, tile: float) -> dict:
        """``network_options``' values as ``Network.__call__``'s (and ``TranslateConfig``'s) keyword
        arguments."""
        pairs = [(part, *part.strip().rpartition(":")) for part in style_mix.split(",")] if style_mix.strip() else []
        mix = ",".join(f"{self.style_file(name)}:{w}" if sep and name else part for part, name, sep, w in pairs)
        return {"style": self.style_file(style.strip()) if style.strip() else None, "style_mix": mix or None,
                "strength": strength, "preserve_color": preserve, "tile": int(tile) or None}

    def model_source(self, kind: str, preset: str, painter: str, pretrained: str, path: str, upload: str | None,
                     direction: str) -> tuple[str, str]:
        """``(what api.load takes, direction)`` from the model choice of the page."""
        if kind == "preset":
            return translate_model(preset, painter if preset == "painting" else None, None, None, direction), "AtoB"
        if kind == "pretrained":
            return pretrained, direction
        if kind == "path" and path.strip():
            return self.inside(path, "model"), direction
        if kind == "upload" and upload:
            return upload, "AtoB"
        raise UserError("choose a model: a preset, a pretrained name, a run folder or file, or upload a model file")

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


class Page(gr.Blocks):
    """The page; closing it deletes what it left on the disk: uploads and Gradio's copies of the outputs
    (the files this page's Blocks created) and the ``cyclegan-ui-*`` folder of outputs."""

    def __init__(self, session: Session, **kwargs):
        super().__init__(**kwargs)
        self.session = session

    def close(self, verbose: bool = False) -> None:
        super().close(verbose)
        delete_files_created_by_app(self, None)
        shutil.rmtree(self.session.outputs, ignore_errors=True)


def build(cfg: UiConfig) -> Page:
    session = Session(cfg)
    with Page(session, title="cyclegan") as page:
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
        stop_button(session, "stop_translate")
    download = gr.File(label="download", elem_id="translate-download")
    kind, path, upload = models[0], models[4], models[5]
    for changed in (kind.change, path.submit, path.blur, upload.change):
        changed(functools.partial(styles_of, session), [kind, path, upload], names)

    @page_errors
    def translate(image, video, kind, preset, painter, pretrained, path, upload, direction, style, style_mix,
                  strength, preserve, tile, *weights, progress=gr.Progress()):
        source, direction = session.model_source(kind, preset, painter, pretrained, path, upload, direction)
        if weights and not (style or style_mix):  # the sliders of a multi-style network
            if not any(weights):
                raise UserError("every style's weight is 0: give one style some weight")
            style_mix = ",".join(f"{i}:{w:g}" for i, w in enumerate(weights) if w)
        options = session.call_options(style, style_mix, strength, preserve, tile)
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
        run.click(translate, [image, video, *models, *options, *sliders], [output, download, video_out],
                  concurrency_id=JOB)


def styles_of(session: Session, kind: str, path: str, upload: str | None) -> list[str]:
    """The style names of a multi-style network given by path or upload (none for any other model)."""
    try:
        source = session.path_or_none(path, "model") if kind == "path" else upload if kind == "upload" else None
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
        stop_button(session, "stop_stylize", elem_id="stylize-stop")
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
                net = session.network(session.path_or_none(fast_path, "network") or fast, "AtoB")
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
                            precision=session.cfg.precision,
                            vgg_weights=session.path_or_none(vgg_weights, "VGG19 weights"),
                            decoder_weights=session.path_or_none(decoder, "decoder"))
        validate(cfg)
        if cfg.method == "adain":
            with progress_into(progress):
                save_image(api.stylized(cfg, photo, [read_image(s, "style image") for s in styles]), out)
            yield str(out), "done", str(out)
            return
        yield from gatys_live(session, cfg, photo, out)

    run.click(stylize, [content, styles, blend, method, size, steps, style_weight, photoreal, content_mask,
                        style_mask, alpha, vgg_weights, decoder, fast, fast_path, preserve],
              [output, status, download], concurrency_id=JOB)


def in_background(session: Session, work: Callable[[threading.Event, Callable], object]
                  ) -> Iterator[tuple[str, object]]:
    """Run ``work(stop, report)`` in a thread of its own: yields ``("update", value)`` for each
    ``report(value)``, then ``("done", result)``; an error in ``work`` is raised here, in words.

    ``stop`` is set by the page's Stop (``Session.stop``) and when this generator is closed; the work
    checks it between images or steps. The generator ends only when the thread has, so the queue's next
    job starts when this one has really ended (one job at a time on the device).
    """
    updates: queue.Queue = queue.Queue()
    stop = session.stopping
    stop.clear()  # a Stop pressed while nothing ran stops nothing

    def run() -> None:
        try:
            updates.put(("done", work(stop, lambda value: updates.put(("update", value)))))
        except Exception as e:  # handed to the page
            updates.put(("error", e))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = updates.get()
            if kind == "error":
                raise value if isinstance(value, UserError) else UserError(f"{type(value).__name__}: {value}")
            yield kind, value
            if kind == "done":
                return
    finally:
        stop.set()
        thread.join()


def stop_button(session: Session, name: str, elem_id: str | None = None) -> None:
    """A Stop button: it asks the running job to end at its next image or step (a job Gradio merely
    cancelled would run on in its thread, beside the next one). Not queued: it must not wait for the job."""
    gr.Button("Stop", elem_id=elem_id).click(session.stop, None, None, api_name=name, queue=False)


def gatys_live(session: Session, cfg: StylizeConfig, photo, out: Path) -> Iterator[tuple]:
    """The optimisation in the background, its image shown every few steps; Stop ends it at its next step."""
    stylizer = Stylizer(cfg, resolve_device(cfg.device))
    steps = [0]

    def work(stop: threading.Event, report: Callable) -> object:
        def on_image(x) -> None:
            if stop.is_set():
                raise Stopped
            steps[0] += 1
            if steps[0] % PREVIEW_EVERY == 0:
                report(to_image(x))

        return stylizer(photo, on_image=on_image)[0]

    for kind, image in in_background(session, work):
        preview = session.output("preview.png") if kind == "update" else out
        save_image(image, preview)
        if kind == "done":
            yield str(out), f"done: {steps[0]} steps", str(out)
            return
        yield str(preview), f"step {steps[0]} of {cfg.steps}", None


def folder_tab(session: Session) -> None:
    source = gr.Textbox(label="input folder (or one image or video) on this machine", elem_id="folder-input")
    target = gr.Textbox(label="output folder (mirrors the input's sub-folders)", elem_id="folder-output")
    models = model_choice("folder")
    options = network_options()
    overwrite = gr.Checkbox(label="redo outputs that exist (by default they are skipped)")
    with gr.Row():
        run = gr.Button("Translate the folder", variant="primary", elem_id="folder-run")
        stop_button(session, "stop_folder", elem_id="folder-stop")
    summary = gr.Markdown(elem_id="folder-summary")

    @page_errors
    def translate(source_dir, target_dir, kind, preset, painter, pretrained, path, upload, direction, style,
                  style_mix, strength, preserve, tile, overwrite, progress=gr.Progress()):
        model, direction = session.model_source(kind, preset, painter, pretrained, path, upload, direction)
        if not source_dir.strip() or not target_dir.strip():
            raise UserError("give an input folder and an output folder")
        cfg = session.translate_config(model, direction,
                                       session.call_options(style, style_mix, strength, preserve, tile),
                                       input=session.inside(source_dir, "input"),
                                       output=session.inside(target_dir, "output folder"), overwrite=overwrite,
                                       progress=False)

        def work(stop: threading.Event, report: Callable):
            with listening(lambda what, done, total: report((what, done, total))):
                return translate_folder(cfg, stop=stop)

        for kind, value in in_background(session, work):
            if kind == "update":
                what, done, total = value
                progress((done, total) if total else None, desc=what)
                yield f"{what}: {done:g} of {total:g}" if total else what
                continue
            yield folder_report(value)

    run.click(translate, [source, target, *models, *options, overwrite], summary, concurrency_id=JOB)


def folder_report(result) -> str:
    """A folder job's summary, in Markdown."""
    lines = [f"**converted** {len(result.converted)} · **skipped** (output exists) {len(result.skipped)} · "
             f"**failed** {len(result.failed)}"]
    lines += [f"- failed: `{path}`: {why}" for path, why in result.failed]
    if result.stopped:
        lines += [f"- **stopped**: {result.stopped}" + (f" ({result.not_done} not done)" if result.not_done else "")]
    return "\n".join(lines)


def serve(cfg: UiConfig, block: bool = True):
    """Start the page (``cyclegan ui``); with ``block=False`` return ``(page, url)`` and keep serving in the
    background (tests)."""
    validate(cfg)
    if cfg.exposed:
        log.warning("the page is open to %s%s: visitors can read and write the images in %s and use this "
                    "machine's %s", "the internet (--share)" if cfg.share else f"the network (--host {cfg.host})",
                    "" if cfg.auth else " without a password (--trusted-network)", Path(cfg.root).resolve(),
                    "GPU" if resolve_device(cfg.device).type == "cuda" else "processor")
    page = build(cfg)
    auth = tuple(cfg.auth.split(":", 1)) if cfg.auth else None
    _, url, _ = page.launch(server_name=cfg.host, server_port=cfg.port, share=cfg.share, prevent_thread_lock=True,
                            quiet=not block, footer_links=[], auth=auth, max_file_size=cfg.max_upload_mb * 1024 ** 2)
    log.info("cyclegan ui on %s, reading and writing in %s (Ctrl-C stops it)", url, page.session.root)
    if block:
        try:
            page.block_thread()
        finally:
            page.close()
    return page, url
