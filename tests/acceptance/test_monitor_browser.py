"""The `/monitor` page in a real headless Chromium, driven by Playwright, against the real ASGI
server, relay and a GPU worker: a job submitted through the API shows up, its progress bar moves,
and it ends in the finished table as completed, without a reload."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Page, sync_playwright

from tests.conftest import TEST_DATA_DIR

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The machine has no outside network: without these flags Chromium keeps trying to reach Google.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = TEST_DATA_DIR / "monitor.png"
RUNNING_SCREENSHOT = TEST_DATA_DIR / "monitor-running.png"
PAGE_TIMEOUT_MS = 20_000


@contextlib.contextmanager
def chromium_page() -> Iterator[tuple[Page, list[str]]]:
    """A page in headless Chromium and the script errors it raised.

    Playwright's sync API runs an event loop in this thread while open, which Django refuses to
    share: open it only after the last ORM call of the test (here, starting the worker)."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium is missing at {CHROMIUM}: scripts/test installs Debian's chromium package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page, errors
        finally:
            browser.close()


def _bar_and_stage(page, job_id: str) -> tuple[float, str] | None:
    """The width of the job's progress bar as a share of its track, in percent, and the stage
    shown beside it (what the user sees), read in one go; None while there is no bar to measure:
    the row can leave the running table, or not be laid out yet, between two polls."""
    reading = page.evaluate(
        """jobId => {
            const bar = document.querySelector(`#jobs .bar[data-job="${jobId}"]`);
            const stage = document.querySelector(`[data-stage="${jobId}"]`);
            const track = bar && bar.getBoundingClientRect().width;
            if (!track || !bar.firstElementChild || !stage) return null;
            return [100 * bar.firstElementChild.getBoundingClientRect().width / track, stage.innerText];
        }""",
        job_id,
    )
    return None if reading is None else (reading[0], reading[1])


def test_the_monitor_page_shows_a_submitted_job_progress_to_completed(live_stack, operator_key, gpu_worker):
    worker = gpu_worker()
    with chromium_page() as (page, errors):
        _watch_a_job_complete(page, errors, live_stack.api_url, operator_key[1], worker.worker_id)


def _watch_a_job_complete(page: Page, errors: list[str], api_url: str, key: str, worker_id: str) -> None:
    page.goto(f"{api_url}/monitor")
    page.fill("#key-input", key)
    page.click("#key-form button")
    page.wait_for_selector("#connection.online")
    page.wait_for_selector(f"#workers td:text-is('{worker_id}')")
    # An operator also sees how EmProps is being told of its workflows' endings.
    page.wait_for_selector("#emprops-counts .tile:has-text('dead-lettered')")

    response = requests.post(
        f"{api_url}/api/jobs",
        headers={"x-api-key": key},
        json={"type": "simulation", "payload": {"duration": 4, "steps": 8, "result": "cat.png"}},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]

    page.wait_for_selector(f'#jobs tr[data-job-row="{job_id}"]')
    running_shot = RUNNING_SCREENSHOT
    running_shot.unlink(missing_ok=True)
    seen: list[float] = []
    stages: list[str] = []
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline and not page.query_selector(f'#finished tr[data-job-row="{job_id}"]'):
        reading = _bar_and_stage(page, job_id)
        if reading is not None:
            seen.append(round(reading[0]))
            stages.append(reading[1])
            if 40 <= seen[-1] < 100 and not running_shot.exists():
                page.screenshot(path=str(running_shot))
        page.wait_for_timeout(100)
    row = page.wait_for_selector(f'#finished tr[data-job-row="{job_id}"]')

    assert row.query_selector(".pill").inner_text() == "completed"
    assert row.query_selector("td:nth-child(5)").inner_text() == worker_id
    partway = [percent for percent in seen if 0 < percent < 100]
    assert partway, f"the bar never showed progress between 0 and 100: {seen}"
    assert partway == sorted(partway), f"the bar went backwards: {seen}"
    assert page.query_selector(f'#jobs tr[data-job-row="{job_id}"]') is None
    assert len({stage for stage in stages if stage.startswith("step ")}) >= 2, (
        f"the stage stood still: {stages}"
    )
    page.wait_for_timeout(400)  # let the last bar transition finish before the picture
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert errors == []


def test_an_id_shaped_like_a_path_never_turns_an_admins_click_into_another_action(live_stack):
    # A row from before ids had a pattern: its id climbs out of /api/workflows/ to revoke a key.
    from accounts.models import ApiKey, Role
    from workflows.models import Workflow, WorkflowMode, WorkflowStatus

    admin, raw = ApiKey.issue("monitor-admin", role=Role.ADMIN)
    victim, _ = ApiKey.issue("victim")
    Workflow.objects.create(
        workflow_id=f"../keys/{victim.pk}/revoke#",
        name="hostile",
        mode=WorkflowMode.CLIENT,
        status=WorkflowStatus.RUNNING,
        tenant=admin.tenant,
    )
    with chromium_page() as (page, errors):
        alerts: list[str] = []
        page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.accept()))
        page.goto(f"{live_stack.api_url}/monitor")
        page.fill("#key-input", raw)
        page.click("#key-form button")
        page.click("#workflows tr:has-text('hostile') button")
        page.wait_for_timeout(1000)  # what the click sent has been answered by now
    victim.refresh_from_db()
    assert victim.revoked_at is None and victim.is_active
    assert len(alerts) == 1 and alerts[0].startswith("cancel workflow"), alerts
    assert errors == []
