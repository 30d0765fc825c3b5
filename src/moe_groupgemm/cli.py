"""Command line: ``python -m moe_groupgemm <command>``.

``shapes`` prints the GroupGEMM inputs of one DP rank in one decode step,
either from explicit B, Q, D:

    python -m moe_groupgemm shapes --batch-size 32 --q-len 2 --dp-size 8

or from SGLang server arguments (see ``sglang_args`` for what is read):

    python -m moe_groupgemm shapes --sglang "--tp 8 --dp 8 --enable-dp-attention --moe-a2a-backend deepep --cuda-graph-max-bs 64"

The text output explains in Chinese how each value is derived. ``--json``
prints one JSON object instead, with these stable fields:

``batch_size``, ``q_len``, ``dp_size``, ``top_k``, ``num_experts``, ``redundant_experts``
    B, Q, D, K, E and R of the step (integers).
``local_experts``
    E_node = (E + R) / D, the experts of one rank.
``seed_num_groups``, ``seed_m``
    The source article's approximations, eq. (6) num_groups = min(E_node, B*Q*K)
    and eq. (7) m = ceil(B*Q*K*D / (E + R)) (integers).
``expected_num_groups``, ``expected_m_active``, ``expected_max_m``
    Under uniform Top-K routing: E[num_groups], E[rows per active group] and
    E[max m[i]] of one rank, as floats. The first two are exact, and the last
    comes from ``routing_exact``'s numerical scheme. With R > 0 the ranks hold different
    numbers of replicas, and these are averages over the D ranks.
``derivation``, ``notes``, ``ignored_arguments``
    Lists of strings: the Chinese derivation lines, warnings, and SGLang
    arguments that do not affect the shapes.

Errors (contradictory or unsupported options) print one Chinese line naming
the option to stderr and exit with status 2. ``build_parser`` returns the
parser with one subparser per command; a command registers a ``handler``
default that ``main`` calls with the parsed arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from moe_groupgemm import formula
from moe_groupgemm.engine_config import DEEPSEEK_V3_NUM_EXPERTS, DEEPSEEK_V3_TOP_K, EngineConfig
from moe_groupgemm.errors import ParameterError
from moe_groupgemm.routing_exact import rank_average_stats, rank_stats
from moe_groupgemm.sglang_args import derive_engine_config
from moe_groupgemm.sweep_command import add_sweep_command

EXIT_USAGE = 2


class _ChineseArgumentParser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors start with a Chinese prefix."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"参数错误：{message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with one subparser per command."""
    parser = _ChineseArgumentParser(
        prog="python -m moe_groupgemm",
        description="DeepSeek-V3 MoE 解码阶段 GroupGEMM 的形状计算与测量工具。",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_shapes_command(commands)
    add_sweep_command(commands)
    return parser


def add_shapes_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``shapes`` subcommand."""
    shapes = commands.add_parser(
        "shapes",
        help="计算一个解码步里单个 DP rank 的 num_groups 与 m[i]",
        description="由 B、Q、D 或 SGLang 启动参数推算 GroupGEMM 的 num_groups 与 m[i]。",
    )
    shapes.add_argument("--batch-size", type=int, help="每个 DP rank 本步的请求数 B")
    shapes.add_argument("--q-len", type=int, help="每个请求本步新增的 token 数 Q（无投机解码时为 1）")
    shapes.add_argument("--dp-size", type=int, help="DP rank 数 D，也是专家并行规模")
    shapes.add_argument("--top-k", type=int, default=None, help=f"每个 token 选择的专家数 K（默认 {DEEPSEEK_V3_TOP_K}）")
    shapes.add_argument("--num-experts", type=int, default=None, help=f"路由专家数 E（默认 {DEEPSEEK_V3_NUM_EXPERTS}）")
    shapes.add_argument("--redundant-experts", type=int, default=None, help="冗余专家数 R（默认 0）")
    shapes.add_argument("--sglang", metavar="SERVER_ARGS", help="用引号括起的 SGLang 启动参数，从中读取 B、Q、D、R")
    shapes.add_argument("--json", action="store_true", help="输出一个 JSON 对象，而不是中文说明")
    shapes.set_defaults(handler=run_shapes)
    return shapes


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv[1:]), run the command, and return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ParameterError as error:
        print(f"错误：{error}", file=sys.stderr)
        return EXIT_USAGE


# ---------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------

def run_shapes(args: argparse.Namespace) -> int:
    """Resolve the engine configuration from ``args``, then print the report."""
    top_k = DEEPSEEK_V3_TOP_K if args.top_k is None else args.top_k
    num_experts = DEEPSEEK_V3_NUM_EXPERTS if args.num_experts is None else args.num_experts
    if args.sglang is not None:
        for name, value in (("--q-len", args.q_len), ("--dp-size", args.dp_size), ("--redundant-experts", args.redundant_experts)):
            if value is not None:
                raise ParameterError(
                    name, value, "不与 --sglang 同时给出",
                    f"去掉 {name}，在 --sglang 的服务器参数里设置对应的 SGLang 选项",
                )
        derived = derive_engine_config(args.sglang, batch_size=args.batch_size, top_k=top_k, num_experts=num_experts)
        config = derived.config
        steps = list(derived.steps)
        notes = list(derived.notes)
        ignored = list(derived.ignored)
    else:
        for name, value in (("--batch-size", args.batch_size), ("--q-len", args.q_len), ("--dp-size", args.dp_size)):
            if value is None:
                raise ParameterError(name, None, "正整数", f"给出 {name}，或改用 --sglang 传入 SGLang 启动参数")
        try:
            config = EngineConfig(
                batch_size=args.batch_size, q_len=args.q_len, dp_size=args.dp_size, top_k=top_k,
                num_experts=num_experts, redundant_experts=args.redundant_experts or 0,
            )
        except ParameterError as error:
            raise ParameterError("--" + error.name.replace("_", "-"), error.value, error.accepted, error.fix) from error
        steps = [
            f"B = {config.batch_size}：来自 --batch-size。",
            f"Q = {config.q_len}：来自 --q-len。",
            f"D = {config.dp_size}：来自 --dp-size。",
            f"R = {config.redundant_experts}：来自 --redundant-experts（默认 0），"
            f"E_node = (E+R)/D = {config.local_experts}。",
        ]
        notes, ignored = [], []

    report = shapes_report(config, steps, notes, ignored)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(format_shapes_text(config, report))
    return 0


def shapes_report(config: EngineConfig, steps: list[str], notes: list[str], ignored: list[str]) -> dict:
    """Collect the JSON fields documented in this module's docstring."""
    stats = rank_average_stats(config)
    return {
        "batch_size": config.batch_size,
        "q_len": config.q_len,
        "dp_size": config.dp_size,
        "top_k": config.top_k,
        "num_experts": config.num_experts,
        "redundant_experts": config.redundant_experts,
        "local_experts": config.local_experts,
        "seed_num_groups": formula.article_num_groups(config),
        "seed_m": formula.article_rows_per_group(config),
        "expected_num_groups": stats.expected_num_groups,
        "expected_m_active": stats.expected_m_active,
        "expected_max_m": stats.expected_max_m,
        "derivation": steps,
        "notes": notes,
        "ignored_arguments": ignored,
    }


def format_shapes_text(config: EngineConfig, report: dict) -> str:
    """Format the Chinese explanation printed without --json."""
    stats = rank_average_stats(config)
    tokens = config.tokens_total
    rows = formula.expert_rows_per_rank(config)
    physical = config.physical_experts
    lines = [
        "DeepSeek-V3 MoE GroupGEMM 入参（一个解码步、一个 DP rank）",
        "",
        "一、配置",
        *[f"  {line}" for line in report["derivation"]],
        f"  K = {config.top_k}，E = {config.num_experts}（DeepSeek-V3 的默认值，可用 --top-k、--num-experts 修改）。",
        "",
        "二、路由",
        f"  本 rank 发出 T_node = B×Q = {config.tokens_per_rank} 个 token；全部 D 个 rank 一步共 D×B×Q = {tokens} 个 token。",
        f"  平均每个 rank 收到 B×Q×K = {rows} 行，分给 E_node = {config.local_experts} 个本地专家。",
        "",
        "三、原文的近似（式 (6)、(7)）",
        f"  num_groups = min(E_node, B×Q×K) = min({config.local_experts}, {rows}) = {report['seed_num_groups']}",
        f"  m = ⌈B×Q×K×D/(E+R)⌉ = ⌈{rows * config.dp_size}/{physical}⌉ = {report['seed_m']}（每个激活组相同）",
        "",
        "四、均匀 Top-K 路由下的期望",
    ]
    if config.redundant_experts == 0:
        lines += [
            f"  每个 token 选中某个专家的概率 K/E = {stats.hit_probability:.6g}，"
            f"一个专家本步的行数 m ~ Binomial(D×B×Q, K/E)。",
            f"  P(某个本地专家本步没有 token) = (1−K/E)^(D×B×Q) = {stats.prob_expert_empty:.6g}",
            f"  E[num_groups] = E_node×(1−(1−K/E)^(D×B×Q)) = {stats.expected_num_groups:.4f}"
            f"（标准差 {stats.var_num_groups ** 0.5:.4f}）",
            f"  E[m | 激活] = (D×B×Q×K/E)/(1−(1−K/E)^(D×B×Q)) = {stats.expected_m_active:.4f}",
        ]
    else:
        per_rank = [item.expected_m_active for item in rank_stats(config)]
        lines += [
            "  逻辑专家 l 有 r_l 个副本时，每个副本被一个 token 选中的概率为 p = (K/E)/r_l，各槽位的行数服从 Binomial(D×B×Q, p)。",
            "  按 SGLang 的初始放置（物理槽位 s 放逻辑专家 s mod E），各 rank 持有的副本数不同，以下是 D 个 rank 的平均值。",
            f"  本地专家本步没有 token 的平均概率 = {stats.prob_expert_empty:.6g}",
            f"  E[num_groups] = Σ_s (1−(1−p_s)^(D×B×Q)) = {stats.expected_num_groups:.4f}"
            f"（rank 内标准差的平方均值开方 {stats.var_num_groups ** 0.5:.4f}）",
            f"  E[m | 激活] = E[本 rank 总行数]/E[num_groups] = {stats.expected_m_active:.4f}"
            f"（各 rank 从 {min(per_rank):.4f} 到 {max(per_rank):.4f}）",
        ]
    lines += [
        f"  E[max m[i]] ≈ {stats.expected_max_m:.4f}（数值方法：按独立二项分布求得下界 {stats.max_m_lower_bound:.4f}，"
        "再按专家之间的负相关修正，见 moe_groupgemm.routing_exact）",
        f"  倾斜系数 α = E[max m]/E[m] = {stats.alpha:.4f}",
    ]
    if report["notes"]:
        lines += ["", "注意", *[f"  {note}" for note in report["notes"]]]
    if report["ignored_arguments"]:
        lines += ["", "未使用的 SGLang 参数（不影响形状）：" + " ".join(report["ignored_arguments"])]
    return "\n".join(lines)
