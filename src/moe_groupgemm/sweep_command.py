"""The ``sweep`` subcommand: run the sweep notebook and keep it beside its data."""

from __future__ import annotations

import argparse

import yaml

from moe_groupgemm.errors import ParameterError
from moe_groupgemm.sweep_parameters import SweepParameters


def add_sweep_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``sweep`` subcommand."""
    sweep = commands.add_parser(
        "sweep",
        help="运行扫描 notebook，并把执行后的 notebook 作为运行记录存进运行目录",
        description="参数与 notebooks/sweep.ipynb 的 parameters 单元相同，用 -p 或 -y 设置，写法同 papermill。",
    )
    sweep.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                       help="设置一个参数，值按 YAML 解析，例如 -p device cuda、-p reps 20")
    sweep.add_argument("-y", "--yaml", default=None, metavar="YAML",
                       help="用一个 YAML 映射设置多个参数，例如 \"{q_lens: [1, 2], dp_sizes: [8, 16]}\"")
    sweep.set_defaults(handler=run_sweep_command)
    return sweep


def parse_sweep_parameters(yaml_text: str | None, pairs: list[list[str]]) -> dict:
    """Merge ``-y`` and ``-p`` values (``-p`` wins) and reject names the notebook does not have."""
    values: dict = {}
    if yaml_text:
        loaded = yaml.safe_load(yaml_text)
        if not isinstance(loaded, dict):
            raise ParameterError("-y", yaml_text, "一个 YAML 映射", "写成 \"{名称: 值, ...}\" 的形式")
        values.update(loaded)
    for name, text in pairs:
        values[name] = yaml.safe_load(text)
    known = set(SweepParameters().as_dict())
    for name in values:
        if name not in known:
            raise ParameterError("参数名", name, f"{sorted(known)} 之一", "检查参数名的拼写")
    return values


def run_sweep_command(args: argparse.Namespace) -> int:
    """Validate the parameters, execute the notebook, and print where the run was written."""
    from moe_groupgemm.run_record import execute_sweep_notebook

    parameters = parse_sweep_parameters(args.yaml, args.parameter)
    run_dir = execute_sweep_notebook(parameters)
    print(f"运行目录：{run_dir}（含执行后的 sweep.ipynb）")
    return 0
