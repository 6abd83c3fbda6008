"""IP-Adapter in the engine's processor, on tiny components: the same pictures as diffusers' pipeline after
`load_ip_adapter`, nothing installed on the UNet, scale 0 is no image."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import make_tiny_pipe
from core.attention import install
from core.denoisers import TextGuided
from core.ip_adapter import IPAdapter, cross_attention_layers, encode_image_prompt
from core.sampling import decode, denoise, encode_prompts, prepare_latents

PROMPT, STEPS, GUIDANCE = "a red circle", 3, 7.5


def tiny_image_encoder():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    torch.manual_seed(1)
    return CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, projection_dim=24, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=8)).eval()


def tiny_processor():
    from transformers import CLIPImageProcessor
    return CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def adapter_state_dict(unet) -> dict[str, torch.Tensor]:
    """The base adapter in h94/IP-Adapter's file layout for the tiny UNet: ImageProjection of the pooled image
    embedding to 4 tokens, and an image key/value per cross-attention layer."""
    generator = torch.Generator().manual_seed(3)
    dim = unet.config.cross_attention_dim
    state = {"image_proj.proj.weight": torch.randn(4 * dim, 24, generator=generator) * 0.2,
             "image_proj.proj.bias": torch.randn(4 * dim, generator=generator) * 0.1,
             "image_proj.norm.weight": torch.ones(dim), "image_proj.norm.bias": torch.zeros(dim)}
    modules = dict(unet.named_modules())
    for index, layer in enumerate(cross_attention_layers(unet)):
        hidden = modules[layer].to_k.out_features
        for name in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{2 * index + 1}.{name}.weight"] = torch.randn(hidden, dim, generator=generator) * 0.3
    return state


def red_square() -> np.ndarray:
    image = np.full((48, 48, 3), 255, np.uint8)
    image[12:36, 12:36] = (220, 30, 30)
    return image


def ours(pipe, prompt=None, seed=0):
    state = install(pipe.unet)
    cond, uncond = encode_prompts(pipe, [PROMPT]), encode_prompts(pipe, [""])
    latents = prepare_latents(pipe, 1, 32, 32, torch.Generator().manual_seed(seed))
    with torch.no_grad(), state.use(image_prompts=[prompt] if prompt is not None else []):
        result = denoise(TextGuided(pipe.unet, cond, uncond, GUIDANCE), pipe.scheduler, latents, STEPS)
    return decode(pipe, result.latents)[0]


@pytest.fixture(scope="module")
def adapter_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ip_adapter")
    save_file(adapter_state_dict(make_tiny_pipe().unet), str(folder / "ip-adapter_tiny.safetensors"))
    return folder / "ip-adapter_tiny.safetensors"


@pytest.mark.parametrize("scale", [0.6, 1.0])
def test_image_prompt_matches_diffusers_load_ip_adapter(adapter_file, scale):
    encoder, processor = tiny_image_encoder(), tiny_processor()
    reference = make_tiny_pipe()
    reference.image_encoder, reference.feature_extractor = encoder, processor
    reference.load_ip_adapter(str(adapter_file.parent), subfolder="", weight_name=adapter_file.name,
                              image_encoder_folder=None)
    reference.set_ip_adapter_scale(scale)
    expected = reference(PROMPT, ip_adapter_image=red_square(), num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                         generator=torch.Generator().manual_seed(0), height=32, width=32, output_type="np").images[0]
    pipe = make_tiny_pipe()
    adapter = IPAdapter.load(pipe.unet, adapter_file)
    got = ours(pipe, encode_image_prompt(adapter, encoder, processor, red_square(), scale))
    difference = np.abs(got.astype(float) / 255 - expected).max()
    print(f"IP-Adapter scale {scale} vs diffusers: max |Δ| = {difference * 255:.2f}/255")
    assert difference <= 2 / 255
    plain = ours(pipe)
    assert np.abs(got.astype(int) - plain.astype(int)).max() > 2  # the image prompt changes the picture


def test_scale_zero_is_no_image_and_the_unet_is_untouched(adapter_file):
    pipe = make_tiny_pipe()
    processors = dict(install(pipe.unet) and pipe.unet.attn_processors)
    adapter = IPAdapter.load(pipe.unet, adapter_file)
    prompt = encode_image_prompt(adapter, tiny_image_encoder(), tiny_processor(), red_square(), 0.0)
    np.testing.assert_array_equal(ours(pipe, prompt), ours(pipe))
    assert pipe.unet.attn_processors == processors and pipe.unet.encoder_hid_proj is None
    assert pipe.unet.config.encoder_hid_dim_type is None


def test_an_adapter_for_another_unet_is_a_clear_error(adapter_file):
    from diffusers import UNet2DConditionModel
    other = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=2,
                                 block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                 attention_head_dim=(2, 4), norm_num_groups=16)
    with pytest.raises(ValueError, match="another UNet"):
        IPAdapter.load(other, adapter_file)


def test_p2p_takes_an_image_prompt_and_scale_zero_is_no_image(adapter_file):
    from core.control.prompt_to_prompt import P2PParams, edit
    pipe = make_tiny_pipe()
    adapter = IPAdapter.load(pipe.unet, adapter_file)
    params = P2PParams("a red circle", "a blue circle", steps=3, seed=1)
    plain = edit(pipe, params)
    for scale, same in ((0.0, True), (1.0, False)):
        prompt = encode_image_prompt(adapter, tiny_image_encoder(), tiny_processor(), red_square(), scale)
        result = edit(pipe, params, image_prompt=prompt)
        for a, b in ((result.source_image, plain.source_image), (result.edited_image, plain.edited_image)):
            assert np.array_equal(a, b) == same, scale


def plus_adapter(unet) -> IPAdapter:
    """A plus adapter (Resampler over hidden states) for the tiny UNet, in the original files' key names."""
    from bench.fake_hub import TINY, plus_projection
    torch.manual_seed(5)
    layers = {k: v for k, v in adapter_state_dict(unet).items() if k.startswith("ip_adapter.")}
    return IPAdapter.from_state_dict(unet, {**plus_projection(TINY, unet.config.cross_attention_dim), **layers})


def test_a_plus_adapter_in_the_original_key_layout_loads_and_reads_hidden_states():
    pipe = make_tiny_pipe()
    adapter = plus_adapter(pipe.unet)
    assert adapter.reads_hidden_states
    prompt = encode_image_prompt(adapter, tiny_image_encoder(), tiny_processor(), red_square())
    assert prompt.tokens.shape == (1, 16, pipe.unet.config.cross_attention_dim)
    assert not torch.equal(prompt.tokens, prompt.negative)


@pytest.mark.parametrize("c, a", [(0.0, 0.0), (0.0, 1.0)])
def test_face0_with_an_image_prompt_reduces_to_text_only_and_face_only(c, a):
    """Face0's three-way guidance through IP-Adapter: c = 0, a = 0 is text-only generation (no image branch at all);
    c = 0, a = 1 is the empty prompt with the face seen by the conditional branch only."""
    from core.methods import face0
    pipe = make_tiny_pipe()
    adapter = plus_adapter(pipe.unet)
    encoder, processor = tiny_image_encoder(), tiny_processor()
    params = face0.Face0Params("a red circle", c=c, a=a, steps=3, seed=4)
    got = face0.generate_with_image_prompt(pipe, adapter, encoder, processor, red_square(), params).image
    crop = face0.detect_crop(red_square())[0]
    face = encode_image_prompt(adapter, encoder, processor, crop).with_branches((False, True))
    text, empty = encode_prompts(pipe, ["a red circle"]), encode_prompts(pipe, [""])
    generator = torch.Generator().manual_seed(4)
    latents = prepare_latents(pipe, 1, 32, 32, generator)
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    with torch.no_grad(), install(pipe.unet).use(image_prompts=[face] if a else []):
        expected = denoise(TextGuided(pipe.unet, empty if a else text, empty, params.guidance_scale), scheduler,
                           latents, 3, generator=generator).latents
    np.testing.assert_array_equal(got, decode(pipe, expected)[0])
    if a:  # the face changes the picture
        plain = face0.three_way_sample(pipe, {"face": empty}, empty, params)
        assert np.abs(got.astype(int) - plain.astype(int)).max() > 2


def tiny_clip():
    """A tiny CLIP for the directional loss (random: the test asks that training lowers its loss, not what it means)."""
    from transformers import CLIPConfig, CLIPModel

    from core.guidance import clip_inputs
    from core.tokenizer import clip_tokenizer
    torch.manual_seed(4)
    model = CLIPModel(CLIPConfig(text_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                                                  num_hidden_layers=2, vocab_size=49408),
                                 vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                                                    num_hidden_layers=2, image_size=32, patch_size=8),
                                 projection_dim=16)).eval().requires_grad_(False)
    return model, clip_tokenizer(77), clip_inputs(model)


def test_chatface_on_an_ip_adapter_trains_a_mapper_then_edits_with_it(adapter_file, tmp_path):
    """ChatFace's CLIP-embedding autoencoder (SD1.5's path, tiny components): the code z — one per step — reaches
    the decoder through the image branch; a mapper trained with the directional loss lowers it, is saved under the plan entry's
    name and moves the edit; strength 0 is the reconstruction; an attribute without a mapper is a clear error."""
    from core.directions import DirectionLibrary
    from core.inversion import DDIMSchedule
    from core.methods import chatface
    from core.sampling import encode_images

    pipe = make_tiny_pipe()
    codec = chatface.ImageEmbeddingCodec(pipe, IPAdapter.load(pipe.unet, adapter_file), tiny_image_encoder(),
                                         tiny_processor())
    image = np.asarray(__import__("cv2").resize(red_square(), (32, 32)))
    z = codec.encode(image)
    plan = DDIMSchedule.from_scheduler(type(pipe.scheduler).from_config(pipe.scheduler.config), 10)
    with torch.no_grad():
        x_T = codec.invert(image, z, plan)
        decoded = codec.decode(x_T, [z] * 10, plan)
        other = codec.decode(x_T, [torch.zeros_like(z)] * 10, plan)
        moving = codec.decode(x_T, [z] * 5 + [torch.zeros_like(z)] * 5, plan)  # z_t: one code per step
    assert x_T.shape == encode_images(pipe, image[None]).shape
    assert (decoded - other).abs().max() > 1e-2 and (moving - decoded).abs().max() > 1e-3  # z reaches the decoder
    assert (moving - other).abs().max() > 1e-3

    library = DirectionLibrary(tmp_path)
    params = chatface.MapperParams("make it blue", "a red square", "a blue square", iterations=3, train_steps=3,
                                   lr=1e-3)
    result = chatface.train_mapper(codec, tiny_clip(), image, params, library)
    assert result.name == "colour-blue" and library.names() == ["colour-blue"]
    assert result.losses[1] < result.losses[0] - 0.1  # a step along the gradient through the decoder lowers it
    edited = chatface.edit(codec, image, "make it blue", steps=4, mappers=library)
    unchanged = chatface.edit(codec, image, "make it blue", strength_scale=0.0, steps=4, mappers=library)
    assert np.array_equal(unchanged.edited, unchanged.reconstruction)
    assert np.abs(edited.edited.astype(int) - edited.reconstruction.astype(int)).max() > 0
    with pytest.raises(ValueError, match="no mapper 'size-bigger'"):
        chatface.edit(codec, image, "make it bigger", steps=4, mappers=library)
    with pytest.raises(ValueError, match="one at a time"):
        chatface.MapperParams("make it blue and bigger").check()


def test_animatediff_image_prompt_matches_diffusers(adapter_file):
    """AnimateDiff with an image prompt (every frame sees it) = AnimateDiffPipeline after load_ip_adapter; scale 0
    equals no image."""
    from diffusers import AnimateDiffPipeline, DDIMScheduler

    from core.methods import animatediff
    from core.motion import inflate, new_motion_adapter

    torch.manual_seed(11)
    motion_adapter = new_motion_adapter(make_tiny_pipe().unet, max_frames=8)
    with torch.no_grad():
        for p in motion_adapter.parameters():
            p.normal_(0, 0.05)
    encoder, processor = tiny_image_encoder(), tiny_processor()
    reference = make_tiny_pipe()
    reference = AnimateDiffPipeline(vae=reference.vae, text_encoder=reference.text_encoder, tokenizer=reference.tokenizer,
                                    unet=reference.unet, motion_adapter=motion_adapter, feature_extractor=processor,
                                    image_encoder=encoder,
                                    scheduler=DDIMScheduler.from_config(reference.scheduler.config))
    reference.set_progress_bar_config(disable=True)
    reference.load_ip_adapter(str(adapter_file.parent), subfolder="", weight_name=adapter_file.name,
                              image_encoder_folder=None)
    reference.set_ip_adapter_scale(0.7)
    pipe = make_tiny_pipe()
    params = animatediff.AnimateDiffParams(PROMPT, frames=3, steps=STEPS, guidance_scale=GUIDANCE, seed=0)
    latents = prepare_latents(pipe, 1, 32, 32, torch.Generator().manual_seed(0), frames=3)
    expected = reference(PROMPT, num_frames=3, num_inference_steps=STEPS, guidance_scale=GUIDANCE, latents=latents,
                         ip_adapter_image=red_square(), output_type="np").frames[0]
    motion_unet = inflate(pipe.unet, motion_adapter)
    adapter = IPAdapter.load(pipe.unet, adapter_file)
    prompt = encode_image_prompt(adapter, encoder, processor, red_square(), 0.7)
    result = animatediff.generate(pipe, motion_unet, params, image_prompt=prompt)
    without = animatediff.generate(pipe, motion_unet, params)
    delta = np.abs(result.astype(float) / 255 - expected).max() * 255
    print(f"AnimateDiff + IP-Adapter vs diffusers: max |Δ| = {delta:.2f}/255")
    assert delta <= 2 and np.abs(without.astype(float) / 255 - expected).max() * 255 > 2
    zero = animatediff.generate(pipe, motion_unet, params, image_prompt=encode_image_prompt(adapter, encoder, processor,
                                                                                            red_square(), 0.0))
    assert np.array_equal(zero, without)


def test_fatezero_image_prompt_reaches_the_edit_alone(adapter_file):
    """FateZero's image prompt is seen by the edit only: the recomputed source branch (no image, as the inversion)
    gives the stored maps' video, the reconstruction is unchanged, scale 0 is no image."""
    from core.methods import fatezero
    from core.shapes.dataset import moving_clip

    pipe = make_tiny_pipe()
    adapter = IPAdapter.load(pipe.unet, adapter_file)
    encoder, processor = tiny_image_encoder(), tiny_processor()
    video = moving_clip(np.random.default_rng(2), frames=8, size=32)[0]
    params = dict(source_prompt="a red circle moving right", target_prompt="a blue circle moving right", frames=3,
                  steps=4, blend_words="circle")
    prompt = encode_image_prompt(adapter, encoder, processor, red_square(), 0.8)
    plain = fatezero.run(pipe, video, fatezero.FateZeroParams(**params))
    recomputed = fatezero.run(pipe, video, fatezero.FateZeroParams(**params), image_prompt=prompt)
    stored = fatezero.run(pipe, video, fatezero.FateZeroParams(**params, attention_maps="store"), image_prompt=prompt)
    assert np.abs(recomputed.edited.astype(int) - stored.edited.astype(int)).max() <= 2
    assert np.abs(recomputed.edited.astype(int) - plain.edited.astype(int)).max() > 2
    assert np.array_equal(recomputed.reconstruction, plain.reconstruction)
    zero = fatezero.run(pipe, video, fatezero.FateZeroParams(**params), reconstruct=False,
                        image_prompt=encode_image_prompt(adapter, encoder, processor, red_square(), 0.0))
    assert np.array_equal(zero.edited, plain.edited)
