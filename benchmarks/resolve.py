"""What the resolve stage costs per URL, against what yt-dlp costs anyway for the same URL's download.

Resolving a URL that names its video (a canonical page, a plain file URL) makes no request: it is yt-dlp's matching
of the URL against its extractors, plus the plugin extractors. The download of the same URL then makes a `YoutubeDL`
and matches the URL again; that set-up is the peer this prints a ratio against (a share link costs one request more,
which depends on the network and is not measured here).

    PYTHONPATH=. .venv/bin/python benchmarks/resolve.py [--urls 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from emotions_data.download import _extractor_for, _ydl_options, plugins_findable, resolve
from emotions_data.settings import DownloadSettings


def _per_call(fn, items) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - started) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=200)
    args = parser.parse_args()
    import yt_dlp

    settings = DownloadSettings()
    plugins_findable()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        resolve("https://www.douyin.com/video/1", work, settings)  # first call: imports and compiles the patterns
        kinds = {
            "plain file URL": [f"http://127.0.0.1:9/clip{i}.mp4" for i in range(args.urls)],
            "douyin /video/ID": [f"https://www.douyin.com/video/{7300000000000000000 + i}" for i in range(args.urls)],
            "kuaishou /short-video/ID": [f"https://www.kuaishou.com/short-video/3x{i:013d}" for i in range(args.urls)],
            "tiktok M.TIKTOK.COM/v/ID": [f"https://M.TIKTOK.COM/v/{73 * 10**17 + i}.html" for i in range(args.urls)],
        }

        def download_setup(url: str) -> None:
            with yt_dlp.YoutubeDL(_ydl_options(settings, work)):
                _extractor_for(url)

        for kind, urls in kinds.items():
            ours = _per_call(lambda u: resolve(u, work, settings), urls)
            peer = _per_call(download_setup, urls[: max(10, len(urls) // 10)])
            print(f"{kind:26s} resolve {ours * 1000:6.1f} ms/URL   download's yt-dlp set-up {peer * 1000:6.1f} ms/URL"
                  f"   ratio {ours / peer:4.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
