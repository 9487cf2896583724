"""``edgekv download``'s request: which file, from REPO --quant/--file or, with --vram/--gpu, pick's top plan."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekv.requests.pick import PickFlags


def download_target(
    repo_id: str | None, *, quant: str | None, filename: str | None, pick: PickFlags, endpoint: str | None,
    revision: str | None, cache_dir: str | None,
) -> tuple[str, str | None]:  # fmt: skip
    """(repo, file) for hub.download.plan_download: pick's top plan with --vram/--gpu (``pick``: its
    flags, a REPO ranking that repo's files), else REPO with --quant or --file (file None: by --quant).

    Raises:
        SpecError: --vram with --quant/--file; no REPO; a REPO without --quant or --file (with its quants).
    """
    from edgekv.errors import SpecError

    if pick.vram or pick.gpu:
        if quant or filename:
            raise SpecError("--vram picks the file itself", hint="drop --quant/--file, or drop --vram")
        from edgekv.requests.pick import top_plan_file

        return top_plan_file(pick, endpoint=endpoint)
    if not repo_id:
        raise SpecError(
            "say what to download", hint="edgekv download REPO --quant Q4_K_M, or edgekv download --vram 8G"
        )
    if not quant and not filename:
        from edgekv.hub import listing as hub_listing
        from edgekv.hub import names as hub_names

        listing = hub_listing.list_gguf_files(repo_id, endpoint=endpoint, revision=revision, cache_dir=cache_dir)
        have = ", ".join(hub_names.available_quants(listing.files)) or "no quant-named files"
        raise SpecError(f"say which file of {repo_id} to download", hint=f"add --quant (it has: {have}) or --file NAME")
    return repo_id, filename
