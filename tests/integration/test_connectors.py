"""Connectors against small real servers speaking each engine's protocol: results, progress, the
engine's errors mapped to transient or permanent, slow work, cancel and timeout."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from gpu_worker.artifacts import LocalArtifactStore
from gpu_worker.connectors.base import JobCancelled, JobContext, JobTimedOut, PermanentError, TransientError
from tests.engines.server import serving
from wire.job_spec import JobSpec


class Recorder:
    def __init__(self) -> None:
        self.progress: list[tuple[int, str]] = []
        self.cancelled = threading.Event()

    def context(self, payload: dict, timeout_s: float = 10) -> JobContext:
        return JobContext(
            spec=JobSpec(
                job_id=str(uuid.uuid4()),
                attempt=1,
                lease="l",
                type="x",
                payload=payload,
                timeout_seconds=timeout_s,
            ),
            report_progress=lambda p, stage="": self.progress.append((p, stage)),
            is_cancelled=self.cancelled.is_set,
            deadline=time.monotonic() + timeout_s,
        )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def artifacts(tmp_path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts", base_url="http://files.example/artifacts")


# --- ComfyUI -----------------------------------------------------------------------------------------


@pytest.fixture
def comfyui():
    from tests.engines.comfyui import FakeComfyUI

    with serving(FakeComfyUI()) as engine:
        yield engine


def _workflow(**sampler) -> dict:
    return {
        "3": {"class_type": "KSampler", "inputs": {"steps": 5, **sampler}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "cat"}},
    }


def _comfy(comfyui, artifacts):
    from gpu_worker.connectors.comfyui import ComfyUIConnector

    return ComfyUIConnector(comfyui.url, artifacts)


def test_comfyui_runs_a_workflow_reports_progress_and_stores_its_images(
    comfyui, artifacts, recorder, tmp_path
):
    job = recorder.context({"workflow": _workflow()})

    result = _comfy(comfyui, artifacts).run(job)

    assert comfyui.prompts[0]["prompt"] == _workflow()
    [image] = result["outputs"]
    assert (
        image["node"] == "9"
        and image["filename"] == "cat_00001_.png"
        and image["content_type"] == "image/png"
    )
    assert image["url"] == f"http://files.example/artifacts/{job.spec.job_id}/9-cat_00001_.png"
    assert (tmp_path / "artifacts" / job.spec.job_id / "9-cat_00001_.png").read_bytes().startswith(b"\x89PNG")
    percents = [p for p, _ in recorder.progress]
    assert percents == sorted(percents) and len(percents) == 5 and 0 < percents[0] < percents[-1] < 100
    assert recorder.progress[-1][1] == "node 3: 5/5"


def test_comfyui_refusing_a_workflow_is_a_permanent_error_with_its_node_errors(comfyui, artifacts, recorder):
    with pytest.raises(PermanentError) as error:
        _comfy(comfyui, artifacts).run(recorder.context({"workflow": {"1": {"class_type": "Invalid"}}}))

    assert error.value.code == "COMFYUI_INVALID_WORKFLOW" and "1" in error.value.details["node_errors"]


def test_comfyui_running_out_of_memory_is_transient_other_failures_permanent(comfyui, artifacts, recorder):
    connector = _comfy(comfyui, artifacts)
    with pytest.raises(TransientError) as oom:
        connector.run(
            recorder.context({"workflow": {"5": {"class_type": "Explode", "inputs": {"oom": True}}}})
        )
    with pytest.raises(PermanentError) as broken:
        connector.run(recorder.context({"workflow": {"5": {"class_type": "Explode", "inputs": {}}}}))

    assert oom.value.code == "COMFYUI_OUT_OF_MEMORY" and not isinstance(oom.value, PermanentError)
    assert broken.value.code == "COMFYUI_EXECUTION_ERROR" and broken.value.details["node_type"] == "Explode"


def test_cancelling_a_comfyui_job_interrupts_the_prompt(comfyui, artifacts, recorder):
    job = recorder.context({"workflow": _workflow(steps=100, step_seconds=0.05)})
    threading.Timer(0.5, recorder.cancelled.set).start()

    with pytest.raises(JobCancelled):
        _comfy(comfyui, artifacts).run(job)

    prompt_id = comfyui.prompts[0]["prompt_id"]
    assert comfyui.interrupted == [{"prompt_id": prompt_id}] and comfyui.deleted == [prompt_id]
    assert 0 < len(recorder.progress) < 100  # it was interrupted mid-way


def test_a_comfyui_job_past_its_timeout_is_interrupted_too(comfyui, artifacts, recorder):
    with pytest.raises(JobTimedOut):
        _comfy(comfyui, artifacts).run(
            recorder.context({"workflow": _workflow(steps=100, step_seconds=0.05)}, 0.6)
        )
    assert len(comfyui.interrupted) == 1


def test_an_unreachable_comfyui_is_transient_and_fails_its_health_check(artifacts, recorder):
    from devstack.embedded import free_port
    from gpu_worker.connectors.comfyui import ComfyUIConnector

    connector = ComfyUIConnector(f"http://127.0.0.1:{free_port()}", artifacts)

    with pytest.raises(TransientError) as error:
        connector.run(recorder.context({"workflow": _workflow()}))
    assert error.value.code == "COMFYUI_UNREACHABLE"
    with pytest.raises(TransientError):
        connector.health()


def test_comfyui_health_follows_the_engine(comfyui, artifacts):
    connector = _comfy(comfyui, artifacts)
    assert connector.health() is True
    comfyui.healthy = False
    with pytest.raises(TransientError):
        connector.health()


# --- OpenAI-compatible ------------------------------------------------------------------------------


@pytest.fixture
def openai_server():
    from tests.engines.llm import FakeOpenAI

    with serving(FakeOpenAI(words=6, delay=0.02), "/v1") as engine:
        yield engine


def _openai(server, artifacts):
    from gpu_worker.connectors.openai_compat import OpenAIConnector

    return OpenAIConnector(server.url, api_key="sk-test", store=artifacts)


def test_a_streamed_chat_completion_reports_progress_and_joins_the_text(openai_server, artifacts, recorder):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 10}

    result = _openai(openai_server, artifacts).run(recorder.context({"body": body}))

    assert (
        result["text"] == "w0 w1 w2 w3 w4 w5 "
        and result["finish_reason"] == "stop"
        and result["model"] == "m"
    )
    assert [p for p, _ in recorder.progress] == [
        10,
        20,
        30,
        40,
        50,
        60,
        70,
    ]  # one per chunk of a 10-token budget
    assert openai_server.requests[0]["headers"][b"authorization"] == b"Bearer sk-test"


def test_the_responses_api_streams_too_and_plain_calls_return_the_servers_json(
    openai_server, artifacts, recorder
):
    connector = _openai(openai_server, artifacts)
    streamed = connector.run(
        recorder.context({"endpoint": "responses", "body": {"model": "m", "input": "hi", "stream": True}})
    )
    plain = connector.run(recorder.context({"body": {"model": "m", "messages": []}}))

    assert streamed["text"] == "w0 w1 w2 w3 w4 w5 " and streamed["status"] == "completed"
    assert plain["choices"][0]["message"]["content"] == "w0 w1 w2 w3 w4 w5 "


def test_generated_images_are_stored_and_returned_as_urls(openai_server, artifacts, recorder):
    job = recorder.context({"endpoint": "images/generations", "body": {"model": "m", "prompt": "a cat"}})

    result = _openai(openai_server, artifacts).run(job)

    assert result["data"] == [{"url": f"http://files.example/artifacts/{job.spec.job_id}/image-0.png"}]


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, TransientError), (503, TransientError), (400, PermanentError), (401, PermanentError)],
)
def test_openai_errors_are_transient_or_permanent_by_status(
    openai_server, artifacts, recorder, status, error
):
    with pytest.raises(error) as raised:
        _openai(openai_server, artifacts).run(
            recorder.context({"body": {"model": f"fail:{status}", "messages": []}})
        )
    assert raised.value.code == f"OPENAI_HTTP_{status}" and "scripted" in raised.value.message
    if error is TransientError:
        assert not isinstance(raised.value, PermanentError)


def test_cancelling_a_streamed_completion_stops_reading_it(artifacts, recorder):
    from tests.engines.llm import FakeOpenAI

    with serving(FakeOpenAI(words=200, delay=0.05), "/v1") as slow:
        threading.Timer(0.5, recorder.cancelled.set).start()
        with pytest.raises(JobCancelled):
            _openai_at(slow.url, artifacts).run(
                recorder.context({"body": {"model": "m", "messages": [], "stream": True}})
            )
        assert 0 < len(recorder.progress) < 200
        time.sleep(0.3)
        assert slow.finished_streams == 0  # the server saw the client go away


def _openai_at(url, artifacts):
    from gpu_worker.connectors.openai_compat import OpenAIConnector

    return OpenAIConnector(url, api_key="", store=artifacts)


# --- Ollama -----------------------------------------------------------------------------------------


@pytest.fixture
def ollama():
    from tests.engines.llm import FakeOllama

    with serving(FakeOllama(words=4)) as engine:
        yield engine


def test_ollama_generate_and_chat_stream_into_one_text(ollama, recorder):
    from gpu_worker.connectors.ollama import OllamaConnector

    connector = OllamaConnector(ollama.url)
    generated = connector.run(
        recorder.context({"body": {"model": "llama3", "prompt": "hi", "options": {"num_predict": 8}}})
    )
    chatted = connector.run(
        recorder.context({"endpoint": "chat", "body": {"model": "llama3", "messages": []}})
    )

    assert generated["text"] == chatted["text"] == "w0 w1 w2 w3 "
    assert generated["done_reason"] == "stop" and generated["eval_count"] == 4
    assert [p for p, _ in recorder.progress][:4] == [12, 25, 37, 50]
    assert connector.health() is True


def test_an_ollama_model_that_is_not_there_is_a_permanent_error(ollama, recorder):
    from gpu_worker.connectors.ollama import OllamaConnector

    with pytest.raises(PermanentError) as error:
        OllamaConnector(ollama.url).run(recorder.context({"body": {"model": "missing", "prompt": "hi"}}))
    assert "not found" in error.value.message


def test_cancelling_an_ollama_generation_closes_the_stream(recorder):
    from gpu_worker.connectors.ollama import OllamaConnector
    from tests.engines.llm import FakeOllama

    with serving(FakeOllama(words=200, delay=0.05)) as slow:
        threading.Timer(0.5, recorder.cancelled.set).start()
        with pytest.raises(JobCancelled):
            OllamaConnector(slow.url).run(recorder.context({"body": {"model": "llama3", "prompt": "hi"}}))
        time.sleep(0.3)
        assert 0 < len(recorder.progress) < 200 and slow.finished_streams == 0


# --- AUTOMATIC1111 ----------------------------------------------------------------------------------


@pytest.fixture
def a1111():
    from tests.engines.a1111 import FakeA1111

    with serving(FakeA1111()) as engine:
        yield engine


def test_a1111_generates_reports_its_progress_and_stores_the_images(a1111, artifacts, recorder):
    from gpu_worker.connectors.a1111 import A1111Connector

    job = recorder.context({"params": {"prompt": "a cat", "steps": 8, "step_seconds": 0.15, "batch_size": 2}})
    result = A1111Connector(a1111.url, artifacts).run(job)

    assert [i["url"].rsplit("/", 1)[1] for i in result["images"]] == ["image-0.png", "image-1.png"]
    stages = [stage for _, stage in recorder.progress]
    assert any(stage.startswith("step ") and not stage.startswith("step 0") for stage in stages), stages
    assert [p for p, _ in recorder.progress] == sorted(p for p, _ in recorder.progress)


def test_cancelling_an_a1111_job_interrupts_it_and_bad_params_are_permanent(a1111, artifacts, recorder):
    from gpu_worker.connectors.a1111 import A1111Connector

    connector = A1111Connector(a1111.url, artifacts)
    threading.Timer(0.4, recorder.cancelled.set).start()
    with pytest.raises(JobCancelled):
        connector.run(recorder.context({"params": {"steps": 100, "step_seconds": 0.05}}))
    assert a1111.interrupts == 1

    with pytest.raises(PermanentError) as error:
        connector.run(Recorder().context({"params": {"sampler_name": "NoSuchSampler"}}))
    assert error.value.code == "A1111_HTTP_422"


# --- a model server of your own ---------------------------------------------------------------------


def test_the_http_connector_posts_the_job_and_returns_the_json_answer(recorder, webhook_receiver):
    from gpu_worker.connectors.http_json import HttpJsonConnector

    connector = HttpJsonConnector(webhook_receiver.url("/model"), ("my-model",))
    job = recorder.context({"prompt": "hi"})

    assert connector.run(job) == {"ok": True}
    [request] = webhook_receiver.at("/model")
    assert request.json["payload"] == {"prompt": "hi"} and request.json["job_id"] == job.spec.job_id
    webhook_receiver.script("/model", "503", "422")
    with pytest.raises(TransientError):
        connector.run(recorder.context({}))
    with pytest.raises(PermanentError):
        connector.run(recorder.context({}))


# --- artifacts in an S3-compatible store ------------------------------------------------------------


def test_artifacts_go_to_an_s3_compatible_store_as_presigned_urls():
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    from devstack.embedded import free_port
    from gpu_worker.artifacts import S3ArtifactStore

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="k",
            aws_secret_access_key="s",
        )
        client.create_bucket(Bucket="outputs")
        store = S3ArtifactStore("outputs", prefix="jobs", client=client)

        url = store.put("job-1", "../../etc/passwd.png", b"\x89PNGdata", "image/png")

        assert "/outputs/jobs/job-1/passwd.png?" in url  # the name cannot climb out of its folder
        fetched = requests.get(url, timeout=5)
        assert fetched.content == b"\x89PNGdata" and fetched.headers["content-type"] == "image/png"
    finally:
        server.stop()


# --- through the whole system -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_comfyui_job_runs_end_to_end_on_a_worker_and_cancel_reaches_comfyui(
    comfyui, api, submit, gpu_worker, wait_for_status, tmp_path
):
    env = {
        "COMFYUI_URL": comfyui.url,
        "ARTIFACT_DIR": str(tmp_path / "out"),
        "ARTIFACT_BASE_URL": "http://cdn.test",
    }
    gpu_worker(extra_env=env, extra_flags=("--connectors", "comfyui"))
    done = submit(type="comfyui", payload={"workflow": _workflow()})
    wait_for_status(done, "completed")

    [image] = api.get(f"/api/jobs/{done}").json()["job"]["result"]["outputs"]
    assert image["url"] == f"http://cdn.test/{done}/9-cat_00001_.png"
    assert (tmp_path / "out" / done / "9-cat_00001_.png").exists()

    slow = submit(type="comfyui", payload={"workflow": _workflow(steps=400, step_seconds=0.05)})
    wait_for_status(slow, "running")
    api.post(f"/api/jobs/{slow}/cancel")
    wait_for_status(slow, "cancelled")
    assert comfyui.interrupted[-1] == {"prompt_id": comfyui.prompts[-1]["prompt_id"]}
