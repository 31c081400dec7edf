"""The Dagger functions: one per phase of the image, each a thin call into ci/."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import dagger
from dagger import Doc, dag, function, object_type
from dagger.mod._exceptions import FunctionError
from steadydancer import catalog, workflows

from ci import doctor as doctor_checks
from ci import image, pins, plan, registries, relock
from ci import lock as locks
from ci import smoke_test as on_engine
from ci import validate as validation
from ci.choices import AttentionMode, ProfileName, Tier
from ci.installs import Installer
from ci.layers import models as models_layer
from ci.layers.attention import AttentionPlan, AttentionUnavailable, EngineProbe, Probe
from ci.lock import LockError
from ci.options import BuildOptions, InputError

# Variants hold hyphens, which an enum member cannot: a string, its choices in the Doc.
Variant = Annotated[
    str, Doc(f"model variant: {', '.join(catalog.VARIANTS)} (default {catalog.DEFAULT_VARIANT})")
]
Profile = Annotated[
    ProfileName, Doc("CUDA profile: cu124 (default, CUDA 12.4.1) or cu121 (CUDA 12.1.1)")
]
Attention = Annotated[
    AttentionMode,
    Doc(
        "attention library: auto (flash-attn, else xformers), flash_attn_2 or xformers "
        "(the seed's ENABLE_FLASH_ATTN=false is --attention xformers)"
    ),
]
DEFAULT_PROFILE = ProfileName(pins.DEFAULT_PROFILE)
Frames = Annotated[int, Doc("frames of the clip, 4n+1 for SteadyDancer (5 to 321)")]
Width = Annotated[int, Doc("clip width, a multiple of 16 for SteadyDancer")]
Height = Annotated[int, Doc("clip height, a multiple of 16 for SteadyDancer")]
Steps = Annotated[int, Doc("sampling steps (4 with the lightx2v LoRA)")]
DANCE_WORKFLOWS = ("steadydancer-dance", "steadydancer-official")
"""The workflows that take a driving video of a person: the ONNX pose route, SteadyDancer's own."""
LayerLimit = Annotated[
    float,
    Doc("the registry's per-layer limit in GB, for one this module does not know (0: known)"),
]
BakeModels = Annotated[
    bool, Doc("put the models in the image; false leaves them out, for pods with a model volume")
]
HfToken = Annotated[
    dagger.Secret | None, Doc("Hugging Face token, e.g. env://HF_TOKEN, for gated repositories")
]


def source_workflows() -> Path:
    """The repository's workflows/ as this module's own source holds them."""
    return Path(__file__).resolve().parents[1] / "workflows"


DANCE_OWN = {"frames", "width", "height", "steps", "seed", "prompt", "negative_prompt"}
"""Workflow parameters `dance` takes as arguments of its own (and the two files)."""


def extra_values(workflow: workflows.Workflow, pairs: list[str]) -> dict[str, object]:
    """`--set NAME=VALUE` pairs as typed values; one `dance` takes itself is refused by name."""
    from steadydancer import smoke

    split = [pair for pair in pairs if "=" not in pair]
    if split:
        # The CLI reads a list argument as comma-separated values: "a=b, c" arrives as two.
        raise InputError(
            f"--set {split[0]!r} is not NAME=VALUE: the Dagger CLI splits --set at commas, so "
            "free text goes in --prompt or --negative-prompt"
        )
    try:
        extra = smoke.parse_sets(pairs, workflow)
    except smoke.SmokeError as exc:
        raise InputError(exc.message) from None
    own = sorted(set(extra) & (DANCE_OWN | {"reference_image", "driving_video"}))
    if own:
        raise InputError(
            f"--set {', '.join(own)}: give {'it' if len(own) == 1 else 'them'} with dance's own "
            "arguments (--frames, --width, --height, --steps, --seed, --prompt, "
            "--negative-prompt, --reference, --driving)"
        )
    return extra


def attention_probe() -> Probe:
    """Where the attention choice asks its questions; tests point it at local peers."""
    return EngineProbe()


@contextmanager
def reported() -> Iterator[None]:
    """Bad input and stale locks reach the user as one clear message, without a traceback."""
    try:
        yield
    except (InputError, LockError, AttentionUnavailable, workflows.WorkflowError) as exc:
        raise FunctionError(str(exc)) from None


def _options(
    variant: str,
    profile: ProfileName,
    attention: AttentionMode,
    bake_models: bool = True,
) -> BuildOptions:
    """The arguments of a build, checked (InputError names the first bad one)."""
    return BuildOptions.parse(
        variant_name=variant,
        profile_name=profile.value,
        attention_mode=attention.value,
        bake_models=bake_models,
    )


def smoke_options(
    variant: str, profile: ProfileName, attention: AttentionMode, bake_models: bool, tier: Tier
) -> BuildOptions:
    """The smoke test's build: the boot tier proves CUDA and the nodes, so it bakes no models."""
    return _options(variant, profile, attention, bake_models=bake_models and tier != Tier.boot)


async def _image(options: BuildOptions, hf_token: dagger.Secret | None) -> dagger.Container:
    """The whole image: the attention branch chosen, the token keyed so it changes no layer."""
    return image.image(options, await _plan(options), await models_layer.keyed_token(hf_token))


async def _served_run(
    what: str,
    built: dagger.Container,
    options: BuildOptions,
    workflow: str,
    tier: str,
    sets: list[str],
    inputs: on_engine.Inputs | None = None,
) -> dagger.Container:
    """The client's run beside the image served with every GPU; its report when it fails."""
    models = tier != Tier.boot.value
    run = on_engine.client(
        built,
        on_engine.service(built, models),
        workflow,
        tier,
        options.variant,
        sets,
        str(time.time_ns()),
        # Without its model step the boot fetches nothing: the short wait.
        options.bake_models or not models,
        inputs,
    )
    if await run.exit_code() != 0:
        report = await run.directory(on_engine.OUT).file("report.json").contents()
        raise FunctionError(f"{what} failed:\n{await run.stderr()}\n{report}")
    return run


async def _after_attention(
    layer: Callable[[pins.Profile, AttentionPlan], dagger.Container],
    profile: ProfileName,
    attention: AttentionMode,
) -> dagger.Container:
    """A layer from the attention layer on: the branch is chosen first."""
    with reported():
        options = BuildOptions.parse(profile_name=profile.value, attention_mode=attention.value)
        return layer(options.profile, await _plan(options))


async def _plan(options: BuildOptions) -> AttentionPlan:
    # Says, for a profile without a lock, that its packages resolve at build time.
    print(f"python packages: {Installer.for_profile(options.profile).describe()}")
    chosen = await image.plan_attention(options, attention_probe())
    print(f"attention: {chosen.backend} from {chosen.origin} ({chosen.reason})")
    return chosen


@object_type
class SteadyDancer:
    """Builds, checks and smoke-tests the SteadyDancer ComfyUI image, one function per layer."""

    @function
    def validate(self, profile: Profile = DEFAULT_PROFILE) -> str:
        """Seconds, no build: compatibility rules, pins against the lock, node requirements."""
        with reported():
            chosen = BuildOptions.parse(profile_name=profile.value).profile
        sections = validation.validate(chosen)
        report = validation.render(chosen, sections, 0.0).rsplit(" in ", 1)[0]
        if any(section.findings for section in sections):
            raise FunctionError(report)
        return report

    # An upgrade's cutoff is "now": a result remembered for days would be another day's now.
    @function(cache="session")  # type: ignore[call-overload, untyped-decorator]
    async def lock(
        self,
        profile: Profile = DEFAULT_PROFILE,
        upgrade: Annotated[
            bool, Doc("move the cutoff to now; otherwise resolve at the committed locks' cutoff")
        ] = False,
    ) -> dagger.Directory:
        """Resolve the profile's hashed lock from the pinned trees (needs the internet)."""
        with reported():
            chosen = BuildOptions.parse(profile_name=profile.value).profile
            cutoff = locks.now_cutoff() if upgrade else locks.recorded_cutoff(chosen)
        return await relock.lock_directory(chosen, cutoff)

    @function
    def base(self, profile: Profile = DEFAULT_PROFILE) -> dagger.Container:
        """Layer 1: CUDA runtime base image, system packages, Python 3.11 venv and uv."""
        with reported():
            return image.base_layer(BuildOptions.parse(profile_name=profile.value).profile)

    @function
    def torch(self, profile: Profile = DEFAULT_PROFILE) -> dagger.Container:
        """Layer 2: base plus the exact torch/torchvision/torchaudio trio of the profile."""
        with reported():
            return image.torch_layer(BuildOptions.parse(profile_name=profile.value).profile)

    @function
    def openmmlab(self, profile: Profile = DEFAULT_PROFILE) -> dagger.Container:
        """Layer 3: torch plus mmcv compiled with CUDA ops, mmengine, mmdet, mmpose, DWPose."""
        with reported():
            return image.openmmlab_layer(BuildOptions.parse(profile_name=profile.value).profile)

    # The attention branch is decided afresh in each session, not remembered for days.
    @function(cache="session")  # type: ignore[call-overload, untyped-decorator]
    async def attention(
        self,
        profile: Profile = DEFAULT_PROFILE,
        attention: Attention = AttentionMode.auto,
    ) -> dagger.Container:
        """Layer 4: openmmlab plus flash-attn (wheel, else source build) or xformers."""
        return await _after_attention(image.attention_layer, profile, attention)

    @function(cache="session")  # type: ignore[call-overload, untyped-decorator]
    async def comfyui(
        self,
        profile: Profile = DEFAULT_PROFILE,
        attention: Attention = AttentionMode.auto,
    ) -> dagger.Container:
        """Layer 6 (after the models in a build): ComfyUI at its pinned commit, its requirements."""
        return await _after_attention(image.comfyui_layer, profile, attention)

    @function(cache="session")  # type: ignore[call-overload, untyped-decorator]
    async def nodes(
        self,
        profile: Profile = DEFAULT_PROFILE,
        attention: Attention = AttentionMode.auto,
    ) -> dagger.Container:
        """Layer 7: comfyui plus the four SteadyDancer node packs at their pinned commits."""
        return await _after_attention(image.nodes_layer, profile, attention)

    @function(cache="never")  # type: ignore[call-overload, untyped-decorator]
    async def check_models(
        self, variant: Variant = catalog.DEFAULT_VARIANT, hf_token: HfToken = None
    ) -> str:
        """Ask the Hub, without downloading, whether each file of a variant is readable."""
        with reported():
            files = catalog.files_for(BuildOptions.parse(variant_name=variant).variant)
        try:
            return await models_layer.check(files, hf_token, str(time.time_ns())).stdout()
        except dagger.ExecError as exc:
            raise FunctionError(f"{exc.stdout}\n{exc.stderr}".strip()) from None

    @function(cache="never")  # type: ignore[call-overload, untyped-decorator]
    async def lock_models(self, hf_token: HfToken = None) -> dagger.File:
        """Pin every catalog file to its Hub commit with size and sha256: a new catalog.json."""
        container = models_layer.check(catalog.all_files(), hf_token, str(time.time_ns()))
        try:
            report = await container.file(models_layer.REPORT).contents()
        except dagger.ExecError as exc:
            raise FunctionError(f"{exc.stdout}\n{exc.stderr}".strip()) from None
        text = catalog.locked(json.loads(report))
        return dag.directory().with_new_file("catalog.json", text).file("catalog.json")

    @function
    async def models(
        self, variant: Variant = catalog.DEFAULT_VARIANT, hf_token: HfToken = None
    ) -> dagger.Directory:
        """Layer 5: the variant's model files from Hugging Face, as ComfyUI's models/ folder."""
        with reported():
            chosen = BuildOptions.parse(variant_name=variant).variant
        return models_layer.models(chosen, await models_layer.keyed_token(hf_token))

    @function(cache="session")  # type: ignore[call-overload, untyped-decorator]
    async def build(
        self,
        variant: Variant = catalog.DEFAULT_VARIANT,
        profile: Profile = DEFAULT_PROFILE,
        attention: Attention = AttentionMode.auto,
        bake_models: BakeModels = True,
        hf_token: HfToken = None,
    ) -> dagger.Container:
        """The whole image: every layer, then docker/, workflows/, port 8188 and the entrypoint."""
        with reported():
            options = _options(variant, profile, attention, bake_models)
            return await _image(options, hf_token)

    @function(cache="never")  # type: ignore[call-overload, untyped-decorator]
    async def smoke_test(
        self,
        variant: Variant = catalog.DEFAULT_VARIANT,
        tier: Annotated[
            Tier, Doc("boot: CUDA and the SteadyDancer nodes; generate: also render a clip")
        ] = Tier.generate,
        workflow: Annotated[
            str,
            Doc(
                "steadydancer-pose (default), steadydancer-dance, steadydancer-official, cpu-smoke"
            ),
        ] = "steadydancer-pose",
        frames: Frames = 33,
        width: Width = 480,
        height: Height = 832,
        steps: Steps = 4,
        profile: Profile = DEFAULT_PROFILE,
        attention: Attention = AttentionMode.auto,
        bake_models: BakeModels = True,
        hf_token: HfToken = None,
    ) -> dagger.Directory:
        """Serve the image on the engine's GPUs, run the smoke client; the video(s) and report."""
        with reported():
            options = smoke_options(variant, profile, attention, bake_models, tier)
            if workflow not in workflows.names(source_workflows()):
                known = ", ".join(workflows.names(source_workflows()))
                raise InputError(f"unknown workflow {workflow!r}; accepted: {known}")
            values = {"frames": frames, "width": width, "height": height}
            if workflow != "cpu-smoke":
                values["steps"] = steps
            # The manifest's bounds, here as in the client: a bad value costs no build.
            workflows.check_values(workflows.load(workflow, source_workflows()), values)
            built = await _image(options, hf_token)
        sets = [f"{name}={value}" for name, value in values.items()]
        run = await _served_run("smoke test", built, options, workflow, tier.value, sets)
        return run.directory(on_engine.OUT)

    @function(cache="never")  # type: ignore[call-overload, untyped-decorator]
    async def dance(
        self,
        reference: Annotated[dagger.File, Doc("the person to animate: a PNG or JPEG image")],
        driving: Annotated[dagger.File, Doc("the motion to follow: a video (mp4, webm, mov)")],
        variant: Variant = catalog.DEFAULT_VARIANT,
        workflow: Annotated[
            str,
            Doc(
                "steadydancer-dance: pose found by ONNX models and aligned; steadydancer-official: "
                "SteadyDancer's own detector, alignment, negative pose and pose guidance"
            ),
        ] = DANCE_WORKFLOWS[0],
        frames: Frames = 81,
        width: Width = 480,
        height: Height = 832,
        steps: Steps = 4,
        seed: Annotated[int, Doc("sampling seed")] = 42,
        prompt: Annotated[str, Doc("what the clip shows, in words")] = "",
        negative_prompt: Annotated[
            str, Doc("what the clip should not show, in words (the workflow's own when empty)")
        ] = "",
        set_: Annotated[
            list[str] | None,
            Doc(
                "another workflow parameter, NAME=VALUE (repeatable), e.g. cfg=5 or "
                "lora_strength=0 for steadydancer-official; the CLI splits values at commas"
            ),
        ] = None,
        profile: Profile = DEFAULT_PROFILE,
        attention: Attention = AttentionMode.auto,
        bake_models: BakeModels = True,
        hf_token: HfToken = None,
    ) -> dagger.File:
        """Animate your reference image with the driving video's motion: the clip, as a file."""
        with reported():
            options = _options(variant, profile, attention, bake_models=bake_models)
            if workflow not in DANCE_WORKFLOWS:
                raise InputError(
                    f"unknown dance workflow {workflow!r}; accepted: {', '.join(DANCE_WORKFLOWS)}"
                )
            values: dict[str, object] = {
                "frames": frames, "width": width, "height": height, "steps": steps, "seed": seed
            }  # fmt: skip
            if prompt:
                values["prompt"] = prompt
            if negative_prompt:
                values["negative_prompt"] = negative_prompt
            loaded = workflows.load(workflow, source_workflows())
            values.update(extra_values(loaded, set_ or []))
            workflows.check_values(loaded, values)
        sets = [f"{name}={value}" for name, value in values.items()]
        inputs = {
            "reference_image": (await reference.name(), reference),
            "driving_video": (await driving.name(), driving),
        }
        checked = on_engine.input_check(workflow, variant, sets, inputs)
        if await checked.exit_code() != 0:
            raise FunctionError(f"dance: {(await checked.stderr()).strip()}")
        with reported():
            built = await _image(options, hf_token)
        run = await _served_run("dance", built, options, workflow, "generate", sets, inputs)
        out = run.directory(on_engine.OUT)
        videos = await out.glob("*.mp4")
        if not videos:
            raise FunctionError("dance: the workflow finished without a video")
        return out.file(videos[0])

    @function
    def plan(
        self,
        variant: Variant = catalog.DEFAULT_VARIANT,
        profile: Profile = DEFAULT_PROFILE,
        attention: Attention = AttentionMode.auto,
        bake_models: BakeModels = True,
        registry: Annotated[
            str,
            Doc(
                "an image address or a registry's host (ghcr.io): check each layer against "
                "that registry's limit"
            ),
        ] = "",
        layer_limit_gb: LayerLimit = 0.0,
    ) -> str:
        """The layers of a build, their pins and what each one's cache depends on (no build)."""
        with reported():
            options = _options(variant, profile, attention, bake_models=bake_models)
            return plan.render(options, registry or None, layer_limit_gb)

    @function(cache="never")  # type: ignore[call-overload, untyped-decorator]
    async def publish(
        self,
        address: Annotated[str, Doc("where to push, e.g. ghcr.io/me/steadydancer:fp8")],
        variant: Variant = catalog.DEFAULT_VARIANT,
        profile: Profile = DEFAULT_PROFILE,
        attention: Attention = AttentionMode.auto,
        bake_models: BakeModels = True,
        hf_token: HfToken = None,
        username: Annotated[str, Doc("registry user name, with --password")] = "",
        password: Annotated[
            dagger.Secret | None, Doc("registry password or token, e.g. env://REGISTRY_TOKEN")
        ] = None,
        layer_limit_gb: LayerLimit = 0.0,
    ) -> str:
        """Build and push the image, after checking every layer fits the registry's limit."""
        with reported():
            options = _options(variant, profile, attention, bake_models)
            try:
                registries.image_address(address)
            except ValueError as exc:
                raise InputError(str(exc)) from None
            target = registries.registry_for(address, layer_limit_gb)
            refused = registries.refusal(address, options.variant, target)
            if options.bake_models and refused:
                raise InputError(refused)
            built = await _image(options, hf_token)
        if password is not None:
            built = built.with_registry_auth(registries.host_of(address), username, password)
        return await built.publish(address)

    @function(cache="never")  # type: ignore[call-overload, untyped-decorator]
    async def doctor(self, profile: Profile = DEFAULT_PROFILE) -> str:
        """GPU check in the engine: nvidia-smi and torch see the GPU, the driver runs the CUDA."""
        with reported():
            chosen = BuildOptions.parse(profile_name=profile.value).profile
        container = doctor_checks.doctor_container(chosen, str(time.time_ns()))
        try:
            return await container.stdout()
        except dagger.QueryError as exc:
            raise FunctionError(f"doctor: {doctor_checks.explain(exc)}") from None
