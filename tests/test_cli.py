"""Tests for ``python -m moe_groupgemm shapes``, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from moe_groupgemm import formula, routing_exact
from moe_groupgemm.cli import build_parser, main
from moe_groupgemm.engine_config import EngineConfig
from moe_groupgemm.routing_montecarlo import simulate_routing, summarize

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
JSON_FIELDS = {
    "batch_size", "q_len", "dp_size", "top_k", "num_experts", "redundant_experts", "local_experts",
    "seed_num_groups", "seed_m", "expected_num_groups", "expected_m_active", "expected_max_m",
    "derivation", "notes", "ignored_arguments",
}
# The decode recipe of SGLang's large-scale EP deployment for 2 nodes (16 GPUs).
RECIPE = (
    "python -m sglang.launch_server --model-path deepseek-ai/DeepSeek-V3 --tp-size 16 --dp-size 16 "
    "--enable-dp-attention --moe-a2a-backend deepep --deepep-mode low_latency --cuda-graph-bs 256 "
    "--ep-num-redundant-experts 32 --moe-dense-tp-size 1 --max-running-requests 4096"
)


def run_cli(*arguments: str) -> subprocess.CompletedProcess:
    environment = os.environ | {"PYTHONPATH": os.pathsep.join([str(SOURCE_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "moe_groupgemm", *arguments],
        capture_output=True, text=True, env=environment, timeout=120,
    )


def run_json(*arguments: str) -> dict:
    result = run_cli(*arguments, "--json")
    assert result.returncode == 0, f"{arguments=}: {result.stderr}"
    return json.loads(result.stdout)


def test_explicit_json_fields() -> None:
    report = run_json("shapes", "--batch-size", "32", "--q-len", "2", "--dp-size", "8")
    assert set(report) == JSON_FIELDS, f"{sorted(report)}"
    config = EngineConfig(32, 2, 8)
    stats = routing_exact.uniform_routing_stats(config)
    assert (report["batch_size"], report["q_len"], report["dp_size"]) == (32, 2, 8)
    assert (report["top_k"], report["num_experts"], report["local_experts"]) == (8, 256, 32)
    assert report["seed_num_groups"] == formula.article_num_groups(config)
    assert report["seed_m"] == formula.article_rows_per_group(config)
    assert report["expected_num_groups"] == pytest.approx(stats.expected_num_groups)
    assert report["expected_m_active"] == pytest.approx(stats.expected_m_active)
    assert report["expected_max_m"] == pytest.approx(stats.expected_max_m)


def test_explicit_text_explains_values() -> None:
    result = run_cli("shapes", "--batch-size", "4", "--q-len", "1", "--dp-size", "64")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for expected in ("B = 4：来自 --batch-size", "E_node = (E+R)/D = 4", "式 (6)", "num_groups = min(E_node, B×Q×K) = min(4, 32) = 4",
                     "m = ⌈B×Q×K×D/(E+R)⌉ = ⌈2048/256⌉ = 8", "E[num_groups]", "E[max m[i]]"):
        assert expected in text, f"missing {expected!r} in:\n{text}"


def test_sglang_recipe() -> None:
    report = run_json("shapes", "--sglang", RECIPE)
    # B = min(256 from --cuda-graph-bs, 4096 // 16), Q = 1 without speculative decoding.
    assert (report["batch_size"], report["q_len"], report["dp_size"]) == (256, 1, 16), report["derivation"]
    assert (report["redundant_experts"], report["local_experts"]) == (32, 18)
    assert "--model-path" in report["ignored_arguments"], report["ignored_arguments"]
    assert any("DeepEP" in note for note in report["notes"]), report["notes"]


@pytest.mark.parametrize(("speculative", "q_len"), [
    ("--speculative-algorithm EAGLE", 4),
    ("--speculative-algorithm NEXTN --speculative-num-steps 2 --speculative-eagle-topk 1", 3),
    ("--speculative-algorithm EAGLE --speculative-num-steps 1 --speculative-eagle-topk 1 --speculative-num-draft-tokens 4", 2),
    ("--speculative-algorithm EAGLE --speculative-num-steps 3 --speculative-eagle-topk 4 --speculative-num-draft-tokens 8", 8),
])
def test_sglang_speculative_q_len(speculative: str, q_len: int) -> None:
    arguments = f"--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend deepep --cuda-graph-max-bs 16 {speculative}"
    report = run_json("shapes", "--sglang", arguments)
    assert report["q_len"] == q_len, f"{speculative=}: {report['derivation']}"
    assert report["batch_size"] == 16, report["derivation"]
    assert report["dp_size"] == 8, report["derivation"]


def test_sglang_batch_size_override() -> None:
    arguments = "--tp 4 --dp 4 --enable-dp-attention --ep-size 4 --max-running-requests 64"
    report = run_json("shapes", "--sglang", arguments, "--batch-size", "8")
    assert (report["batch_size"], report["dp_size"]) == (8, 4), report["derivation"]


def test_sglang_text_names_sources() -> None:
    result = run_cli("shapes", "--sglang", "--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend deepep --max-running-requests 512")
    assert result.returncode == 0, result.stderr
    assert "--max-running-requests 512 // dp_size 8 = 64" in result.stdout, result.stdout
    assert "deepep 后端令 ep_size = tp_size" in result.stdout, result.stdout


@pytest.mark.parametrize(("arguments", "option"), [
    (["--batch-size", "4", "--q-len", "1"], "--dp-size"),
    (["--batch-size", "4", "--q-len", "1", "--dp-size", "3"], "--dp-size"),
    (["--batch-size", "0", "--q-len", "1", "--dp-size", "8"], "--batch-size"),
    (["--sglang", "--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend deepep --cuda-graph-max-bs 8", "--q-len", "2"], "--q-len"),
    (["--sglang", "--tp 8 --dp 4 --enable-dp-attention --moe-a2a-backend deepep --cuda-graph-max-bs 8"], "--dp-size"),
    (["--sglang", "--tp 8 --dp 8 --enable-dp-attention --cuda-graph-max-bs 8"], "--ep-size"),
    (["--sglang", "--tp 8 --cuda-graph-max-bs 8"], "--enable-dp-attention"),
    (["--sglang", "--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend mooncake --cuda-graph-max-bs 8"], "--moe-a2a-backend"),
    (["--sglang", "--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend deepep"], "--batch-size"),
    (["--sglang", "--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend deepep --cuda-graph-max-bs 8", "--batch-size", "9"], "--batch-size"),
    (["--sglang", "--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend deepep --cuda-graph-max-bs 8 --speculative-algorithm NGRAM"], "--speculative-algorithm"),
    (["--sglang", "--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend deepep --cuda-graph-max-bs 8 --speculative-algorithm EAGLE --speculative-eagle-topk 1"], "--speculative-eagle-topk"),
    (["--sglang", "--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend deepep --cuda-graph-max-bs 8 --speculative-num-steps 2"], "--speculative-num-steps"),
    (["--sglang", "--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend deepep --cuda-graph-max-bs 8 --speculative-algo EAGLE"], "--speculative-algo"),
    (["--sglang", "--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend deepep --cuda-graph-max-bs 8 --ep-num-redundant-experts 4"], "--dp-size"),
    (["--sglang", "--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend deepep --cuda-graph-max-bs 8 'unbalanced"], "--sglang"),
])
def test_bad_options_exit_with_named_option(arguments: list[str], option: str, capsys: pytest.CaptureFixture) -> None:
    # In-process to keep the suite fast; test_bad_option_subprocess covers the real process.
    status = main(["shapes", *arguments])
    captured = capsys.readouterr()
    assert status == 2, f"{arguments=}: exit {status}, stdout {captured.out!r}"
    assert f"参数 {option} " in captured.err, f"{arguments=}: stderr does not name {option}: {captured.err!r}"


def test_bad_option_subprocess() -> None:
    result = run_cli("shapes", "--sglang", "--tp 8 --dp 4 --enable-dp-attention --moe-a2a-backend deepep --cuda-graph-max-bs 8")
    assert result.returncode == 2, f"exit {result.returncode}, stdout {result.stdout!r}"
    assert "参数 --dp-size " in result.stderr, result.stderr
    assert result.stdout == "", result.stdout


def test_unknown_command_is_usage_error() -> None:
    result = run_cli("shape")
    assert result.returncode == 2, result.stderr
    assert "参数错误" in result.stderr, result.stderr


def test_parser_has_shapes_subcommand() -> None:
    arguments = build_parser().parse_args(["shapes", "--batch-size", "1", "--q-len", "1", "--dp-size", "1"])
    assert arguments.command == "shapes", f"{arguments=}"
    assert callable(arguments.handler), f"{arguments=}"


@pytest.mark.parametrize(("batch_size", "q_len", "dp_size", "steps"), [(8, 1, 1, 4000), (4, 2, 8, 2500), (64, 4, 32, 20)])
def test_cli_stats_match_monte_carlo(batch_size: int, q_len: int, dp_size: int, steps: int) -> None:
    report = run_json("shapes", "--batch-size", str(batch_size), "--q-len", str(q_len), "--dp-size", str(dp_size))
    measured = summarize(simulate_routing(EngineConfig(batch_size, q_len, dp_size), "uniform", steps=steps, seed=17))
    for field, value in (("expected_num_groups", measured.mean_num_groups), ("expected_m_active", measured.mean_m_active),
                         ("expected_max_m", measured.mean_max_m)):
        assert report[field] == pytest.approx(value, rel=0.01), f"{field}: CLI {report[field]} vs Monte Carlo {value}"
