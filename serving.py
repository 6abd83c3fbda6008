"""Several engine workers behind the one Gradio front end, on Ray Serve (`python app.py --workers N`).

The engine becomes a Ray Serve deployment, `EngineReplica`: N replicas (one per GPU, `num_gpus=1`; on a machine
without GPUs they share its cores), each one process that builds the same page and so holds the same handlers, with
its own model cache, and runs one request at a time. The front end keeps Gradio's queue (its concurrency = N) and
sends each engine call to the deployment through a handle: the handler's name and its plain arguments go over, and
the replica streams back progress and the result. A cancelled Gradio job cancels the replica's request, which sets
the engine call's cancel signal there, so the work stops before its next step. Ray is an optional extra
(requirements-serve.txt), imported only here and only with the flag."""
from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import os
import threading

log = logging.getLogger("studio.serving")

APP_NAME = "studio-engine"
PROGRESS = "<progress>"  # stands in for a gr.Progress argument on its way to a replica


def available() -> bool:
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError:
        return False
    return True


def _progress_free(values):
    """The call's arguments without Gradio's progress tracker (it cannot cross; the replica reports progress)."""
    import gradio as gr
    return [PROGRESS if isinstance(v, gr.Progress) else v for v in values]


class EngineReplica:
    """One engine worker: builds the page in its own process (the handlers are its tasks), runs one call at a
    time, streams ("worker", its pid), ("progress", (fraction, description)), ("update" | "result", value),
    ("error", message). A call naming a base model (AnimateDiff's `base_model`) comes with it as Serve's
    multiplexed model id, so it goes to a replica that already holds that model (`replica_class` adds the loader)."""

    def __init__(self, base_model: str | None, folders, threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        import app
        from core.models import Models

        self.models = Models(base_model=base_model, allow_local=base_model is not None)
        app.build_demo(self.models, folders)

    async def run(self, name: str, args: list, kwargs: dict):
        from ray import serve

        from core import calls
        from tabs import common

        model_id = serve.get_multiplexed_model_id()
        if model_id:
            await self.base_model(model_id)  # loaded here (the one this replica now holds), or already held

        loop, events = asyncio.get_running_loop(), asyncio.Queue()
        call = calls.Call(name)

        def post(kind, value=None):
            loop.call_soon_threadsafe(events.put_nowait, (kind, value))

        def progress(fraction, desc=None, **_):
            post("progress", (float(fraction), desc))

        args = [progress if v == PROGRESS else v for v in args]
        kwargs = {k: (progress if v == PROGRESS else v) for k, v in kwargs.items()}

        key = common.latest_task(name)

        def work():
            try:
                with calls.running(call, common.ENGINE_TASKS[key].exclusive):
                    for kind, value in common.engine_task(key, args, kwargs):
                        post(kind, value)
                post("done")
            except calls.Cancelled:
                post("done")
            except Exception as error:  # noqa: BLE001 - a gr.Error's message, or the generic one
                post("error", str(getattr(error, "message", error)))

        worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), daemon=True)
        worker.start()
        yield "worker", os.getpid()  # which replica runs it (the front end's log)
        try:
            while True:
                kind, value = await events.get()
                if kind == "done":
                    return
                yield kind, value
                if kind == "error":
                    return
        finally:  # the request was cancelled (or its caller went away): stop the engine before its next step
            call.cancel()
            await asyncio.to_thread(worker.join)

    def history(self) -> list[tuple[str, int, int | None, int]]:
        """The replica's latest engine calls: (name, steps run, steps at the cancel, this process's id)."""
        from core import calls
        return [(c.name, c.steps, c.steps_at_cancel, os.getpid()) for c in list(calls.history)]


class RemoteEngine:
    """The front end's side: sends a handler's call to the deployment and relays what comes back."""

    def __init__(self, handle):
        self.handle = handle
        # (engine call, the replica process that ran it), newest last: the front end's log of where work went
        self.served: collections.deque = collections.deque(maxlen=256)

    def stream(self, name: str, args, kwargs, call, progress=None):
        """("update" | "result", value) pairs of the call run on a replica; progress goes to `progress`; a cancel of
        `call` cancels the replica's request. Raises gr.Error for the replica's errors and when it died."""
        import gradio as gr
        from ray.exceptions import RayActorError, RayTaskError
        from ray.serve.exceptions import RequestCancelledError

        from core import calls

        from tabs.common import call_arguments

        tracker = next((v for v in [*args, *kwargs.values()] if isinstance(v, gr.Progress)), progress)
        model_id = str(call_arguments(name, args, kwargs).get("base_model") or "").strip()
        response = self.handle.options(stream=True, multiplexed_model_id=model_id).run.remote(
            name, _progress_free(args), dict(zip(kwargs, _progress_free(kwargs.values()))))
        stop_watch = threading.Event()

        def watch():  # the Gradio job's cancel → the replica's request
            while not stop_watch.is_set():
                if call.cancel_signal.wait(0.05):
                    response.cancel()
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            for kind, value in response:
                if kind == "worker":
                    self.served.append((call, value))
                elif kind == "progress":
                    if tracker is not None:
                        tracker(value[0], desc=value[1])
                elif kind == "error":
                    raise gr.Error(value)
                else:
                    yield kind, value
        except RequestCancelledError:
            raise calls.Cancelled(f"{name} was cancelled") from None
        except (RayActorError, RayTaskError) as error:
            if call.cancel_signal.is_set():
                raise calls.Cancelled(f"{name} was cancelled") from None
            log.warning("engine replica failed during %s: %s", name, error)
            raise gr.Error("the engine worker running this stopped before it finished (it is being restarted): "
                           "run it again") from None
        finally:
            stop_watch.set()


def replica_class():
    """EngineReplica with its multiplexed base-model loader: one base model per replica, as the engine's cache holds
    one pipeline at a time (loading another evicts it), so Serve routes a model's calls to the replica holding it."""
    from ray import serve

    class MultiplexedEngineReplica(EngineReplica):
        @serve.multiplexed(max_num_models_per_replica=1)
        async def base_model(self, model_id: str):
            await asyncio.to_thread(self.models.pipeline, model_id)
            return model_id

    return MultiplexedEngineReplica


def start(workers: int, base_model: str | None, folders, address: str | None = None) -> RemoteEngine:
    """A Ray cluster (a local one with `workers` engine replicas, or the one at `address`) and the engine deployment
    on it; returns the front end's RemoteEngine."""
    import ray
    import torch
    from ray import serve

    if not ray.is_initialized():
        # a local cluster's object store holds only calls' arguments and results (paths, small arrays): 256 MiB
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": max(os.cpu_count() or 1, workers),
                                        "object_store_memory": 256 * 2**20}))
    gpus = torch.cuda.device_count()
    threads = None if gpus else max(1, (os.cpu_count() or 1) // workers)
    deployment = serve.deployment(replica_class(), name="engine", num_replicas=workers, max_ongoing_requests=1,
                                  ray_actor_options={"num_gpus": 1 if gpus else 0, "num_cpus": 0 if not gpus else 1})
    handle = serve.run(deployment.bind(base_model, folders, threads), name=APP_NAME, route_prefix=None)
    return RemoteEngine(handle)


def stop() -> None:
    from ray import serve
    serve.shutdown()
