"""Derive one decode step's engine configuration (B, Q, D, R) from SGLang server arguments.

The calculator models a DeepSeek-V3 decode server in which every GPU is one DP
attention rank and one expert-parallel rank, so D = dp_size = ep_size =
tp_size. The arguments read, and what they set:

``--tp-size`` / ``--tensor-parallel-size`` / ``--tp``
    GPUs of the server. Must equal D under DP attention.
``--dp-size`` / ``--data-parallel-size`` / ``--dp`` with ``--enable-dp-attention``
    D, the DP attention ranks. SGLang requires tp_size % dp_size == 0; this
    calculator requires equality, because with tp_size / dp_size > 1 GPUs per
    attention replica the per-GPU token count is not B * Q.
``--ep-size`` / ``--expert-parallel-size`` / ``--ep`` and ``--moe-a2a-backend``
    With ``deepep`` SGLang sets ep_size = tp_size (its server_args.py logs "The
    expert parallel size is adjusted to be the same as the tensor parallel
    size"); the deprecated ``--enable-deepep-moe`` means the same. With
    ``none`` the MoE is expert-parallel only when ``--ep-size`` equals tp_size;
    ep_size = 1 shards every expert's N over the GPUs, which this model does not
    cover. Other all-to-all backends are rejected.
``--speculative-algorithm``, ``--speculative-num-steps``,
``--speculative-eagle-topk``, ``--speculative-num-draft-tokens``
    Q. Without speculative decoding Q = 1. With EAGLE, EAGLE3 or NEXTN (the
    DeepSeek MTP head, run as EAGLE) the target model's verify forward sends
    Q = num_draft_tokens rows per request through every MoE layer. SGLang
    takes (steps, topk, draft tokens) = (3, 1, 4) for DeepseekV3ForCausalLM when
    none of the three is given, rejects giving topk or draft tokens without
    steps, and with topk = 1 forces draft tokens to steps + 1.
``--cuda-graph-max-bs`` / ``--cuda-graph-bs``, ``--max-running-requests``
    B, the requests per DP rank in a full decode step:
    min(CUDA-graph max batch size, max_running_requests // dp_size).
    max_running_requests is global and each DP attention rank gets its
    ``// dp_size`` share; CUDA-graph batch sizes count requests per rank.
``--ep-num-redundant-experts``
    R: 256 + R physical expert slots, so E_node = (256 + R) / D.

Every other argument is listed as ignored. An abbreviation of a read argument
(``--speculative-algo``) is rejected, because SGLang's own parser would accept
it and silently ignoring it would change Q.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass

from moe_groupgemm.engine_config import DEEPSEEK_V3_NUM_EXPERTS, DEEPSEEK_V3_TOP_K, EngineConfig
from moe_groupgemm.errors import ParameterError

SPECULATIVE_ALGORITHMS = ("EAGLE", "EAGLE3", "NEXTN")
MOE_A2A_BACKENDS = ("none", "deepep")

# (speculative_num_steps, speculative_eagle_topk, speculative_num_draft_tokens)
# that SGLang's auto choice picks for DeepseekV3ForCausalLM in recent releases;
# older releases picked (5, 4, 8).
DEEPSEEK_V3_SPECULATIVE_DEFAULTS = (3, 1, 4)

# Default of SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK: DeepEP's low-latency
# buffers hold at most this many tokens per rank.
DEEPEP_LOW_LATENCY_MAX_TOKENS_PER_RANK = 128


@dataclass(frozen=True)
class SglangDerivation:
    """The engine configuration read from server arguments, with one Chinese line per derived value."""

    config: EngineConfig
    steps: tuple[str, ...]
    notes: tuple[str, ...]
    ignored: tuple[str, ...]


class _RejectingParser(argparse.ArgumentParser):
    """An ArgumentParser that raises ParameterError instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ParameterError("--sglang", message, "SGLang 的服务器参数", "检查该参数的取值是否为整数或合法选项")


def _build_server_parser() -> argparse.ArgumentParser:
    parser = _RejectingParser(prog="sglang", add_help=False, allow_abbrev=False)
    parser.add_argument("--tp-size", "--tensor-parallel-size", "--tp", dest="tp_size", type=int)
    parser.add_argument("--dp-size", "--data-parallel-size", "--dp", dest="dp_size", type=int)
    parser.add_argument("--ep-size", "--expert-parallel-size", "--ep", dest="ep_size", type=int)
    parser.add_argument("--enable-dp-attention", action="store_true")
    parser.add_argument("--moe-a2a-backend")
    parser.add_argument("--enable-deepep-moe", action="store_true")
    parser.add_argument("--speculative-algorithm")
    parser.add_argument("--speculative-num-steps", type=int)
    parser.add_argument("--speculative-eagle-topk", type=int)
    parser.add_argument("--speculative-num-draft-tokens", type=int)
    parser.add_argument("--cuda-graph-max-bs", type=int)
    parser.add_argument("--cuda-graph-bs", type=int, nargs="+")
    parser.add_argument("--disable-cuda-graph", action="store_true")
    parser.add_argument("--max-running-requests", type=int)
    parser.add_argument("--ep-num-redundant-experts", type=int)
    return parser


def _read_options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings]


def derive_engine_config(
    server_args: str,
    batch_size: int | None = None,
    top_k: int = DEEPSEEK_V3_TOP_K,
    num_experts: int = DEEPSEEK_V3_NUM_EXPERTS,
) -> SglangDerivation:
    """Read ``server_args`` (one shell-quoted string) and derive B, Q, D and R.

    ``batch_size`` overrides B when given; it must not exceed the cap the
    arguments set. Raises ParameterError naming the offending option for
    contradictory or unsupported arguments.
    """
    try:
        tokens = shlex.split(server_args)
    except ValueError as error:
        raise ParameterError("--sglang", server_args, "能被 shell 正常拆分的参数串", f"检查引号是否成对（{error}）") from error
    parser = _build_server_parser()
    args, unknown = parser.parse_known_args(tokens)
    _reject_abbreviations(unknown, _read_options(parser))

    steps: list[str] = []
    notes: list[str] = []
    dp_size = _derive_dp_size(args, steps, notes)
    q_len = _derive_q_len(args, steps, notes)
    batch_size = _derive_batch_size(args, dp_size, batch_size, steps)
    redundant = _positive_or_zero("--ep-num-redundant-experts", args.ep_num_redundant_experts)

    try:
        config = EngineConfig(
            batch_size=batch_size, q_len=q_len, dp_size=dp_size,
            top_k=top_k, num_experts=num_experts, redundant_experts=redundant,
        )
    except ParameterError as error:
        if error.name == "dp_size":
            raise ParameterError(
                "--dp-size", dp_size, error.accepted,
                "让 --dp-size 整除 256 + --ep-num-redundant-experts（SGLang 同样要求物理专家数能被 ep_size 整除）",
            ) from error
        raise
    steps.append(
        f"R = {redundant}：来自 --ep-num-redundant-experts（未给出时为 0），"
        f"物理专家数 E+R = {config.physical_experts}，每个 rank 的本地专家数 E_node = (E+R)/D = {config.local_experts}。"
    )
    if args.moe_a2a_backend == "deepep" or args.enable_deepep_moe:
        rows = config.tokens_per_rank
        if rows > DEEPEP_LOW_LATENCY_MAX_TOKENS_PER_RANK:
            notes.append(
                f"B×Q = {rows} 超过 DeepEP low-latency 默认每 rank 最多派发的 "
                f"{DEEPEP_LOW_LATENCY_MAX_TOKENS_PER_RANK} 个 token；需要调大环境变量 "
                "SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK，否则这个批量跑不起来。"
            )
    return SglangDerivation(config=config, steps=tuple(steps), notes=tuple(notes), ignored=tuple(unknown))


def _reject_abbreviations(unknown: list[str], read_options: list[str]) -> None:
    for token in unknown:
        option = token.split("=", 1)[0]
        if not option.startswith("--"):
            continue
        matches = [full for full in read_options if full.startswith(option) and full != option]
        if matches:
            raise ParameterError(
                option, token, "完整的参数名", f"把 {option} 写成全称 {matches[0]}；本工具不展开缩写，以免读错 Q、B 或 D",
            )


def _positive_or_zero(name: str, value: int | None) -> int:
    if value is None:
        return 0
    if value < 0:
        raise ParameterError(name, value, "非负整数", f"把 {name} 设为 0 或正整数")
    return value


def _require_positive(name: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    if value <= 0:
        raise ParameterError(name, value, "正整数", f"把 {name} 设为大于 0 的整数")
    return value


def _derive_dp_size(args: argparse.Namespace, steps: list[str], notes: list[str]) -> int:
    tp_size = _require_positive("--tp-size", args.tp_size, 1)
    dp_size = _require_positive("--dp-size", args.dp_size, 1)
    backend = args.moe_a2a_backend
    if args.enable_deepep_moe:
        if backend not in (None, "deepep"):
            raise ParameterError(
                "--enable-deepep-moe", True, f"与 --moe-a2a-backend {backend} 二选一",
                "去掉已弃用的 --enable-deepep-moe，只保留 --moe-a2a-backend",
            )
        backend = "deepep"
        notes.append("--enable-deepep-moe 是已弃用的写法，按 --moe-a2a-backend deepep 处理。")
    backend = backend or "none"
    if backend not in MOE_A2A_BACKENDS:
        raise ParameterError(
            "--moe-a2a-backend", backend, "、".join(MOE_A2A_BACKENDS),
            "本工具只对 deepep 与 none 建模；其他 all-to-all 后端的 token 分发方式未经核对",
        )

    if backend == "deepep":
        ep_size = tp_size
        if args.ep_size is not None and args.ep_size != tp_size:
            notes.append(
                f"--ep-size {args.ep_size} 被忽略：SGLang 在 --moe-a2a-backend deepep 时把 ep_size 调整为 tp_size = {tp_size}。"
            )
        ep_source = "deepep 后端令 ep_size = tp_size"
    else:
        ep_size = _require_positive("--ep-size", args.ep_size, 1)
        ep_source = "来自 --ep-size（未给出时为 1）"

    if not args.enable_dp_attention:
        if dp_size > 1:
            raise ParameterError(
                "--dp-size", dp_size, "不开 --enable-dp-attention 时只能为 1",
                "不开 DP attention 时每个 DP 副本是独立的服务；请对单个副本的参数（--dp-size 1）计算，或加上 --enable-dp-attention",
            )
        if tp_size > 1:
            raise ParameterError(
                "--enable-dp-attention", False, "tp_size > 1 时必须开启",
                "不开 DP attention 时，各 GPU 处理同一批 token，专家权重还可能按 N 维切分，这超出了本工具的模型；"
                "请加上 --enable-dp-attention 并令 --dp-size 等于 --tp-size",
            )
        steps.append("D = 1：单卡部署（tp_size = dp_size = 1），全部专家都在这一张卡上。")
        return 1

    if tp_size % dp_size != 0:
        raise ParameterError(
            "--dp-size", dp_size, f"能整除 --tp-size {tp_size} 的正整数", "SGLang 要求 tp_size 是 dp_size 的整数倍",
        )
    if dp_size != tp_size:
        raise ParameterError(
            "--dp-size", dp_size, f"等于 --tp-size {tp_size}",
            "每个 DP attention 副本占多张卡时（attention 内部再做 TP），每卡的 token 数不再是 B×Q；请令 --dp-size 等于 --tp-size",
        )
    if ep_size != tp_size:
        raise ParameterError(
            "--ep-size", ep_size, f"等于 --tp-size {tp_size}",
            "MoE 需要在全部 GPU 上做专家并行：加上 --moe-a2a-backend deepep，或令 --ep-size 等于 --tp-size",
        )
    steps.append(
        f"D = {dp_size}：开启了 --enable-dp-attention，dp_size = {dp_size}；"
        f"ep_size = {ep_size}（{ep_source}）与 tp_size = {tp_size} 相等，每张卡既是一个 DP rank 也是一个 EP rank。"
    )
    return dp_size


def _derive_q_len(args: argparse.Namespace, steps: list[str], notes: list[str]) -> int:
    algorithm = args.speculative_algorithm
    speculative_options = {
        "--speculative-num-steps": args.speculative_num_steps,
        "--speculative-eagle-topk": args.speculative_eagle_topk,
        "--speculative-num-draft-tokens": args.speculative_num_draft_tokens,
    }
    if algorithm is None:
        for name, value in speculative_options.items():
            if value is not None:
                raise ParameterError(name, value, "只在设置了 --speculative-algorithm 时有效", "补上 --speculative-algorithm，或去掉该参数")
        steps.append("Q = 1：没有 --speculative-algorithm，每个请求每步只解码 1 个 token。")
        return 1

    normalized = algorithm.upper()
    if normalized not in SPECULATIVE_ALGORITHMS:
        raise ParameterError(
            "--speculative-algorithm", algorithm, "、".join(SPECULATIVE_ALGORITHMS),
            "本工具只对 EAGLE 系列（含 DeepSeek 的 MTP，即 NEXTN）的 verify 前向建模",
        )
    num_steps = _require_positive("--speculative-num-steps", args.speculative_num_steps, 0) or None
    topk = _require_positive("--speculative-eagle-topk", args.speculative_eagle_topk, 0) or None
    draft_tokens = _require_positive("--speculative-num-draft-tokens", args.speculative_num_draft_tokens, 0) or None

    if num_steps is None:
        if topk is not None or draft_tokens is not None:
            name = "--speculative-eagle-topk" if topk is not None else "--speculative-num-draft-tokens"
            raise ParameterError(
                name, topk if topk is not None else draft_tokens, "与 --speculative-num-steps 一起给出",
                "SGLang 只在三者都不给时自动选择；请同时给出 --speculative-num-steps",
            )
        num_steps, topk, draft_tokens = DEEPSEEK_V3_SPECULATIVE_DEFAULTS
        source = (
            f"三个投机参数都未给出，按 SGLang 对 DeepseekV3ForCausalLM 的自动选择取 "
            f"steps={num_steps}、topk={topk}、draft_tokens={draft_tokens}"
        )
    elif topk is None:
        raise ParameterError(
            "--speculative-eagle-topk", None, "给出 --speculative-num-steps 时必须同时给出",
            "补上 --speculative-eagle-topk（DeepSeek MTP 常用 1）",
        )
    else:
        source = f"来自 --speculative-num-steps {num_steps} 与 --speculative-eagle-topk {topk}"

    if topk == 1:
        if draft_tokens is not None and draft_tokens != num_steps + 1:
            notes.append(
                f"--speculative-num-draft-tokens {draft_tokens} 被 SGLang 改为 steps+1 = {num_steps + 1}（topk = 1 时如此）。"
            )
        draft_tokens = num_steps + 1
        rule = "topk = 1 时 draft_tokens = steps + 1"
    elif draft_tokens is None:
        raise ParameterError(
            "--speculative-num-draft-tokens", None, "topk > 1 时必须给出",
            "补上 --speculative-num-draft-tokens，它就是每个请求 verify 的 token 数",
        )
    else:
        rule = "topk > 1 时 draft_tokens 取给定值"
    steps.append(
        f"Q = {draft_tokens}：{normalized} 投机解码的 verify 前向让每个请求带 speculative_num_draft_tokens 个 token "
        f"经过每个 MoE 层；{source}，{rule}。草稿模型（MTP 层）自己的 MoE 不计在内。"
    )
    return draft_tokens


def _derive_batch_size(args: argparse.Namespace, dp_size: int, requested: int | None, steps: list[str]) -> int:
    bounds: list[tuple[int, str]] = []
    if args.disable_cuda_graph:
        if args.cuda_graph_max_bs is not None or args.cuda_graph_bs is not None:
            raise ParameterError(
                "--disable-cuda-graph", True, "不与 --cuda-graph-max-bs / --cuda-graph-bs 同时出现",
                "去掉其中一方",
            )
    elif args.cuda_graph_max_bs is not None:
        graph_bs = _require_positive("--cuda-graph-max-bs", args.cuda_graph_max_bs, 1)
        bounds.append((graph_bs, f"CUDA graph 最大批量 --cuda-graph-max-bs {graph_bs}"))
    elif args.cuda_graph_bs is not None:
        graph_bs = max(_require_positive("--cuda-graph-bs", value, 1) for value in args.cuda_graph_bs)
        bounds.append((graph_bs, f"--cuda-graph-bs 列表中的最大批量 {graph_bs}"))
    if args.max_running_requests is not None:
        running = _require_positive("--max-running-requests", args.max_running_requests, 1)
        share = running // dp_size
        if share == 0:
            raise ParameterError(
                "--max-running-requests", running, f"至少为 dp_size = {dp_size}",
                "max_running_requests 是全局上限，按 // dp_size 分给每个 DP rank，至少要让每个 rank 分到 1 个请求",
            )
        bounds.append((share, f"--max-running-requests {running} // dp_size {dp_size} = {share}"))

    cap = min(bounds)[0] if bounds else None
    if requested is not None:
        batch_size = _require_positive("--batch-size", requested, 1)
        if cap is not None and batch_size > cap:
            raise ParameterError(
                "--batch-size", batch_size, f"不超过服务器参数给出的每 rank 上限 {cap}",
                "减小 --batch-size，或在 --sglang 中放宽 --cuda-graph-max-bs / --max-running-requests",
            )
        limit = f"（服务器参数给出的上限为 {cap}）" if cap is not None else ""
        steps.append(f"B = {batch_size}：来自 --batch-size{limit}。")
        return batch_size
    if cap is None:
        raise ParameterError(
            "--batch-size", None, "正整数",
            "服务器参数里没有 --cuda-graph-max-bs、--cuda-graph-bs 或 --max-running-requests；"
            "请加上其中之一，或用 --batch-size 直接给出每个 DP rank 的请求数",
        )
    sources = "；".join(text for _, text in bounds)
    steps.append(f"B = {cap}：满载时每个 DP rank 的请求数取各上限的最小值（{sources}）。")
    return cap
