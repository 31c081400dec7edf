"""docs/performance.md states only what the committed bench results hold."""

from __future__ import annotations

import json
import re
from typing import Any

from steadydancer import speed

from bench import quality, report
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
        "3.717 s": result("fp8-480x832x81-bf16-resident")["jobs"][0]["steady_s_per_step"],
        "shipped 3.714": result("fp8-480x832x81-shipped")["jobs"][0]["steady_s_per_step"],
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
    assert f"{compiled:.3f} s (fp8 + compile; shipped {ship:.3f})" in doc
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
