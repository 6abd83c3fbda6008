"""The GPU stack rehearsed on this CPU: every endpoint, and every option that loads another model, called through
the API of an app started on the GPU configuration (SD1.5 from the Hub, Hub CLIP, float16, VAE slicing; only the
device is the CPU) over an offline fake Hub cache (bench/fake_hub.py: the real repos' ids, files and
architectures, random weights).

    python -m bench.rehearsal                       # real sizes: writes bench/REHEARSAL.md (about an hour here)
    python -m bench.rehearsal --scale tiny --out F  # the suite's fast version (tests/test_rehearsal.py)

Each call gets the smallest work that takes the real path (1–2 steps, 2 frames). Outcome: works, error (the
tab's own message), crash (a generic error, a traceback, or the server gone) or timeout. Memory is the server's
resident set, sampled every 50 ms: each call's peak, and the peak over the whole sequence, once with the companion
budget (config.COMPANION_CACHE_BYTES or --budget-gib) and once without.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core import config

HERE = Path(__file__).resolve().parent
EXAMPLE_IMAGE = str(config.EXAMPLES_DIR / "red_circle_white.png")
EXAMPLE_VIDEO = str(config.EXAMPLES_DIR / "red_circle_moving_right.mp4")
GENERICS = ("something went wrong on the server", "has not enabled verbose error reporting", "Traceback")
SD = config.HUB_BASE_MODEL
ADAPTERS = config.T2I_ADAPTERS[SD]


@dataclass(frozen=True)
class Call:
    label: str
    endpoint: str
    arguments: dict
    repos: tuple[str, ...] = ()  # the Hub repos this call loads beyond the base model


def video_control_repos(conditions) -> tuple[str, ...]:
    """The public models VideoComposer / Gen-1 load on SD1.5 for `conditions` (depth also loads the depth model)."""
    models = config.VIDEO_CONTROLNETS[SD] | config.VIDEO_SPARSE_CONTROLNETS[SD]
    repos = tuple(models[c] for c in conditions if c in models)
    return repos + ((config.CONDITION_MODELS["depth"],) if "depth" in conditions else ())


def calls() -> list[Call]:
    """Every endpoint once, then each option that loads another model."""
    clip = (config.HUB_CLIP_MODEL,)
    image, video = ("image", EXAMPLE_IMAGE), ("video", EXAMPLE_VIDEO)
    listed = [
        Call("p2p", "/p2p", {"steps": 2}),
        Call("p2p (image prompt)", "/p2p", {"steps": 2, "image_prompt": image}, (config.HUB_IP_ADAPTER_REPO,)),
        Call("null_text (null-text inversion)", "/null_text", {"image": image, "inversion": "null-text", "steps": 2,
                                                              "num_inner_steps": 1}),
        Call("sampler", "/sampler", {"steps": 2, "snapshots": 1}),
        Call("freedom (text energy)", "/freedom", {"steps": 2}, clip),
        Call("freedom (style energy)", "/freedom", {"steps": 2, "energy": "style", "reference_image": image}, clip),
        Call("t2v_zero (text)", "/t2v_zero", {"frames": 2, "steps": 4, "t0": 1, "t1": 2}),
        Call("t2v_zero (controlnet)", "/t2v_zero", {"mode": "controlnet", "control_video": video, "frames": 2,
                                                    "steps": 4, "t0": 1, "t1": 2},
             (config.T2VZeroDefaults.controlnet_model,)),
        Call("t2v_zero (pix2pix)", "/t2v_zero", {"mode": "pix2pix", "source_video": video, "instruction": "make it blue",
                                                 "frames": 2, "steps": 4, "t0": 1, "t1": 2},
             (config.T2VZeroDefaults.pix2pix_model,)),
        Call("fatezero", "/fatezero", {"video": video, "frames": 2, "steps": 2}),
        Call("fatezero (image prompt)", "/fatezero", {"video": video, "frames": 2, "steps": 2, "image_prompt": image},
             (config.HUB_IP_ADAPTER_REPO,)),
        Call("tune_a_video_train", "/tune_a_video_train", {"video": video, "steps": 2, "frames": 2,
                                                           "name": "rehearsal"}),
        Call("tune_a_video_generate", "/tune_a_video_generate", {"model": "rehearsal", "steps": 2}),
        Call("animatediff", "/animatediff", {"frames": 2, "steps": 2}, (config.HUB_MOTION_ADAPTER,)),
        Call("animatediff (image prompt)", "/animatediff", {"frames": 2, "steps": 2, "image_prompt": image},
             (config.HUB_MOTION_ADAPTER, config.HUB_IP_ADAPTER_REPO)),
        *[Call(f"t2i_adapter ({kind})", "/t2i_adapter",
               {"conditions": [image], "condition_types": [kind], "steps": 2, "extract": kind in ("canny", "sketch", "palette")},
               (repo,)) for kind, (repo, _) in ADAPTERS.items()],
        Call("t2i_adapter (canny + palette + depth)", "/t2i_adapter",
             {"conditions": [image, image, image], "condition_types": ["canny", "palette", "depth"],
              "weights": "1.0, 0.5, 0.5", "extract": False, "steps": 2},
             tuple(ADAPTERS[k][0] for k in ("canny", "palette", "depth"))),
        Call("unicontrol", "/unicontrol", {"condition_image": image, "steps": 2}, (config.UNICONTROL_MODELS[SD],)),
        Call("diffusionclip_train", "/diffusionclip_train", {"image": image, "iterations": 2, "inversion_steps": 2,
                                                             "train_steps": 1, "direction_name": "rehearsal"}, clip),
        Call("diffusionclip_edit", "/diffusionclip_edit", {"image": image, "directions": "rehearsal: 1.0", "t0": 100}),
        Call("chatface_train (mapper)", "/chatface_train", {"image": image, "instruction": "make it blue",
                                                            "iterations": 2, "train_steps": 2},
             (config.HUB_IP_ADAPTER_REPO, *clip)),
        Call("chatface (edit with the mapper)", "/chatface", {"image": image, "instruction": "make it blue", "steps": 2},
             (config.HUB_IP_ADAPTER_REPO,)),
        Call("face0 (IP-Adapter plus-face)", "/face0", {"face_image": image, "steps": 2}, (config.HUB_IP_ADAPTER_REPO,)),
        Call("shiftddpm", "/shiftddpm", {"steps": 2, "n": 1}),
        Call("imagen_video", "/imagen_video", {"base_frames": 2, "tsr_factor": 2, "ssr_factor": 2, "steps": 2}, (config.HUB_MOTION_ADAPTER,)),
        Call("dreamix (edit, 2 tuning steps)", "/dreamix", {"video_or_image": [video], "finetune_steps": 2, "strength": 0.1}, (config.HUB_MOTION_ADAPTER,)),
        *[Call(f"videocomposer ({preset})", "/videocomposer",
               {"reference_video": video, "conditions": list(conditions), "frames": 2, "steps": 2},
               (config.HUB_MOTION_ADAPTER, *video_control_repos(conditions)))
          for preset, conditions in config.VIDEOCOMPOSER_PRESETS.items()],
        Call("videocomposer (depth + style image)", "/videocomposer",
             {"reference_video": video, "style_image": image, "conditions": ["depth"], "frames": 2, "steps": 2},
             (config.HUB_MOTION_ADAPTER, *video_control_repos(["depth"]), config.HUB_IP_ADAPTER_REPO)),
        Call("gen1", "/gen1", {"video": video, "frames": 2, "steps": 2},
             (config.HUB_MOTION_ADAPTER, *video_control_repos(["depth"]))),
        Call("gen1 (content image, temporal guidance)", "/gen1",
             {"video": video, "content_image": image, "temporal_guidance": 1.5, "frames": 2, "steps": 2},
             (config.HUB_MOTION_ADAPTER, *video_control_repos(["depth"]), config.HUB_IP_ADAPTER_REPO)),
    ]
    listed += [Call(f"animatediff ({lora.rsplit('-', 2)[-2]}-{lora.rsplit('-', 1)[-1]})".replace("lora-", ""),
                    "/animatediff", {"frames": 2, "steps": 1, "motion_lora": lora}, (config.HUB_MOTION_ADAPTER, lora))
               for lora in config.HUB_MOTION_LORAS]
    return listed


@dataclass
class Outcome:
    label: str
    endpoint: str
    repos: str
    outcome: str  # works | error | crash | timeout
    detail: str
    output: str
    seconds: float
    start_gib: float  # resident before the call
    peak_gib: float


class MemoryWatch:
    """The resident set of a process, sampled on a thread: the peak since the last `reset`, and overall."""

    def __init__(self, pid: int, every: float = 0.05):
        self.pid, self.every = pid, every
        self.peak = self.overall = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            value = self.rss()
            self.peak, self.overall = max(self.peak, value), max(self.overall, value)

    def reset(self) -> None:
        self.peak = self.rss()

    def stop(self) -> None:
        self._stop.set()


def describe_output(result) -> str:
    """Sizes of what came back: pictures as W×H, videos as frames × W×H, other values by type."""
    from PIL import Image

    values = result if isinstance(result, (tuple, list)) else (result,)
    parts = []
    for value in values:
        path = value.get("video") if isinstance(value, dict) and "video" in value else value
        if isinstance(path, dict):
            path = path.get("path") or path.get("value")
        if isinstance(path, str) and Path(path).is_file():
            if path.endswith((".mp4", ".webm", ".gif")):
                from core.video import read_video
                frames = read_video(path)
                frames = frames[0] if isinstance(frames, tuple) else frames
                parts.append(f"{len(frames)}×{frames.shape[2]}×{frames.shape[1]} video")
            else:
                try:
                    with Image.open(path) as opened:
                        parts.append(f"{opened.width}×{opened.height}")
                except OSError:
                    parts.append(f"{Path(path).suffix} {Path(path).stat().st_size} B")
        elif isinstance(value, list):
            parts.append(f"{len(value)} items")
        elif value is not None:
            parts.append(type(value).__name__)
    return ", ".join(parts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int, budget: int | None, converted: Path) -> None:
    """The app on the GPU configuration, on this CPU (run in a child process whose environment points the Hub
    client at the fake cache, offline)."""
    import app
    from core.models import Models

    config.CONVERTED_WEIGHTS_DIR = converted
    models = Models(SD, device="cpu", gpu_configuration=True)
    models.companion_budget = budget if budget is not None else float("inf")
    demo = app.build_demo(models, app.folders_from_environment())
    demo.queue(default_concurrency_limit=models.device_count)
    demo.launch(server_name="127.0.0.1", server_port=port, show_error=True, quiet=True)


# glibc keeps freed heap memory for reuse, so a server's resident set stays at its highest; allocations above this
# size are mapped on their own and returned when freed, so the resident set follows the memory in use
LIVE_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def start_server(hub: Path, work: Path, budget: int | None, log, keep_freed: bool = False) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub), "GRADIO_TEMP_DIR": str(work / "gradio"),
           "STUDIO_DIRECTIONS": str(work / "directions"), "STUDIO_TUNED_VIDEO": str(work / "tuned"),
           "PYTHONPATH": str(config.ROOT), **({} if keep_freed else LIVE_MEMORY_ENV)}
    command = [sys.executable, "-m", "bench.rehearsal", "serve", "--port", str(port), "--converted",
               str(work / "converted")] + ([] if budget is None else ["--budget-bytes", str(budget)])
    server = subprocess.Popen(command, cwd=config.ROOT, env=env, stdout=open(work / "server.log", "w"),
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 600
    import httpx
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {(work / 'server.log').read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                log(f"server up on {url} (pid {server.pid})")
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    server.kill()
    raise RuntimeError("the server did not start in 600 s")


def run_sequence(hub: Path, budget: int | None, timeout: float, sequence: list[Call], log, log_file: Path,
                 keep_freed: bool = False) -> tuple[list[Outcome], float, float]:
    """Start the server, make every call in order; returns the outcomes, the overall peak (GiB) and seconds."""
    from gradio_client import Client, handle_file

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        server, url = start_server(hub, work, budget, log, keep_freed)
        watch = MemoryWatch(server.pid)
        outcomes = []
        try:
            client = Client(url, verbose=False)
            for call in sequence:
                arguments = {k: handle_file(v[1]) if isinstance(v, tuple) else
                             [handle_file(x[1]) for x in v] if isinstance(v, list) and v and isinstance(v[0], tuple)
                             else v for k, v in call.arguments.items()}
                watch.reset()
                start = watch.peak
                begun = time.monotonic()
                job = client.submit(api_name=call.endpoint, **arguments)
                output, detail, result = "", "", None
                try:
                    result = job.result(timeout=timeout)
                    outcome = "works"
                except TimeoutError:
                    job.cancel()
                    outcome, detail = "timeout", f"over {timeout:.0f} s"
                except Exception as error:  # the API's error: the tab's message, or a generic one
                    detail = " ".join(str(error).split())[:300]
                    outcome = "crash" if any(g in detail for g in GENERICS) or server.poll() is not None else "error"
                seconds = time.monotonic() - begun
                if outcome == "works":
                    output = describe_output(result)
                outcomes.append(Outcome(call.label, call.endpoint, ", ".join(call.repos), outcome, detail, output,
                                        round(seconds, 1), round(start / 2**30, 2), round(watch.peak / 2**30, 2)))
                log(f"{call.label}: {outcome} in {seconds:.1f} s, peak {watch.peak / 2**30:.2f} GiB {detail[:120]}")
                if server.poll() is not None:
                    log("the server died; the remaining calls are not made")
                    break
        finally:
            shutil.copyfile(work / "server.log", log_file)
            watch.stop()
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    return outcomes, watch.overall / 2**30, time.monotonic() - started


def run_alone(hub: Path, budget: int, timeout: float, sequence: list[Call], outcomes: list[Outcome], count: int,
              log, log_file: Path, keep_freed: bool = False) -> list[Outcome]:
    """A call's own need is what it takes alone: a fresh server (the app, the base pipeline, the call's companion
    models, its work), so measured for the `count` calls that peaked highest in the sequence. A sequence's peak
    beyond the largest of these is what the cache keeps of other calls' companions, which the budget bounds.
    Measuring only some calls can make the largest own need smaller, never larger: the check stays conservative."""
    by_label = {call.label: call for call in sequence}
    highest = sorted((o for o in outcomes if o.outcome == "works" and o.label in by_label),
                     key=lambda o: -o.peak_gib)[:count]
    alone = []
    for outcome in highest:
        log(f"alone: {outcome.label}")
        single, _, _ = run_sequence(hub, budget, timeout, [by_label[outcome.label]], log,
                                    log_file.with_name(f"{log_file.stem}-{len(alone)}.log"), keep_freed)
        alone += single
    return alone


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
    return counts


def report(scale: str, runs: dict[str, tuple], build_seconds: float, budget: int, side: int | None,
           alone: list[Outcome] = (), budgeted: str = "") -> str:
    from bench.fake_hub import REPOS

    lines = ["# Rehearsal of the GPU stack on this CPU", "",
             f"Written by `python -m bench.rehearsal` ({scale} sizes): the app on the GPU configuration (SD1.5 "
             "from the Hub, Hub CLIP, float16, VAE slicing; device the CPU) over an offline fake Hub cache with the "
             "real repos' ids, files and architectures and random weights. Pictures are noise: this checks that "
             "every path runs, not what it draws.", "",
             f"Fake Hub built in {build_seconds:.0f} s. Machine: {os.cpu_count()} CPU cores."
             + (f" The SD pipelines draw at {side} px (their UNet config's sample_size set so; SD1.5's is 512 px): the "
                f"same weights and code paths for a quarter of the compute." if side else ""), ""]
    for name, (outcomes, peak, seconds) in runs.items():
        counts = ", ".join(f"{n} {k}" for k, n in summary(outcomes).items())
        own = max(outcomes, key=lambda o: o.peak_gib - o.start_gib)
        lines += [f"## {name}", "", f"**{len(outcomes)} calls: {counts}. Run time {seconds / 60:.1f} min; peak "
                  f"resident memory {peak:.2f} GiB.** Resident before the first call (the app, no model loaded yet): "
                  f"{outcomes[0].start_gib:.2f} GiB; "
                  f"the largest one call's own need (its peak less what was resident before it): "
                  f"{own.peak_gib - own.start_gib:.2f} GiB ({own.label}).", "",
                  "| call | endpoint | Hub repos beyond SD1.5 | outcome | output | s | GiB before | peak GiB | detail |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {o.label} | `{o.endpoint}` | {o.repos} | {o.outcome} | {o.output} | {o.seconds} | {o.start_gib} | "
                  f"{o.peak_gib} | {o.detail.replace('|', '/')} |" for o in outcomes]
        lines.append("")
    works_alone = [o for o in alone if o.outcome == "works"]
    if works_alone:
        in_sequence = {o.label: o for o in runs[budgeted][0]}
        largest = max(works_alone, key=lambda o: o.peak_gib)
        peak, bound = runs[budgeted][1], budget / 2**30 + largest.peak_gib
        lines += ["## Each call's own need", "",
                  "The calls that peaked highest in the budgeted sequence, each run again alone on a fresh server with "
                  "the same budget: its peak is what the call needs on its own (the app, the base pipeline, its "
                  "companion models, its work).", "",
                  "| call | outcome | s | peak alone GiB | peak in the sequence GiB |", "|---|---|---|---|---|"]
        lines += [f"| {o.label} | {o.outcome} | {o.seconds} | {o.peak_gib} | {in_sequence[o.label].peak_gib} |"
                  for o in alone]
        lines += ["", f"**The budget's bound: peak over the sequence {peak:.2f} GiB ≤ budget {budget / 2**30:.2f} GiB "
                  f"+ the largest own need {largest.peak_gib:.2f} GiB ({largest.label}) = {bound:.2f} GiB: "
                  f"{'holds' if peak <= bound else 'does not hold'}.**", ""]
    lines += ["## The fake repos", "", "| repo | files | fidelity |", "|---|---|---|"]
    lines += [f"| `{r.id}` | {r.files} | {r.fidelity} |" for r in REPOS]
    lines += ["", f"Budget: `config.COMPANION_CACHE_BYTES` = {config.COMPANION_CACHE_BYTES / 2**30:.1f} GiB; "
              f"this run's budget {budget / 2**30:.2f} GiB.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Rehearse the GPU stack on this CPU over a fake offline Hub")
    sub = parser.add_subparsers(dest="command")
    serve_parser = sub.add_parser("serve", help="(internal) the app on the GPU configuration")
    serve_parser.add_argument("--port", type=int, required=True)
    serve_parser.add_argument("--budget-bytes", type=int)
    serve_parser.add_argument("--converted", type=Path, required=True)
    parser.add_argument("--scale", choices=("real", "tiny"), default="real")
    parser.add_argument("--hub", type=Path, help="the fake Hub cache (built there if empty; default: a temp folder)")
    parser.add_argument("--budget-gib", type=float, help="companion budget (default: config.COMPANION_CACHE_BYTES)")
    parser.add_argument("--no-unbudgeted", action="store_true", help="skip the second run without a budget")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per call")
    parser.add_argument("--side", type=int, help="pixels the SD pipelines draw at (default: their config's, 512 at "
                        "real size); 256 costs a quarter of the compute with the same weights")
    parser.add_argument("--only", nargs="*", help="only calls whose label has one of these words")
    parser.add_argument("--solo", type=int, default=3, help="the calls with the highest peaks in the budgeted sequence "
                        "run again, each alone on a fresh server: their own need (default 3)")
    parser.add_argument("--out", type=Path, default=HERE / "REHEARSAL.md")
    parser.add_argument("--keep-freed", action="store_true", help="leave glibc's default (freed heap stays resident)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.port, args.budget_bytes, args.converted)
        return 0

    from bench.fake_hub import REAL, TINY, build, set_side

    budget = int(args.budget_gib * 2**30) if args.budget_gib else config.COMPANION_CACHE_BYTES
    with tempfile.TemporaryDirectory() as scratch:
        hub = args.hub or Path(scratch) / "hub"
        started = time.monotonic()
        if not hub.is_dir() or not any(hub.iterdir()):
            print(f"building the fake Hub ({args.scale}) in {hub}", flush=True)
            build(hub, REAL if args.scale == "real" else TINY, log=lambda m: print(m, flush=True))
        build_seconds = time.monotonic() - started
        if args.side:
            set_side(hub, args.side)

        def log(message):
            print(message, flush=True)

        sequence = [c for c in calls() if not args.only or any(word in c.label for word in args.only)]
        budgeted = f"With the companion budget ({budget / 2**30:.2f} GiB)"
        runs = {budgeted: run_sequence(hub, budget, args.timeout, sequence, log,
                                       args.out.with_name(f"{args.out.stem}-budget.log"), args.keep_freed)}
        if not args.no_unbudgeted:
            runs["Without a budget"] = run_sequence(hub, None, args.timeout, sequence, log,
                                                     args.out.with_name(f"{args.out.stem}-unbudgeted.log"), args.keep_freed)
        alone = run_alone(hub, budget, args.timeout, sequence, runs[budgeted][0], args.solo, log,
                          args.out.with_name(f"{args.out.stem}-alone.log"), args.keep_freed)
    args.out.write_text(report(args.scale, runs, build_seconds, budget, args.side, alone, budgeted))
    args.out.with_suffix(".json").write_text(json.dumps(
        {name: {"calls": [asdict(o) for o in outcomes], "peak_gib": peak, "seconds": seconds}
         for name, (outcomes, peak, seconds) in runs.items()} | {"alone": [asdict(o) for o in alone]}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
