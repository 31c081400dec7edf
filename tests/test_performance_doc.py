"""docs/performance.md states only what the committed bench results hold."""

from __future__ import annotations

import json
import re
from typing import Any

from steadydancer import speed, vram

from bench import quality, report
from ci import pins
from tests.dagger_offline import REPO

DOC = (REPO / "docs" / "performance.md").read_text()


def result(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REPO / "bench" / "results" / f"{name}.json").read_text())
    return loaded


def test_the_table_is_the_reports_output_verbatim() -> None:
    assert report.table() in DOC


def test_the_floor_figures_are_the_measured_ones() -> None:
    floor81 = result("fp8-480x832x81-shipped")["floor"]
    floor33 = result("fp8-480x832x33-shipped")["floor"]
    attention = floor81["self_attention_ms_per_block"]
    for figure in (
        f"{floor33['bf16_forward_s']} s at 33 frames",
        f"{floor81['bf16_forward_s']} s at 81 frames",
        f"{attention['cudnn_attention']} ms on SDPA's cuDNN backend",
        f"{attention['flash_attention']} ms on its FlashAttention backend",
        f"{attention['efficient_attention']} ms on\nthe memory-efficient one",
        f"{floor81['ffn_up_matmul_tflops']} TFLOP/s",
        f"takes {floor81['fp8_rowwise_forward_s']} s",
    ):
        assert figure in DOC, figure
    assert 1.4 < 40 * attention["cudnn_attention"] / 1000 < 1.6  # "about 1.5 s"


def test_the_gate_thresholds_and_verdicts_are_the_codes() -> None:
    assert f"**{quality.GATE['latent_relative_error_max']:.0%}** relative error" in DOC.replace(
        " %", "%"
    )
    assert f"**{quality.GATE['frames_psnr_db_min']:.0f} dB**" in DOC
    fp8 = [result(n)["quality"] for n in report.ROWS if "-fp8-" in n]
    errors = [job["latent_relative_error"] for gate in fp8 for job in gate["jobs"]]
    assert "26-28 %" in DOC and min(errors) >= 0.26 and max(errors) < 0.29
    assert not any(gate["passed"] for gate in fp8) and speed.FP8_GATE == {}
    resident = result("fp8-480x832x81-bf16-resident")["quality"]["jobs"]
    assert max(j["latent_relative_error"] for j in resident) < 0.0028  # "within 0.27 %"


def test_the_goal_rows_and_prose_figures_are_measured() -> None:
    stated = {
        "1.186 s (compile)": result("fp8-480x832x33-bf16-resident-compile")["jobs"][0][
            "steady_s_per_step"
        ],
        "0.857 s": result("fp8-480x832x33-fp8-resident-compile")["jobs"][0]["steady_s_per_step"],
        "24.31 s": result("fp8-480x832x81-bf16-resident")["jobs"][1]["timings_s"]["generate"],
        "shipped 28.42": result("fp8-480x832x81-shipped")["jobs"][1]["timings_s"]["generate"],
        "22.25 s": result("fp8-480x832x81-fp8-resident")["jobs"][1]["timings_s"]["generate"],
        "43.9 s": result("fp8-480x832x81-bf16-resident")["server_start_to_video_s"],
        "42.57 s": result("fp8-480x832x81-fp8-resident")["jobs"][0]["timings_s"]["generate"],
        "28.39 s": result("fp8-480x832x81-bf16-resident")["jobs"][0]["timings_s"]["generate"],
        "37.41 s": result("fp16-480x832x81-shipped")["jobs"][1]["timings_s"]["generate"],
        "23.71 s": result("fp16-480x832x81-bf16-resident-compile")["jobs"][1]["timings_s"][
            "generate"
        ],
        "65.7 GiB": result("fp16-480x832x81-bf16-resident-compile")["jobs"][0]["max_reserved_gib"],
        "35.7 GiB": result("fp16-480x832x81-shipped")["jobs"][0]["max_reserved_gib"],
        "(3.645": result("fp16-480x832x81-shipped")["jobs"][0]["steady_s_per_step"],
        "3.357 s)": result("fp16-480x832x81-bf16-resident-compile")["jobs"][0]["steady_s_per_step"],
        "20.0 GiB": result("fp8-480x832x81-fp8-resident")["jobs"][0]["max_reserved_gib"],
    }
    for text, value in stated.items():
        assert text in DOC, text
        digits = re.search(r"\d+\.(\d+)", text)
        assert digits is not None, text
        assert f"{value:.{len(digits.group(1))}f}" == digits.group(0), (text, value)


def percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def test_the_fp8_findings_are_the_measured_ones() -> None:
    """The block study's errors, the kept-scale render's gate and speed, and the attention
    arithmetic for the image, each as the result files hold them."""
    doc = DOC.replace("\n", " ")
    study = result("blocks/fp8-linear-480x832x81")["runs"][0]["error"]
    for recipe, words in (
        ("unit", "with the wrapper's unit-scale merge"),
        ("tensor", "with the scale kept"),
        ("token", "with per-token"),
    ):
        assert f"{percent(study['0.5'][recipe])} {words}" in doc, recipe
    wider = [e for spread in ("2.0", "8.0") for e in study[spread].values()]
    assert f"lands at {min(wider) * 100:.0f} to {max(wider) * 100:.0f} %" in doc
    assert study["0.5"]["tensor"] < study["0.5"]["unit"] / 3  # the kept scale is what it claims

    shipped, kept = result("fp8-480x832x81-shipped-b"), result("fp8-480x832x81-fp8-resident-b")
    gate = kept["quality"]["jobs"][0]
    assert f"still differ by {percent(gate['latent_relative_error'])}" in doc
    assert f"frames by {gate['frames_psnr_db']:.1f} dB" in doc
    old = result("fp8-480x832x81-fp8-resident")["quality"]["jobs"][0]["latent_relative_error"]
    assert abs(gate["latent_relative_error"] - old) < 0.005  # "did not move"
    compiled = result("fp8-480x832x81-fp8-resident-compile-b")["jobs"][0]["steady_s_per_step"]
    ship = shipped["jobs"][0]["steady_s_per_step"]
    ratio = compiled / shipped["floor"]["bf16_forward_s"]
    saved = 1 - compiled / ship
    assert f"({compiled:.3f} s, {ratio:.2f}x, {percent(saved)} under" in doc
    first = result("fp8-480x832x81-shipped")["jobs"]
    again = shipped["jobs"]
    assert (f"{first[0]['steady_s_per_step']:.3f} s/step on the first machine and "
            f"{again[0]['steady_s_per_step']:.3f} on the second, its warm job "
            f"{first[1]['timings_s']['generate']:.2f} s and "
            f"{again[1]['timings_s']['generate']:.2f} s") in doc  # fmt: skip
    attention = result("fp8-480x832x81-shipped")["floor"]["self_attention_ms_per_block"]
    extra = (attention["flash_attention"] - attention["cudnn_attention"]) * 40 / 1000
    assert f"about {extra:.1f} s more per step" in doc


def test_the_swap_run_and_the_in_process_writers_show_the_gap() -> None:
    swap = result("fp8-480x832x81-swap20")
    assert "GB in" in swap["synthetic_files"][0]  # written in the bench's process
    for name, smi, reserved in (
        ("fp8-480x832x33-shipped", 31.3, 18.3),
        ("fp16-480x832x33-shipped", 46.7, 33.7),
    ):
        run = result(name)
        assert "GB in" in run["synthetic_files"][0]
        assert round(run["vram_peak_nvidia_smi_mib"] / 1024, 1) == smi
        assert round(run["jobs"][0]["max_reserved_gib"], 1) == reserved
        assert f"{smi} against {reserved} GiB" in DOC.replace("\n", " ")


def test_the_attention_and_profile_tables_are_the_reports_output_verbatim() -> None:
    assert report.attention_table() in DOC
    assert report.profile_table() in DOC


def test_the_attention_and_profile_findings_are_the_measured_ones() -> None:
    """Every figure the attention section and the goals state, from the result files."""
    doc = re.sub(r"\s+", " ", DOC)
    reference, sage, fastest = (result(name) for name in report.ATTENTION_ROWS)
    floor = result("blocks/floor-480x832x81-sageattn")
    attention = floor["self_attention_ms_per_block"]
    ref_s, sage_s = (r["jobs"][0]["steady_s_per_step"] for r in (reference, sage))
    fast_s = fastest["jobs"][0]["steady_s_per_step"]
    gate = sage["quality"]["jobs"][0]
    build = floor["sageattention"]
    for figure in (
        f"SageAttention {build['version']}",
        f"{build['build_s']} s on {build['cpu_cores']} cores",
        f"forward floor ({reference['floor']['bf16_forward_s']} s)",
        f"within the gate ({gate['latent_relative_error'] * 100:.2f} %",
        f"{gate['frames_psnr_db']:.1f} dB on the frames",
        f"takes {percent(1 - sage_s / ref_s)} off a bf16 step ({ref_s:.3f} to {sage_s:.3f} s)",
        f"takes {attention['sageattn']} ms with it against {attention['cudnn_attention']} ms",
        f"{attention['flash_attention']} ms on its FlashAttention backend",
        f"the step is {fast_s:.3f} s, {fast_s / reference['floor']['bf16_forward_s']:.2f}x",
        f"| 3.280 s (bf16 + SageAttention, not in the image; SDPA {ref_s:.3f})",
        f"| {fast_s:.3f} s (fp8 + compile + SageAttention) |",
        f"path is bf16 with SageAttention, {sage_s:.3f} s",
    ):
        assert figure in doc, figure
    assert sage["quality"]["passed"] and not fastest["quality"]["passed"]
    profiled = fastest["jobs"][0]["step_s"]
    assert fastest["step_profile"]["step"] == 3 and fastest["step_profile"]["job"] == 1
    assert f"step 3 was the profiled one ({profiled[2]:.3f} s" in doc
    assert f"steps 2 and 4 alone average {(profiled[1] + profiled[3]) / 2:.3f} s" in doc
    assert f"{sage_s:.3f}" == "3.280" and fast_s < 2.6 < sage_s

    plain, compiled, sage_profile = (result(name)["step_profile"] for name in report.PROFILE_ROWS)
    idle = [p["gpu_idle_ms"] for p in (plain, compiled, sage_profile)]
    assert f"all but {min(idle):.0f} to {max(idle):.0f} ms" in doc

    def share(profile: dict[str, Any], kind: str) -> str:
        return f"{profile['categories'][kind]['ms'] / profile['wall_ms'] * 100:.0f} %"

    first_job = result(report.PROFILE_ROWS[0])["jobs"][0]["steady_s_per_step"]
    assert f"bf16 step ({plain['wall_ms']:.0f} ms) matches" in doc
    assert f"steady steps ({first_job:.3f} s)" in doc
    assert f"it is {share(plain, 'attention')} of the step, matmuls {share(plain, 'matmul')}" in doc
    assert f"{share(plain, 'elementwise and reductions')}. With fp8 matmul" in doc
    assert f"attention is then {share(compiled, 'attention')} of the step" in doc

    def gemm_ms(profile: dict[str, Any]) -> float:
        return sum(k["ms"] for k in profile["top_kernels"] if k["name"].startswith("nvjet"))

    assert f"take {gemm_ms(compiled):.0f} ms against {gemm_ms(plain):.0f} ms in bf16" in doc
    assert f"remains is {share(sage_profile, 'attention')} attention" in doc
    assert f"and {share(sage_profile, 'matmul')} fp8 matmul" in doc
    saved = (
        compiled["categories"]["attention"]["ms"] - sage_profile["categories"]["attention"]["ms"]
    )
    assert 450 < saved < 550  # "takes 0.5 s of that away"
    sage_kernel = next(k for k in sage_profile["top_kernels"] if "qk_int8" in k["name"])
    cross = next(k for k in sage_profile["top_kernels"] if "cudnn" in k["name"])
    assert sage_kernel["count"] == 40 and cross["count"] == 80
    assert f"its kernel {sage_kernel['ms']:.0f} ms, {sage_kernel['ms'] / 40:.2f} ms a block" in doc
    bf16_kernel = plain["top_kernels"][0]
    assert "cudnn" in bf16_kernel["name"] and bf16_kernel["count"] == 120
    per_block = (bf16_kernel["ms"] - cross["ms"]) / 40
    floor_ms = result(report.PROFILE_ROWS[0])["floor"]["self_attention_ms_per_block"]
    assert f"takes {per_block:.2f} ms against the floor's {floor_ms['cudnn_attention']} ms" in doc
    assert (
        f"calls' {bf16_kernel['ms']:.0f} ms less the 80 cross-attention calls' {cross['ms']:.0f}"
        in doc
    )
    tokens = reference["floor"]["shape"]["tokens"]
    assert tokens == vram.tokens(480, 832, 81)
    latent_frames = (81 - 1) // 4 + 1
    sequence = vram.sequence(480, 832, 81)
    assert f"23 x {tokens // latent_frames} = {sequence:,}" in doc and f"floor's {tokens:,}" in doc
    assert f"{((sequence / tokens) ** 2 - 1) * 100:.0f} % more attention work" in doc
    extra = per_block - floor_ms["cudnn_attention"]
    assert f"{extra * 40 / 1000:.2f} s of it is self-attention" in doc
    assert f"({extra:.2f} ms a block)" in doc
    flash, sage_ms = attention["flash_attention"], attention["sageattn"]
    assert f"{(flash - sage_ms) * 40 / 1000:.2f} s off an 81-frame step" in doc
    assert f"({flash} against {sage_ms} ms a block)" in doc
    assert "has 12.4.1" in doc and pins.PROFILES["cu124"].cuda_version == "12.4.1"


def test_the_image_has_no_sageattention_as_the_docs_say() -> None:
    """The attention parameter's row says the image lacks SageAttention: neither the lock nor
    any layer installs it, and the attention layer's branches are flash-attn and xformers."""
    from ci.layers import attention

    assert "needs SageAttention, which the image does not have yet" in DOC
    sources = [*(REPO / "ci" / "locks").rglob("*.txt"), *(REPO / "ci" / "layers").glob("*.py")]
    assert sources and not any("sageattention" in p.read_text().lower() for p in sources)
    assert {attention.FLASH, attention.XFORMERS} == {"flash_attn_2", "xformers"}
