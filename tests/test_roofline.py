"""The roofline model: its two regimes, its trend in D, and the comparison with DeepGEMM's table."""

from __future__ import annotations

import math

import pytest

from moe_groupgemm import roofline
from moe_groupgemm.engine_config import DEEPSEEK_V3_GEMM_K, DEEPSEEK_V3_GEMM_N, EngineConfig
from moe_groupgemm.errors import ParameterError
from moe_groupgemm.hardware import GPU_SPECS
from moe_groupgemm.shapes import GroupGemmShape, formula_shape

BF16 = roofline.PRECISIONS["bf16"]
FP8 = roofline.PRECISIONS["fp8"]
H200_BF16 = roofline.gpu_machine(GPU_SPECS["h200-sxm"], BF16)


def shape(groups: int, m: int) -> GroupGemmShape:
    return GroupGemmShape(rows=(m,) * groups, n=DEEPSEEK_V3_GEMM_N, k=DEEPSEEK_V3_GEMM_K)


def test_decode_rows_are_memory_bound() -> None:
    point = roofline.predict(shape(8, 1), H200_BF16, BF16)
    assert point.bound == "memory", point
    assert point.memory_s > 100 * point.compute_s, point


def test_large_rows_are_compute_bound() -> None:
    point = roofline.predict(shape(4, 4096), H200_BF16, BF16)
    assert point.bound == "compute", point


def test_prediction_is_max_plus_launch_floor() -> None:
    point = roofline.predict(shape(2, 300), H200_BF16, BF16)
    expected = max(point.memory_s, point.compute_s) + roofline.GPU_LAUNCH_FLOOR_S
    assert point.seconds == pytest.approx(expected), point
    assert point.memory_s == pytest.approx(roofline.bytes_moved(shape(2, 300), BF16) / H200_BF16.bytes_per_s)


def test_ridge_balances_memory_and_compute() -> None:
    ridge = roofline.ridge_rows_per_group(H200_BF16, BF16, DEEPSEEK_V3_GEMM_N, DEEPSEEK_V3_GEMM_K)
    below = roofline.predict(shape(1, math.floor(ridge)), H200_BF16, BF16)
    above = roofline.predict(shape(1, math.ceil(ridge)), H200_BF16, BF16)
    assert below.bound == "memory", (ridge, below)
    assert above.bound == "compute", (ridge, above)


@pytest.mark.parametrize("q_len", [1, 2, 3, 4])
@pytest.mark.parametrize("batch_size", [1, 8, 32, 256])
def test_prediction_never_grows_with_dp_size(q_len: int, batch_size: int) -> None:
    times = []
    for dp_size in (1, 2, 4, 8, 16, 32):
        config = EngineConfig(batch_size=batch_size, q_len=q_len, dp_size=dp_size)
        point_shape = formula_shape(config, DEEPSEEK_V3_GEMM_N, DEEPSEEK_V3_GEMM_K)
        times.append(roofline.predict(point_shape, H200_BF16, BF16).seconds)
    assert all(later <= earlier * (1 + 1e-12) for earlier, later in zip(times, times[1:])), (
        f"B={batch_size}, Q={q_len}: {[f'{t * 1e6:.1f}' for t in times]} µs")


def test_doubling_dp_halves_weight_traffic() -> None:
    # B*Q = 32 activates all 256 experts at D=1; at D=2 half as many weights are read per rank.
    first, second = (
        roofline.predict(formula_shape(EngineConfig(32, 1, dp_size), DEEPSEEK_V3_GEMM_N, DEEPSEEK_V3_GEMM_K),
                         H200_BF16, BF16)
        for dp_size in (1, 2)
    )
    assert second.memory_s == pytest.approx(first.memory_s / 2, rel=0.01), (first, second)


def test_fp8_bytes_match_deepgemm_count() -> None:
    groups, m, n, k = 2, 512, DEEPSEEK_V3_GEMM_N, DEEPSEEK_V3_GEMM_K
    assert roofline.bytes_moved(shape(groups, m), FP8) == groups * (m * k + k * n + 2 * m * n)


def test_deepgemm_comparison_returns_ratios() -> None:
    comparisons = roofline.compare_with_deepgemm()
    assert [(c.num_groups, c.rows_per_group) for c in comparisons] == [(1, 1024), (2, 512), (4, 256)]
    for comparison in comparisons:
        assert comparison.ratio == pytest.approx(comparison.predicted_us / comparison.published_us), comparison
        assert 0 < comparison.ratio < 1, f"DeepGEMM faster than the roofline: {comparison}"


def test_deepgemm_rows_consistent_with_published_bandwidth() -> None:
    # The table gives TFLOPS and GB/s separately; both must imply the same time.
    for comparison in roofline.compare_with_deepgemm():
        assert comparison.implied_gb_per_s == pytest.approx(comparison.published_gb_per_s, rel=0.01), comparison


def test_unknown_precision_names_parameter() -> None:
    with pytest.raises(ParameterError) as raised:
        roofline.precision_named("int4")
    assert raised.value.name == "precision", str(raised.value)
    assert raised.value.value == "int4", str(raised.value)
