"""The web page (``cyclegan ui``), driven in a real headless browser, and its other tabs through Gradio's
client: what it shows is the command line's output, pixel for pixel. Needs the ui extra; the browser tests
need Selenium and Debian's chromium and chromium-driver too (``.ci/run`` installs them) and are skipped,
saying why, where they cannot be had."""

from __future__ import annotations

import io
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cyclegan.cli import app
from tests.conftest import shared_path, write_image
from tests.test_fast_style import published_layout_file

gradio = pytest.importorskip("gradio", reason="the ui extra is not installed: pip install -e '.[ui]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[dev]'")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or ""
runner = CliRunner()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """The folder the test page may read and write: every test's tmp_path is inside it."""
    return tmp_path_factory.getbasetemp()


@pytest.fixture(scope="module")
def served(root):
    from cyclegan.config import UiConfig
    from cyclegan.ui import serve

    app_, url = serve(UiConfig(root=str(root), port=free_port(), device="cpu", precision="fp32"), block=False)
    yield app_, url
    app_.close()


@pytest.fixture(scope="module")
def page(served):
    return served[1]


@pytest.fixture(scope="module")
def generator(root) -> Path:
    """The reference generator of ../shared, copied inside the page's root."""
    copy = root / "reference_generator"
    if not copy.exists():
        shutil.copytree(shared_path("fixtures", "reference_generator"), copy)
    return copy


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).is_file() and DRIVER):
        pytest.skip("no chromium/chromedriver: apt-get install -y chromium chromium-driver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                "--window-size=1280,1600", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def find(driver, css: str, timeout: float = 60):
    return WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.CSS_SELECTOR, css))


def choose(driver, group: str, value: str) -> None:
    for label in driver.find_elements(By.CSS_SELECTOR, f"#{group} label"):
        if label.text.strip() == value:
            label.click()
            return
    raise AssertionError(f"no {value!r} in #{group}")


def type_into(driver, css: str, text: str) -> None:
    box = find(driver, f"{css} textarea, {css} input")
    box.clear()
    box.send_keys(text)


def shown_image(driver, css: str, after: str | None = None, timeout: float = 120) -> np.ndarray:
    """The pixels of the image the page shows in ``css`` (fetched from the page's own URL)."""
    def src(d):
        images = d.find_elements(By.CSS_SELECTOR, f"{css} img")
        value = images[0].get_attribute("src") if images else None
        return value if value and value != after else None

    url = WebDriverWait(driver, timeout).until(src)
    with urllib.request.urlopen(url, timeout=30) as response:
        return np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB")), url


def translate_in_page(driver, url: str, photo: Path, model: Path, after: str | None = None):
    driver.get(url)
    find(driver, "#translate-input input[type=file]").send_keys(str(photo))
    find(driver, "#translate-input img")  # the upload arrived
    choose(driver, "translate-source", "path")
    type_into(driver, "#translate-path", str(model))
    find(driver, "#translate-run").click()
    return shown_image(driver, "#translate-output", after)


def cli_output(model: Path, photo: Path, out: Path) -> np.ndarray:
    result = runner.invoke(app, ["translate", str(model), str(photo), str(out), "--device", "cpu", "--precision",
                                 "fp32", "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    return np.asarray(Image.open(out).convert("RGB"))


def test_the_page_translates_as_the_command_line_does(page, browser, tmp_path, generator):
    photo = write_image(tmp_path / "photo.png", size=(45, 37), seed=1)
    shown, first = translate_in_page(browser, page, photo, generator)
    assert np.array_equal(shown, cli_output(generator, photo, tmp_path / "cli.png"))
    assert "cyclegan" in browser.title
    # a fast style network made here, through the same page
    published_layout_file(tmp_path / "mosaic.pth")
    shown, _ = translate_in_page(browser, page, photo, tmp_path / "mosaic.pth", after=first)
    assert np.array_equal(shown, cli_output(tmp_path / "mosaic.pth", photo, tmp_path / "cli_style.png"))


def test_a_bad_model_is_the_command_lines_message_in_the_page(page, browser, tmp_path):
    photo = write_image(tmp_path / "photo.png", size=(32, 32), seed=2)
    (tmp_path / "forged.pth").write_bytes(b"not a model")
    browser.get(page)
    find(browser, "#translate-input input[type=file]").send_keys(str(photo))
    find(browser, "#translate-input img")
    choose(browser, "translate-source", "path")
    type_into(browser, "#translate-path", str(tmp_path / "forged.pth"))
    find(browser, "#translate-run").click()
    deadline = time.time() + 60
    while time.time() < deadline and "is not a weights file this tool reads" not in browser.page_source:
        time.sleep(0.5)
    assert "is not a weights file this tool reads" in browser.page_source and "Traceback" not in browser.page_source


TYPE_NUMBER = ("const [box, value] = arguments; box.value = value;"
               "for (const kind of ['input', 'change']) box.dispatchEvent(new Event(kind, {bubbles: true}));")


def test_a_multi_style_network_gets_one_slider_per_style(page, browser, tmp_path):
    """The mixing sliders of a conditional-instance-norm network: all weight on its second style paints
    what `translate --style 1` paints."""
    import torch
    from selenium.webdriver.common.keys import Keys

    from cyclegan.checkpoint import save_network
    from cyclegan.style.fast import FastStyleSpec, TransformerNet

    torch.manual_seed(0)
    net = TransformerNet(2)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".in" in f".{name}" or name.startswith("in"):
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
    model = save_network(tmp_path / "two.safetensors", net, FastStyleSpec(n_styles=2, styles=["waves", "stars"]))
    photo = write_image(tmp_path / "photo.png", size=(40, 32), seed=3)
    browser.get(page)
    find(browser, "#translate-input input[type=file]").send_keys(str(photo))
    find(browser, "#translate-input img")
    choose(browser, "translate-source", "path")
    type_into(browser, "#translate-path", str(model))
    find(browser, "#translate-path textarea, #translate-path input").send_keys(Keys.TAB)  # read its styles
    for label, weight in (("style 0: waves", "0"), ("style 1: stars", "1")):
        box = find(browser, f"input[type=number][aria-label='number input for {label}']")
        # typed as a person would, by the events the page listens to (chromedriver cannot clear number inputs)
        browser.execute_script(TYPE_NUMBER, box, weight)
    find(browser, "#translate-run").click()
    shown, _ = shown_image(browser, "#translate-output")
    result = runner.invoke(app, ["translate", str(model), str(photo), str(tmp_path / "cli.png"), "--style", "1",
                                 "--device", "cpu", "--precision", "fp32", "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(shown, np.asarray(Image.open(tmp_path / "cli.png").convert("RGB")))


# --- the other tabs, through Gradio's own client (the page's API; no browser needed) --------------------


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def test_the_folder_tab_converts_as_translate_does_and_skips_what_exists(page, tmp_path, generator):
    inputs = tmp_path / "photos"
    for i in range(2):
        write_image(inputs / "sub" / f"{i}.png", size=(40 + 8 * i, 32), seed=i)
    model = ("path", "painting", "monet", "style_monet", str(generator), None, "AtoB")
    call = (str(inputs), str(tmp_path / "out"), *model, "", "", 1, False, 0, False)
    first, second = (client(page).predict(*call, api_name="/translate") for _ in range(2))
    assert "**converted** 2" in first and "**failed** 0" in first
    assert "**converted** 0" in second and "(output exists) 2" in second
    result = runner.invoke(app, ["translate", str(generator), str(inputs), str(tmp_path / "cli"), "--device", "cpu",
                                 "--precision", "fp32", "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    for i in range(2):
        shown = np.asarray(Image.open(tmp_path / "out" / "sub" / f"{i}.png"))
        assert np.array_equal(shown, np.asarray(Image.open(tmp_path / "cli" / "sub" / f"{i}.png")))


def test_the_stylize_tabs_adain_paints_as_stylize_does(page, tmp_path):
    from tests.test_adain import published_files

    published_files(tmp_path / "adain")
    vgg, decoder = tmp_path / "adain" / "vgg_normalised.pth", tmp_path / "adain" / "decoder.pth"
    photo = write_image(tmp_path / "photo.png", size=(40, 32), seed=1)
    style = write_image(tmp_path / "style.png", size=(32, 32), seed=2)
    from gradio_client import handle_file

    shown, status, _ = client(page).predict(
        handle_file(str(photo)), [handle_file(str(style))], "", "adain", 512, 300, 0.5, False, None, None, 0.8,
        str(vgg), str(decoder), "candy", "", False, api_name="/stylize")
    result = runner.invoke(app, ["stylize", str(photo), str(style), str(tmp_path / "cli.png"), "--method", "adain",
                                 "--alpha", "0.8", "--vgg-weights", str(vgg), "--decoder-weights", str(decoder),
                                 "--device", "cpu", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert status == "done"
    assert np.array_equal(np.asarray(Image.open(shown)), np.asarray(Image.open(tmp_path / "cli.png")))


# --- what a visitor may touch -------------------------------------------------------------------------


def folder_call(source, target, model_path, overwrite=False):
    return (str(source), str(target), "path", "painting", "monet", "style_monet", str(model_path), None, "AtoB",
            "", "", 1, False, 0, overwrite)


def test_the_folder_tab_reads_and_writes_only_inside_its_root(page, root, tmp_path, generator):
    from gradio.utils import get_upload_folder as served_folder
    from gradio_client.exceptions import AppError

    outside = Path(__file__).resolve().parent  # the tests' own folder: outside the page's root
    inputs = tmp_path / "photos"
    write_image(inputs / "a.png", size=(32, 32), seed=1)
    (tmp_path / "escape").symlink_to(outside)
    attempts = {
        "input outside": folder_call(outside, tmp_path / "out", generator),
        "output outside": folder_call(inputs, outside / "out", generator),
        "output by ..": folder_call(inputs, tmp_path / ".." / ".." / ".." / "out", generator),
        "a link out": folder_call(tmp_path / "escape", tmp_path / "out", generator),
        "model outside": folder_call(inputs, tmp_path / "out", outside / "model.pth"),
        "into the served folder": folder_call(inputs, Path(served_folder()) / "stolen", generator),
    }
    for call in attempts.values():
        with pytest.raises(AppError, match="outside the folder this page may use|page's own temporary folder"):
            client(page).predict(*call, api_name="/translate")
    assert not (outside / "out").exists() and not (Path(served_folder()) / "stolen").exists()
    assert not (tmp_path / "out").exists()
    # relative paths are taken inside the root
    relative = folder_call(inputs.relative_to(root), (tmp_path / "rel").relative_to(root), generator)
    assert "**converted** 1" in client(page).predict(*relative, api_name="/translate")
    assert (tmp_path / "rel" / "a.png").is_file()


def test_style_images_of_adain_are_paths_inside_the_root_and_style_names_stay_names(root, tmp_path):
    from cyclegan.config import UiConfig
    from cyclegan.errors import UserError
    from cyclegan.ui import Session

    session = Session(UiConfig(root=str(root)))
    style = write_image(tmp_path / "style.png", size=(16, 16))
    options = session.call_options("", f"{style.relative_to(root)}:0.5,waves:0.5", 1, False, 0)
    assert options["style_mix"] == f"{style}:0.5,waves:0.5"
    assert session.call_options("2", "", 1, False, 0)["style"] == "2"
    for typed in ("/etc/passwd.png", "../../x.jpg"):
        with pytest.raises(UserError, match="outside the folder this page may use"):
            session.call_options(typed, "", 1, False, 0)


def test_the_page_refuses_to_open_to_the_network_without_a_password_or_a_word(tmp_path):
    for args, words in ((["--host", "0.0.0.0"], "--host 0.0.0.0 opens the page to the network"),
                        (["--share"], "--share publishes the page on the internet"),
                        (["--host", "0.0.0.0", "--auth", "nopassword"], "--auth nopassword: write it as USER:PASSWORD"),
                        (["--root", str(tmp_path / "nowhere")], "no such folder")):
        result = runner.invoke(app, ["ui", *args, "--port", str(free_port())])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and words in lines[0], result.output


def test_an_open_page_warns_asks_for_its_password_and_bounds_uploads(tmp_path, caplog):
    import urllib.error

    from cyclegan.config import UiConfig
    from cyclegan.ui import serve

    port = free_port()
    cfg = UiConfig(root=str(tmp_path), host="0.0.0.0", port=port, auth="ann:secret", max_upload_mb=1, device="cpu")
    with caplog.at_level("WARNING"):
        page_, _ = serve(cfg, block=False)
    try:
        assert "open to the network (--host 0.0.0.0)" in caplog.text and str(tmp_path) in caplog.text
        with pytest.raises(urllib.error.HTTPError):  # the page's API needs the password
            urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/info", timeout=30)
        from gradio_client import Client, handle_file

        ann = Client(f"http://127.0.0.1:{port}/", auth=("ann", "secret"), verbose=False)
        big = tmp_path / "big.png"
        big.write_bytes(b"\0" * (2 * 1024 ** 2))  # 2 MB against a 1 MB limit
        with pytest.raises(Exception, match="(?i)too large|exceeds|413|maximum"):
            ann.predict(handle_file(str(big)), [handle_file(str(big))], "", "adain", 512, 300, 0.5, False, None,
                        None, 0.8, "", "", "candy", "", False, api_name="/stylize")
    finally:
        page_.close()


def test_closing_the_page_deletes_its_uploads_and_outputs(tmp_path, generator):
    from gradio_client import handle_file

    from cyclegan.config import UiConfig
    from cyclegan.ui import serve

    page_, url = serve(UiConfig(root=str(generator.parent), port=free_port(), device="cpu", precision="fp32"),
                       block=False)
    photo = write_image(tmp_path / "photo.png", size=(32, 32), seed=4)
    shown, status, _ = client(url).predict(
        handle_file(str(photo)), [], "", "fast network", 512, 300, 0.5, False, None, None, 1,
        "", "", "candy", str(published(generator.parent / "net.pth")), False, api_name="/stylize")
    outputs = page_.session.outputs
    uploads = {f for files in page_.temp_file_sets for f in files}
    assert status == "done" and any(outputs.rglob("*.png")) and uploads
    page_.close()
    assert not outputs.exists() and not any(Path(f).exists() for f in uploads)


def published(path: Path) -> Path:
    if not path.exists():
        published_layout_file(path)
    return path


# --- Stop ---------------------------------------------------------------------------------------------


def test_stop_ends_a_folder_job_between_images_and_waits_for_it(served, tmp_path, generator, monkeypatch):
    from cyclegan import translate

    slow = translate.Translator.__call__

    def slowly(self, x):
        time.sleep(0.4)
        return slow(self, x)

    monkeypatch.setattr(translate.Translator, "__call__", slowly)
    for i in range(12):  # every size its own batch: one image per forward pass
        write_image(tmp_path / "photos" / f"{i:02d}.png", size=(24 + 4 * i, 24), seed=i)
    job = client(served[1]).submit(*folder_call(tmp_path / "photos", tmp_path / "out", generator),
                                   api_name="/translate")
    deadline = time.time() + 60
    while time.time() < deadline and not list((tmp_path / "out").glob("*.png")):
        time.sleep(0.1)
    client(served[1]).predict(api_name="/stop_folder")  # the Stop button
    report = job.result(timeout=30)  # the job ends, with its report, once the batch in hand is written
    written = sorted((tmp_path / "out").glob("*"))
    assert "**stopped**: stopped on request" in report and f"**converted** {len(written)}" in report
    time.sleep(1)
    assert sorted((tmp_path / "out").glob("*")) == written
    assert 1 <= len(written) < 12 and all(p.suffix == ".png" for p in written)  # no half-written temporary
    assert all(Image.open(p).size[1] == 24 for p in written)


def test_a_background_job_has_ended_when_its_generator_is_closed():
    from cyclegan.ui import in_background

    ended = []

    def work(stop, report):
        while not stop.is_set():
            report("tick")
            time.sleep(0.05)
        time.sleep(0.3)  # the image in hand
        ended.append(True)

    from cyclegan.config import UiConfig
    from cyclegan.ui import Session

    updates = in_background(Session(UiConfig()), work)
    assert next(updates) == ("update", "tick")
    updates.close()  # the page's Stop
    assert ended == [True]  # closing waited for the work to end: the queue's next job starts after it
