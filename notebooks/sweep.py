# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # GroupGEMM 扫描：从引擎配置到逐次计时
#
# 本 notebook 对每个 $(Q, B, D)$ 组合构造一次 GroupGEMM：按所选路由方式得到 num_groups 和每组行数 $m[i]$，
# 每个激活专家一份独立的 $N\times K$ 权重。每个测点先与 float64 参考结果比对，通过后才计时，
# 每次重复的原始耗时都写入 `data/raw/<设备>/<运行 id>/`。
#
# 用 papermill 运行，例如：
#
# ```bash
# papermill notebooks/sweep.ipynb out.ipynb -p device cpu -y "{q_lens: [1], batch_sizes: [1, 2], dp_sizes: [32]}"
# ```
#
# 全部参数都在下面唯一的 `parameters` 单元里。

# %% tags=["parameters"]
device: str = "cpu"  # "cpu" 或 "cuda"
dtype: str = "auto"  # "auto"：CPU 用 float32，GPU 用 bfloat16；也可写 "float32"、"bfloat16"、"float16"
q_lens: list = [1, 2, 3, 4]  # Q：每个请求本轮新增的 token 数
batch_sizes: list = [1, 2, 4, 8, 16, 32, 64]  # B：每个 DP 实例上的请求数
dp_sizes: list = [8, 16, 32]  # D：DP 实例数，开启 DP attention 时也是 EP 规模
n: int = 4096  # GEMM 的 N：gate+up 的输出维度
k: int = 7168  # GEMM 的 K：hidden size
num_experts: int = 256  # E
top_k: int = 8  # Top-K
warmup: int = 2  # 每个测点计时前的预热次数
reps: int = 10  # 每个测点计时的重复次数
output_dir: str = "data/raw"  # 原始数据根目录
backends: list = ["torch_loop"]  # 要测的 GroupGEMM 实现
routing: str = "formula"  # "formula"：式 (6)(7)；"uniform"、"group_limited"：按路由模拟抽样 m[i]
seed: int = 0  # 随机数种子：权重、激活和路由抽样都由它派生
run_id = None  # None 时自动生成；传入已有 id 则续跑该运行

# %% [markdown]
# ## 校验参数
#
# 下面先校验全部参数，再写任何文件。参数有误时这里抛出中文错误，papermill 以非零状态退出，磁盘上不会留下半个运行目录。

# %%
from moe_groupgemm.sweep import run_sweep
from moe_groupgemm.sweep_parameters import SweepParameters, validate
from moe_groupgemm.tables import planned_shapes_table

parameters = SweepParameters(
    device=device, dtype=dtype, q_lens=q_lens, batch_sizes=batch_sizes, dp_sizes=dp_sizes,
    n=n, k=k, num_experts=num_experts, top_k=top_k, warmup=warmup, reps=reps,
    output_dir=output_dir, backends=backends, routing=routing, seed=seed, run_id=run_id,
)
sweep = validate(parameters)
planned_shapes_table(sweep.configs, n, k).head(12)

# %% [markdown]
# 上表是前几个测点的形状（`routing="formula"` 时按式 (6)(7) 计算）。校验通过后开始测量。
#
# ## 测量
#
# 每个测点：生成输入，先做正确性检查（每组抽样若干行与 float64 参考比较），再预热、计时。
# 每个测点结束即追加写盘；中断后用同一个 `run_id` 重跑会跳过已完成的测点。

# %%
result = run_sweep(parameters)
print(f"运行目录：{result.run_dir}")
print(f"新测 {result.measured} 个测点，跳过 {result.skipped} 个，失败 {len(result.failures)} 个")

# %% [markdown]
# ## 本次运行的摘要
#
# 下表从刚写入的原始数据重新读取并校验，给出每个测点的中位耗时与 MFU。

# %%
from moe_groupgemm.tables import load_run, summarize

summary = summarize(load_run(result.run_dir))
summary[["backend", "q_len", "batch_size", "dp_size", "num_groups", "time_us_median", "n_reps", "mfu"]]

# %% [markdown]
# 中位耗时由逐次原始耗时算出；MFU 的峰值来源记录在运行目录的 `metadata.json` 中。
