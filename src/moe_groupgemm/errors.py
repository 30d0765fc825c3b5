"""User-facing errors. Messages are in Simplified Chinese because the book's readers are."""

from __future__ import annotations

from typing import Any


class ParameterError(ValueError):
    """An invalid user parameter, with its name, value, accepted range and fix."""

    def __init__(self, name: str, value: Any, accepted: str, fix: str) -> None:
        self.name = name
        self.value = value
        self.accepted = accepted
        self.fix = fix
        super().__init__(
            f"参数 {name} 的取值 {value!r} 无效：允许的取值为 {accepted}。修正方法：{fix}"
        )


class DataValidationError(ValueError):
    """Committed raw data that fails validation, naming the file, the row and the remedy."""

    def __init__(self, path: str, problem: str, fix: str, row: int | None = None) -> None:
        self.path = path
        self.row = row
        self.problem = problem
        self.fix = fix
        where = f"{path} 第 {row} 行" if row is not None else path
        super().__init__(f"数据校验失败：{where}：{problem}。处理方法：{fix}")
