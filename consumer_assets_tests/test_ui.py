"""The UI in a real browser: headless Chromium on dagster-webserver after a short pipeline run.

Our plots reach the UI as Markdown metadata with the PNG inlined; whether the UI draws
them (and does not show a broken image) is only known in a browser. The run behind
the pages is the project's own assets over a small shop: eight landed days, their
snapshots and labels, a candidate trained, evaluated and promoted (the gate opened
wide, since a few hundred profiles cannot pass the real one), and a ninth day scored and
monitored. Screenshots go to ``benchmarks/out/ui/`` for the README's tour.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path
from unittest.mock import patch

import dagster as dg
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from consumer_assets.automation.freshness import FRESHNESS_CHECKS
from consumer_assets.automation.sensors import FEATURE_ASSETS
from consumer_assets.definitions import build_definitions
from consumer_assets.features.resources import FeatureResource
from consumer_assets.io_manager import (
    CandidateIOManager,
    EvaluationIOManager,
    ModelInServiceLoader,
    PartitionIOManager,
)
from consumer_assets.jobs import daily_data_job, evaluation_job, labels_job, training_job
from consumer_assets.monitoring.assets import monitoring_checks
from consumer_assets.monitoring.resources import MonitoringResource
from consumer_assets.simulation import SimulationConfig, simulate_to_landing
from consumer_assets.storage import StorageRoot
from consumer_assets.storage.resources import StorageResource
from consumer_assets.timeline import Timeline
from consumer_assets.training.resources import TrainingResource
from consumer_assets.validation.assets import validation_checks
from consumer_assets.validation.resources import GateResource
from local_servers import REPO, free_port, start, stop, wait_for_webserver

pytestmark = pytest.mark.slow

START = date(2026, 10, 1)
LANDED_DAYS = 9
WINDOW, HORIZON = 3, 2
TIMELINE = Timeline(label_horizon_days=HORIZON, training_days=3)
defs = build_definitions(TIMELINE)
# the webserver builds the same definitions from the environment
TIMELINE_ENV = {"CONSUMER_ASSETS_LABEL_HORIZON_DAYS": str(HORIZON), "CONSUMER_ASSETS_TRAINING_DAYS": "3"}
TRAIN_AT = START + timedelta(days=LANDED_DAYS - 2)  # labels of six days have matured: three train, three held out
SCORED = START + timedelta(days=LANDED_DAYS - 1)
SCREENSHOTS = REPO / "benchmarks" / "out" / "ui"
OPEN_GATE = GateResource(
    min_auc=0.0,
    min_log_likelihood_gain=-1e9,
    baseline_tolerance=1.0,
    min_positives=1,
    min_slice_positives=1,
    max_calibration_error=1.0,
    max_rate_ratio=1e9,
    min_prediction_std=0.0,
    max_auc_drop=1.0,
    max_relative_auc_drop=1.0,
)
OPEN_MONITORING = MonitoringResource(
    reference_days=2, min_realised_auc=0.0, min_realised_over_predicted=0.0, max_realised_over_predicted=1e6
)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium is not installed: `make chromium` installs it (apt), `make test` does so itself")
    return found


def _run_pipeline(instance: dg.DagsterInstance, folder: Path) -> None:
    """The project's assets, in the order the automation runs them, recorded in ``instance``."""
    storage = StorageResource(root=str(folder))
    resources = {
        **defs.resources,
        "storage": storage,
        "partition_io_manager": PartitionIOManager(storage=storage),
        "model_in_service_loader": ModelInServiceLoader(storage=storage),
        "candidate_io_manager": CandidateIOManager(storage=storage),
        "evaluation_io_manager": EvaluationIOManager(storage=storage),
        "features": FeatureResource(window_days=WINDOW, max_events=20, output_files=1),
        "training": TrainingResource(max_epochs=3, hidden_size=16, threads=2),
        "gate": OPEN_GATE,
        "monitoring": OPEN_MONITORING,
    }

    def run(job: dg.UnresolvedAssetJobDefinition, day: date, selection=None) -> None:
        result = dg.materialize(
            [*defs.assets, *defs.asset_checks],
            resources=resources,
            instance=instance,
            partition_key=day.isoformat(),
            selection=selection or job.selection,
            raise_on_error=False,
        )
        assert result.success, f"{job.name} of {day} failed"

    for k in range(LANDED_DAYS):
        day = START + timedelta(days=k)
        # As the landing sensor: nothing to score before a model serves (and, as its requests, no freshness checks).
        run(
            daily_data_job,
            day,
            None if day > TRAIN_AT else dg.AssetSelection.assets(*FEATURE_ASSETS) - FRESHNESS_CHECKS,
        )
        if k >= HORIZON:
            run(labels_job, day - timedelta(days=HORIZON))
        if day == TRAIN_AT:
            run(training_job, day)
            run(evaluation_job, day)


READS: set[tuple[str, str]] = set()  # (asset, dataset) of every partition an asset read in the run below


@contextlib.contextmanager
def recording_reads():
    """Notes which asset reads which dataset: every partition read opens its manifest, inside the asset's function
    (named as the asset is) somewhere up the stack."""
    assets = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    package = str(REPO / "consumer_assets")
    original = StorageRoot.manifest

    def manifest(self, dataset, day):
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name in assets and frame.f_code.co_filename.startswith(package):
                READS.add((frame.f_code.co_name, dataset))
                break
            frame = frame.f_back
        return original(self, dataset, day)

    with patch.object(StorageRoot, "manifest", manifest):
        yield


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """dagster-webserver over an instance that holds the short run; its base URL."""
    folder = tmp_path_factory.mktemp("ui")
    home, data = folder / "home", folder / "data"
    home.mkdir()
    simulate_to_landing(StorageRoot(str(data)), START, LANDED_DAYS, SimulationConfig(profiles=1500, seed=3))
    with dg.DagsterInstance.local_temp(str(home)) as instance, recording_reads():
        _run_pipeline(instance, data)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "CONSUMER_ASSETS_ROOT": str(data), **TIMELINE_ENV}
    webserver = start(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env,
        folder / "webserver.log",
    )
    try:
        wait_for_webserver(f"http://127.0.0.1:{port}/graphql", webserver)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(webserver)


@pytest.fixture(scope="module")
def browser(ui):
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    page.goto(url, wait_until="networkidle")
    skip = page.get_by_role("button", name="Skip")  # Dagster's one-time community dialog on a fresh browser profile
    with contextlib.suppress(PlaywrightTimeout):
        skip.click(timeout=5_000)
    return page


def _overview(page, screenshot: str) -> None:
    page.get_by_text("Latest materialization").wait_for(timeout=60_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{screenshot}.png", full_page=True)


def _plots_load(page, names: list[str], screenshot: str) -> None:
    """Each named Markdown metadata entry opens to an image that the browser decoded (a broken one has no natural
    width)."""
    for name in names:
        row = page.locator("tr", has=page.get_by_text(name, exact=True)).first
        row.wait_for(timeout=30_000)
        opener = row.get_by_text(
            "[Show Markdown]"
        )  # long Markdown opens in a dialog, short Markdown renders in the row
        area = page.get_by_role("dialog") if opener.count() else row
        if opener.count():
            opener.click()
        image = area.locator("img")
        image.wait_for(timeout=30_000)
        page.wait_for_function("img => img.complete", arg=image.element_handle(), timeout=30_000)
        width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert width > 100 and height > 100, f"{name}: the image did not load ({width}x{height})"
        area.screenshot(path=SCREENSHOTS / f"{screenshot}-{name}.png")
        if area is not row:
            area.get_by_role("button", name="Close").click()
            area.wait_for(state="hidden")


def _checks_visible(page, checks, screenshot: str) -> None:
    """The Checks tab lists every check of the asset, each with an evaluation (none 'Not evaluated')."""
    page.get_by_role("tab", name="Checks").click()
    names = [spec.name for check in checks for spec in check.check_specs]
    for name in names:
        page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
    page.get_by_text("Latest execution").wait_for(timeout=30_000)
    page.screenshot(path=SCREENSHOTS / f"{screenshot}-checks.png", full_page=True)
    body = page.inner_text("body")
    assert "Not evaluated" not in body, body


def test_the_training_page_draws_the_training_curves(ui, browser):
    page = _open(browser, f"{ui}/assets/trained_lstm")
    _overview(page, "trained_lstm")
    _plots_load(page, ["training_curves"], "trained_lstm")


def test_the_evaluation_page_draws_roc_and_calibration_and_lists_the_gate(ui, browser):
    page = _open(browser, f"{ui}/assets/candidate_evaluation")
    _overview(page, "candidate_evaluation")
    _plots_load(page, ["roc", "calibration"], "candidate_evaluation")
    _checks_visible(page, validation_checks, "candidate_evaluation")


def test_the_monitoring_page_draws_the_days_plots_and_lists_its_checks(ui, browser):
    page = _open(browser, f"{ui}/assets/monitoring_stats")
    _overview(page, "monitoring_stats")
    _plots_load(page, ["scores_plot"], "monitoring_stats")
    _checks_visible(page, monitoring_checks, "monitoring_stats")


def test_no_asset_reads_a_dataset_it_does_not_take_as_an_input_or_declare(ui):
    """What the lineage view draws is what the code reads: every dataset an asset read in the run is itself or one
    of its parents in the graph."""
    graph = defs.resolve_asset_graph()
    undeclared = {
        (asset, dataset)
        for asset, dataset in READS
        if dataset != asset and dg.AssetKey(dataset) not in graph.get(dg.AssetKey(asset)).parent_keys
    }
    assert {asset for asset, _ in READS} >= {"daily_histories", "batch_predictions", "monitoring_stats"}
    assert undeclared == set()
