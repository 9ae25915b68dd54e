"""The inspector page (helpers/deploy/serve.py): it scores as ``predict`` does, lists a bad upload with its reason,
re-decides without re-scoring, and does all of it in a real browser (Debian's headless Chromium via Selenium)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_deploy import supervised_folder
from test_hostile import _png_with_declared_size

from helpers.data.synthetic import render_image
from helpers.deploy import serve
from helpers.deploy.predict import Predictor, predict

# gradio is not imported into the test process: with a Gradio server started in it, a later notebook under nbval in
# the same pytest session waited in vain for its cell's output. The page runs as `python -m helpers serve` instead.
if importlib.util.find_spec("gradio") is None:
    pytest.skip("the inspector page needs gradio (requirements-dev.txt installs it)", allow_module_level=True)
ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return supervised_folder(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def uploads(tmp_path_factory) -> dict[str, Path]:
    """Two generated photos, one real MVTec AD photo when ../shared has it, and two files that are not images."""
    from conftest import REAL_SAMPLE

    folder = tmp_path_factory.mktemp("uploads")
    files = {}
    for i in range(2):
        path = folder / f"generated_{i}.png"
        Image.fromarray(render_image("bottle", np.random.default_rng(7 + i), 64)[0]).save(path)
        files[path.name] = path
    real = sorted(REAL_SAMPLE.glob("bottle/test/*/*.png"))[:1]
    if real:
        files["real_bottle.png"] = Path(shutil.copy(real[0], folder / "real_bottle.png"))
    (folder / "broken.png").write_bytes(b"this is not an image, whatever its name says")
    (folder / "huge.png").write_bytes(_png_with_declared_size(30_000, 30_000))
    files["broken.png"], files["huge.png"] = folder / "broken.png", folder / "huge.png"
    return files


def _by_file(table: pd.DataFrame, column: str) -> dict[str, object]:
    names = table["file"] if "file" in table else table["path"]        # the page's table, or predict's
    return dict(zip(names.map(lambda p: Path(p).name), table[column]))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_page_scores_like_predict_and_lists_bad_files(model_dir, uploads):
    predictor = Predictor(model_dir, "onnx")
    page = serve.inspect_uploads(predictor, list(uploads.values())).table
    expected = predict(model_dir, list(uploads.values()), backend="onnx", progress=False)
    assert set(page["file"]) == set(uploads)
    scored = page[page["problem"] == ""]
    assert set(scored["file"]) == {n for n in uploads if n not in ("broken.png", "huge.png")}
    want = _by_file(expected, "score")
    assert all(abs(s - want[f]) <= 1e-6 for f, s in zip(scored["file"], scored["score"]))
    assert _by_file(scored, "decision") == {f: d for f, d in _by_file(expected, "decision").items() if f in set(scored["file"])}
    problems = _by_file(page, "problem")
    assert "too small" in str(problems["broken.png"]) or "not an image" in str(problems["broken.png"])
    assert "too large (900,000,000 px declared" in str(problems["huge.png"])
    assert problems["broken.png"] == _by_file(expected, "problem")["broken.png"]
    # the slider re-decides the same scores: everything is defective at 0 and good above the top score
    assert set(serve.redecide(page, 0.0).loc[page["problem"] == "", "decision"]) == {"defective"}
    high = serve.redecide(page, float(scored["score"].max()) + 1e-3)
    assert set(high.loc[page["problem"] == "", "decision"]) == {"good"}
    assert high["score"].equals(page["score"])


def test_the_category_is_read_from_a_file_name():
    known = ("bottle", "metal_nut", "screw", "grid")
    assert serve.category_in_name("bottle_000.png", known) == "bottle"
    assert serve.category_in_name("uploads/metal_nut-scratch.png", known) == "metal_nut"
    assert serve.category_in_name("screwdriver.png", known) == ""          # a whole word only
    assert serve.category_in_name("IMG_0042.png", known) == ""


def test_the_card_in_words_says_what_a_reader_needs(model_dir):
    words = serve.card_in_words(Predictor(model_dir, "onnx"))
    for needed in ("Trained on", "Test metrics", "Decision", "Backend", "Limits", "resnet50", "onnx"):
        assert needed in words, needed


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM or ""
    return webdriver.Chrome(service=Service(CHROMEDRIVER or ""), options=options)


def _page_table(driver) -> pd.DataFrame:
    """The results table as the page shows it: every cell's text by its row and column."""
    from selenium.webdriver.common.by import By

    cells = {}
    for cell in driver.find_elements(By.CSS_SELECTOR, "#results [data-testid^='cell-']"):
        _, row, col = cell.get_attribute("data-testid").split("-")
        cells[int(row), int(col)] = (cell.get_attribute("textContent") or "").strip()
    rows = sorted({r for r, _ in cells})
    return pd.DataFrame([[cells.get((r, c), "") for c in range(len(serve.PAGE_COLUMNS))] for r in rows],
                        columns=serve.PAGE_COLUMNS)


def _score_in_browser(driver, paths: list[Path], note: str) -> pd.DataFrame:
    """Upload ``paths``, press Score, wait for the page to say ``note`` and return its table."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "#uploads input[type=file]").send_keys("\n".join(map(str, paths)))
    _wait(driver, lambda d: all(p.stem in _text(d, "uploads") for p in paths), "the uploads listed")
    driver.find_element(By.ID, "score").click()
    _wait(driver, lambda d: _text(d, "note") == note, f"the note {note!r}")
    _wait(driver, lambda d: len(_page_table(d)) == len(paths), f"{len(paths)} rows in the results")
    return _page_table(driver)


def _text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return (driver.find_element(By.ID, element_id).get_attribute("textContent") or "").strip()


def _wait(driver, condition, what: str, seconds: float = 180) -> None:
    """Wait for ``condition``; on a timeout, say what the page showed instead."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, seconds).until(condition)
    except TimeoutException:
        pytest.fail(f"waited {seconds:.0f} s for {what}; the page's uploads: {_text(driver, 'uploads')[:300]!r}, "
                    f"note: {_text(driver, 'note')!r}, results: {_page_table(driver).to_dict('records')}")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_page_in_a_real_browser(model_dir, uploads, tmp_path):
    """Headless Chromium loads the page, uploads real and generated photos and two bad files, reads the scores and
    decisions back from the page (they are predict's), sees the bad files' reasons, and the server answers again."""
    if not (CHROMIUM and CHROMEDRIVER):
        message = ("headless Chromium is not installed: apt-get install chromium chromium-driver (Debian's packages; "
                   ".ci/run installs them where it may)")
        if os.environ.get("DEFECTS_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "helpers", "serve", "--model", str(model_dir), "--port",
                                   str(port)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    started = time.time()
    while True:                                       # the CLI's server answers within a minute or two
        try:
            with urllib.request.urlopen(url, timeout=5):
                break
        except OSError:
            if server.poll() is not None or time.time() - started > 240:
                server.kill()
                pytest.fail(f"`python -m helpers serve` did not answer at {url}: {log.read_text()[-2000:]}")
            time.sleep(1)
    driver = _browser()
    try:
        driver.get(url)
        _wait(driver, lambda d: "Trained on" in (d.find_element(By.TAG_NAME, "body").text), "the page to load")
        assert "Trained on" in driver.find_element(By.ID, "card").text
        n_good = len(uploads) - 2
        shown = _score_in_browser(driver, list(uploads.values()), f"{n_good} scored, 2 not scored (see 'problem')")
        expected = predict(model_dir, list(uploads.values()), backend="onnx", progress=False)
        want_score, want_decision = _by_file(expected, "score"), _by_file(expected, "decision")
        assert set(shown["file"]) == set(uploads)
        for _, row in shown.iterrows():
            if row["file"] in ("broken.png", "huge.png"):
                assert row["score"] in ("", "nan", "NaN") and row["problem"], row.to_dict()
            else:
                assert abs(float(row["score"]) - float(want_score[row["file"]])) <= 1e-6, row.to_dict()
                assert row["decision"] == want_decision[row["file"]] and row["problem"] == ""
        assert "too large (900,000,000 px declared" in shown.set_index("file").loc["huge.png", "problem"]
        with urllib.request.urlopen(url, timeout=30) as response:     # the server still answers
            assert response.status == 200
        driver.find_element(By.CSS_SELECTOR, "#uploads button[aria-label='Clear']").click()   # and scores again
        again = _score_in_browser(driver, [uploads["generated_0.png"]], "1 scored")
        assert again["file"].tolist() == ["generated_0.png"]
        assert abs(float(again["score"].iloc[0]) - float(want_score["generated_0.png"])) <= 1e-6
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=60)
