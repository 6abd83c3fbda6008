"""Shared fixtures: tiny random components (mechanics) and the embedded models (behaviour)."""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# two cores: the suite runs as two pytest-xdist workers of one thread each (README), else one process of two;
# a worker's subprocesses (the rehearsal's servers, offline loaders) inherit its one thread
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)

# The files in the order they start on the two workers, longest first (seconds summed from `--durations=0` on
# 2 cores), so that both finish together; xdist's loadfile would start the files with the most tests first.
LONGEST_FIRST = ["test_reliability.py", "test_shiftddpm.py", "test_motion_behaviour.py",
                 "test_videocomposer_behaviour.py", "test_video_behaviour.py", "test_engine_calls.py", "test_rehearsal.py",
                 "test_p2p_behaviour.py", "test_pointing_browser.py", "test_diffusionclip.py", "test_freedom.py",
                 "test_serving.py", "test_motion_lora_behaviour.py",
                 "test_video_mechanics.py", "test_embedded_models.py", "test_app_motion.py", "test_t2i_adapter.py"]


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def tiny_pipe():
    return make_tiny_pipe()


@pytest.fixture()
def fresh_tiny_unet():
    """The tiny UNet as built, for tests that count attention calls: the session's `tiny_pipe` may
    already carry processors (and their counters) from tests that ran before in the same process."""
    return make_tiny_pipe().unet


def make_tiny_pipe():
    """A StableDiffusionPipeline of tiny random components (like diffusers' get_dummy_components)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from core.tokenizer import clip_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4), norm_num_groups=16)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32), latent_channels=4,
                        norm_num_groups=16, sample_size=32)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                                num_attention_heads=4, max_position_embeddings=77, bos_token_id=49406,
                                                eos_token_id=49407, pad_token_id=49407))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(16), unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def app_url():
    """The whole app, launched in-process on a free local port with its default (embedded) model."""
    import socket

    import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = app.parse_args(["--port", str(port)])
    demo = app.launch(server, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture()
def app_folders(monkeypatch):
    """app_folders(directions=path): this test's directions (outputs, tuned models) go to path, undone after the
    test (what app.py sets from GRADIO_TEMP_DIR / STUDIO_DIRECTIONS / STUDIO_TUNED_VIDEO)."""
    from dataclasses import replace

    from tabs import common

    return lambda **changes: monkeypatch.setattr(common, "_folders", [replace(common.folders(), **changes)])


@pytest.fixture(scope="session")
def tiny_controlnet(tiny_pipe):
    """A random ControlNet matching the tiny UNet (for the ControlNet modes' mechanics)."""
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    return ControlNetModel.from_unet(tiny_pipe.unet, conditioning_embedding_out_channels=(16, 32)).eval()


@pytest.fixture()
def step_log():
    """An attention controller that records every (step, num_steps) a loop announces to it."""
    from core.attention import AttentionController

    class StepLog(AttentionController):
        def __init__(self):
            self.steps = []

        def step_begin(self, step, num_steps):
            self.steps.append((step, num_steps))

    return StepLog()
