"""GroupGEMM shapes, timings and figures for DeepSeek-V3 MoE decode.

Data flows one way through the modules:

    engine_config -> formula / routing -> shapes -> backends -> timing
    -> run_store (raw data on disk) -> tables (validated) -> figures
"""

__version__ = "0.1.0"
