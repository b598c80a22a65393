"""A resumed ingest on object storage: how the driver learns which finished items still have their media.

What is measured, on one S3-compatible server on loopback (moto's server mode, in this process) holding N media
objects under `s3://data/ds/media/`:
    per-item  one HEAD request per finished item (`ObjectStore.exists`, in turn), as a resumed run asked before;
    listing   `location.files_under(media/)`: one paginated ListObjectsV2 listing (1,000 keys a page), then a set
              lookup per item: what `ingest` does now, once per pass.
Both answer the same N questions and must agree. Requests are counted at the server; the wall time on loopback is
printed too, but a real store's round trip (milliseconds, not the tenth of one here) makes the request count the
figure that carries over.

    python benchmarks/resume_listing.py [--n 10000]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotions_data.location import ObjectLocation, open_location


def serve() -> tuple[object, str, list[str]]:
    """A moto server on a free loopback port with a bucket `data`; its endpoint and a log of request methods."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    methods: list[str] = []
    app = server._server.app  # werkzeug reads `.app` per request: count the requests on the way in

    def counting(environ, start_response):  # type: ignore[no-untyped-def]
        methods.append(environ["REQUEST_METHOD"] + ("-list" if "list-type" in environ.get("QUERY_STRING", "") else ""))
        return app(environ, start_response)

    server._server.app = counting
    requests.put(f"{endpoint}/data", timeout=30).raise_for_status()
    return server, endpoint, methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000, help="finished items, each with its media object")
    args = parser.parse_args()
    server, endpoint, methods = serve()
    scratch = tempfile.mkdtemp(prefix="bench-scratch-")
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=endpoint, EMOTIONS_SCRATCH_DIR=scratch)  # fmt: skip
    location = open_location("s3://data/ds")
    assert isinstance(location, ObjectLocation)
    names = [f"media/clip-{i:06d}-0123456789.mp4" for i in range(args.n)]
    location.store.fs.pipe({location.store.key(rel): b"x" for rel in names})

    results = {}
    for side in ("per-item", "listing"):
        methods.clear()
        started = time.perf_counter()
        if side == "per-item":
            found = [location.store.exists(rel) for rel in names]
        else:
            present = location.files_under(location.layout.media)
            found = [rel in present for rel in names]
        elapsed = time.perf_counter() - started
        assert all(found), side
        results[side] = (len(methods), elapsed, sorted(set(methods)))
    server.stop()

    print(f"{args.n} finished items, media objects on moto's S3 server (loopback)")
    print(f"{'side':<10} {'requests':>9} {'kinds':<14} {'wall s':>8}")
    for side, (count, elapsed, kinds) in results.items():
        print(f"{side:<10} {count:>9} {','.join(kinds):<14} {elapsed:>8.2f}")
    (head_n, head_s, _), (list_n, list_s, _) = results["per-item"], results["listing"]
    print(f"requests: listing / per-item = {list_n}/{head_n} = {list_n / head_n:.4f}; "
          f"wall time: per-item / listing = {head_s / list_s:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
