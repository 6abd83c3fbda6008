"""Several engine workers on Ray Serve (`app.py --workers 2`): on this CPU, replicas without GPUs, the embedded model.
The front end runs in this process (as `python app.py --workers 2` would, the same flags), so the test can read where
each call ran and kill a replica."""
from __future__ import annotations

import os
import signal
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

import serving
from app_calls import CHEAP, call

pytestmark = pytest.mark.skipif(not serving.available(), reason="Ray Serve is not installed "
                                                                "(pip install -r requirements-serve.txt)")
WORKERS = 2
PROMPT = "a red circle on a white background"


def load(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def predictions(client):
    """Two tabs, two seeds each: what the four concurrent calls ask."""
    return [("/sampler", dict(prompt=PROMPT, steps=12, seed=seed, snapshots=1)) for seed in (1, 2)] + \
           [("/p2p", dict(source_prompt=PROMPT, target_prompt="a blue circle on a white background", steps=8,
                          seed=seed)) for seed in (1, 2)]


@pytest.fixture(scope="module")
def pool(client):
    """Expected outputs from the in-process engine first, then the app on a pool of two Ray Serve replicas."""
    import app
    from gradio_client import Client

    from tabs import common

    expected = [client.predict(api_name=endpoint, **kwargs) for endpoint, kwargs in predictions(client)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.launch(app.parse_args(["--port", str(port), "--workers", str(WORKERS)]), prevent_thread_lock=True,
                      quiet=True)
    engine = common._remote_engine[0]
    try:
        yield {"url": f"http://127.0.0.1:{port}/", "engine": engine, "expected": expected,
               "client": Client(f"http://127.0.0.1:{port}/", verbose=False)}
    finally:
        common.use_remote_engine(None)
        demo.close()
        serving.stop()
        import ray
        ray.shutdown()


def replica_histories(engine, wanted: int = WORKERS, tries: int = 40) -> dict[int, list]:
    """Each replica's latest calls, by process id (requests are routed at random: ask until all answered)."""
    found = {}
    for _ in range(tries):
        entries = engine.handle.history.remote().result(timeout_s=60)
        if entries:
            found[entries[0][3]] = entries
        if len(found) >= wanted:
            break
    return found


def test_concurrent_calls_of_two_tabs_are_answered_as_in_process_and_spread(pool):
    from gradio_client import Client

    results = {}

    def ask(index, endpoint, kwargs):
        results[index] = Client(pool["url"], verbose=False).predict(api_name=endpoint, **kwargs)

    served_before = len(pool["engine"].served)
    threads = [threading.Thread(target=ask, args=(i, *request)) for i, request in enumerate(predictions(None))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert sorted(results) == [0, 1, 2, 3]
    for index, expected in enumerate(pool["expected"]):
        got = results[index]
        for ours, theirs in zip(got[:2], expected[:2]):  # the pictures (the sampler's noise-schedule plot aside)
            if isinstance(ours, str) and ours.endswith(".png"):
                assert np.abs(load(ours) - load(theirs)).max() <= 1, index
    workers = {pid for _, pid in list(pool["engine"].served)[served_before:]}
    print(f"4 concurrent calls ran on replicas {workers}")
    assert len(workers) == WORKERS  # the work spread over both replicas


def test_every_tab_is_served_by_the_pool(pool):
    client = pool["client"]
    for endpoint in CHEAP:
        outputs = call(client, endpoint)
        assert outputs is not None and (not isinstance(outputs, tuple) or outputs[0] is not None), endpoint


def test_cancel_stops_the_replicas_work_within_one_step(pool):
    from gradio_client import Client

    engine = pool["engine"]
    job = Client(pool["url"], verbose=False).submit(prompt=PROMPT, steps=200, snapshots=1, api_name="/sampler")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(c.name == "tabs.sampler.sample" and not c.finished.is_set()
                                                  for c, _ in engine.served):
        time.sleep(0.05)
    call_record, pid = next((c, p) for c, p in reversed(engine.served) if c.name == "tabs.sampler.sample")
    time.sleep(1.0)  # some steps on the replica
    job.cancel()
    assert call_record.finished.wait(60)
    histories = replica_histories(engine)
    name, steps, steps_at_cancel, _ = next(e for e in reversed(histories[pid]) if e[0] == "tabs.sampler.sample")
    print(f"replica {pid}: cancelled at step {steps_at_cancel}, ran {steps} of 200")
    assert steps_at_cancel is not None and steps <= steps_at_cancel + 1 < 200


def test_a_killed_replica_fails_its_request_clearly_and_the_pool_serves_on(pool):
    from gradio_client import Client

    engine = pool["engine"]
    outcomes = {}

    def ask(key, **kwargs):
        try:
            outcomes[key] = ("answered", Client(pool["url"], verbose=False).predict(api_name="/sampler", **kwargs))
        except Exception as error:  # noqa: BLE001
            outcomes[key] = ("failed", str(error))

    victim = threading.Thread(target=ask, args=("victim",), kwargs=dict(prompt=PROMPT, steps=200, snapshots=1))
    victim.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(c.name == "tabs.sampler.sample" and not c.finished.is_set()
                                                  for c, _ in engine.served):
        time.sleep(0.05)
    _, pid = next((c, p) for c, p in reversed(engine.served)
                  if c.name == "tabs.sampler.sample" and not c.finished.is_set())
    other = threading.Thread(target=ask, args=("other",), kwargs=dict(prompt=PROMPT, steps=20, snapshots=1))
    other.start()
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    victim.join(300)
    other.join(300)
    assert outcomes["victim"][0] == "failed" and "engine worker" in outcomes["victim"][1], outcomes["victim"]
    assert outcomes["other"][0] == "answered", outcomes["other"]
    # later requests are served (Serve replaces the dead replica)
    for seed in range(3):
        ask(f"later{seed}", prompt=PROMPT, steps=4, seed=seed, snapshots=1)
        assert outcomes[f"later{seed}"][0] == "answered", outcomes[f"later{seed}"]


def test_calls_naming_a_base_model_go_to_the_replica_that_holds_it(pool):
    engine, client = pool["engine"], pool["client"]
    before = len(engine.served)
    for seed in range(4):  # one at a time: each could go to either replica, were the model id not routed
        call(client, "/animatediff", base_model="toy-sd", seed=seed)
    workers = [pid for _, pid in list(engine.served)[before:]]
    print(f"AnimateDiff on base_model toy-sd ran on {workers}")
    assert len(workers) == 4 and len(set(workers)) == 1
