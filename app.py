"""Diffusion Studio: builds the page from tabs.ALL, reads flags and the environment, launches."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home; set before gradio loads
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nor from Ray (--workers)

import gradio as gr  # noqa: E402

import tabs  # noqa: E402
from core import config  # noqa: E402
from core.models import Models  # noqa: E402
from tabs import common  # noqa: E402

CSS = """.studio-header p { margin: 0 }
.studio-send { gap: 4px; align-items: center }
.studio-result img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated }"""


def build_demo(models: Models, folders: config.Folders | None = None) -> gr.Blocks:
    if folders is not None:  # None: keep the folders already set (another page built in the same process)
        common.use_folders(folders)
    common.reset_sends()
    with gr.Blocks(title="Diffusion Studio", fill_width=True) as demo:
        gr.Markdown(f"## Diffusion Studio\n{models.describe()}", elem_classes="studio-header", elem_id="studio-header")
        inner = {}
        with gr.Tabs(elem_id="studio-groups") as groups:  # by task: a method is two clicks away
            for group, (summary, members) in tabs.GROUPS.items():
                with gr.Tab(group, id=group):
                    gr.Markdown(summary, elem_classes="studio-group-summary")
                    with gr.Tabs() as methods:
                        for tab in members:
                            with gr.Tab(tab.TITLE, id=tabs.key(tab)):
                                tab.build(models)
                    inner[group] = methods
        common.connect_sends(groups, inner, tabs.group_of)  # "use as input" under every result

        def open_linked_tab(request: gr.Request):
            """`?tab=<key>` (e.g. ?tab=p2p) opens that method: its group, then its tab."""
            name = (request.query_params.get("tab") or "") if request else ""
            group = tabs.group_of(name)
            if group is None:
                return [gr.Tabs()] * (1 + len(inner))
            return [gr.Tabs(selected=group)] + [gr.Tabs(selected=name) if g == group else gr.Tabs()
                                                for g in tabs.GROUPS]

        demo.load(open_linked_tab, None, [groups, *inner.values()], **common.UI_ONLY)
    return demo


def folders_from_environment() -> config.Folders:
    """Where results, directions and tuned models go: Gradio's own temp folder when GRADIO_TEMP_DIR is set
    (so staged files sit beside its cache), and the libraries' overrides."""
    defaults = config.Folders()
    temp = os.environ.get("GRADIO_TEMP_DIR")
    return config.Folders(outputs=Path(temp) / "studio-outputs" if temp else defaults.outputs,
                          directions=Path(os.environ.get("STUDIO_DIRECTIONS") or defaults.directions),
                          tuned_video=Path(os.environ.get("STUDIO_TUNED_VIDEO") or defaults.tuned_video))


def parse_args(argv=None) -> config.ServerConfig:
    defaults = config.ServerConfig()
    parser = argparse.ArgumentParser(
        description="Diffusion Studio",
        epilog="Concurrency: every tab's Run shares one queue for the engine, which runs one request per device "
               "(one on a single GPU or a CPU) whatever the tab; the others wait in line (at most --queue-size) and "
               "Stop cancels a running request before its next step. Page-only events are not queued.")
    parser.add_argument("--model", default=os.environ.get("STUDIO_MODEL"),
                        help="base model: an embedded name (toy-sd), a Hub id or a local folder "
                             "(default: SD1.5 on a CUDA GPU, toy-sd otherwise)")
    parser.add_argument("--host", default=os.environ.get("STUDIO_HOST", defaults.host))
    parser.add_argument("--port", type=int, default=int(os.environ.get("STUDIO_PORT", defaults.port)))
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument("--auth", help="protect the page and API with USER:PASSWORD")
    parser.add_argument("--queue-size", type=int, default=defaults.queue_size,
                        help="requests that may wait for the engine; more are refused (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=0,
                        help="run the engine on N workers on Ray Serve (a local Ray cluster; one per GPU), "
                             "N requests at once; needs requirements-serve.txt (default: in this process)")
    parser.add_argument("--ray-address", help="with --workers: join the Ray cluster at this address")
    args = parser.parse_args(argv)
    if args.workers < 0:
        parser.error("--workers takes a number of engine workers (1 or more)")
    if args.ray_address and not args.workers:
        parser.error("--ray-address needs --workers N")
    if args.workers:
        import serving
        if not serving.available():
            parser.error("--workers needs Ray Serve: pip install -r requirements-serve.txt")
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            parser.error("--auth takes USER:PASSWORD")
        auth = (user, password)
    return config.ServerConfig(host=args.host, port=args.port, share=args.share, auth=auth,
                               queue_size=args.queue_size, model=args.model, folders=folders_from_environment(),
                               workers=args.workers, ray_address=args.ray_address)


def launch(server: config.ServerConfig, **launch_kwargs):
    models = Models(base_model=server.model, allow_local=server.model is not None)
    if os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true"):
        # on ZeroGPU the base model is loaded at start-up: its move to CUDA here is recorded and replayed in every
        # GPU worker, instead of a load from disk inside each call's time
        models.pipeline()
    if server.workers:  # the engine on Ray Serve: this process is the front end, N requests run at once
        import serving
        common.use_remote_engine(serving.start(server.workers, server.model, server.folders, server.ray_address))
        models.device_count = server.workers
    demo = build_demo(models, server.folders)
    # engine events share one concurrency group (tabs.common.ENGINE_QUEUE): this limit is the whole app's
    demo.queue(default_concurrency_limit=models.device_count, max_size=server.queue_size)
    launch_kwargs.setdefault("show_error", True)  # a gr.Error's own message, never Gradio's hidden-error text
    demo.launch(server_name=server.host, server_port=server.port, share=server.share, auth=server.auth,
                css=CSS, theme=gr.themes.Soft(), **launch_kwargs)
    return demo


if __name__ == "__main__":
    launch(parse_args())
