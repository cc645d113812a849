"""The device side: what runs on the board to describe it and to measure networks on it.

- ``counters``: Linux perf_event counters read in-process by the C++ core (a missing counter is a
  state with a reason); ``_perf_stat``: the ``perf stat`` reader the counter tests compare with.
- ``runtimes/``: one adapter per inference runtime (ONNX Runtime, OpenVINO, MNN, ncnn, PyTorch,
  LiteRT) behind one interface, each imported only when asked for. A new runtime goes here.
- ``builders/``: ONNX networks: NAS-Bench-201 and FBNet cells, the operator suite's op models.
- ``timing``: the timing rule ``measure`` and ``profile`` share; ``host``: what is recorded about
  the machine (CPU model, frequencies, pinning).
- ``measure``: latencies of architectures under a runtime -> CSV + sidecar.
- ``profile``: the hardware-runtime descriptor (the operator suite under the runtime, with counters).
- ``layers/``: any ONNX network as a layer table (the layers a runtime runs after its fusions, with
  MACs, parameters and bytes), and the table's file, which a board reads without onnx.

Nothing here imports the host side (``maple_edge_lite.learn``) or the CLI."""
