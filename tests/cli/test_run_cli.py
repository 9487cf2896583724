"""run's notes about the build it runs on."""

from __future__ import annotations


def test_the_cpu_build_note_names_vram_only_when_it_was_given() -> None:
    from edgekv.plan.memory import RunConfig
    from edgekv.report.run import no_offload_note

    cfg = RunConfig(n_ctx=512, n_gpu_layers=-1)
    plain, capped = no_offload_note(cfg, None), no_offload_note(cfg, 2 * 1024**3)
    assert plain is not None and capped is not None  # this machine's build has no GPU offload
    assert plain.startswith("note: this llama-cpp-python build has no GPU offload; running on the CPU. For a GPU")
    assert "--vram" not in plain and "with --vram capping what llama.cpp allocates" in capped
