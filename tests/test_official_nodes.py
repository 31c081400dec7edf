"""The official pose pack (docker/steadydancer/nodes) and the patch that lets WanVideoWrapper's
sampler run its guidance: nodes on the official numbers, drawing, detector output conversion,
the patch's pin, and how the build installs both."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from steadydancer.nodes import NODE_CLASS_MAPPINGS, detect, draw, pack
from steadydancer.official_pose import wholebody
from steadydancer.official_pose.keypoints import Pose

from ci import paths, pins
from ci.layers import comfyui
from ci.layers.runtime import OFFICIAL_POSE_IMPORTS
from tests.dagger_offline import REPO, execs, ops
from tests.test_build_chain import build
from tests.test_official_pose import assert_close, run

PATCH = REPO / comfyui.PATCHES["ComfyUI-WanVideoWrapper"]
WRAPPER = next(p for p in pins.NODE_PACKS if p.name == "ComfyUI-WanVideoWrapper")


def test_the_align_node_gives_the_official_numbers_in_the_reference_frame() -> None:
    """The reference measured at its working size; the pictures drawn at its size as given."""
    result = run("missing-arm")
    reference, _, *frames = result.detected
    frames = [frames[0]] * result.case["align_frame"] + frames
    ref_size, video_size = result.case["reference_size"], result.case["video_size"]
    value = pack.align_keypoints(
        pack.keypoints([reference], *ref_size, role="reference"),
        pack.keypoints(frames, *video_size),
        result.case["align_frame"],
    )
    assert_close(value["poses"], result.recorded, "positive")
    assert (value["width"], value["height"]) == tuple(ref_size)
    frames = draw.draw_poses(value["poses"], value["width"], value["height"])
    assert frames.shape == (len(value["poses"]), ref_size[1], ref_size[0], 3)


def test_the_align_node_wants_one_reference_pose_measured_as_a_reference() -> None:
    frames = run("scores").detected
    two = pack.keypoints(frames[:2], 480, 832, role="reference")
    with pytest.raises(ValueError, match="reference_pose holds 2 poses"):
        pack.align_keypoints(two, two, 0)
    driving = pack.keypoints(frames[:1], 480, 832)
    with pytest.raises(ValueError, match="set the reference image's SteadyDancerDWPose role"):
        pack.align_keypoints(driving, driving, 0)


def test_the_negative_node_is_the_official_augmentation_and_its_seed_decides() -> None:
    result = run("two-people")
    aligned = pack.keypoints(result.aligned, *result.case["reference_size"])
    value = pack.negative_keypoints(aligned, result.case["seed"])
    assert_close(value["poses"], result.recorded, "negative")
    assert (value["width"], value["height"]) == tuple(result.case["reference_size"])
    first = pack.negative_keypoints(aligned, 1)["poses"]
    again = pack.negative_keypoints(aligned, 1)["poses"]
    other = pack.negative_keypoints(aligned, 2)["poses"]
    assert all(np.array_equal(a.body, b.body) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0].body, other[0].body)
    assert pack.SteadyDancerNegativePose.RETURN_TYPES == (pack.POSES, "IMAGE")


def sdancer_embeds(negative: bool = True) -> dict[str, object]:
    return {
        "target_shape": (16, 9, 60, 104),
        "sdancer_embeds": {"cond_pos": "pose", "cond_neg": "negative" if negative else None},
    }


def test_the_guidance_node_asks_the_sampler_for_the_three_passes() -> None:
    embeds = sdancer_embeds()
    (guided,) = pack.SteadyDancerPoseGuidance().guide(embeds, 1.5, 0.1, 0.4)
    assert guided["sdancer_embeds"]["official_guidance"] == {
        "pose_scale": 1.5, "start": 0.1, "end": 0.4
    }  # fmt: skip
    assert guided["target_shape"] == embeds["target_shape"]
    assert "official_guidance" not in embeds["sdancer_embeds"]  # the input is left as it was


@pytest.mark.parametrize(
    ("embeds", "window", "message"),
    [
        ({"target_shape": 1}, (0.1, 0.4), "connect WanVideoAddSteadyDancerEmbeds"),
        (sdancer_embeds(negative=False), (0.1, 0.4), "needs the negative pose"),
        (sdancer_embeds(), (0.5, 0.2), "must satisfy 0 <= start <= end <= 1"),
    ],
)
def test_the_guidance_node_refuses_in_words(
    embeds: dict[str, object], window: tuple[float, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        pack.with_pose_guidance(embeds, 1.5, *window)


def test_every_node_declares_what_comfyui_reads() -> None:
    for name, node in NODE_CLASS_MAPPINGS.items():
        inputs = node.INPUT_TYPES()
        assert set(inputs) <= {"required", "optional"}, name
        assert len(node.RETURN_TYPES) == len(node.RETURN_NAMES), name
        assert callable(getattr(node, node.FUNCTION)), name
        assert node.CATEGORY.startswith("SteadyDancer"), name


def colour_at(frame: np.ndarray, x: float, y: float) -> tuple[int, ...]:
    return tuple(int(v) for v in frame[round(y), round(x)])


def lone_pose() -> Pose:
    body = np.zeros((18, 2))
    body[1] = (0.5, 0.2)  # neck
    body[2] = (0.3, 0.2)  # right shoulder: limb 0, neck -> right shoulder
    seen = np.zeros(18, bool)
    seen[[1, 2]] = True
    hands = np.full((2, 21, 2), -1.0)
    hands[0, 0], hands[0, 1] = (0.2, 0.6), (0.6, 0.6)  # edge 0 (hue 0) from x 40 to 120
    return Pose(body, seen, hands, np.full((1, 68, 2), 0.9))


def test_frames_are_in_rgb_with_the_official_palette_read_as_bgr() -> None:
    """The official code draws its palette on a BGR canvas and turns it to RGB: the
    neck-shoulder limb is blue at 60 %, hand points red, the first hand edge blue."""
    frame = draw.canvas(lone_pose(), 200, 100)
    assert frame.shape == (100, 200, 3) and frame.dtype == np.uint8
    assert colour_at(frame, 80, 20) == (0, 0, 153)  # limb 0: (255, 0, 0) BGR, dimmed
    assert colour_at(frame, 100, 20) == (0, 85, 255)  # the neck: palette 1 read as BGR
    assert colour_at(frame, 80, 60) == (0, 0, 255)  # hand edge 0: hue 0 written as BGR
    assert colour_at(frame, 40, 60) == (255, 0, 0)  # a hand point: BGR (0, 0, 255)
    assert colour_at(frame, 90, 90) == (0, 0, 0)  # the face is not drawn
    # An unseen point hides its limbs and itself, whatever its coordinates.
    hidden = lone_pose()
    hidden.seen[2] = False
    frame = draw.canvas(hidden, 200, 100)
    assert colour_at(frame, 80, 20) == (0, 0, 0) and colour_at(frame, 60, 20) == (0, 0, 0)


def test_frames_are_drawn_at_twice_the_working_size_and_resized() -> None:
    """A 480 x 832 reference works at 576 x 1008: drawn at 1152 x 2016, then resized."""
    assert wholebody.working_size(480, 832) == (576, 1008)
    frames = draw.draw_poses([lone_pose()] * 2, 480, 832)
    assert frames.shape == (2, 832, 480, 3)
    big = Image.fromarray(draw.canvas(lone_pose(), 1152, 2016))
    expected = np.asarray(big.resize((480, 832), Image.Resampling.BICUBIC))
    assert np.array_equal(frames[0], expected)
    # The limb, 9 px across at 2016 high, is 3 px across at 832.
    column = frames[0][:400, 192].max(axis=-1)
    assert np.count_nonzero(column > 60) == 3


def test_the_neck_and_the_score_thresholds_are_the_official_ones() -> None:
    """Neck: both shoulders above 0.3 (strict); body points above 0.35 (strict); hand and
    face points at 0.35 or above."""
    points = np.stack([np.arange(133) * 2.0, np.arange(133) * 1.0], axis=1)[None]
    scores = np.full((1, 133), 0.9)
    scores[0, 9] = 0.35  # left wrist (OpenPose 7): exactly 0.35, hidden
    scores[0, 95] = 0.35  # a left-hand point: exactly 0.35, kept
    scores[0, 96] = 0.3  # a left-hand point under 0.35: -1
    found = wholebody.to_openpose(points, scores, 400, 200)
    np.testing.assert_allclose(found.body[1], (points[0, 5] + points[0, 6]) / 2 / (400, 200))
    np.testing.assert_allclose(found.body[7], points[0, 9] / (400, 200))  # kept, hidden
    assert not found.seen[7] and found.seen[1]
    np.testing.assert_allclose(found.hands[0, 4], points[0, 95] / (400, 200))
    assert found.hands[0, 5].tolist() == [-1.0, -1.0]
    scores[0, 5] = 0.3
    assert not wholebody.to_openpose(points, scores, 400, 200).seen[1]
    scores[0, 5] = 0.31
    assert wholebody.to_openpose(points, scores, 400, 200).seen[1]


def test_pictures_are_resized_with_the_official_rule() -> None:
    """Short side 1024, each side a multiple of 64; the reference first at area 1024 x 576."""
    assert detect.resized(np.zeros((480, 832, 3), np.uint8)).shape == (1024, 1792, 3)
    assert detect.at_working_size(np.zeros((832, 480, 3), np.uint8)).shape == (1008, 576, 3)
    # Shrinking is area-averaged (bicubic would give 104..151 here), as in resize_image.
    stripes = np.zeros((2048, 2048, 3), np.uint8)
    stripes[:, ::2] = 255
    assert set(np.unique(detect.resized(stripes))) == {128}


class FakeModels:
    """mmdet's detector and mmpose's pose model (which need mmcv's compiled ops, absent here;
    the replay test runs the real ones in the image): they record what they are handed."""

    def __init__(self, boxes: int) -> None:
        self.boxes = boxes
        self.seen: list[tuple[str, np.ndarray, object]] = []

    def detect(self, model: object, image: np.ndarray) -> object:
        self.seen.append(("detector", image, None))
        instances = SimpleNamespace(
            bboxes=np.tile([10.0, 10.0, 50.0, 90.0], (self.boxes, 1)),
            scores=np.full(self.boxes, 0.9), labels=np.zeros(self.boxes, int),
        )  # fmt: skip
        instances.cpu = lambda: SimpleNamespace(numpy=lambda: instances)
        return SimpleNamespace(pred_instances=instances)

    def topdown(self, model: object, image: np.ndarray, boxes: object = None) -> list[object]:
        self.seen.append(("pose", image, boxes))
        instances = SimpleNamespace(keypoints=np.full((1, 133, 2), 20.0),
                                    keypoint_scores=np.full((1, 133), 0.9))  # fmt: skip
        instances.get = lambda key, default: default
        return [SimpleNamespace(pred_instances=instances)]


@pytest.mark.parametrize("boxes", [1, 0])
def test_the_detector_hands_both_models_the_rgb_picture(
    boxes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RGB in, at the official size; with no person box the pose model gets the whole picture."""
    fake = FakeModels(boxes)
    modules = {
        "mmdet.apis": SimpleNamespace(inference_detector=fake.detect),
        "mmpose.apis": SimpleNamespace(inference_topdown=fake.topdown),
        "mmpose.evaluation.functional": SimpleNamespace(nms=lambda b, t: list(range(len(b)))),
        "mmpose.structures": SimpleNamespace(merge_data_samples=lambda found: found[0]),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    frame = np.zeros((832, 480, 3), np.uint8)
    frame[..., 0] = 200  # red
    pose = detect.Detector(None, None)(frame)
    (_, detected, _), (_, posed, given) = fake.seen
    assert detected.shape == posed.shape == (1792, 1024, 3)
    assert detected[..., 0].mean() == 200 and posed[..., 0].mean() == 200
    assert (given is None) == (boxes == 0)
    np.testing.assert_allclose(pose.body[0], (20 / 1024, 20 / 1792))


def test_the_detector_configs_are_the_ones_mmdet_and_mmpose_ship() -> None:
    """Checked against the pinned wheels' file lists where they are installed (the image)."""
    assert detect.DETECTOR_CONFIG[1].endswith("yolox_l_8xb8-300e_coco.py")
    assert "384x288" in detect.POSE_CONFIG[1]
    try:
        found = [
            Path(detect.config_path(*config)).is_file()
            for config in (detect.DETECTOR_CONFIG, detect.POSE_CONFIG)
        ]
    except ModuleNotFoundError:
        pytest.skip("mmdet and mmpose are not installed here (they are in the image's lock)")
    assert found == [True, True]


def test_the_detector_checkpoints_are_where_the_catalog_puts_them() -> None:
    from steadydancer import catalog

    assert catalog.FILES["dwpose-l"].target == detect.POSE_CHECKPOINT
    assert catalog.FILES["yolox-l"].target == detect.DETECTOR_CHECKPOINT


def test_the_patch_names_the_wrapper_commit_it_was_made_for() -> None:
    """A pin bump fails here until the patch is remade (and checked) for the new commit."""
    header = PATCH.read_text().split("diff --git", 1)[0]
    assert re.findall(r"\b[0-9a-f]{40}\b", header) == [WRAPPER.commit]
    changed = re.findall(r"^diff --git a/(\S+)", PATCH.read_text(), re.MULTILINE)
    assert changed == [
        "fp8_optimization.py", "nodes.py", "nodes_model_loading.py", "nodes_sampler.py",
        "steadydancer/nodes.py", "utils.py", "wanvideo/modules/model.py",
    ]  # fmt: skip


def added_lines(path: str) -> list[str]:
    part = PATCH.read_text().split(f"diff --git a/{path} b/{path}", 1)[1].split("diff --git", 1)[0]
    return [line[1:].strip() for line in part.splitlines() if line.startswith("+") and
            not line.startswith("+++")]  # fmt: skip


def test_every_pass_gets_the_official_pose_inputs() -> None:
    """The patch's own expressions, evaluated on stand-in tensors: as in the official
    wan/image2video_dancer.py, cond is (text+, pose+), uncond_context (text-, pose+) and
    uncond_condition (text+, pose-), and all three take ref_c and the pose CLIP features
    from the positive pose."""
    sampler = added_lines("nodes_sampler.py")
    inputs = {"cond_pos": "positive", "cond_neg": "negative", "clip_fea_c": "positive CLIP"}
    overrides = [
        eval(line.split(" = ", 1)[1], {"sdancer_input": inputs})  # the patch's dict(...) calls
        for line in sampler
        if line.startswith("base_params['sdancer_input'] = dict(sdancer_input")
    ]
    (model_line,) = [line for line in added_lines("wanvideo/modules/model.py") if "ref_c" in line]

    def model_sees(sdancer_input: dict[str, object], is_uncond: bool) -> tuple[object, ...]:
        # What model.py reads: the condition in use, then the patched ref_c line.
        sdancer_cond = [sdancer_input["cond_neg" if is_uncond else "cond_pos"]]
        scope = {"sdancer_input": {k: Sliceable(v) for k, v in sdancer_input.items()},
                 "sdancer_cond": [Sliceable(sdancer_cond[0])]}  # fmt: skip
        ref_c = eval(model_line.split(" = ", 1)[1], scope)
        return sdancer_cond[0], ref_c.value, sdancer_input["clip_fea_c"]

    pose_pass, context_pass = overrides
    assert model_sees(inputs, False) == ("positive", "positive", "positive CLIP")  # cond
    assert model_sees(context_pass, True) == ("positive", "positive", "positive CLIP")
    assert model_sees(pose_pass, False) == ("negative", "positive", "positive CLIP")
    assert any("context=negative_embeds" in line for line in sampler)


def test_fp8_matmul_finds_the_scale_each_merged_weight_kept() -> None:
    """The patch's own key expression, evaluated: the scale a merged weight keeps is filed
    under the name convert_fp8_linear looks up for its module (f"{module}.scale_weight"), the
    name apply_lora gives a checkpoint's scale for a weight no LoRA touches."""
    (line,) = [line for line in added_lines("utils.py") if line.startswith("fp8_scales[key")]
    expression = line.split("[", 1)[1].rsplit("] = ", 1)[0]
    key = "diffusion_model.blocks.0.self_attn.q.weight"
    assert eval(expression, {"key": key}) == "blocks.0.self_attn.q.scale_weight"
    loader = added_lines("nodes_model_loading.py")
    assert 'fp8_scales = {} if "fast" in quantization else None' in loader
    assert any("scale_weight_keys=scale_weights if fp8_scales is None else fp8_scales" in line
               for line in loader)  # fmt: skip


class Sliceable:
    """A stand-in tensor: slicing it keeps its name."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __getitem__(self, key: object) -> Sliceable:
        return self


def test_the_clip_images_are_resized_whole_as_the_official_code_does() -> None:
    """The official clip.visual resizes each picture to 224 x 224 without cropping; the
    patched WanVideoClipVisionEncode honours crop "disabled" for ComfyUI's CLIP models."""
    prompt = json.loads((REPO / "workflows" / "steadydancer-official.json").read_text())
    encoders = [n for n in prompt.values() if n["class_type"] == "WanVideoClipVisionEncode"]
    assert len(encoders) == 2 and all(n["inputs"]["crop"] == "disabled" for n in encoders)
    nodes = added_lines("nodes.py")
    assert sum('encode_image(' in line and 'crop=(crop != "disabled")' in line
               for line in nodes) == 2  # fmt: skip


def test_the_patch_applies_to_the_pinned_wrapper() -> None:
    """Needs the pinned tree (GitHub only): STEADYDANCER_REPLAY_TREES/ComfyUI-WanVideoWrapper."""
    trees = os.environ.get("STEADYDANCER_REPLAY_TREES")
    tree = Path(trees) / WRAPPER.name if trees else None
    if tree is None or not tree.is_dir():
        pytest.skip("STEADYDANCER_REPLAY_TREES names no ComfyUI-WanVideoWrapper tree at its pin")
    result = subprocess.run(
        ["git", "-C", str(tree), "apply", "--check", "--verbose", str(PATCH)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Checking patch nodes_sampler.py" in result.stdout + result.stderr


def test_the_nodes_layer_patches_the_wrapper_and_installs_the_pack() -> None:
    chain = ops(build())
    wrapper_dir = f"{paths.CUSTOM_NODES_DIR}/{WRAPPER.name}"
    copied = [
        i for i, (n, a) in enumerate(chain) if n == "withDirectory" and a.get("path") == wrapper_dir
    ]
    applied = [
        i for i, (n, a) in enumerate(chain)
        if n == "withExec" and a["args"][:4] == ["git", "-C", wrapper_dir, "apply"]
    ]  # fmt: skip
    installed = [
        i for i, (n, a) in enumerate(chain)
        if n == "withDirectory"
        and a.get("path") == f"{paths.CUSTOM_NODES_DIR}/{comfyui.OFFICIAL_POSE_PACK}"
    ]  # fmt: skip
    assert len(copied) == len(applied) == len(installed) == 1
    assert copied[0] < applied[0] < installed[0]
    checks = [args for args in execs(build()) if "steadydancer.import_check" in args]
    assert checks[-1][-len(OFFICIAL_POSE_IMPORTS) :] == list(OFFICIAL_POSE_IMPORTS)


def test_the_pack_folder_holds_only_the_pack() -> None:
    names = sorted(p.name for p in (REPO / "docker/steadydancer/nodes").iterdir())
    assert [n for n in names if n != "__pycache__"] == [
        "__init__.py",
        "detect.py",
        "draw.py",
        "example_workflows",
        "pack.py",
    ]


def test_an_unreadable_checkpoint_is_named_with_the_way_out(tmp_path: Path) -> None:
    """An empty file fails inside torch.load as it fails inside pickle: EOFError."""
    checkpoint = tmp_path / "yolox.pth"
    checkpoint.write_bytes(b"")
    with pytest.raises(RuntimeError) as raised, detect.readable(checkpoint, "yolox-l"):
        pickle.load(checkpoint.open("rb"))
    assert str(raised.value) == (
        f"{checkpoint} (0 bytes) is not a readable checkpoint (EOFError: Ran out of input): "
        "delete it and fetch it again (catalog file yolox-l)"
    )
