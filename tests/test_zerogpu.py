"""ZeroGPU (HuggingFace Spaces): every engine call runs inside spaces.GPU with a duration computed from the call's own
arguments, and only plain values cross to the GPU worker, a forked process (here a stand-in `spaces` that forks and
pickles as ZeroGPU does)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import gradio as gr
import pytest

from core import config

Z = config.ZeroGPUDefaults


def engine_handlers():
    """(endpoint, its task key) for every engine endpoint of a freshly built page."""
    import app
    from core.models import Models
    from tabs import common

    demo = app.build_demo(Models("toy-sd", device="cpu"))
    found = []
    for event in demo.fns.values():
        fn = getattr(event.fn, "__wrapped__", None)
        if event.api_name and fn is not None:
            keys = [key for key, task in common.ENGINE_TASKS.items() if task.fn is fn]
            assert len(keys) == 1, event.api_name
            found.append((event.api_name, keys[0]))
    return found


# the tabs whose paper defaults cannot fit a ZeroGPU call: refused with the hardware they need
TOO_LONG_FOR_ZEROGPU = {"tune_a_video_train"}  # 300 steps × 8 frames of training


def test_every_endpoint_asks_for_its_own_duration_within_the_ceiling():
    from tabs import common

    handlers = engine_handlers()
    assert len(handlers) == 21
    for endpoint, key in handlers:
        task = common.ENGINE_TASKS[key]
        assert task.gpu_seconds is not None, endpoint
        import inspect
        defaults = {k: p.default for k, p in inspect.signature(task.fn).parameters.items()
                    if p.default is not inspect.Parameter.empty and k != "progress"}
        estimate = Z.overhead_s + task.gpu_seconds(**defaults)
        if endpoint in TOO_LONG_FOR_ZEROGPU:
            with pytest.raises(gr.Error, match="dedicated GPU"):
                common.gpu_seconds(key, (), {})
            continue
        duration = common.gpu_seconds(key, (), {})
        print(f"/{endpoint}: estimate {estimate:.0f} s, asks {duration} s")
        assert estimate <= duration <= Z.ceiling_s, (endpoint, estimate, duration)
    # the call's own arguments count: twice the steps, about twice the time
    key = dict(handlers)["sampler"]
    assert common.gpu_seconds(key, (), {"steps": 100}) > common.gpu_seconds(key, (), {"steps": 50})
    assert common.gpu_seconds(dict(handlers)["tune_a_video_train"], (), {"steps": 20, "frames": 4}) <= Z.ceiling_s


FORKED_RUN = textwrap.dedent('''
    import multiprocessing, pickle, sys, types
    calls = []

    def GPU(task=None, *, duration=None, size=None):
        """What ZeroGPU does to a decorated function: the duration from the call's arguments first, then the
        arguments pickled into a forked worker, the yielded values pickled back."""
        def decorate(fn):
            def run(*args, **kwargs):
                calls.append(duration(*args, **kwargs))
                context = multiprocessing.get_context("fork")
                parent, child = context.Pipe()
                payload = pickle.dumps((args, kwargs))
                def worker(conn, payload):
                    args, kwargs = pickle.loads(payload)
                    try:
                        conn.send(pickle.dumps(("ok", list(fn(*args, **kwargs)))))
                    except BaseException as error:
                        conn.send(pickle.dumps(("error", error)))
                process = context.Process(target=worker, args=(child, payload))
                process.start()
                kind, value = pickle.loads(parent.recv())
                process.join()
                if kind == "error":
                    raise value
                yield from value
            return run
        return decorate(task) if task is not None else decorate

    sys.modules["spaces"] = types.SimpleNamespace(GPU=GPU)
    from gradio_client import Client, handle_file
    import app
    server = app.parse_args(["--port", sys.argv[1]])
    app.launch(server, prevent_thread_lock=True, quiet=True)
    client = Client(f"http://127.0.0.1:{sys.argv[1]}/", verbose=False)
    picture, *_ = client.predict(prompt="a red circle on a white background", steps=3, snapshots=1, api_name="/sampler")
    video, _ = client.predict(prompt="a red circle on a white background", frames=2, steps=4, t0=1, t1=2,
                              api_name="/t2v_zero")
    try:
        client.predict(video=handle_file(sys.argv[2]), prompt="a red circle", steps=2000,
                       api_name="/tune_a_video_train")
    except Exception as error:
        refused = str(error)
    print("DURATIONS", [int(c) for c in calls], "PICTURE", bool(picture), "VIDEO", bool(video), "REFUSED", refused)
''')


def test_engine_calls_cross_to_a_forked_gpu_worker_with_plain_arguments(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "forked.py"
    script.write_text(FORKED_RUN)
    video = str(config.EXAMPLES_DIR / "red_circle_moving_right.mp4")
    run = subprocess.run([sys.executable, str(script), str(port), video], capture_output=True, text=True, timeout=600,
                         cwd=config.ROOT, env={**__import__("os").environ, "PYTHONPATH": str(config.ROOT)})
    line = next((l for l in run.stdout.splitlines() if l.startswith("DURATIONS")), None)
    assert line is not None, run.stdout[-2000:] + run.stderr[-4000:]
    print(line)
    assert "PICTURE True" in line and "VIDEO True" in line
    assert "ZeroGPU call may take at most" in line and "dedicated GPU" in line
    durations = [int(d) for d in line.split("[")[1].split("]")[0].split(",")]
    assert len(durations) == 2 and all(0 < d <= Z.ceiling_s for d in durations)  # the refused call never started
