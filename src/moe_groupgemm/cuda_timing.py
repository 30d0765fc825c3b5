"""Per-repetition GPU timing: CUDA events around each call with a cold L2, and CUDA-graph replay.

Two methods, because each misses something the other one measures:

- ``time_cuda_events``: before every repetition a buffer larger than L2 is zeroed, so the
  weights come from HBM, as they do in a decode step where other layers ran in between.
  The events bracket one eager call, so CPU launch gaps inside it (a Python loop of
  kernels, say) are counted.
- ``time_cuda_graph``: many calls are captured in one graph and replayed, which removes CPU
  launch overhead. With ``flush_bytes`` each call is preceded by a flush inside the graph,
  and the time of a flush-only graph is subtracted.

NOTE: not yet run on a GPU; every function here needs CUDA.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

# Smallest flush buffer, and how many times L2 it must exceed. Triton's do_bench zeroes 256 MB.
MIN_FLUSH_BYTES = 256 * 2**20
FLUSH_L2_MULTIPLE = 2

_flush_buffers: dict[tuple[int, int], torch.Tensor] = {}


def default_flush_bytes(device: torch.device | None = None) -> int:
    """Bytes to zero between repetitions: twice the device's L2 size, at least 256 MiB."""
    properties = torch.cuda.get_device_properties(device or torch.cuda.current_device())
    return max(MIN_FLUSH_BYTES, FLUSH_L2_MULTIPLE * int(properties.L2_cache_size))


def flush_buffer(num_bytes: int, device: torch.device | None = None) -> torch.Tensor:
    """Return a cached int8 buffer of ``num_bytes`` on ``device``. Zeroing it evicts L2."""
    index = torch.device(device or "cuda").index
    key = (torch.cuda.current_device() if index is None else index, num_bytes)
    if key not in _flush_buffers:
        _flush_buffers[key] = torch.empty(num_bytes, dtype=torch.int8, device=torch.device("cuda", key[0]))
    return _flush_buffers[key]


def time_cuda_events(
    function: Callable[[], object], warmup: int, reps: int, flush_bytes: int | None = None
) -> list[float]:
    """Seconds of each of ``reps`` calls, timed with CUDA events after an L2 flush.

    The flush runs before the start event, so it is not part of the time. Events are read
    after one synchronize at the end, so the CPU queues repetitions ahead of the GPU.
    """
    flush = flush_buffer(flush_bytes or default_flush_bytes())
    for _ in range(warmup):
        function()
    torch.cuda.synchronize()

    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for start, end in zip(starts, ends):
        flush.zero_()
        start.record()
        function()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) / 1e3 for start, end in zip(starts, ends)]


def _capture(body: Callable[[], None], warmup: int) -> torch.cuda.CUDAGraph:
    # Warm up on a side stream before capture, as torch.cuda.graph's documentation requires.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            body()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        body()
    return graph


def _replay_seconds(graph: torch.cuda.CUDAGraph, reps: int) -> list[float]:
    graph.replay()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for start, end in zip(starts, ends):
        start.record()
        graph.replay()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) / 1e3 for start, end in zip(starts, ends)]


def time_cuda_graph(
    function: Callable[[], object],
    reps: int,
    calls_per_replay: int = 10,
    warmup: int = 3,
    flush_bytes: int | None = None,
) -> list[float]:
    """Seconds per call for each of ``reps`` replays of a graph holding ``calls_per_replay`` calls.

    Without ``flush_bytes`` consecutive calls run back to back, so data that fits in L2
    stays there. With it, each call follows an L2 flush inside the graph, and the median
    replay time of a flush-only graph is subtracted from every replay before dividing.
    ``function`` must be capturable: no host synchronization and no CPU-side branching on
    GPU values.
    """
    flush = flush_buffer(flush_bytes) if flush_bytes else None

    def calls() -> None:
        for _ in range(calls_per_replay):
            if flush is not None:
                flush.zero_()
            function()

    graph = _capture(calls, warmup)
    replay_seconds = _replay_seconds(graph, reps)
    flush_seconds = 0.0
    if flush is not None:

        def flushes() -> None:
            for _ in range(calls_per_replay):
                flush.zero_()

        flush_seconds = statistics.median(_replay_seconds(_capture(flushes, warmup), reps))
    return [(seconds - flush_seconds) / calls_per_replay for seconds in replay_seconds]


def measure_launch_floor(reps: int = 50, calls_per_replay: int = 100) -> dict[str, float]:
    """Time a one-element kernel: median seconds of one eager call (events) and per call in a graph.

    The graph figure is the floor that a GroupGEMM kernel pays on the GPU alone. The eager
    figure adds what a launch from Python costs while the GPU waits for it.
    """
    scratch = torch.zeros(1, device="cuda")

    def tiny() -> None:
        scratch.add_(1)

    eager = time_cuda_events(tiny, warmup=10, reps=reps, flush_bytes=MIN_FLUSH_BYTES)
    graph = time_cuda_graph(tiny, reps=reps, calls_per_replay=calls_per_replay)
    return {"eager_event_s": statistics.median(eager), "graph_per_call_s": statistics.median(graph)}
